"""Finding the input files of a batch run and reading them in chunks.

Input is a file, a folder (every readable file under it) or a glob, local or at any
fsspec URL. A shard takes whole files when there are at least as many files as shards,
and otherwise every n-th chunk of each file, so shards never overlap and together cover
the input whatever its shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from modelplane.serving.errors import BatchError

READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl"}


@dataclass(frozen=True)
class InputFile:
    path: str
    name: str  # relative to the input root, "/" replaced, so it can name an output file
    format: str
    size: int


@dataclass(frozen=True)
class Share:
    """What one shard scores of one file: all of it, or every `stride`-th chunk from `first`."""

    file: InputFile
    first: int
    stride: int

    @property
    def whole(self) -> bool:
        return self.stride == 1


def find_inputs(fs, spec: str, root: str) -> list[InputFile]:
    if any(char in root for char in "*?["):
        paths, base = fs.glob(root), root.split("*")[0].rsplit("/", 1)[0]
    elif fs.isdir(root):
        paths, base = fs.find(root), root.rstrip("/")
    elif fs.isfile(root):
        paths, base = [root], root.rsplit("/", 1)[0]
    else:
        raise BatchError(f"--input {spec}: no such file or folder, and no file matches it")
    files = []
    for path in sorted(paths):
        relative = path[len(base):].lstrip("/") if path.startswith(base) else path.rsplit("/", 1)[-1]
        if any(part.startswith((".", "_")) for part in relative.split("/")):
            continue  # hidden files, and markers such as _SUCCESS
        suffix = "." + relative.rsplit(".", 1)[-1].lower() if "." in relative else ""
        if suffix in READERS:
            files.append(InputFile(path, relative.replace("/", "--"), READERS[suffix], fs.size(path)))
    if not files:
        raise BatchError(f"--input {spec}: no input files found; readable suffixes are {', '.join(READERS)}")
    return files


def shares(files: list[InputFile], index: int, count: int) -> list[Share]:
    """The part of the input that shard `index` of `count` scores."""
    if index >= count:
        raise BatchError(f"--shard-index {index} is out of range for --shard-count {count}")
    if len(files) >= count:
        return [Share(file, 0, 1) for position, file in enumerate(files) if position % count == index]
    return [Share(file, index, count) for file in files]


def read_chunks(fs, share: Share, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """(number of the first row in the file, rows) for each chunk of `share`."""
    first_row = 0
    with fs.open(share.file.path, "rb") as handle:
        for number, chunk in enumerate(_chunks(handle, share.file.format, chunk_rows)):
            if number % share.stride == share.first:
                yield first_row, chunk.reset_index(drop=True)
            first_row += len(chunk)


def _chunks(handle, file_format: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if file_format == "csv":
        yield from pd.read_csv(handle, chunksize=chunk_rows)
    elif file_format == "jsonl":
        yield from pd.read_json(handle, lines=True, chunksize=chunk_rows)
    else:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(handle).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
