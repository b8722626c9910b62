"""A self-contained HTML report of one explanation (images embedded as base64) for reviews and e-mail.

No Streamlit here: the app's download button, the CLI or a notebook can all call ``build_report``.
"""
from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
from PIL import Image

from cam_core import __version__

#: Embedded images are scaled down (aspect kept) so their long side is at most this many pixels.
MAX_EMBED_SIDE = 1600

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}.sub{color:#666;margin-top:0}
.imgs{display:flex;gap:1rem;flex-wrap:wrap}.imgs figure{flex:1 1 300px;margin:0}
.imgs img{width:100%;height:auto;border:1px solid #ddd}figcaption{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left}
th{background:#f5f5f5}.note{background:#eef5ff;border-left:4px solid #4a90d9;padding:.4rem .8rem;margin:.4rem 0}
.warning{background:#fff4e5;border-left:4px solid #e69500;padding:.4rem .8rem;margin:.4rem 0}
.notrun{color:#666;font-style:italic}
footer{color:#888;font-size:.8rem;margin-top:2rem}
"""


def html_page(title: str, css: str, body: str) -> str:
    """A self-contained HTML page: ``title`` as its title and first heading, ``css`` inline, then ``body``."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{css}</style></head>
<body>
<h1>{_e(title)}</h1>
{body}</body></html>
"""


def image_data_uri(image: Image.Image, max_side: int = MAX_EMBED_SIDE) -> str:
    """``data:image/png;base64,…`` for ``image``, scaled down to ``max_side`` on its long side if larger."""
    img = image if image.mode in ("RGB", "RGBA", "L") else image.convert("RGB")
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


_SVG_W, _SVG_H, _PAD = 420, 220, 32
_SVG_COLOURS = ("#d62728", "#2ca02c", "#1f77b4", "#ff7f0e")


def fitted_range(values: Iterable[float], floor: float = 0.05) -> tuple[float, float]:
    """A y-axis range around ``values``: their min to max padded by 5 %, at least ``floor`` tall (a flat
    curve at 0.03 is drawn in the middle, not on the bottom edge of a 0–1 frame)."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    pad = max((hi - lo) * 0.05, (floor - (hi - lo)) / 2, 0.0)
    return lo - pad, hi + pad


def curves_svg(curves: Mapping[str, tuple[Any, Any]], x_label: str, y_label: str) -> str:
    """A small inline SVG line chart of ``{name: (x, y)}`` (x in [0, 1]; y on a range fitted to the data,
    ``fitted_range``), with a legend; no script."""
    w, h, p = _SVG_W, _SVG_H, _PAD
    lo, hi = fitted_range(float(b) for _, ys in curves.values() for b in np.asarray(ys))

    def pt(x: float, y: float) -> str:
        y = (min(max(y, lo), hi) - lo) / (hi - lo)
        return f"{p + x * (w - 2 * p):.1f},{h - p - y * (h - 2 * p):.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
             f'role="img" aria-label="{_e(y_label)} against {_e(x_label)}">',
             f'<rect x="{p}" y="{p}" width="{w - 2 * p}" height="{h - 2 * p}" fill="none" stroke="#bbb"/>',
             f'<text x="{w / 2}" y="{h - 6}" font-size="11" text-anchor="middle">{_e(x_label)}</text>',
             f'<text x="10" y="{h / 2}" font-size="11" text-anchor="middle" '
             f'transform="rotate(-90 10 {h / 2})">{_e(y_label)}</text>',
             f'<text x="{p - 4}" y="{p + 4}" font-size="10" text-anchor="end">{_tick(hi)}</text>',
             f'<text x="{p - 4}" y="{h - p + 4}" font-size="10" text-anchor="end">{_tick(lo)}</text>']
    for i, (name, (xs, ys)) in enumerate(curves.items()):
        colour = _SVG_COLOURS[i % len(_SVG_COLOURS)]
        points = " ".join(pt(float(a), float(b)) for a, b in zip(np.asarray(xs), np.asarray(ys)))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{w - p - 4}" y="{p + 14 + 14 * i}" font-size="11" text-anchor="end" '
                     f'fill="{colour}">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _tick(v: float) -> str:
    return f"{v:.3g}"


NOT_RUN = "not run"


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    """Scores (with their one-line explanation), the curves as SVG and as a table of points."""
    rows = "\n".join(f"<tr><td>{_e(name)}</td><td><strong>{_e(r.sentence())}</strong></td><td>{r.score:.4f}</td>"
                     f"<td>{'higher' if r.higher_is_better else 'lower'}</td><td>{_e(r.explanation)}</td></tr>"
                     for name, r in metrics.items())
    with_curve = {name: r for name, r in metrics.items() if r.curve is not None}
    svg, points = "", ""
    if with_curve:
        first = next(iter(with_curve.values())).curve
        svg = curves_svg({f"{n} (AUC {r.score:.3f})": (r.curve.x, r.curve.y) for n, r in with_curve.items()},
                         first.x_label, first.y_label)
        head = "".join(f"<th>{_e(n)}</th>" for n in with_curve)
        lines = "\n".join(
            f"<tr><td>{float(x):.3f}</td>" + "".join(f"<td>{float(r.curve.y[i]):.4f}</td>" for r in with_curve.values())
            + "</tr>" for i, x in enumerate(first.x))
        points = (f"<details><summary>Curve points</summary><table><tr><th>{_e(first.x_label)}</th>{head}</tr>"
                  f"\n{lines}</table></details>")
    notes = "\n".join(f'<p class="note">{_e(name)}: {_e(n)}</p>' for name, r in metrics.items() for n in r.notes)
    return (f"<h2>Can I trust this map? Faithfulness</h2>\n<table><tr><th>Metric</th><th>Verdict</th>"
            f"<th>Score</th><th>Better</th><th>What it means</th></tr>\n{rows}\n</table>\n{svg}\n{points}\n{notes}")


def _not_run(title: str, what: str) -> str:
    return (f'<h2>Can I trust this map? {_e(title)}</h2>\n<p class="notrun"><strong>Not run</strong>: {_e(what)} '
            "was not computed for this map, so this report says nothing about it.</p>")


def _sanity_html(sanity: Any) -> str:
    """The sanity check's verdict and Spearman ρ per randomized stage."""
    def rho(v: float) -> str:
        return "— (blank map)" if v != v else f"{v:.3f}"

    rows = "\n".join(f"<tr><td>{_e(s.stage)}</td><td>{rho(s.rho)}</td></tr>" for s in sanity.stages)
    return (f"<h2>Can I trust this map? Sanity check</h2>\n<p class=\"outcome {_e(sanity.outcome)}\"><strong>"
            f"Sanity check {_e(sanity.outcome)}</strong>: {_e(sanity.reason)}.</p>\n"
            f"<p>In figures: {_e(sanity.verdict)}; {_e(sanity.class_verdict)}.</p>\n<table><tr><th>Randomized down to ({_e(sanity.mode)})</th>"
            f"<th>Spearman ρ with the original map</th></tr>\n{rows}\n</table>")


def build_report(
    *,
    original: Image.Image,
    overlay: Image.Image,
    image_name: str,
    model: str,
    method: str,
    layer: str | None,
    class_idx: int | None,
    class_label: str | None,
    params: Mapping[str, Any],
    top: Iterable[Any],
    score: float | None = None,
    prob: float | None = None,
    elapsed_ms: float | None = None,
    notes: Iterable[str] = (),
    method_citation: str | None = None,
    created: datetime | None = None,
    version: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    sanity: Any | None = None,
    input_size: tuple[int, int] | None = None,
    device: str | None = None,
    warnings: Iterable[str] = (),
) -> str:
    """One HTML page (UTF-8 text) with the original image and overlay embedded, what was explained
    (model, method, layer, class, parameters), the top-k table (items with ``class_idx``, ``label``,
    ``prob``), notes, the date (``created``, default now in UTC) and the CAM Explorer version.

    ``metrics`` (``{name: MetricResult}`` from ``evaluate``) and ``sanity`` (a ``SanityResult``), when given,
    add what was computed about the map: verdicts, scores with their explanation, curves (inline SVG on a
    fitted axis and a table of points), the sanity outcome and ρ per stage; a section that was not computed
    says "Not run". ``input_size`` (the model input's height, width), ``device`` and ``warnings`` (e.g. the
    model is unsure) are shown: the first two with what was explained, the warnings above it.

    Every text value is HTML-escaped; the page loads nothing from the network.
    """
    if version is None:
        version = __version__
    when = (created or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    cls = "top-1 class" if class_idx is None else f"{class_label or ''} ({class_idx})".strip()
    rows = [
        ("Image", f"{image_name} — {original.width}×{original.height}"),
        ("Model", model),
        *([("Model input", f"{input_size[1]}×{input_size[0]} pixels (width×height)")] if input_size else []),
        *([("Device", device)] if device else []),
        ("Method", method + (f" — {method_citation}" if method_citation else "")),
        ("Layer", layer or "— (pixel-space method)"),
        ("Class", cls),
    ]
    if score is not None:
        rows.append(("Score (logit)", f"{score:.4g}"))
    if prob is not None:
        rows.append(("Probability", f"{prob:.2%}"))
    if elapsed_ms is not None:
        rows.append(("Time", f"{elapsed_ms:.0f} ms"))
    params_text = ", ".join(f"{k} = {_fmt(v)}" for k, v in sorted(params.items())) or "none"
    rows.append(("Parameters", params_text))

    details = "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    top_rows = "\n".join(
        f"<tr><td>{i}</td><td>{_e(p.label)}</td><td>{int(p.class_idx)}</td><td>{float(p.prob):.2%}</td></tr>"
        for i, p in enumerate(top, 1)
    )
    warnings = list(warnings)
    note_html = "\n".join(f'<p class="warning">{_e(w)}</p>' for w in warnings)
    note_html += "\n" + "\n".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    trust_html = (_metrics_html(metrics) if metrics else _not_run("Faithfulness", "deletion and insertion"))
    trust_html += _sanity_html(sanity) if sanity is not None else _not_run("Sanity check", "the sanity check")
    title = f"CAM Explorer — {method} on {image_name}"
    return html_page(title, _CSS, f"""<p class="sub">Generated {_e(when)} by CAM Explorer {_e(version)}</p>
<div class="imgs">
<figure><img alt="original image" src="{image_data_uri(original)}"><figcaption>Original</figcaption></figure>
<figure><img alt="heat map overlay" src="{image_data_uri(overlay)}"><figcaption>Overlay ({_e(method)})</figcaption></figure>
</div>
{note_html}
<h2>What was explained</h2>
<table>{details}</table>
<h2>Top predictions</h2>
<table><tr><th>#</th><th>Class</th><th>Index</th><th>Probability</th></tr>
{top_rows}
</table>
{trust_html}
<footer>CAM Explorer {_e(version)} · {_e(when)}</footer>
""")
