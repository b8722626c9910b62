"""Batch: many images (several uploads or a ZIP), one method, each explained for its top-1 class.

A gallery of overlays with the predicted label; a broken file shows its error in its own tile and the
others go on. Downloads: a ZIP of overlay PNGs and a CSV of predictions. Each image's result is cached
(image hash + model + method + layer + parameters), so moving alpha or adding a file recomputes nothing else.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import streamlit as st

from cam_core.batch import MAX_ITEMS, Item, gather, overlays_zip, predictions_csv
from cam_core.metrics import METRICS
from cam_core.registry import METHODS
from ui import cache, state
from ui.display import results_slot
from ui.pickers import layer_picker, method_picker, overlay_controls
from ui.sidebar import IMAGE_TYPES, start_page
from ui.samples import DEFAULT_SAMPLE, SAMPLES, sample_png
from ui.widgets import literal, param_inputs, show_error

PER_ROW = 4
PER_PAGE = 24
TILE_SIDE = 384


def _items(uploads: list[Any], use_samples: bool) -> list[tuple[Any, str]]:
    """The batch's ``(Item, digest)`` pairs, read once per set of uploaded files (kept in session state)."""
    memo: dict[tuple, list] = st.session_state.setdefault("_batch_items", {})
    key = (tuple(getattr(u, "file_id", None) or f"{u.name}:{u.size}" for u in uploads), use_samples)
    if key not in memo:
        files = [(u.name, u.getvalue()) for u in uploads]
        if use_samples:
            files += [(f"{name}.png", sample_png(name)) for name in SAMPLES]
        memo.clear()  # one batch at a time: the previous one's bytes are let go
        memo[key] = [(it, state.digest_of(it.data) if it.error is None else f"error:{it.name}")
                     for it in gather(files)]
    return [(Item(it.name, it.data, it.error), digest) for it, digest in memo[key]]


def _run(ctx: Any, items: list[tuple[Any, str]], method: str, layer: str | None,
         params: dict[str, Any], metrics: tuple[str, ...] = ()) -> tuple[list[tuple[Any, str]], float]:
    bar = st.progress(0.0, text=f"Explaining {len(items)} images…")
    started = time.perf_counter()
    results = []
    for i, (item, digest) in enumerate(items):
        results.append((cache.batch_item_cached(ctx, item, digest, method, layer, params, metrics), digest))
        bar.progress((i + 1) / len(items), text=f"{i + 1} of {len(items)}: {literal(item.name)}")
    bar.empty()
    return results, time.perf_counter() - started


def _metric_means(results: list[Any], metrics: tuple[str, ...]) -> None:
    """Each chosen metric's mean over the files that were scored, with its one-line meaning."""
    cols = st.columns(len(metrics))
    for col, name in zip(cols, metrics):
        values = [r.scores[name] for r in results if name in r.scores]
        if values:
            col.metric(f"mean {METRICS[name].display}", f"{sum(values) / len(values):.3f}",
                       help=METRICS[name].explanation)


def _downloads(results: list[Any], method: str, alpha: float, cmap: str) -> None:
    good = sum(r.ok for r in results)
    a, b, _ = st.columns([2, 2, 3])
    a.download_button(f"Overlays ZIP ({good} PNG)", lambda: overlays_zip(results, alpha, cmap),
                      f"overlays_{method}.zip", "application/zip", icon=":material/download:", on_click="ignore",
                      width="stretch", disabled=good == 0)
    b.download_button("Predictions CSV", lambda: predictions_csv(results), f"predictions_{method}.csv", "text/csv",
                      icon=":material/table:", on_click="ignore", width="stretch",
                      help="file, label, class_idx, prob, method, layer, error, then one column per metric — one "
                           "row per file, and a last row with each metric's mean")


