"""Finding the input files of a batch run, naming them, and telling when one changed.

Input is a file, a folder (every readable file under it) or a glob, local or at any
fsspec URL. Image files are inputs too when the model takes one image: each is one row,
the value of the model's binary column, named by its file. Each file is named by its path relative to the input root (the folder, the
file's own folder, or a glob's folders before its first wildcard), so its output keeps
its folders and no two inputs share an output. A shard takes whole files when there are
at least as many files as shards, and otherwise every n-th chunk of each file, so shards
never overlap and together cover the input whatever its shape.
"""

from __future__ import annotations

import glob
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelplane.serving.errors import BatchError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger("modelplane.batch")
READERS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
IMAGE_READERS = {".png": "image", ".jpg": "image", ".jpeg": "image"}
# What a store's listing says changes when a file's content does: a checksum or version
# where it keeps one (object stores, HTTP), else the modification time, with the inode
# (local `ino`, FTP's `unique`) that a replace by rename changes even when it keeps the
# time, as rsync does. Local files and FTP give mtime/modify and the inode; FTP's modify
# counts whole seconds.
IDENTITY_FIELDS = (
    "ETag",
    "etag",
    "md5Hash",
    "crc32c",
    "generation",
    "VersionId",
    "version_id",
    "mtime",
    "modify",
    "LastModified",
    "last_modified",
    "updated",
    "Last-Modified",
    "ino",
    "unique",
)
BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class InputFile:
    path: str
    name: str  # the path relative to the input root: its output's path relative to the output root
    format: str
    identity: str  # changes when the file's content does (see IDENTITY_FIELDS)


@dataclass(frozen=True)
class Share:
    """What one shard scores of one file: all of it, or every `stride`-th chunk from `first`."""

    file: InputFile
    first: int
    stride: int

    @property
    def whole(self) -> bool:
        return self.stride == 1


def find_inputs(fs: AbstractFileSystem, spec: str, root: str, images: bool = False) -> list[InputFile]:
    """The input files under `root`; image files among them only with `images` (a model
    that takes one image: a picture beside another model's CSV files is no input)."""
    readers = {**READERS, **IMAGE_READERS} if images else READERS
    # One listing with details gives every file's identity without a request per file.
    if glob.has_magic(root):
        listed, base = fs.glob(root, detail=True), _glob_base(root)
    elif fs.isdir(root):
        listed, base = fs.find(root, detail=True), root.rstrip("/")
    elif fs.isfile(root):
        listed, base = {root: fs.info(root)}, root.rsplit("/", 1)[0]
    else:
        raise BatchError(f"--input {spec}: no such file or folder, and no file matches it")
    files = []
    for path in sorted(listed):
        if listed[path].get("type") != "file":
            continue  # a folder a glob matched
        relative = _relative(path, base, spec)
        if any(part.startswith((".", "_")) for part in relative.split("/")):
            continue  # hidden files, and markers such as _SUCCESS
        suffix = "." + relative.rsplit(".", 1)[-1].lower() if "." in relative else ""
        if suffix in readers:
            files.append(InputFile(path, relative, readers[suffix], _identity(fs, path, listed[path])))
    if not files:
        raise BatchError(f"--input {spec}: no input files found; readable suffixes are {', '.join(readers)}")
    return files


def _glob_base(pattern: str) -> str:
    """The folders of a glob before its first component with a wildcard (`*`, `?` or `[`)."""
    parts = pattern.split("/")
    wild = next(number for number, part in enumerate(parts) if glob.has_magic(part))
    return "/".join(parts[:wild])


def shares(files: list[InputFile], index: int, count: int) -> list[Share]:
    """The part of the input that shard `index` of `count` scores."""
    if index >= count:
        raise BatchError(f"--shard-index {index} is out of range for --shard-count {count}")
    if len(files) >= count:
        return [Share(file, 0, 1) for position, file in enumerate(files) if position % count == index]
    return [Share(file, index, count) for file in files]


def _relative(path: str, base: str, spec: str) -> str:
    # A store may list paths with or without the leading "/" its root was given with.
    path, base = path.strip("/"), base.strip("/")
    if not base:
        return path
    if not path.startswith(base + "/"):
        # Never fall back to a shorter name: two such files could share an output.
        raise BatchError(
            f"--input {spec}: the store listed {path}, which is outside {base}, so it has no name "
            f"under the output folder; name the input by its canonical path"
        )
    return path[len(base) + 1 :]


def _identity(fs: AbstractFileSystem, path: str, info: dict[str, Any]) -> str:
    if info.get("islink"):
        info = fs.info(path)  # a listing stats the link itself; its target is what changes
    fields = [f"{field}={info[field]}" for field in IDENTITY_FIELDS if info.get(field) is not None]
    if fields:
        described = ";".join([*fields, f"size={info.get('size')}"])
        return hashlib.sha256(described.encode()).hexdigest()[:32]
    # The store tells nothing that changes with the content, so read it: in blocks, memory stays bounded.
    log.info("%s: the store gives no checksum or modification time, so its content is hashed", path)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
    return "sha256:" + digest.hexdigest()[:32]
