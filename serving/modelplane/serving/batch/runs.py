"""Which run a shard belongs to, and the `_SUCCESS` marker once every shard of it has finished.

The shards of an Indexed Job share only their pod template: Kubernetes tells no pod an
id common to its Job unless the template asks for one through the downward API, and
`modelplane batch` run by hand, one process per shard, has no Job at all. So a run is
named by the work it does: a hash of its inputs (each path with its content identity),
its model and the settings that decide how the input is split and what is written. Every
shard lists the same input and reaches the same id without talking to the others. Shards
that saw different input (a file landed between their starts) belong to different runs,
and neither run claims success before all of its own shards have finished. A later run
of exactly the same work has the same id: what a shard of it finished earlier is the
same output, so it counts.

Under `_runs/<id>/` are the run's `manifest.json` (the run, its shards, model, settings
and inputs) and one `shard-<i>-of-<n>.json` per finished shard; `_SUCCESS` names the run.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelplane.serving.batch.inputs import InputFile
from modelplane.serving.batch.outputs import Output
from modelplane.serving.dataplane.json_codec import JSON

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

MARKER = re.compile(r"shard-(\d+)-of-(\d+)\.json")


@dataclass(frozen=True)
class Run:
    id: str
    manifest: dict[str, JSON]

    @classmethod
    def of(cls, files: list[InputFile], model: str, shard_count: int, settings: dict[str, JSON]) -> Run:
        """The run that scores `files` with `model` in `shard_count` shards, as `settings` say."""
        inputs = [
            {"path": file.path, "name": file.name, "format": file.format, "identity": file.identity} for file in files
        ]
        work = {"model": model, "shards": shard_count, "settings": settings, "inputs": inputs}
        run_id = hashlib.sha256(json.dumps(work, sort_keys=True).encode()).hexdigest()[:20]
        return cls(run_id, {"run": run_id, **work})


class RunMarkers:
    """The markers of one shard of `run` in `output`."""

    def __init__(self, output: Output, run: Run, shard_index: int) -> None:
        self.output, self.run, self.shard_index = output, run, shard_index
        self._folder = f"{output.root}/_runs/{run.id}"
        self._shards: int = run.manifest["shards"]

    def begin(self) -> None:
        """The output is no longer known complete; this shard of the run has not finished."""
        self.output.remove(f"{self.output.root}/_SUCCESS")
        self.output.write_json(f"{self._folder}/manifest.json", self.run.manifest)
        self.output.remove(self._marker_of(self.shard_index))

    def finish(self, rows: int) -> None:
        """Marks this shard finished, and the run when all of its shards are."""
        self.output.write_json(self._marker_of(self.shard_index), {"rows": rows, "finished": time.time()})
        self.output.fs.invalidate_cache(self._folder)  # a store may cache listings (FTP does): see the others' markers
        if all(self.output.fs.exists(self._marker_of(index)) for index in range(self._shards)):
            self.output.write_json(
                f"{self.output.root}/_SUCCESS", {"run": self.run.id, "shards": self._shards, "finished": time.time()}
            )
            self._forget_other_finished_runs()

    def _marker_of(self, index: int) -> str:
        return f"{self._folder}/shard-{index}-of-{self._shards}.json"

    def _forget_other_finished_runs(self) -> None:
        # A manifest lists every input, so keeping one per run would grow without end;
        # a run not finished is left alone, as its shards may be running.
        for folder in self.output.fs.ls(f"{self.output.root}/_runs", detail=False):
            if folder.rstrip("/").rsplit("/", 1)[-1] != self.run.id and _finished(self.output.fs, folder):
                self.output.remove(folder, recursive=True)


def _finished(fs: AbstractFileSystem, folder: str) -> bool:
    try:
        markers = [MARKER.fullmatch(path.rsplit("/", 1)[-1]) for path in fs.ls(folder, detail=False)]
    except FileNotFoundError:
        return False  # another shard forgot it first
    shards = {int(found.group(2)) for found in markers if found}
    return len(shards) == 1 and sum(1 for found in markers if found) == shards.pop()
