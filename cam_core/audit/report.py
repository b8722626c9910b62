"""The review report of an audit: one self-contained HTML file (inline CSS, images as data: URIs, the confusion
matrix as inline SVG, no script, nothing fetched) to hand to a reviewer — summary, per-class table, confusion
matrix, the surest mistakes and the right-for-the-wrong-reason cases with overlays and their evidence, provenance.
"""
from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..errors import CamError, ImageLoadError
from ..imaging import load_image
from ..render import colorize, overlay, upsample
from ..report import _e, html_page, image_data_uri
from . import review
from .rows import SEP
from .store import Audit, open_audit

#: Overlays in the report are drawn at most this many pixels on the long side (keeps the file small).
THUMB_SIDE = 320
#: At most this many classes are drawn in the confusion matrix (the busiest rows; the table has them all).
MAX_MATRIX_CLASSES = 40
#: Cases shown per section.
CASES = 12

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;padding:0 1rem}h1{font-size:1.6rem;margin-bottom:.2rem}.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}
th{background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:1rem}.card{flex:0 1 340px;border:1px solid #ddd;padding:.5rem}
.card img{width:100%;height:auto}.card p{margin:.2rem 0;font-size:.9rem}.note{background:#eef5ff;
border-left:4px solid #4a90d9;padding:.4rem .8rem}.warn{background:#fff4e5;border-left:4px solid #e69500;
padding:.4rem .8rem}code{background:#f5f5f5;padding:.1rem .3rem;word-break:break-all}
footer{color:#888;font-size:.8rem;margin-top:2rem}
"""


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def overlay_image(row: Mapping[str, Any], raw: np.ndarray | None, root: Path | None,
                  side: int = THUMB_SIDE) -> tuple[Image.Image | None, str | None]:
    """The row's map over its image (thumbnail, box drawn when given); the map alone when the image cannot be
    read (with the reason); ``(None, reason)`` when there is no map."""
    if raw is None:
        return None, "no map for this image"
    heat = review.unit_map(raw)
    path = review.image_path(root, row.get("path") or "")
    note = None
    try:
        if path is None:
            raise ImageLoadError(row.get("path") or "image", "not found beside the audit's source")
        image = load_image(path)
        full = image.size
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        picture = overlay(image, heat, alpha=0.5)
    except ImageLoadError as exc:
        w, h = int(row.get("width") or heat.shape[1]), int(row.get("height") or heat.shape[0])
        scale = side / max(w, h, 1)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        picture = Image.fromarray(colorize(upsample(heat, size)), "RGB")
        full = (w, h)
        note = f"map only: {exc}"
    box = row.get("box")
    if box is not None and len(box) == 4:
        sx, sy = picture.width / max(full[0], 1), picture.height / max(full[1], 1)
        x0, y0, x1, y1 = (float(v) for v in box)
        ImageDraw.Draw(picture).rectangle([x0 * sx, y0 * sy, x1 * sx, y1 * sy], outline=(255, 255, 255), width=2)
    return picture, note


def confusion_svg(conf: review.Confusion, max_classes: int = MAX_MATRIX_CLASSES) -> str:
    """The confusion matrix as an inline SVG: true class down, predicted across, each cell's count written,
    shaded by its share of the row."""
    keep = list(range(len(conf.classes)))
    if len(keep) > max_classes:
        busiest = np.argsort(-conf.counts.sum(axis=1) - conf.counts.sum(axis=0), kind="stable")[:max_classes]
        keep = sorted(int(i) for i in busiest)
    counts = conf.counts[np.ix_(keep, keep)]
    labels = [conf.classes[i][1] for i in keep]
    n = len(keep)
    cell, left, top = 28, 160, 160
    w, h = left + n * cell + 10, top + n * cell + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
             'aria-label="confusion matrix: true class down, predicted class across">',
             f'<text x="{left}" y="12" font-size="11">predicted →</text>',
             f'<text x="4" y="{top - 6}" font-size="11">true ↓</text>']
    for j, label in enumerate(labels):
        x = left + j * cell + cell / 2
        parts.append(f'<text x="{x:.0f}" y="{top - 4}" font-size="10" transform="rotate(-60 {x:.0f} {top - 4})">'
                     f'{_e(label[:22])}</text>')
    for i, label in enumerate(labels):
        y = top + i * cell
        parts.append(f'<text x="{left - 4}" y="{y + cell / 2 + 4:.0f}" font-size="10" text-anchor="end">'
                     f'{_e(label[:22])}</text>')
        total = max(int(counts[i].sum()), 1)
        for j in range(n):
            v = int(counts[i, j])
            share = v / total
            shade = int(255 - 200 * share)
            fill = f"rgb({shade},{shade},255)" if i == j else f"rgb(255,{shade},{shade})"
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" '
                         f'stroke="#ccc"><title>{_e(labels[i])} → {_e(labels[j])}: {v}</title></rect>')
            if v:
                parts.append(f'<text class="cell" data-true="{_e(labels[i])}" data-pred="{_e(labels[j])}" '
                             f'x="{left + j * cell + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" font-size="10" '
                             f'text-anchor="middle">{v}</text>')
    parts.append("</svg>")
    note = (f'<p class="note">Showing the {n} busiest of {len(conf.classes)} classes.</p>'
            if n < len(conf.classes) else "")
    return "".join(parts) + note


def _evidence(row: Mapping[str, Any], methods: Sequence[str], metrics: Sequence[str]) -> str:
    bits = []
    for m in methods:
        c = lambda name: row.get(m + SEP + name)  # noqa: E731
        line = []
        for metric in metrics:
            score, verdict = c(metric), c(metric + "_verdict")
            if score is not None:
                line.append(f"{metric} {score:.3f}" + (f" ({verdict})" if verdict else ""))
        if c("pointing") is not None:
            line.append("peak in box" if c("pointing") else "peak outside box")
        if c("energy") is not None:
            line.append(f"energy in box {c('energy'):.0%}")
        if line:
            bits.append(f"<p><b>{_e(m)}</b>: {_e('; '.join(line))}</p>")
    return "".join(bits)


def _card(audit: Audit, row: Mapping[str, Any], method: str, root: Path | None, metrics: Sequence[str]) -> str:
    raw = None
    if row.get(method + SEP + "map") is not None:
        raw = np.asarray(row[method + SEP + "map"], dtype=np.float32).reshape(row[method + SEP + "map_h"],
                                                                            row[method + SEP + "map_w"])
    picture, note = overlay_image(row, raw, root)
    img = (f'<img alt="{_e(method)} overlay of {_e(row["path"])}" src="{image_data_uri(picture)}">'
           if picture is not None else "")
    return (f'<div class="card" data-index="{int(row["index"])}" data-path="{_e(row["path"])}">{img}'
            f'<p><code>{_e(row["path"])}</code></p>'
            f'<p>true <b>{_e(row.get("label") or "—")}</b>, predicted <b>{_e(row.get("pred_label") or "—")}</b> '
            f'at {_pct(row.get("confidence"))}</p>'
            + (f'<p class="warn">{_e(note)}</p>' if note else "")
            + _evidence(row, audit.methods, metrics) + "</div>")


def _cards(audit: Audit, rows: Sequence[Mapping[str, Any]], method: str, root: Path | None,
           metrics: Sequence[str], empty: str) -> str:
    if not rows:
        return f'<p class="note">{_e(empty)}</p>'
    return '<div class="cards">' + "".join(_card(audit, r, method, root, metrics) for r in rows) + "</div>"


def _provenance(manifest: Mapping[str, Any]) -> str:
    command = manifest.get("command")
    if isinstance(command, (list, tuple)):
        command = shlex.join(str(c) for c in command)
    methods = manifest.get("methods") or {}
    rows = [("Model", manifest.get("model")), ("Weights", manifest.get("weights")),
            ("Weights SHA-256", manifest.get("weights_sha256")), ("Input size", manifest.get("input_size")),
            ("Layer", manifest.get("layer")),
            ("Methods", "; ".join(f"{m} ({', '.join(f'{k}={v}' for k, v in sorted(p.items())) or 'defaults'})"
                                  for m, p in methods.items())),
            ("Metrics", ", ".join(manifest.get("metrics") or []) or "none"),
            ("Baseline", manifest.get("baseline")), ("Source", manifest.get("source")),
            ("Inputs", manifest.get("inputs")), ("Engine", manifest.get("engine")),
            ("Started", manifest.get("started")), ("Finished", manifest.get("finished") or "not finished"),
            ("Versions", ", ".join(f"{k} {v}" for k, v in sorted((manifest.get("versions") or {}).items())))]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_num(v))}</td></tr>" for k, v in rows)
    cmd = f"<p>To reproduce:</p><p><code>{_e(command)}</code></p>" if command else ""
    return f"<h2>Provenance</h2><table>{body}</table>{cmd}"


_SOURCE = Path("<source>")


def build_review_report(audit: Audit, created: datetime | None = None, image_root: Path | None = _SOURCE) -> str:
    """The review report of ``audit`` as one HTML string (every text value escaped; loads nothing).

    Images are read under ``image_root`` (default: the audit's source, ``review.source_root``); ``None`` draws
    the maps alone (the app passes None when the source lies outside its audits folders)."""
    manifest = audit.manifest
    metrics = list(manifest.get("metrics") or [])
    methods = audit.methods
    method = methods[0] if methods else ""
    root = review.source_root(manifest, audit.folder) if image_root is _SOURCE else image_root
    s = review.summary(audit)
    when = (created or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    title = f"Audit review — {manifest.get('model', 'model')} on {Path(str(manifest.get('source') or audit.folder)).name}"
    status = "" if manifest.get("finished") else ('<p class="warn">This audit has not finished: '
                                                  f"{s.rows} of {manifest.get('inputs', '?')} images so far.</p>")
    flags = "".join(f"<tr><th>Right for the wrong reason ({_e(m)})</th><td class='n'>{n}</td></tr>"
                    for m, n in s.wrong_reason.items())
    summary_html = (f'<table id="summary"><tr><th>Images</th><td class="n">{s.rows}</td></tr>'
                    f'<tr><th>Errors</th><td class="n">{s.errors}</td></tr>'
                    f'<tr><th>Labelled</th><td class="n">{s.labelled}</td></tr>'
                    f'<tr><th>Top-1 accuracy</th><td class="n" id="top1">{_pct(s.top1)}</td></tr>'
                    f'<tr><th>Top-5 accuracy</th><td class="n" id="top5">{_pct(s.top5)}</td></tr>{flags}</table>')
    classes = review.per_class(audit)
    class_rows = "".join(
        f'<tr><td>{_e(c.label)}</td><td class="n">{c.label_idx}</td><td class="n">{c.images}</td>'
        f'<td class="n">{_pct(c.top1)}</td><td class="n">{_pct(c.top5)}</td>'
        f'<td class="n">{_pct(c.mean_confidence)}</td>'
        f'<td>{_e(c.confused_with or "—")}{f" ({c.confused_count})" if c.confused_count else ""}</td></tr>'
        for c in classes)
    class_html = ('<table id="per-class"><tr><th>Class</th><th>Index</th><th>Images</th><th>Top-1</th>'
                  '<th>Top-5</th><th>Mean confidence</th><th>Most often predicted instead</th></tr>'
                  f"{class_rows}</table>" if classes else '<p class="note">No labelled images.</p>')
    conf = review.confusion(audit)
    conf_html = confusion_svg(conf) if conf.classes else '<p class="note">No labelled images.</p>'
    mistakes = review.confident_mistakes(audit, CASES)
    mistakes_html = _cards(audit, mistakes, method, root, metrics, "No mistakes among the labelled images.")
    wrong_html = ""
    none = (f"None: the map's peak lies inside the box on all {s.boxed_correct} correct images with a box."
            if s.boxed_correct else "None flagged: the flag needs images with a box (a CSV with x0,y0,x1,y1) "
                                    "that the model gets right.")
    for m in methods:
        cases = review.wrong_reason_cases(audit, m, CASES)
        wrong_html += f"<h3>{_e(m)}</h3>" + _cards(audit, cases, m, root, metrics, none)
    errs = review.errors(audit)
    err_html = ("<h2>Errors</h2><table><tr><th>Image</th><th>Error</th></tr>"
                + "".join(f"<tr><td><code>{_e(e['path'])}</code></td><td>{_e(e['error'])}</td></tr>" for e in errs)
                + "</table>") if errs else ""
    where = f"the audit folder <code>{_e(audit.folder.name)}</code>"
    return html_page(title, _CSS, f"""<p class="sub">Generated {_e(when)} from {where}</p>
{status}
<h2>Summary</h2>{summary_html}
<h2>Per class</h2>{class_html}
<h2>Confusion matrix</h2>{conf_html}
<h2 id="mistakes">Most confident mistakes</h2>
<p>Overlays: {_e(method)}; the box, when given, in white.</p>{mistakes_html}
<h2 id="wrong-reason">Right for the wrong reason</h2>
<p>Correct at top-1, but the map's peak lies outside the object's box.</p>{wrong_html}
{err_html}
{_provenance(manifest)}
<footer>CAM Explorer audit review · {_e(when)}</footer>
""")


def write_review_report(audit: Audit | str | Path, out_html: str | Path) -> Path:
    """Write the review report of ``audit`` (an open audit or its folder) to ``out_html``; returns the path."""
    out = Path(out_html)
    if out.suffix.lower() not in (".html", ".htm"):
        raise CamError(f"{out}: give an .html file name for the report")
    opened = audit if isinstance(audit, Audit) else open_audit(audit)
    try:
        text = build_review_report(opened)
    finally:
        if opened is not audit:
            opened.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
