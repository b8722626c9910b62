"""An uploaded ZIP of images unpacked into an audit folder, with the Batch page's caps (files, declared and
real sizes, table of contents), keeping one level of folders (an ImageFolder's class folders); an archive with a
path that climbs out (``..``), an absolute path or a link inside is refused whole."""
from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath

from ..batch import (MAX_ITEMS, MAX_MEMBER_BYTES, MAX_TOTAL_BYTES, _read_member, _skipped, _unique, check_declared,
                     open_zip, sanitize_name)
from ..errors import CamError
from .inputs import IMAGE_SUFFIXES

IMAGES = "images"


def _parts(raw: str, zip_name: str) -> tuple[str, ...]:
    """The member's folder names and file name, or a CamError for a path that would leave the folder."""
    text = raw.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise CamError(f"{zip_name}: member {raw!r} has an absolute path; refused")
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if ".." in parts:
        raise CamError(f"{zip_name}: member {raw!r} climbs out of the archive with '..'; refused")
    return parts


def unpack_zip(data: bytes, folder: Path, zip_name: str = "archive.zip", *, max_members: int = MAX_ITEMS,
               max_total_bytes: int = MAX_TOTAL_BYTES, max_member_bytes: int = MAX_MEMBER_BYTES) -> Path:
    """Unpack the images of a ZIP into ``folder/images`` (created) and return that folder.

    Kept: image files (by suffix) at most one folder deep (``class/photo.jpg``; a single top folder around
    everything is dropped), names sanitised. Refused whole (CamError): not a ZIP, a table of contents over the
    Batch limit, more than ``max_members`` images, more than ``max_total_bytes`` declared, a member with an
    absolute path, ``..`` or a symlink. A member that is encrypted, too large or lies about its size is skipped
    and written as a zero-byte file, so the audit reports it as an error row.
    """
    with open_zip(data, zip_name, max_members, per="per upload") as archive:
        members = []
        for info in archive.infolist():
            parts = _parts(info.filename, zip_name)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise CamError(f"{zip_name}: member {info.filename!r} is a symbolic link; refused")
            if _skipped(info) or not parts or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
                continue
            members.append((info, parts))
        if not members:
            raise CamError(f"{zip_name}: no images in it (JPEG, PNG, WebP, BMP, TIFF or GIF)")
        if len(members) > max_members:
            raise CamError(f"{zip_name}: {len(members)} images, over the limit of {max_members} per upload")
        check_declared(zip_name, (info for info, _ in members), max_total_bytes)
        tops = {parts[0] for _, parts in members}
        strip = 1 if len(tops) == 1 and all(len(p) > 1 for _, p in members) else 0
        out = folder / IMAGES
        out.mkdir(parents=True, exist_ok=False)
        taken: set[str] = set()
        for info, parts in members:
            parts = parts[strip:]
            if len(parts) > 2:
                parts = (parts[0], parts[-1])  # class folder and file: deeper folders flattened
            unique = tuple(_unique("/".join(sanitize_name(p) for p in parts), taken).split("/"))
            item = _read_member(archive, info, unique[-1], max_member_bytes)
            target = out.joinpath(*unique)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(item.data if item.error is None else b"")
    return out
