"""An audit on disk: ``manifest.json`` plus ``parts/part-NNNNN.parquet``, one part per batch.

Every file is written to a temporary name and renamed (``os.replace``), so a run killed at any moment loses at
most the batch in flight. What is done is the set of ``index`` values in the part files, so the same command on
the same folder resumes, and no row is ever written twice. Read back with :func:`open_audit` (DuckDB, in-process).
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import CamError
from . import location
from .location import is_uri
from .rows import FORMAT, SEP, audit_schema

try:  # POSIX: an advisory lock the kernel drops when the process dies, so a killed run never blocks a resume
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, one writer per folder is then the caller's care
    fcntl = None  # type: ignore[assignment]

MANIFEST = "manifest.json"
PARTS = "parts"
TMP_SUFFIX = ".tmp"
# A folder resumed with other settings would mix two audits in one table: these must match to continue.
IDENTITY = ("format", "model", "weights_sha256", "input_size", "layer", "methods", "metrics", "baseline",
            "inputs_sha256")
COUNTED = ("index", "error", "label_idx", "correct_top1", "correct_top5")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _replace_into(tmp: Path, final: Path) -> None:
    """Flush ``tmp`` to disk and rename it to ``final`` (atomic on one file system)."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON so a reader sees the old file or the new one: a local file through a flushed
    temporary file and a rename; a URI as one object (object stores publish an object whole when it is closed)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if is_uri(str(path)):
        fs, where = location.resolve(str(path))
        with fs.open_output_stream(where) as out:
            out.write(text.encode("utf-8"))
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    tmp.write_text(text, encoding="utf-8")
    _replace_into(tmp, path)


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's manifest (a path, or a URI read through ``pyarrow.fs``), ``None`` when there is none yet."""
    if is_uri(str(folder)):
        path: str | Path = location.join(str(folder), MANIFEST)
        if location.kind(str(path)) != "file":
            return None
        read = functools.partial(location.read_text, str(path))
    else:
        path = Path(folder) / MANIFEST
        if not path.is_file():
            return None
        read = functools.partial(path.read_text, encoding="utf-8")
    try:
        return json.loads(read())
    except (OSError, ValueError) as exc:
        raise CamError(f"{path}: not a readable audit manifest ({exc})") from None


def part_files(folder: str | Path) -> list[Path]:
    """The finished part files, in the order they were written (temporary files excluded)."""
    parts = Path(folder) / PARTS
    return sorted(parts.glob("part-*.parquet")) if parts.is_dir() else []


def part_uris(folder: str) -> list[str]:
    """``part_files`` for an audit folder given as a URI (listed through ``pyarrow.fs``)."""
    parts = location.join(folder, PARTS)
    if location.kind(parts) != "dir":
        return []
    return [location.join(parts, name) for name, is_dir in location.listing(parts, recursive=False)
            if not is_dir and name.startswith("part-") and name.endswith(".parquet")]


def _part_number(path: Path) -> int:
    return int(path.name[len("part-"):-len(".parquet")])


def _counts(table: pa.Table) -> dict[str, int]:
    """Rows, errors, labelled rows that did not fail (what accuracy is over, as in ``review.Summary``) and
    correct top-1 / top-5 in one part's counted columns."""
    def true(col: str) -> int:
        return int(pc.sum(table[col].fill_null(False).cast(pa.int64())).as_py() or 0)
    return {"done": table.num_rows, "errors": table.num_rows - table["error"].null_count,
            "labelled": int(pc.sum(pc.and_(pc.is_valid(table["label_idx"]), pc.is_null(table["error"]))
                                   .cast(pa.int64())).as_py() or 0),
            "correct_top1": true("correct_top1"), "correct_top5": true("correct_top5")}


