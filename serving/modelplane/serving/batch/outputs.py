"""Writing a batch run's results so that a killed run never leaves half a result.

Each output file is written under `_temporary/` and moved into place only once complete,
at the input's path relative to the input root, so the output keeps the input's folders.
A ledger entry under `_ledger/` then records the input as scored, keyed by its path and
content identity (so `--only-new` runs, and re-runs after a crash, skip it, and a
rewritten file is scored again). `runs.py` writes the markers of a run beside them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

import pandas as pd

from modelplane.serving.batch.inputs import Share
from modelplane.serving.dataplane.json_codec import JSON
from modelplane.serving.errors import BatchError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from pyarrow.parquet import ParquetWriter

SUFFIXES = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}


class Output:
    def __init__(self, fs: AbstractFileSystem, root: str, file_format: str, shard_index: int, chunk_rows: int) -> None:
        self.fs, self.root, self.format = fs, root.rstrip("/"), file_format
        self.chunk_rows = chunk_rows
        self._staging = f"{self.root}/_temporary/{shard_index}"

    def begin(self) -> None:
        """Clears what an earlier, killed run of this shard left half-written."""
        self.fs.makedirs(f"{self.root}/_ledger", exist_ok=True)
        self.remove(self._staging, recursive=True)
        self.fs.makedirs(self._staging, exist_ok=True)

    def scored(self, share: Share) -> bool:
        exists: bool = self.fs.exists(self._ledger_entry(share))
        return exists

    @contextmanager
    def writer(self, share: Share) -> Iterator[_Writer]:
        """A writer of `share`'s results, moved into place (and entered in the ledger)
        only when the block ends without an error."""
        # An input's name ends in a readable suffix, never in ".part-I-of-N": a whole
        # file's output and a part's cannot share a name.
        name = share.file.name if share.whole else f"{share.file.name}.part-{share.first}-of-{share.stride}"
        final: str | None  # None once it turns out nothing was written
        final = f"{self.root}/{name}{SUFFIXES[self.format]}"
        staged = f"{self._staging}/{name}{SUFFIXES[self.format]}"
        self.fs.makedirs(staged.rsplit("/", 1)[0], exist_ok=True)
        writer = _Writer(self.fs.open(staged, "wb"), self.format)
        try:
            yield writer
            writer.close()
        except BaseException:
            writer.close()
            self.fs.rm(staged)
            raise
        if writer.rows:
            self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self.fs.mv(staged, final)
        else:  # this shard's every-n-th chunks fell past the end of a short file
            self.fs.rm(staged)
            final = None
        self.write_json(
            self._ledger_entry(share),
            {
                "input": share.file.path,
                "identity": share.file.identity,
                "output": final,
                "rows": writer.rows,
                "finished": time.time(),
            },
        )

    def write_json(self, path: str, content: dict[str, JSON]) -> None:
        """Writes `path` whole or not at all: staged, then moved into place."""
        staged = f"{self._staging}/{path.rsplit('/', 1)[-1]}"
        with self.fs.open(staged, "w") as handle:
            json.dump(content, handle)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(staged, path)

    def remove(self, path: str, recursive: bool = False) -> None:
        # Asked first: not every store's rm of a missing path raises FileNotFoundError (FTP answers 550).
        if self.fs.exists(path):
            with contextlib.suppress(FileNotFoundError):  # another shard removed it first
                self.fs.rm(path, recursive=recursive)

    def _ledger_entry(self, share: Share) -> str:
        key = hashlib.sha256(f"{share.file.path}\0{share.file.identity}".encode()).hexdigest()[:24]
        # A part is every n-th chunk, so which rows it holds depends on the chunk size too.
        part = "" if share.whole else f".{self.chunk_rows}-rows"
        return f"{self.root}/_ledger/{key}.{share.first}-of-{share.stride}{part}.json"


class _Writer:
    def __init__(self, handle: IO[bytes], file_format: str) -> None:
        self._handle, self._format = handle, file_format
        self._parquet: ParquetWriter | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if self._format == "parquet":
            self._write_parquet(frame)
        elif self._format == "csv":
            self._handle.write(frame.to_csv(index=False, header=self.rows == 0).encode())
        else:
            self._handle.write(frame.to_json(orient="records", lines=True).rstrip("\n").encode() + b"\n")
        self.rows += len(frame)

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._handle, table.schema)
        elif table.schema != self._parquet.schema:
            try:
                table = table.cast(self._parquet.schema)
            except (pa.ArrowInvalid, ValueError) as error:
                raise BatchError(f"a chunk's columns do not match the first chunk's: {error}") from None
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        self._handle.close()
