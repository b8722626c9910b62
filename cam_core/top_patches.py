"""Top-activating patches over an image set (Zeiler & Fergus 2014, fig. 2): for one layer, the k images that
excite each channel most, each at its strongest position, with that position's receptive field on the input.

One pass over the set (``cam_core.audit.scan``'s consumer hook: the same pass every set-level feature reuses)
feeds :class:`TopPatches`, which keeps a running top-k per channel — k values, images and positions per channel,
never the activations themselves — so memory is channels × k whatever the set's size. An image counts once per
channel (its maximum over positions, as Z&F show distinct images); ties go to the image seen first. The box is the
position's receptive field on the model's input (``cam_core.walkthrough``'s composition of kernels, strides and
padding — its one home), and :func:`projection` is the deconvnet image of that unit (the registry's
``deconvnet`` with a feature-map target: the channel's strongest activation alone, projected to the pixels).
Stored as ``patches/LAYER.parquet`` in the audit folder (:func:`write_patches`, :func:`read_patches`).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch import nn

from .audit.engine_local import DEFAULT_WORKERS, prepared_batches
from .audit.inputs import InputItem
from .audit.review import image_path
from .audit.scan import BatchRecord, Preprocess, Scanner, ScanSettings
from .audit.store import TMP_SUFFIX, _replace_into
from .batching import estimate_seconds
from .errors import CamError
from .explain import explain
from .recorder import record
from .render import gradient_image
from .walkthrough import Box, Field, input_rgb, walk

PATCHES = "patches"
DEFAULT_K = 9  # Z&F's fig. 2: the top 9 per feature map
COLUMNS = ("channel", "rank", "value", "index", "row", "col", "top", "left", "bottom", "right", "input_h",
           "input_w")


def layer_field(model: nn.Module, layer: str, x: torch.Tensor) -> Field:
    """The receptive field of every position of ``layer``'s output map for inputs shaped like ``x``: the union
    of the walkthrough's fields of the stages run inside ``layer`` at its output's resolution (a residual block's
    main path and shortcut alike; an upper bound where a non-module operation mixes maps)."""
    with torch.no_grad():
        grid = tuple(record(model, x[:1], [layer], stop_after_layers=True).activations[layer].shape[-2:])
    stages = [s for s in walk(model, x[:1]).stages if s.field is not None and s.is_map
              and tuple(s.output.shape[-2:]) == grid]
    inside = [s for s in stages if s.name.split("#")[0] == layer or s.name.startswith(layer + ".")]
    chosen = inside or stages  # a layer that is no stage itself (e.g. an identity): every field at its grid
    if not chosen:
        raise CamError(f"the receptive field of {layer!r} is not known (no convolution or pooling stage at its "
                       f"{grid[0]}×{grid[1]} grid)")
    out = chosen[0].field
    for s in chosen[1:]:
        out = out.union(s.field)
    return out


@dataclass(frozen=True)
class Patch:
    """One kept activation: ``channel``, its ``rank`` there (0 = strongest), the activation ``value``, the image
    ``index`` (position in the pass's input list), the position ``row``, ``col`` on the layer's map, its
    receptive-field ``box`` on the model's input, that input's size and (read back from a table) the image's
    ``path``."""

    channel: int
    rank: int
    value: float
    index: int
    row: int
    col: int
    box: Box
    input_h: int
    input_w: int
    path: str | None = None  # the image's name in the set, when read back from a table


class TopPatches:
    """A consumer of the audit pass keeping the ``k`` highest activations per channel of ``layer``.

    ``channels``: only these (default all). Call it with each ``BatchRecord`` (``Scanner(..., consumer=tp)``),
    then read :meth:`patches` or :meth:`table`.
    """

    def __init__(self, model: nn.Module, layer: str, k: int = DEFAULT_K, channels: Sequence[int] | None = None):
        if k < 1:
            raise CamError(f"k must be at least 1, got {k}")
        self.model, self.layer, self.k = model, layer, int(k)
        self.channels = None if channels is None else [int(c) for c in dict.fromkeys(channels)]
        self._fields: dict[tuple[int, int], Field] = {}
        self._best: dict[str, np.ndarray] | None = None  # column -> C×(≤k) array, sorted by value, descending
        self._seen: set[int] = set()  # an image the pass redoes alone (after a failure in its group) counts once
        self.images = 0

    def _field(self, x: torch.Tensor) -> Field:
        key = tuple(x.shape[-2:])
        if key not in self._fields:
            self._fields[key] = layer_field(self.model, self.layer, x[:1])
        return self._fields[key]

    def __call__(self, rec: BatchRecord) -> None:
        if rec.layer != self.layer:
            raise CamError(f"the pass records {rec.layer!r}, these patches are of {self.layer!r}")
        fresh = [i for i, index in enumerate(rec.indices) if index not in self._seen]
        if not fresh:
            return
        if len(fresh) < len(rec.indices):
            rec = BatchRecord([rec.indices[i] for i in fresh], rec.x[fresh], rec.logits[fresh], rec.classes[fresh],
                              rec.layer, rec.activations[fresh])
        self._seen.update(rec.indices)
        a = rec.activations
        if a.dim() != 4:
            raise CamError(f"layer {self.layer!r} has no spatial feature maps (output shape {tuple(a.shape)})")
        n, channels, _h, w = a.shape
        chosen = self.channels if self.channels is not None else list(range(channels))
        bad = [c for c in chosen if not 0 <= c < channels]
        if bad:
            raise CamError(f"channel {bad[0]} does not exist: layer {self.layer!r} has {channels}")
        flat = a.detach()[:, chosen].flatten(2).float()
        value, where = flat.max(dim=2)  # N×C: each image's strongest position per channel (first on ties)
        value, where = value.cpu().numpy().T, where.cpu().numpy().T  # C×N
        row, col = where // w, where % w
        field = self._field(rec.x)
        shape = (len(chosen), n)
        batch = {"value": value, "index": np.broadcast_to(np.asarray(rec.indices), shape), "row": row, "col": col,
                 "top": field.rows[0][row], "bottom": field.rows[1][row], "left": field.cols[0][col],
                 "right": field.cols[1][col], "input_h": np.full(shape, rec.x.shape[-2]),
                 "input_w": np.full(shape, rec.x.shape[-1])}
        if self._best is not None:  # kept first: on a tie the image seen earlier stays ahead
            batch = {key: np.concatenate([self._best[key], batch[key]], axis=1) for key in batch}
        order = np.argsort(-batch["value"], axis=1, kind="stable")[:, :self.k]
        self._best = {key: np.take_along_axis(np.asarray(col_), order, axis=1) for key, col_ in batch.items()}
        if self.channels is None:
            self.channels = chosen
        self.images += n

    def patches(self) -> list[Patch]:
        """Every kept activation, by channel then rank."""
        if self._best is None:
            return []
        b = self._best
        out = []
        for ci, channel in enumerate(self.channels or []):
            for rank in range(b["value"].shape[1]):
                out.append(Patch(channel, rank, float(b["value"][ci, rank]), int(b["index"][ci, rank]),
                                 int(b["row"][ci, rank]), int(b["col"][ci, rank]),
                                 Box(int(b["top"][ci, rank]), int(b["left"][ci, rank]), int(b["bottom"][ci, rank]),
                                     int(b["right"][ci, rank])),
                                 int(b["input_h"][ci, rank]), int(b["input_w"][ci, rank])))
        return out

    def table(self, paths: Sequence[str] | None = None) -> pa.Table:
        """The patches as an Arrow table (``COLUMNS``, plus ``path`` of each image when ``paths`` is given)."""
        ps = self.patches()
        cols: dict[str, Any] = {
            "channel": pa.array([p.channel for p in ps], pa.int32()), "rank": pa.array([p.rank for p in ps], pa.int32()),
            "value": pa.array([p.value for p in ps], pa.float32()), "index": pa.array([p.index for p in ps], pa.int64()),
            "row": pa.array([p.row for p in ps], pa.int32()), "col": pa.array([p.col for p in ps], pa.int32()),
            "top": pa.array([p.box.top for p in ps], pa.int32()), "left": pa.array([p.box.left for p in ps], pa.int32()),
            "bottom": pa.array([p.box.bottom for p in ps], pa.int32()),
            "right": pa.array([p.box.right for p in ps], pa.int32()),
            "input_h": pa.array([p.input_h for p in ps], pa.int32()),
            "input_w": pa.array([p.input_w for p in ps], pa.int32())}
        if paths is not None:
            cols["path"] = pa.array([paths[p.index] for p in ps], pa.string())
        return pa.table(cols)


#: A pass's seconds per image as a multiple of the batched forward's (``estimate_seconds``) until a pass was timed:
#: decode in worker threads sharing the cores, the hooked batch of 16 and the heap. Measured at 112 px on 2 CPU
#: threads: Lite0 3.4–4.5, ResNet-18 1.4–1.5 (docs/benchmarks.md, "Time estimates against measured times").
PASS_FACTOR = 2.5


def expected_seconds(model: nn.Module, x: torch.Tensor, images: int,
                     per_image: float | None = None) -> float | None:
    """Seconds a pass over ``images`` inputs shaped like ``x`` should take: ``per_image`` (seconds an image took in
    an earlier pass of this model, size and device) × the images when known; else the batched forward's time per
    item measured in this process × ``PASS_FACTOR`` × the images; ``None`` before either was measured."""
    if per_image:
        return per_image * images
    forward = estimate_seconds(model, x, images)
    return None if forward is None else forward * PASS_FACTOR


def ties_note(values: Sequence[float], what: str = "image") -> str | None:
    """A sentence when some kept patches are not what the channel looks for: values equal to the lowest kept one
    and not above 0 are ties (a channel silent on those images, e.g. after a ReLU), ranked by order seen only."""
    if not values:
        return None
    low = min(values)
    ties = sum(v == low for v in values)
    if low > 0 or ties < 2:
        return None
    if ties == len(values):
        return (f"Not active on any {what} here: every kept {what} gives it {low:.3g}, so these are ties, "
                f"not what the channel looks for.")
    active = len(values) - ties
    return (f"Only {active} {what}{'s' if active > 1 else ''} activate it above {low:.3g}; the other {ties} "
            f"are ties at that value (not what the channel looks for).")


def collect(model: nn.Module, items: Sequence[InputItem] | Mapping[int, InputItem], categories: Sequence[str],
            preprocess: Preprocess, layer: str, k: int = DEFAULT_K, channels: Sequence[int] | None = None,
            batch: int = 16, workers: int = DEFAULT_WORKERS, progress: Callable[[int, int], None] | None = None,
            indices: Sequence[int] | None = None) -> tuple[TopPatches, list[str]]:
    """One pass over ``items`` (decoded in worker threads, as an audit) keeping the top ``k`` per channel of
    ``layer``; the patches and the one-line errors of the images that could not be read (the others go on).
    ``indices``: the items to pass, by their index (default all, 0 to len − 1); a patch's ``index`` is its item's."""
    order = list(range(len(items))) if indices is None else list(indices)
    top = TopPatches(model, layer, k, channels)
    scanner = Scanner(model, categories, ScanSettings(layer, {}), consumer=top)
    errors: list[str] = []
    done = 0
    for prepared in prepared_batches(items, order, preprocess, batch, workers):  # type: ignore[arg-type]
        errors += [row["error"] for row in scanner.rows(prepared) if row.get("error")]
        done += len(prepared)
        if progress is not None:
            progress(done, len(order))
    return top, errors


def audit_images(rows: Sequence[Mapping[str, Any]], root: Path) -> tuple[dict[int, InputItem], list[str]]:
    """An audit's images to pass again, by the audit's own index: each row read without an error (``index``,
    ``path``, ``error``) whose file lies under ``root``; and the paths of those that are missing there or leave it."""
    items: dict[int, InputItem] = {}
    missing: list[str] = []
    for row in rows:
        if row.get("error"):
            continue
        found = image_path(root, str(row.get("path") or ""))
        if found is None:
            missing.append(str(row.get("path")))
            continue
        items[int(row["index"])] = InputItem(str(found), str(row["path"]))
    return items, missing


def save_patches(folder: str | Path, top: TopPatches, paths: Sequence[str] | Mapping[int, str], *, model: str,
                 input_size: int, source: str) -> Path:
    """Write ``top``'s patches with each image's path as ``folder``'s patch file of its layer (``write_patches``),
    with what they were computed from: model, input size, k, images passed and the set's source."""
    meta = {"model": model, "input_size": input_size, "k": top.k, "images": top.images, "source": str(source)}
    return write_patches(folder, top.layer, top.table(paths), meta)  # type: ignore[arg-type]


def from_table(table: pa.Table, channels: Sequence[int] | None = None) -> list[Patch]:
    """A patch table read back (``read_patches``) as patches, by channel then rank (only ``channels`` if given)."""
    wanted = None if channels is None else {int(c) for c in channels}
    out = [Patch(int(r["channel"]), int(r["rank"]), float(r["value"]), int(r["index"]), int(r["row"]),
                 int(r["col"]), Box(int(r["top"]), int(r["left"]), int(r["bottom"]), int(r["right"])),
                 int(r["input_h"]), int(r["input_w"]), r.get("path"))
           for r in table.to_pylist() if wanted is None or int(r["channel"]) in wanted]
    return sorted(out, key=lambda p: (p.channel, p.rank))


def patch_file(folder: str | Path, layer: str) -> Path:
    """``folder/patches/LAYER.parquet`` (a dotted layer name is a plain file name; ``/`` is refused)."""
    if not layer or "/" in layer or "\\" in layer or layer.startswith("."):
        raise CamError(f"layer name {layer!r} cannot name a patch file")
    return Path(folder) / PATCHES / f"{layer}.parquet"


def write_patches(folder: str | Path, layer: str, table: pa.Table, meta: Mapping[str, Any]) -> Path:
    """Write ``table`` as the layer's patch file (atomically), with ``meta`` (k, images, model…) in its schema."""
    path = patch_file(folder, layer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    schema_meta = {b"cam_explorer": json.dumps({"layer": layer, **meta}, sort_keys=True).encode()}
    pq.write_table(table.replace_schema_metadata(schema_meta), tmp)
    _replace_into(tmp, path)
    return path


def read_patches(folder: str | Path, layer: str) -> tuple[pa.Table, dict[str, Any]]:
    """The layer's patch table and its metadata; a one-line ``CamError`` when there is none."""
    path = patch_file(folder, layer)
    if not path.is_file():
        raise CamError(f"no top patches of {layer!r} in {folder} (run `cam-explorer top-patches … --layer {layer}`)")
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(b"cam_explorer", b"{}"))
    return table, meta


def crop(x: torch.Tensor, patch: Patch, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The receptive-field crop of ``patch`` from its image's model input ``x`` (1×3×H×W): H'×W'×3 uint8."""
    return input_rgb(x, tuple(mean), tuple(std), patch.box)


def projection(model: nn.Module, x: torch.Tensor, layer: str, patch: Patch) -> np.ndarray:
    """The deconvnet projection of ``patch``'s unit (its channel's strongest activation on ``x``, alone) as a
    gradient image cropped to the patch's receptive field: H'×W'×3 uint8."""
    e = explain(model, x, "deconvnet", layer, target_channel=patch.channel)
    unit = tuple(e.extras.get("unit", ()))
    if unit and unit != (patch.row, patch.col):  # the same image and channel: the same strongest position
        raise CamError(f"the deconvnet projected {unit}, not the kept position {(patch.row, patch.col)}")
    b = patch.box
    return gradient_image(e.gradient[:, b.top:b.bottom + 1, b.left:b.right + 1])


def pair_tile(crop_rgb: np.ndarray, projection_rgb: np.ndarray, cell: int = 56) -> np.ndarray:
    """A patch's receptive-field crop beside its deconvnet projection, each scaled to ``cell`` px: cell × 2·cell × 3."""
    tiles = [np.asarray(Image.fromarray(img).resize((cell, cell), Image.Resampling.NEAREST))
             for img in (crop_rgb, projection_rgb)]
    return np.concatenate(tiles, axis=1)


def patch_sheet(model: nn.Module, layer: str, patches: Sequence[Patch], inputs: Callable[[int], torch.Tensor],
                mean: Sequence[float], std: Sequence[float], cell: int = 56, gap: int = 4) -> np.ndarray:
    """Z&F's fig. 2 as one image: a row per channel, each kept patch as its receptive-field crop beside its
    deconvnet projection (both scaled to ``cell`` px); ``inputs(index)`` gives an image's model input."""
    rows: dict[int, list[Patch]] = {}
    for p in patches:
        rows.setdefault(p.channel, []).append(p)
    if not rows:
        raise CamError("no patches to draw")
    width = max(len(v) for v in rows.values())
    sheet = np.full((len(rows) * (cell + gap) + gap, width * (2 * cell + 2 * gap) + gap, 3), 255, np.uint8)
    cache: dict[int, torch.Tensor] = {}
    for r, (_channel, ps) in enumerate(sorted(rows.items())):
        for j, p in enumerate(sorted(ps, key=lambda q: q.rank)):
            x = cache[p.index] if p.index in cache else cache.setdefault(p.index, inputs(p.index))
            top, left = gap + r * (cell + gap), gap + j * (2 * cell + 2 * gap)
            sheet[top:top + cell, left:left + 2 * cell] = pair_tile(crop(x, p, mean, std),
                                                                    projection(model, x, layer, p), cell)
    return sheet


__all__ = ["COLUMNS", "DEFAULT_K", "PATCHES", "Patch", "TopPatches", "audit_images", "collect", "crop", "from_table",
           "layer_field", "pair_tile", "patch_file", "patch_sheet", "projection", "read_patches", "save_patches",
           "write_patches"]
