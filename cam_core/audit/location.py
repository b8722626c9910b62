"""Where an audit's images and parts live when they are not local paths: a URI (``s3://bucket/set``,
``gs://…``, ``file:///data/set``) read through ``pyarrow.fs`` — the file systems Ray Data and pyarrow's Parquet
reader use. Every scheme goes through the same calls; only the ``FileSystem`` object differs (``file://`` is
how the tests exercise this path offline)."""
from __future__ import annotations

import functools
import posixpath
from typing import IO
from urllib.parse import quote, unquote, urlsplit

import pyarrow.fs as pafs


def is_uri(text: str) -> bool:
    """True for ``scheme://…`` (object storage or ``file://``), False for a plain path."""
    return "://" in str(text)


@functools.lru_cache(maxsize=16)
def _filesystem(origin: str) -> tuple[pafs.FileSystem, str]:
    """The file system for ``scheme://netloc`` and the path prefix its paths start with (the bucket), once per
    process: building an S3 or GCS client resolves regions and credentials."""
    fs, root = pafs.FileSystem.from_uri(origin + "/")
    return fs, root.rstrip("/")


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """``uri``'s file system and the path inside it (``s3://b/k`` → (S3, ``b/k``); ``file:///d`` → (local, ``/d``))."""
    parts = urlsplit(uri)
    fs, prefix = _filesystem(f"{parts.scheme}://{parts.netloc}")
    path = unquote(parts.path).rstrip("/") or "/"
    return fs, (prefix + path if prefix else path)


def join(uri: str, *names: str) -> str:
    """``uri`` with the relative posix file ``names`` appended, percent-encoded as a URI's path is (``..`` is
    not resolved: names come from listings and lists)."""
    return uri.rstrip("/") + "/" + "/".join(quote(n.strip("/")) for n in names)


def locate(folder: str, written: str) -> str:
    """A path as a list inside ``folder`` (a URI) writes it: a URI as is, ``/key`` from the bucket's root,
    anything else relative to ``folder``."""
    if is_uri(written):
        return written
    if written.startswith("/"):
        parts = urlsplit(folder)
        return f"{parts.scheme}://{parts.netloc}{quote(posixpath.normpath(written))}"
    return join(folder, written)


def parent(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}{posixpath.dirname(parts.path.rstrip('/'))}"


def open_input(uri: str) -> IO[bytes]:
    """A binary stream of the object at ``uri`` (a ``FileNotFoundError`` / ``OSError`` when it cannot be read)."""
    fs, path = resolve(uri)
    return fs.open_input_stream(path)


def read_text(uri: str) -> str:
    with open_input(uri) as fh:
        return fh.read().decode("utf-8-sig")


def kind(uri: str) -> str:
    """``"file"``, ``"dir"`` or ``"missing"``."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    return {pafs.FileType.File: "file", pafs.FileType.Directory: "dir"}.get(info.type, "missing")


def listing(uri: str, recursive: bool = True) -> list[tuple[str, bool]]:
    """(name relative to ``uri`` in posix form, is a folder) for everything under the folder ``uri`` (none when
    it does not exist: an object store has no empty folders), sorted part by part as ``pathlib`` sorts (so a
    folder gives the same order by path or by URI)."""
    fs, root = resolve(uri)
    found = fs.get_file_info(pafs.FileSelector(root, recursive=recursive, allow_not_found=True))
    entries = [(posixpath.relpath(info.path, root), info.type == pafs.FileType.Directory) for info in found]
    return sorted(entries, key=lambda e: e[0].split("/"))
