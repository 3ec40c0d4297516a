"""Reading an input file in chunks, and saying where a malformed one goes wrong.

An image file is one row: its bytes, in the column the caller names. A file that cannot
be parsed stops the run with a `BatchError` naming the file and the
line (CSV, JSON Lines) or row group (Parquet). Finding the place may read the file again,
but only once it has failed, so a well-formed file is read once.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

import pandas as pd

from modelplane.serving.batch.inputs import BLOCK_BYTES, Share
from modelplane.serving.errors import BatchError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from pyarrow.parquet import ParquetFile

MAX_IMAGE_BYTES = 64 << 20  # a 4096 x 4096 RGB image, the most ImagePixels decodes, is 48 MiB raw
JSON_TYPES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def read_chunks(
    fs: AbstractFileSystem, share: Share, chunk_rows: int, image_column: str | None = None
) -> Iterator[tuple[int, pd.DataFrame]]:
    """(number of the first row in the file, rows) for each chunk of `share`; an image
    file's bytes go in `image_column`."""
    if share.file.format == "image":
        if share.first == 0 and image_column is not None:
            yield 0, _image_row(fs, share.file.path, image_column)
        return
    first_row = 0
    reader = {"csv": _csv_chunks, "jsonl": _jsonl_chunks, "parquet": _parquet_chunks}[share.file.format]
    for number, chunk in enumerate(reader(fs, share.file.path, chunk_rows)):
        if number % share.stride == share.first:
            yield first_row, chunk.reset_index(drop=True)
        first_row += len(chunk)


def _image_row(fs: AbstractFileSystem, path: str, column: str) -> pd.DataFrame:
    with fs.open(path, "rb") as handle:
        # One byte past the bound tells a file at the bound from a larger one, without reading it all.
        content = handle.read(MAX_IMAGE_BYTES + 1)
    if len(content) > MAX_IMAGE_BYTES:
        raise BatchError(f"{path} is larger than {MAX_IMAGE_BYTES >> 20} MiB, the most an image input may be")
    return pd.DataFrame({column: [content]})


def _csv_chunks(fs: AbstractFileSystem, path: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    with fs.open(path, "rb") as handle:
        # The parser's errors are caught around each read, never around a yield: what
        # the consumer of a chunk raises is not the file's fault.
        try:
            chunks = iter(pd.read_csv(handle, chunksize=chunk_rows))
        except pd.errors.EmptyDataError:
            return  # an empty file: no header, no rows
        except ValueError as error:  # the header is read at once
            raise _csv_error(fs, path, error) from None
        while True:
            try:
                chunk = next(chunks, None)
            except ValueError as error:
                raise _csv_error(fs, path, error) from None
            if chunk is None:
                return
            yield chunk


def _csv_error(fs: AbstractFileSystem, path: str, error: ValueError) -> BatchError:
    if isinstance(error, UnicodeDecodeError):
        return _malformed(path, "CSV", f"line {_undecodable_line(fs, path)}", error)
    # pandas' ParserError and its kin. The C parser counts lines from 1 ("in line 9") and
    # rows from 0 ("EOF inside string starting at row 8").
    if found := re.search(r"\bline (\d+)", str(error)):
        return _malformed(path, "CSV", f"line {found.group(1)}", error)
    if found := re.search(r"\brow (\d+)", str(error)):
        return _malformed(path, "CSV", f"line {int(found.group(1)) + 1}", error)
    return _malformed(path, "CSV", "a line it does not name", error)


def _jsonl_chunks(fs: AbstractFileSystem, path: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    with fs.open(path, "rb") as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8")
        lines_before = 0
        while True:
            try:
                lines = [line for _, line in zip(range(chunk_rows), text, strict=False)]
            except UnicodeDecodeError as error:
                raise _malformed(path, "JSON Lines", f"line {_undecodable_line(fs, path)}", error) from None
            if not lines:
                return
            try:
                frame = pd.read_json(io.StringIO("".join(lines)), lines=True)
            except (ValueError, TypeError) as error:
                raise _malformed(path, "JSON Lines", *_json_line(lines, lines_before, error)) from None
            lines_before += len(lines)
            if len(frame):  # not only blank lines
                yield frame


def _json_line(lines: list[str], lines_before: int, error: Exception) -> tuple[str, Exception]:
    """The first line of a chunk pandas refused that is not one JSON object, and why."""
    for number, line in enumerate(lines, lines_before + 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as line_error:
            return f"line {number}", ValueError(f"{line_error.msg} at column {line_error.colno}")
        if not isinstance(record, dict):
            return f"line {number}", ValueError(f"a record is a JSON object, not {JSON_TYPES[type(record)]}")
    return f"lines {lines_before + 1}-{lines_before + len(lines)}", error


def _parquet_chunks(fs: AbstractFileSystem, path: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa

    rows_read = 0
    with fs.open(path, "rb") as handle:
        try:
            parquet = _parquet_file(handle)
        except (pa.ArrowException, OSError) as error:
            raise _malformed(path, "Parquet", "its footer", error) from None
        batches = parquet.iter_batches(batch_size=chunk_rows)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as error:
                raise _parquet_error(fs, path, rows_read, chunk_rows, error) from None
            if batch is None:
                return
            rows_read += batch.num_rows
            yield batch.to_pandas()


def _parquet_file(handle: IO[bytes]) -> ParquetFile:
    import pyarrow.parquet as pq

    # Streamed page by page: unbuffered, or pre-buffered, the reader holds whole column
    # chunks, so memory would grow with the writer's row groups (some write one per
    # file), not with the chunk.
    return pq.ParquetFile(handle, buffer_size=BLOCK_BYTES, pre_buffer=False)


def _parquet_error(fs: AbstractFileSystem, path: str, rows_read: int, chunk_rows: int, error: Exception) -> BatchError:
    """Names the first row group, from the one holding row `rows_read`, that cannot be read
    alone: batches run across row groups and the reader reads ahead, so the failed batch
    does not say which group is bad."""
    import pyarrow as pa

    with fs.open(path, "rb") as handle:
        parquet = _parquet_file(handle)
        first = 0
        for group in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if first + rows > rows_read:
                try:
                    for _ in parquet.iter_batches(batch_size=chunk_rows, row_groups=[group]):
                        pass
                except (pa.ArrowException, OSError) as group_error:
                    return _malformed(
                        path, "Parquet", f"row group {group} (rows {first}-{first + rows - 1})", group_error
                    )
            first += rows
    return BatchError(f"{path} could not be read after its row {rows_read}: {_first_line(error)}")


def _undecodable_line(fs: AbstractFileSystem, path: str) -> int:
    """The number of the first line that is not UTF-8, read again block by block."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    handle: IO[bytes]
    with fs.open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            pending = len(decoder.getstate()[0])  # the end of a character the last block cut
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                return line + block[: max(error.start - pending, 0)].count(b"\n")
            line += block.count(b"\n")
    return line


def _malformed(path: str, file_format: str, where: str, error: Exception) -> BatchError:
    reason = _first_line(error).removeprefix("Error tokenizing data. C error: ")
    return BatchError(f"{path} is not valid {file_format} at {where}: {reason}; nothing of it was written")


def _first_line(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):  # its position is in a buffer, not the file
        return f"byte 0x{error.object[error.start]:02x} is not UTF-8 ({error.reason})"
    words = [line.strip() for line in str(error).splitlines() if line.strip()]
    return words[0] if words else type(error).__name__
