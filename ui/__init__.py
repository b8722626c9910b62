"""Shared Streamlit helpers for CAM Explorer's pages (only ``ui/`` and ``pages/`` import Streamlit).

A page is a short script::

    from ui import cache
    from ui.display import results_slot
    from ui.sidebar import photo_page
    from ui.widgets import show_error

    def main(ctx):                          # ctx: model, device, photo (never None here)
        preds = cache.predict_cached(ctx)   # top-5, cached per model + image hash
        slot = results_slot("page", ctx.image.digest, layer, class_idx)  # old results leave the screen now
        try:
            exp = cache.explain_cached(ctx, "gradcam", layer, class_idx, params)   # cached map
        except Exception as exc:
            show_error(exc)                 # CamError → its one line; else a line + traceback in the log
            return
        with slot: ...                      # draw exp

    photo_page(title, caption, main)        # sidebar + title (a card instead: bad photo, missing weights); a new
                                            # photo or model clears the page body before main computes anything

Modules: ``state`` (Context, ImageRef, the shareable view ↔ ``st.query_params``), ``sidebar``,
``cache`` (get_backbone, explain_cached, predict_cached, layers_cached, display_image, ENGINE_CALLS),
``pickers`` (method / layer / class / alpha+colormap widgets), ``widgets`` (show_error, problem_card,
remembered widgets keyed to what their options depend on, parameter inputs from a ParamSpec), ``figures`` (Plotly top-k bar, heat map), ``samples``.
"""
