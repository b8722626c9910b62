"""Shared Streamlit helpers for CAM Explorer's pages (only ``ui/`` and ``pages/`` import Streamlit).

A page is a short script::

    from ui import cache
    from ui.sidebar import start_page
    from ui.widgets import show_error

    ctx = start_page(title, caption)        # sidebar + title; None after a card (bad photo, missing weights)
    if ctx is None: return
    preds = cache.predict_cached(ctx)       # top-5, cached per model + image hash
    try:
        exp = cache.explain_cached(ctx, "gradcam", layer, class_idx, params)   # cached map
    except Exception as exc:
        show_error(exc)                     # CamError → its one line; else a line + traceback in the log

Modules: ``state`` (Context, ImageRef, the shareable view ↔ ``st.query_params``), ``sidebar``,
``cache`` (get_backbone, explain_cached, predict_cached, layers_cached, display_image, ENGINE_CALLS),
``pickers`` (method / layer / class / alpha+colormap widgets), ``widgets`` (show_error, problem_card,
remembered widgets keyed to what their options depend on, parameter inputs from a ParamSpec), ``figures`` (Plotly top-k bar, heat map), ``samples``.
"""
