"""Evolution (Zeiler & Fergus 2014, fig. 4): one channel across 2–5 weight files of the sidebar model's
architecture (checkpoints of a training run), side by side — its feature map on the photo (one colour scale for
all), what it looks for (feature visualization, on a toggle: slow), and its top patches over the sample photos
(behind a button). Every result comes from ``ui.evolution_view`` (``cam_core.evolution`` through ``ui.engine``).
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from cam_core.errors import CamError
from cam_core.evolution import MAX_STATES, MIN_STATES, shared_map, shared_scale
from cam_core.render import COLORMAP_NAMES, end_colours
from cam_core.top_patches import pair_tile, ties_note
from ui import cache
from ui import evolution_view as evo
from ui.display import results_slot
from ui.samples import SAMPLES
from ui.sidebar import WEIGHTS_UPLOAD_MB, photo_page
from ui.walkthrough_view import enlarged
from ui.widgets import literal, remembered_select, reset_when_changed, show_error

MAP_PX = 200  # px on screen: five columns and the patches under them fit a projector
UPLOADER = "evolution_files"
PATCH_PX = 96
WEIGHT_TYPES = ["safetensors", "pth", "pt"]
_PATCHES_ASKED = "_evolution_patches_asked"  # session state: the (files, layer, channel) the button was pressed for


def _ask_patches(ask: tuple[Any, ...]) -> None:
    st.session_state[_PATCHES_ASKED] = ask


def _files(ctx: Any) -> list[Any] | None:
    """The uploader and the files it holds, loaded; ``None`` (after saying why) until there are two good ones."""
    arch = ctx.backbone.spec.display.split(" (")[0].split(" — ")[0]
    st.file_uploader(
        f"Weight files of {arch}: {MIN_STATES} to {MAX_STATES} checkpoints, in training order",
        type=WEIGHT_TYPES, accept_multiple_files=True, key=UPLOADER, max_upload_size=WEIGHTS_UPLOAD_MB,
        on_change=evo.on_files_changed, args=(UPLOADER,),
        help="Read without running any code: .safetensors, or .pth/.pt plain state dicts (torch.load with "
             "weights_only). The architecture is the sidebar's model; pick another there for other files.")
    uploads, earlier = evo.kept_files(UPLOADER)
    if earlier:
        note, forget = st.columns([5, 2], vertical_alignment="center")
        note.caption(f"Kept from before: {', '.join(literal(u.name) for u in earlier)}")
        forget.button("Forget them", key="evo_forget", icon=":material/delete:", on_click=evo.forget_earlier,
                      args=(UPLOADER,))
    states, problems = evo.load_states(ctx, uploads)
    for line in problems:
        st.error(line, icon=":material/block:")
    if len(states) < MIN_STATES:
        have = f" (loaded: {', '.join(literal(s.name) for s in states)})" if states else ""
        st.info(f"Upload at least {MIN_STATES} weight files of {arch}{have}.", icon=":material/upload:")
        return None
    try:
        evo.check(states)
    except CamError as exc:
        show_error(exc)
        return None
    return states


def _layer(ctx: Any) -> str | None:
    try:
        choices = cache.layer_choices_cached(ctx)
    except Exception as exc:
        show_error(exc, context="listing layers")
        return None
    if not choices:
        st.error("This model has no layer with a spatial output: there is no feature map to follow.")
        return None
    by_name = {c.name: c for c in choices}
    default = ctx.backbone.spec.default_layer
    return remembered_select("Layer", list(by_name), "evo_layer", default=default if default in by_name else None,
                             format_func=lambda name: by_name[name].label(), depends_on=(ctx.model_key,),
                             help="Grouped by stage; the default is the layer the model's CAMs use")


def _columns(ctx: Any, states: list[Any], layer: str, channel: int, cmap: str) -> None:
    with st.spinner("Feature maps of every file…"):
        columns = evo.columns(ctx, states, layer, channel)
    scale = shared_scale(columns)
    low, high = end_colours(cmap)
    st.caption(f"Channel {channel} of {layer} on the photo in each file, all on one colour scale: {low} = "
               f"{scale[0]:.3g}, {high} = {scale[1]:.3g}, so a channel that grew stronger looks stronger.")
    looks = st.toggle("What the channel looks for in each file (feature visualization)", key="evo_visualize",
                      help=f"An image optimised to excite the channel ({evo.VIS['steps']} steps at "
                           f"{evo.VIS['size']} px, the same random start for every file). A few seconds a file "
                           "the first time, then kept")
    ask = (tuple(s.digest for s in states), layer, channel)
    known = [evo.patches_known(ctx, s, layer, channel) for s in states]
    wanted = st.session_state.get(_PATCHES_ASKED) == ask or all(k is not None for k in known)
    if not wanted:
        st.button(f"Top patches over the {len(SAMPLES)} sample photos", key="evo_patches",
                  icon=":material/grid_view:", on_click=_ask_patches, args=(ask,),
                  help=f"Each file's {evo.TOP_K} sample photos that excite the channel most, at its strongest "
                       "position: the receptive-field crop beside its deconvnet projection")
    for col, column, one, found in zip(st.columns(len(columns)), columns, states, known):
        with col:
            st.markdown(f"**{literal(column.name)}**")
            if not column.finite:
                st.error(f"This file's weights give NaN or infinite activations at {layer}: they are broken (a NaN "
                         "parameter, or an overflow), so there is no map to show.")
                continue
            st.image(enlarged(shared_map(column, scale, cmap), MAP_PX), width=MAP_PX,
                     caption=f"mean {column.mean:.6g} · max {float(column.fmap.max()):.6g}")
            if looks:
                try:
                    st.image(evo.visualization(one, layer, channel), width=MAP_PX, caption="looks for")
                except Exception as exc:
                    show_error(exc, context=f"feature visualization in {one.name}")
            if wanted:
                _patches(ctx, one, layer, channel, found)


def _patches(ctx: Any, one: Any, layer: str, channel: int, found: Any) -> None:
    try:
        shown, errors = found if found is not None else evo.patches(ctx, one, layer, channel)
    except Exception as exc:
        show_error(exc, context=f"top patches in {one.name}")
        return
    for line in errors:
        st.warning(line)
    note = ties_note([p.patch.value for p in shown], "sample photo")
    if note:
        st.caption(note)
    for p in shown:
        st.image(pair_tile(p.crop, p.projection, PATCH_PX), width=2 * PATCH_PX,
                 caption=f"{p.name} · {p.patch.value:.3g} (crop | deconvnet)")


def main(ctx: Any) -> None:
    states = _files(ctx)
    if states is None:
        return
    layer = _layer(ctx)
    if layer is None:
        return
    try:
        first = evo.first_features(ctx, states[0], layer)
    except Exception as exc:
        show_error(exc, context=f"feature maps of {layer}")
        return
    order = [int(c) for c in first.order]
    ranked_on = (ctx.model_key, layer, states[0].digest, ctx.image.digest)  # the order is this photo's
    reset_when_changed("evo_channel", *ranked_on)
    c, m = st.columns([4, 2])
    with c:
        channel = remembered_select(
            "Channel", order, "evo_channel", default=order[0], depends_on=ranked_on,
            format_func=lambda k: f"ch {k} · mean {first.mean[k]:.3f} in {states[0].name} (rank {order.index(k) + 1})",
            help=f"Ordered by mean activation on the photo in the first file, {states[0].name}")
    with m:
        cmap = remembered_select("Colormap", list(COLORMAP_NAMES), "feature_cmap", default="viridis")
    slot = results_slot("evolution", tuple(s.digest for s in states), layer, int(channel))
    with slot:
        try:
            _columns(ctx, states, layer, int(channel), cmap)
        except Exception as exc:
            show_error(exc, context="feature evolution")


photo_page("Evolution",
           "How one channel changed during training (Zeiler & Fergus 2014, fig. 4): the same channel in 2–5 "
           "weight files of one architecture, side by side — its feature map on the photo, what it looks for, "
           "and the sample photos that excite it most.", main)
