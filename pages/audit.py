"""Audit: the model across a whole image set — accuracy per class, the confusion matrix, filters, a gallery of
overlays sorted by any column, the class's mean map, and any image opened in Inspect.

An audit is a folder inside the configured audits folders (``CAM_EXPLORER_AUDITS``, default ``./audits``),
made by ``cam-explorer audit`` or started here on an uploaded ZIP. Widgets and layout only: the figures come
from ``cam_core.audit.review`` through the cached reads in ``ui.audit_view``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from cam_core.audit import review
from cam_core.audit.paths import AuditPathError, audit_roots, list_audits, resolve_audit
from cam_core.batch import MAX_ITEMS
from cam_core.registry import METHODS
from ui import audit_jobs, audit_start, audit_view, state
from ui.audit_figures import confusion_figure
from ui.display import results_slot
from ui.sidebar import render_sidebar, show_notices
from ui.widgets import literal, show_error

PER_ROW = 4
PER_PAGE = 16
ALL = "all"
OUTCOMES = {"all": None, "correct": True, "incorrect": False}


def _pick_audit() -> str | None:
    """The audit's name: picked from those found, or typed (a link carries it as ``audit=NAME``)."""
    names = list_audits()
    current = state.view().get("audit")
    where = ", ".join(str(r) for r in audit_roots())
    left, right = st.columns([1, 1])
    options = names if current in names or not current else [current, *names]
    ss = st.session_state
    if ss.get("w_audit_pick") is not None and ss["w_audit_pick"] not in options:
        del ss["w_audit_pick"]
    kwargs: dict[str, Any] = dict(placeholder="no audit yet" if not names else "pick an audit", key="w_audit_pick",
                                  help=f"{len(names)} audits in {where} (CAM_EXPLORER_AUDITS: several folders "
                                       "separated by os.pathsep; default ./audits)")
    if "w_audit_pick" not in ss:
        kwargs["index"] = options.index(current) if current in options else None
    choice = left.selectbox("Audit", options, **kwargs)
    typed = right.text_input("…or its name", key="w_audit_typed", placeholder="run1 or team/run1")
    name = typed.strip() or choice
    state.remember("audit", name or None)
    return name


def _start(ctx: Any) -> None:
    """Start an audit on an uploaded ZIP (in the background; its folder goes in the first audits folder)."""

    with st.expander("Start an audit on a ZIP of images", icon=":material/add:"):
        st.caption(f"An ImageFolder (one folder per class, named by the model's label or its WordNet ID) or plain "
                   f"images, up to {MAX_ITEMS} files. It runs in the background with the model chosen in the "
                   f"sidebar; you can leave or reload the page. Saved in {audit_roots()[0]}.")
        a, b = st.columns([1, 1])
        a.text_input("Name", key="w_audit_new_name", value=audit_start.default_name(),
                     help="letters, digits, '.', '_' or '-'")
        b.multiselect("Methods", list(METHODS), default=["gradcam"], key="w_audit_new_methods",
                      format_func=lambda m: METHODS[m].display,
                      help="Layer CAMs (Grad-CAM, Grad-CAM++, …) share one pass per batch; others cost one "
                           "explain call per image")
        st.file_uploader("ZIP of images", type=["zip"], key="w_audit_new_zip")
        st.button("Start the audit", key="audit_start", icon=":material/play_arrow:",
                  on_click=audit_start.start_from_upload, args=(ctx.model_key,))
        failed = audit_start.start_error()
        if failed:
            st.error(failed, icon=":material/error:")


def _progress(folder: Path) -> bool:
    """The background run's progress, refreshed every two seconds while it runs; True when there is no
    manifest yet (nothing else to show)."""
    job = audit_jobs.status(folder)
    if job is None:
        return False

    @st.fragment(run_every=2 if job.state == "running" else None)
    def live() -> None:
        now = audit_jobs.status(folder)
        if now is None:
            return
        if now.state != job.state:
            st.rerun(scope="app")  # finished (or failed): redraw the whole page from the final parts
        if now.state == "running":
            if not now.total:
                st.info("Starting: loading the model and listing the images…", icon=":material/hourglass_top:")
                return
            text = f"Running: {now.done:,} of {now.total:,} images"
            if now.rate:
                text += f" · {now.rate:.1f} images/s"
            if now.left_s is not None and now.rate:
                text += f" · about {audit_start.duration(now.left_s)} left"
            st.progress(min(1.0, now.done / now.total), text=text)
        elif now.state == "failed":
            st.error(f"The audit failed: {literal(now.message or '', limit=400)}", icon=":material/error:")
        elif now.state == "stopped":
            st.warning(now.message, icon=":material/pause_circle:")
            st.button("Resume", key="audit_resume", icon=":material/play_arrow:",
                      on_click=audit_start.resume, args=(folder,))

    live()
    return not (folder / "manifest.json").is_file()