def _add(total: dict[str, int], more: Mapping[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


class AuditWriter:
    """Writes one audit folder batch by batch; opening a folder that already holds the same audit resumes it.

    ``manifest`` carries at least ``methods`` ({name: params}) and ``metrics``; its ``IDENTITY`` keys must match
    an existing manifest's. Only one writer per folder at a time (a lock file the kernel releases on death).
    """

    def __init__(self, folder: str | Path, manifest: Mapping[str, Any]) -> None:
        # A URI (s3://, gs://, file://) goes through pyarrow.fs: each part and the manifest are written as whole
        # objects, and there is no lock (one writer per folder is then the caller's care).
        self.uri = str(folder).rstrip("/") if is_uri(str(folder)) else None
        self.folder = Path(folder)
        self.parts = self.folder / PARTS
        self._lock = None
        if self.uri is None:
            self.parts.mkdir(parents=True, exist_ok=True)
            self._lock = self._take_lock()
        else:
            self._fs, where = location.resolve(location.join(self.uri, PARTS))
            self._fs.create_dir(where, recursive=True)
        try:
            self.manifest = self._merge(dict(manifest), read_manifest(self.uri or self.folder))
            self.schema = audit_schema(list(self.manifest["methods"]), self.manifest.get("metrics") or ())
            if self.uri is None:
                for leftover in self.parts.glob(f".*{TMP_SUFFIX}"):  # a part being written when killed
                    leftover.unlink()
            self.done: set[int] = set()
            self.counts: dict[str, int] = {"done": 0, "errors": 0, "labelled": 0, "correct_top1": 0,
                                           "correct_top5": 0}
            self._next = 0
            for path in self._part_paths():
                self._next = max(self._next, _part_number(Path(path)) + 1)
                try:
                    table = self._read_counted(path)
                except (OSError, pa.ArrowException):  # unreadable (not ours, a disk fault, cut short): redo it
                    self._set_aside(path)
                    continue
                self.done.update(table["index"].to_pylist())
                _add(self.counts, _counts(table))
            self.manifest["counts"] = dict(self.counts)
            write_json_atomic(self._manifest_path(), self.manifest)
        except BaseException:
            self.close()
            raise

    def _manifest_path(self) -> str | Path:
        return location.join(self.uri, MANIFEST) if self.uri else self.folder / MANIFEST

    def _part_paths(self) -> list[str] | list[Path]:
        return part_uris(self.uri) if self.uri else part_files(self.folder)

    def _read_counted(self, path: str | Path) -> pa.Table:
        if self.uri:
            return pq.read_table(location.resolve(str(path))[1], columns=list(COUNTED), filesystem=self._fs)
        return pq.read_table(path, columns=list(COUNTED))

    def _set_aside(self, path: str | Path) -> None:
        """Rename an unreadable part ``*.corrupt`` so its rows are redone and it is never read again."""
        if self.uri:
            where = location.resolve(str(path))[1]
            self._fs.move(where, where + ".corrupt")
        else:
            Path(path).rename(Path(path).with_name(Path(path).name + ".corrupt"))

    def _take_lock(self):
        fh = open(self.folder / ".lock", "a+")
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                raise CamError(f"{self.folder}: another audit is writing to this folder right now") from None
        return fh

    def _merge(self, new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """The manifest to write: ``new`` for a fresh folder; for a resume, ``old`` with this run's command,
        engine and versions, after checking both describe the same audit."""
        new = json.loads(json.dumps({"format": FORMAT, **new}))  # as it will read back (tuples become lists)
        if old is None:
            if self.uri is not None and location.listing(location.join(self.uri, PARTS)):
                raise CamError(f"{self.uri}: has part files but no manifest; not an audit this tool wrote")
            if self.uri is None and any(self.parts.iterdir()):
                raise CamError(f"{self.folder}: has part files but no manifest; not an audit this tool wrote")
            return {**new, "started": new.get("started") or utc_now(), "finished": None}
        differ = [k for k in IDENTITY if k in new and old.get(k) != new[k]]
        if differ:
            raise CamError(f"{self.folder}: holds an audit made with other settings ({', '.join(differ)} differ); "
                           "resume with the same settings or choose another --out")
        runs = [*old.get("resumed", []), utc_now()]
        return {**old, **{k: new[k] for k in ("command", "engine", "versions", "source") if k in new},
                "finished": None, "resumed": runs}

    def write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write one batch of rows as the next part file; rows already in the folder are skipped. Returns the
        number of rows written."""
        seen: set[int] = set()
        fresh = []
        for row in rows:
            index = int(row["index"])
            if index in seen:
                raise ValueError(f"row index {index} twice in one batch")
            seen.add(index)
            if index not in self.done:
                fresh.append(row)
        if not fresh:
            return 0
        table = pa.Table.from_pylist(list(fresh), schema=self.schema)
        name = f"part-{self._next:05d}.parquet"
        if self.uri:  # one object, published whole when the upload completes
            pq.write_table(table, location.resolve(location.join(self.uri, PARTS, name))[1], filesystem=self._fs)
        else:
            final = self.parts / name
            tmp = self.parts / f".{final.name}{TMP_SUFFIX}"
            pq.write_table(table, tmp)
            _replace_into(tmp, final)
        self._next += 1
        self.done.update(int(r["index"]) for r in fresh)
        _add(self.counts, _counts(table.select(list(COUNTED))))
        self.manifest["counts"] = dict(self.counts)
        write_json_atomic(self._manifest_path(), self.manifest)
        return len(fresh)

    def finish(self, **extra: Any) -> dict[str, Any]:
        """Mark the audit finished (``finished`` time, final counts and any ``extra`` keys) and release it."""
        self.manifest.update(extra, counts=dict(self.counts), finished=utc_now())
        write_json_atomic(self._manifest_path(), self.manifest)
        self.close()
        return self.manifest

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the flock
            self._lock = None

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Audit:
    """A finished or running audit, read in-process with DuckDB: ``rows`` is a view over the part files.

    ``folder`` is a path, or a URI (``s3://…``, ``gs://…``, ``file://…``): then the parts are listed and read
    through ``pyarrow.fs`` as an Arrow dataset DuckDB scans (no DuckDB extension, no network of its own)."""

    def __init__(self, folder: str | Path) -> None:
        self.uri = str(folder).rstrip("/") if is_uri(str(folder)) else None
        self.folder = Path(folder)
        manifest = read_manifest(self.uri or self.folder)
        if manifest is None:
            raise CamError(f"{folder}: not an audit folder (no {MANIFEST})")
        self._manifest = manifest
        self.schema = audit_schema(list(manifest.get("methods") or {}), manifest.get("metrics") or ())
        self._con: duckdb.DuckDBPyConnection | None = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        _OPEN.add(self)

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as it is now (a running audit updates its counts after each part)."""
        fresh = read_manifest(self.uri or self.folder)
        if fresh is not None:
            self._manifest = fresh
        return dict(self._manifest)

    @property
    def methods(self) -> list[str]:
        return list(self._manifest.get("methods") or {})

    def _refresh_view(self) -> None:
        """Point ``rows`` at the part files present now (a running audit adds parts)."""
        if self.uri is not None:
            uris = part_uris(self.uri)
            fs = location.resolve(self.uri)[0]
            dataset = pads.dataset([location.resolve(u)[1] for u in uris], schema=self.schema,
                                   filesystem=fs, format="parquet")
            self._con.register("_parts", dataset)
            self._con.execute("CREATE OR REPLACE VIEW rows AS SELECT * FROM _parts")
            return
        parts = part_files(self.folder)
        if parts:
            files = ", ".join(_sql_string(str(p)) for p in parts)
            self._con.execute(f"CREATE OR REPLACE VIEW rows AS SELECT * FROM read_parquet([{files}])")
        else:
            self._con.register("_no_rows", self.schema.empty_table())
            self._con.execute("CREATE OR REPLACE VIEW rows AS SELECT * FROM _no_rows")

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run ``query`` (DuckDB SQL over the view ``rows``) and return the result as an Arrow table."""
        with self._lock:
            if self._con is None:
                raise CamError(f"{self.folder}: this audit was closed")
            self._refresh_view()
            return self._con.sql(query, params=params or None).to_arrow_table()

    def count(self) -> int:
        """Rows written so far (errors included)."""
        return int(self.sql("SELECT count(*) AS n FROM rows")["n"][0].as_py())

    def map(self, index: int, method: str) -> np.ndarray:
        """Image ``index``'s raw map for ``method`` at the layer grid, (h, w) float32."""
        if method not in self.methods:
            raise CamError(f"this audit has no {method!r} maps; it has {', '.join(self.methods) or 'none'}")
        c = lambda name: f'"{method}{SEP}{name}"'  # noqa: E731 - quoted column name
        got = self.sql(f'SELECT {c("map")} AS m, {c("map_h")} AS h, {c("map_w")} AS w, error FROM rows '
                       'WHERE "index" = ?', [int(index)]).to_pylist()
        if not got:
            raise CamError(f"no row with index {index} in this audit")
        row = got[0]
        if row["m"] is None:
            raise CamError(f"image {index} has no {method} map" + (f": {row['error']}" if row["error"] else ""))
        return np.asarray(row["m"], dtype=np.float32).reshape(row["h"], row["w"])

    def close(self, wait: float = -1) -> None:
        """Close and drop the DuckDB connection (after the query in flight; at most ``wait`` s when ≥ 0)."""
        locked = self._lock.acquire(timeout=wait)
        try:
            con, self._con = self._con, None
            if con is not None:
                con.close()
        finally:
            if locked:
                self._lock.release()
        _OPEN.discard(self)

    def __enter__(self) -> Audit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_OPEN: weakref.WeakSet[Audit] = weakref.WeakSet()


@atexit.register
def _close_open_audits() -> None:
    """Close the audits still open at exit (an app's cached ones, one held by a daemon thread): a connection
    alive when DuckDB's module is torn down makes it print "nanobind: leaked …" lines."""
    for audit in list(_OPEN):
        audit.close(wait=1.0)


def open_audit(folder: str | Path) -> Audit:
    """The audit in ``folder`` (a :class:`CamError` when it is not one)."""
    return Audit(folder)


def inputs_fingerprint(names: Iterable[str]) -> str:
    """A hash of the ordered item names: a resume must see the same list, or ``index`` would mean another file."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode("utf-8") + b"\0")
    return digest.hexdigest()