@st.fragment
def _gallery(ctx: Any, results: list[tuple[Any, str]], method: str, params: dict[str, Any]) -> None:
    """Overlays with labels (errors in their own tile); redrawn alone when alpha or colormap moves."""
    a, c, p = st.columns([2, 2, 3])
    alpha, cmap = overlay_controls(a, c)
    state.sync_query_params()
    pages = max(1, -(-len(results) // PER_PAGE))
    page = 1
    if pages > 1:
        page = int(p.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="w_batch_page"))
    shown = results[(page - 1) * PER_PAGE: page * PER_PAGE]
    for start in range(0, len(shown), PER_ROW):
        for col, (r, digest) in zip(st.columns(PER_ROW), shown[start:start + PER_ROW]):
            with col.container(border=True):
                if not r.ok:
                    st.markdown(f"**{literal(r.name)}**")
                    st.error(literal(r.error, limit=400), icon=":material/broken_image:")
                    continue
                tile = cache.batch_tile_cached(ctx, r, digest, params, alpha, cmap, TILE_SIDE)
                st.image(tile, width="stretch")
                st.markdown(f"**{literal(r.label)}** — {r.prob:.1%}")
                st.caption(f"{literal(r.name)} · class {r.class_idx} · {r.elapsed_ms:,.0f} ms")
    _downloads([r for r, _ in results], method, alpha, cmap)


def main() -> None:
    # One uploader only, the page's own: the sidebar has the model and the device, no photo picker.
    ctx = start_page("Batch", "Many photos, one method: each is explained for its top-1 class. A file that cannot "
                              "be read shows its error in its own tile; the others go on.", image=False)
    if ctx is None:
        return

    up, opts = st.columns([1, 1], gap="large")
    with up:
        uploads = st.file_uploader(f"Images, or a ZIP of images (up to {MAX_ITEMS} files)",
                                   type=[*IMAGE_TYPES, "zip"], accept_multiple_files=True, key="batch_files",
                                   help="Folders and __MACOSX entries inside a ZIP are skipped")
        use_samples = not uploads
        if use_samples:
            st.info("Showing the bundled sample photos until you upload your own.", icon=":material/info:")
    with opts:
        method = method_picker(ctx)
        spec = METHODS[method]
        # Layer names come from one sample's forward; their shapes differ from image to image, so none is shown.
        probe = replace(ctx, image=state.sample_ref(DEFAULT_SAMPLE))
        layer = layer_picker(probe, spec.needs_layer, show_shapes=False)
        params: dict[str, Any] = {}
        if spec.params:
            with st.expander(f"{spec.display} parameters"):
                params = param_inputs(method, ctx.backbone)
        scorable = [name for name, m in METRICS.items() if not m.needs_box]
        metrics = tuple(st.multiselect("Score each map (slower: ~30–60 model runs per metric and image)", scorable,
                                       default=[], key="w_batch_metrics", format_func=lambda n: METRICS[n].display,
                                       help="Faithfulness scores per image in the CSV, and their mean "
                                            "(docs/metrics.md)"))
    try:
        items = _items(list(uploads or []), use_samples)
    except Exception as exc:
        show_error(exc, context="reading the files")
        return
    if not items:
        st.warning("No images found in what was uploaded.")
        return
    # The previous gallery leaves the screen while another method's (or file set's) maps are computed.
    slot = results_slot("batch", ctx.model_key, str(ctx.device), tuple(d for _, d in items), method, layer,
                        repr(sorted(params.items())), metrics)
    results, _ = _run(ctx, items, method, layer, params, metrics)
    bad = sum(not r.ok for r, _ in results)
    compute_s = sum(r.elapsed_ms for r, _ in results) / 1000.0
    with slot:
        st.caption(f"{len(results)} files · {len(results) - bad} explained · {bad} could not be read · "
                   f"{spec.display}{f' at {layer}' if layer else ''} · top-1 class of each · "
                   f"{compute_s:,.1f} s of compute (results are cached)")
        if metrics:
            _metric_means([r for r, _ in results], metrics)
        st.divider()
        _gallery(ctx, results, method, params)


main()
