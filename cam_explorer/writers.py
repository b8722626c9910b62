"""Everything the command line writes: JSON lines on stdout, files in the output folder (overlay PNG,
heat map ``.npy``, gradient PNG, HTML report), and progress and errors on stderr.

stdout carries results only (one JSON object per line, or one JSON document for ``--json`` listings), so
it can be piped; people read stderr.
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from cam_core import render
from cam_core.errors import CamError

# --------------------------------------------------------------------------- stdout


def emit(obj: dict[str, Any]) -> None:
    """One result as one JSON line, flushed at once (a reader sees each image as it finishes)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit_document(obj: Any) -> None:
    """A whole listing (``methods --json``, ``layers --json``) as one indented JSON document."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def emit_text(lines: list[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")


def jsonable(value: Any) -> Any:
    """``value`` with anything JSON cannot hold (types, tensors, …) turned into text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy scalars and arrays, tensors
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def finite(value: Any) -> Any:
    """``value`` made JSON-safe (``jsonable``) with NaN and ±inf as ``null`` (strict JSON has neither)."""
    value = jsonable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def curve_record(curve: Any) -> dict[str, Any]:
    """A ``cam_core.metrics.Curve`` as ``{"x_label", "y_label", "x": [...], "y": [...]}``."""
    return {"x_label": curve.x_label, "y_label": curve.y_label, "x": finite(curve.x), "y": finite(curve.y)}


def metric_record(result: Any) -> dict[str, Any]:
    """A ``cam_core.metrics.MetricResult`` as JSON: score, direction, class, curve points, details, notes;
    ``curves`` holds the curves behind the score other than ``curve`` itself (ROAD's MoRF and LeRF)."""
    return {
        "score": finite(float(result.score)),
        "higher_is_better": bool(result.higher_is_better),
        "class_idx": None if result.class_idx is None else int(result.class_idx),
        "curve": None if result.curve is None else curve_record(result.curve),
        "curves": {name: curve_record(c) for name, c in result.curves.items() if c is not result.curve},
        "details": finite(result.details),
        "notes": [str(n) for n in result.notes],
        "explanation": result.explanation,
        "baseline": None if result.baseline is None else result.baseline.as_dict(),
        "verdict": result.verdict,
    }


def one_line(exc: BaseException) -> str:
    """An error as one line: a ``CamError``'s own message, anything else prefixed with its type."""
    text = " ".join((str(exc).strip() or type(exc).__name__).split())
    return text if isinstance(exc, CamError) else f"{type(exc).__name__}: {text}"


# --------------------------------------------------------------------------- files