def _headline(s: review.Summary) -> None:
    cols = st.columns(5)
    cols[0].metric("Images", f"{s.rows:,}")
    cols[1].metric("Errors", f"{s.errors:,}")
    cols[2].metric("Top-1 accuracy", "—" if s.top1 is None else f"{s.top1:.1%}",
                   help=f"{s.correct_top1} of {s.labelled} labelled images")
    cols[3].metric("Top-5 accuracy", "—" if s.top5 is None else f"{s.top5:.1%}",
                   help=f"{s.correct_top5} of {s.labelled} labelled images")
    cols[4].metric("Right for the wrong reason", f"{sum(s.wrong_reason.values()):,}",
                   help="correct at top-1, but the map's peak lies outside the object's box (needs boxes)")


def _overview(data: dict[str, Any]) -> None:
    table, matrix = st.columns([1, 1], gap="large")
    with table:
        st.subheader("Per class", anchor=False)
        rows = [{"class": c.label, "index": c.label_idx, "images": c.images, "top-1": c.top1, "top-5": c.top5,
                 "mean confidence": c.mean_confidence,
                 "most often instead": f"{c.confused_with} ({c.confused_count})" if c.confused_with else ""}
                for c in data["per_class"]]
        if rows:
            pct = st.column_config.NumberColumn(format="percent")
            st.dataframe(rows, hide_index=True, width="stretch", key="audit_per_class",
                         column_config={"top-1": pct, "top-5": pct, "mean confidence": pct})
        else:
            st.info("No labelled images: accuracy and the confusion matrix need labels.")
    with matrix:
        st.subheader("Confusion matrix", anchor=False)
        if data["confusion"].classes:
            st.plotly_chart(confusion_figure(data["confusion"]), width="stretch", key="audit_confusion")


def _filters(data: dict[str, Any], folder: str, sig: Any, methods: list[str]) -> tuple[review.Filters, str, str,
                                                                                         bool]:
    classes = dict(data["classes"])
    a, b, c, d = st.columns([2, 2, 2, 2])
    label = a.selectbox("Class", [ALL, *classes], format_func=lambda i: "all classes" if i == ALL else
                        f"{classes[i]} ({i})", key="w_audit_class")
    outcome = b.segmented_control("Top-1", list(OUTCOMES), default=ALL, key="w_audit_outcome") or ALL
    conf = c.slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.01, key="w_audit_conf")
    method = d.selectbox("Method (overlays, mean map)", methods, key="w_audit_method") if methods else ""
    e, f, g, h = st.columns([2, 2, 2, 2])
    scores = [s for s in data["scores"] if s != "confidence"]
    score = e.selectbox("Score range on", [None, *scores], format_func=lambda s: "no other score" if s is None
                        else s, key="w_audit_score")
    ranges: dict[str, tuple[float, float]] = {}
    if score is not None:
        span = audit_view.column_range(folder, sig, score)
        if span is not None and span[1] > span[0]:
            ranges[score] = f.slider(f"{score} between", span[0], span[1], span, key=f"w_audit_range_{score}")
    wrong = g.toggle("Right for the wrong reason only", key="w_audit_wrong", disabled=not method,
                     help="correct at top-1, map peak outside the box")
    sorts = data["sorts"]
    order = h.selectbox("Sort by", sorts, index=sorts.index("confidence") if "confidence" in sorts else 0,
                        key="w_audit_sort")
    descending = h.toggle("Highest first", value=True, key="w_audit_desc")
    filters = review.Filters(label_idx=None if label == ALL else int(label), correct=OUTCOMES[outcome],
                             confidence=None if conf == (0.0, 1.0) else conf, ranges=ranges,
                             wrong_reason=method if wrong and method else None)
    return filters, method, order, descending


