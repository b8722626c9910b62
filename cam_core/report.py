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

from PIL import Image

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
footer{color:#888;font-size:.8rem;margin-top:2rem}
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
) -> str:
    """One HTML page (UTF-8 text) with the original image and overlay embedded, what was explained
    (model, method, layer, class, parameters), the top-k table (items with ``class_idx``, ``label``,
    ``prob``), notes, the date (``created``, default now in UTC) and the CAM Explorer version.

    Every text value is HTML-escaped; the page loads nothing from the network.
    """
    if version is None:
        from cam_core import __version__ as version
    when = (created or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    cls = "top-1 class" if class_idx is None else f"{class_label or ''} ({class_idx})".strip()
    rows = [
        ("Image", f"{image_name} — {original.width}×{original.height}"),
        ("Model", model),
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
    note_html = "\n".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    title = f"CAM Explorer — {method} on {image_name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="sub">Generated {_e(when)} by CAM Explorer {_e(version)}</p>
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
<footer>CAM Explorer {_e(version)} · {_e(when)}</footer>
</body></html>
"""