def safe_name(text: str) -> str:
    """``text`` reduced to characters that are safe in a file name on every system."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "image"


THUMBNAIL = 192  # the longest side of a sanity-check thumbnail, in pixels


class OutputFolder:
    """The ``--out`` folder: created once, file stems unique per input (``a/cat.jpg`` and ``b/cat.jpg`` become
    ``cat`` and ``cat_2``, so one never overwrites the other)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CamError(f"{self.path}: cannot create the output folder ({exc.strerror or exc})") from None
        self._stems: dict[str, int] = {}

    def stem_for(self, image_path: str) -> str:
        stem = safe_name(Path(image_path).stem)
        self._stems[stem] = self._stems.get(stem, 0) + 1
        return stem if self._stems[stem] == 1 else f"{stem}_{self._stems[stem]}"

    def heatmap(self, base: str, heat: Any) -> Path:
        """The map at the image's own size, float32 in [0, 1]: ``<base>_heatmap.npy``."""
        return render.save_npy(heat, self.path / f"{base}_heatmap.npy")

    def overlay(self, base: str, image: Any) -> Path:
        return render.save_png(image, self.path / f"{base}_overlay.png")

    def gradient(self, base: str, grad: Any, size: tuple[int, int]) -> Path:
        """A pixel method's signed gradient as a colour image, resized to the original image."""
        img = Image.fromarray(render.gradient_image(grad), "RGB").resize(size, Image.BILINEAR)
        return render.save_png(img, self.path / f"{base}_gradient.png")

    def sanity_thumbnails(self, base: str, image: Any, result: Any, alpha: float, cmap: str) -> dict[str, Any]:
        """A sanity check's maps as small overlays on the image: ``<base>_original.png``, one
        ``<base>_<ii>_<stage>.png`` per stage (01, 02, … top-down) and ``<base>_random_class.png``; returns
        ``{"original_thumbnail", "random_class_thumbnail", "stage_thumbnails": [...]}`` (paths as text)."""
        thumb = image.convert("RGB")
        thumb.thumbnail((THUMBNAIL, THUMBNAIL))

        def write(label: str, heat: Any) -> str | None:
            if heat is None:
                return None
            return str(render.save_png(render.overlay(thumb, heat, alpha, cmap), self.path / f"{base}_{label}.png"))

        stages = [write(f"{i:02d}_{safe_name(s.stage)}", s.heatmap) for i, s in enumerate(result.stages, 1)]
        return {"original_thumbnail": write("original", result.original),
                "random_class_thumbnail": write("random_class", result.random_class_heatmap),
                "stage_thumbnails": stages}

    def report(self, base: str, html: str) -> Path:
        path = self.path / f"{base}_report.html"
        try:
            path.write_text(html, encoding="utf-8")
        except OSError as exc:
            raise CamError(f"{path}: cannot write the report ({exc.strerror or exc})") from None
        return path


# --------------------------------------------------------------------------- stderr: progress


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``: how long, for a person."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s"


def say(line: str) -> None:
    """One line for the person on stderr (stdout stays JSON)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def announce(what: str, expected_seconds: float | None) -> None:
    """Before a long run: how long it is expected to take, when an earlier run in this process measured it."""
    if expected_seconds is not None:
        sys.stderr.write(f"{what}: expected about {duration(expected_seconds)}\n")
        sys.stderr.flush()


class StatusLine:
    """A status line on stderr: rewritten in place on a terminal, one line per update in a log."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.shown = False
        self._width = 0

    def write(self, text: str, last: bool = False) -> None:
        """Show ``text``; on a terminal it replaces the line shown (ended when ``last``)."""
        if self.tty:
            pad = " " * max(self._width - len(text), 0)  # wipe what a longer previous line left behind
            self._width = len(text)
            self.stream.write(f"\r{text}{pad}" + ("\n" if last else ""))
        else:
            self.stream.write(text + "\n")
        self.shown = True
        self.stream.flush()

    def interrupted(self) -> None:
        """End a half-drawn terminal line so the error that follows starts on its own line."""
        if self.shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Progress(StatusLine):
    """``progress(done, total)`` for long methods, on stderr: one line rewritten in place on a terminal,
    a line at each quarter otherwise (logs); both with done/total and the time left (ETA)."""

    def __init__(self, what: str, stream: Any = None) -> None:
        super().__init__(stream)
        self.what = what
        self.started = time.perf_counter()
        self.total: int | None = None  # the last total seen: how many items the method ran
        self._last_step = -1

    def _line(self, done: int, total: int) -> str:
        pct = 100.0 * done / total
        text = f"{self.what}: {done}/{total} ({pct:{3 if self.tty else 0}.0f}%)"  # fixed width in place
        if 0 < done < total:
            elapsed = time.perf_counter() - self.started
            text += f", about {duration(elapsed / done * (total - done))} left"
        elif done >= total:
            text += f" in {duration(time.perf_counter() - self.started)}"
        return text

    def __call__(self, done: int, total: int) -> None:
        total = max(int(total), 1)
        self.total = total
        if total == 1:  # one-shot work: nothing to watch
            return
        done = min(max(int(done), 0), total)
        if not self.tty:
            step = int(100.0 * done / total // 25)  # 0, 25, 50, 75, 100 %
            if step == self._last_step:
                return
            self._last_step = step
        self.write(self._line(done, total), last=done >= total)