def _gallery(folder: Path, sig: Any, manifest: dict[str, Any], filters: review.Filters, method: str, order: str,
             descending: bool) -> None:
    key = str(folder)
    total, _ = audit_view.selection(key, sig, filters, order, descending, 0, 0)
    pages = max(1, -(-total // PER_PAGE))
    head, pick = st.columns([3, 1])
    page = int(pick.number_input(f"Page (of {pages})", 1, pages, 1, key="w_audit_page")) if pages > 1 else 1
    total, rows = audit_view.selection(key, sig, filters, order, descending, PER_PAGE, (page - 1) * PER_PAGE)
    head.markdown(f"**{total:,} images match**" + (f" · sorted by {order}, {'highest' if descending else 'lowest'} "
                                                    "first" if total else ""))
    for start in range(0, len(rows), PER_ROW):
        for col, row in zip(st.columns(PER_ROW), rows[start:start + PER_ROW]):
            with col.container(border=True):
                picture, note = audit_view.tile(key, sig, int(row["index"]), method, row) if method else (None, None)
                if picture is not None:
                    st.image(picture, width="stretch")
                mark = "✓" if row.get("correct_top1") else ("✗" if row.get("correct_top1") is False else "·")
                st.markdown(f"{mark} **{literal(row.get('pred_label') or '—')}** {row.get('confidence') or 0:.1%}"
                            f"  \ntrue: {literal(row.get('label') or '—')}")
                st.caption(literal(row["path"]) + (f" · {literal(note)}" if note else ""))
                if method:
                    st.button("Open in Inspect", key=f"audit_inspect_{row['index']}", icon=":material/visibility:",
                              on_click=audit_view.open_in_inspect, args=(folder, manifest, row, method))
                    why = audit_view.inspect_refused(int(row["index"]))
                    if why:
                        st.warning(why)


def _mean_map(folder: Path, sig: Any, data: dict[str, Any], filters: review.Filters, method: str) -> None:
    if not method:
        return
    picture, n = audit_view.mean_map(str(folder), sig, method, filters.label_idx, filters.correct)
    if not n:
        return
    classes = dict(data["classes"])
    what = "all images" if filters.label_idx is None else str(classes.get(filters.label_idx, ""))
    if filters.correct is not None:
        what += " (correct)" if filters.correct else " (incorrect)"
    st.image(picture, width=192,
             caption=f"Mean {method} map of {literal(what)}: {n} map{'s' if n != 1 else ''}, each scaled to "
                     "its peak, averaged")


def _show(folder: Path) -> None:
    if _progress(folder):
        return
    key, sig = str(folder), audit_view.signature(folder)
    audit = audit_view.audit_of(folder)
    manifest = audit.manifest
    data = audit_view.overview(key, sig)
    s: review.Summary = data["summary"]
    st.caption(f"{literal(str(manifest.get('model')))} · layer {literal(str(manifest.get('layer')))} · "
               f"methods {literal(', '.join(audit.methods) or 'none')} · source "
               f"{literal(str(manifest.get('source')), limit=80)}")
    _headline(s)
    st.download_button("Review report (HTML)", lambda: audit_view.report_html(folder), f"{folder.name}-review.html",
                       "text/html", icon=":material/download:", on_click="ignore", key="audit_report",
                       help="One self-contained file for a review: summary, per class, confusion matrix, the surest "
                            "mistakes and right-for-the-wrong-reason cases with overlays, provenance "
                            "(also `cam-explorer audit-report`)")
    st.page_link("pages/layers.py", label="Each channel's top-activating images in this audit (Layers)",
                 icon=":material/grid_view:",
                 help="The same audit opens there (Top patches over a set): Zeiler & Fergus's fig. 2 for the layer and channel picked on Layers: the images of this "
                      "audit that excite the channel most, each crop beside its deconvnet projection")
    _overview(data)
    st.divider()
    st.subheader("Browse", anchor=False)
    filters, method, order, descending = _filters(data, key, sig, audit.methods)
    gallery, side = st.columns([4, 1])
    with side:
        _mean_map(folder, sig, data, filters, method)
    with gallery:
        _gallery(folder, sig, manifest, filters, method, order, descending)
    if data["errors"]:
        with st.expander(f"{s.errors} images could not be read"):
            st.dataframe([{"image": e["path"], "error": e["error"]} for e in data["errors"]], hide_index=True)


def main() -> None:
    audit_view.go_to_inspect_if_asked()
    ctx = render_sidebar(image=False)
    st.title("Audit", anchor=False)
    st.caption("The model across a whole image set: where it looks for each class, where it is right for the "
               "wrong reason, which mistakes it is sure of.")
    show_notices(ctx)
    _start(ctx)
    name = _pick_audit()
    if not name:
        st.info("Pick an audit above, or make one with `cam-explorer audit DATA --method gradcam --out "
                f"{audit_roots()[0]}/NAME`.", icon=":material/info:")
        return
    slot = results_slot("audit", name)
    with slot:
        try:
            folder = resolve_audit(name)
        except AuditPathError as exc:
            st.error(str(exc), icon=":material/block:")
            return
        try:
            _show(folder)
        except Exception as exc:
            show_error(exc, context=f"audit {name}")


main()
