"""Walkthrough: from pixels to prediction, one position at a time (CNN Explainer's linked views, on any CNN).

Pick a stage and a position on its feature map (click the map or type row and column): its receptive field on the
photo, the input patch, the kernel, the weighted sum with the real numbers, batch norm, the activation function,
pooling; at the end the logits → softmax at a temperature, and the top-5. A transformer gets its patch grid and
the clicked patch's attention instead. All numbers come from ``cam_core.walkthrough`` through ``ui.engine``.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ui import state
from ui.sidebar import photo_page
from ui.widgets import (literal, remembered_select, remembered_slider, reset_when_changed, set_remembered,
                        show_error)
from ui.walkthrough_view import (activation_figure, enlarged, map_figure, softmax_figure, tokens_cached,
                                 values_figure, walk_cached, with_box)
from cam_core.walkthrough import (TEMPERATURES, TRANSFORMER_NOTE, Box, activation_step, classifier, conv_step, input_rgb,
                                  is_transformer, linear_step, norm_step, pooling_step, softmax)

KINDS_SHOWN = ("conv", "norm", "activation", "pooling")


def _number(label: str, view_key: str, high: int, default: int, depends_on: tuple[Any, ...], where: Any) -> int:
    """A whole-number input in 0…high whose value lives in the view (and the link) under ``view_key``."""
    key = state.widget_key(view_key, depends_on)
    stored = state.view().get(view_key, default)
    try:
        value = min(max(int(stored), 0), high)
    except (TypeError, ValueError):
        value = default
    if key in st.session_state:
        st.session_state[key] = min(max(int(st.session_state[key]), 0), high)
        choice = where.number_input(label, min_value=0, max_value=high, step=1, key=key)
    else:
        choice = where.number_input(label, min_value=0, max_value=high, value=value, step=1, key=key)
    state.remember(view_key, int(choice))
    return int(choice)


def _apply_click(chart_key: str, depends_on: tuple[Any, ...], shape: tuple[int, int]) -> None:
    """A click on the map (the last run's selection event) becomes the row and column, before their inputs are drawn."""
    event = st.session_state.get(chart_key)
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", None) or []
    if not points:
        return
    point = points[-1]
    row, col = int(round(point.get("y", -1))), int(round(point.get("x", -1)))
    mark = f"{chart_key}:applied"
    if (row, col) == st.session_state.get(mark) or not (0 <= row < shape[0] and 0 <= col < shape[1]):
        return
    st.session_state[mark] = (row, col)
    set_remembered("wt_row", row, depends_on)
    set_remembered("wt_col", col, depends_on)


# --- one step per stage kind -----------------------------------------------------------------------------------

def _conv_step(ctx: Any, wt: Any, index: int, c: int, row: int, col: int, fold: bool) -> None:
    step = conv_step(wt, index, c, row, col, fold_bn=fold)
    stage = wt.stages[index]
    st.markdown(f"**{stage.name}** — convolution, kernel {step.kernel.shape[1]}×{step.kernel.shape[2]}, "
                f"stride {step.stride[0]}, dilation {step.dilation[0]}, "
                f"{'depthwise' if step.groups == stage.module.in_channels and step.groups > 1 else f'{step.groups} group(s)'}"
                f"; output channel {c} reads {len(step.channels)} input channel(s)"
                + (f"; batch norm **{step.folded}** folded into the kernel and bias" if step.folded else ""))
    left, right = st.columns(2)
    if step.reads_rgb:
        spec = ctx.backbone.spec
        left.image(enlarged(step.patch_rgb(spec.mean, spec.std), 160), caption="Input patch (RGB, padding is "
                   "the model's zero)")
        right.image(enlarged(step.kernel_rgb(), 160), caption="Kernel as an RGB tile (scaled to its own range)")
    else:
        strongest = step.strongest_input()
        ch = step.channels[strongest]
        left.plotly_chart(values_figure(step.patch[strongest], f"Input patch, channel {ch}"), width="stretch",
                          key="wt_patch", config={"displaylogo": False, "staticPlot": True})
        right.plotly_chart(values_figure(step.kernel[strongest], f"Kernel slice for channel {ch}"),
                           width="stretch", key="wt_kernel", config={"displaylogo": False, "staticPlot": True})
        st.caption(f"Shown: the input channel whose products add up to the most (of {len(step.channels)}).")
    st.markdown("**The weighted sum, largest products first:**")
    st.code(step.sum.text(), language=None, wrap_lines=True)
    st.caption(f"The model's own value at this position: {step.sum.recorded:.6g} "
               f"(the sum above, {step.sum.total:.6g}, in float64).")


def _norm_step(wt: Any, index: int, c: int, row: int, col: int) -> None:
    step = norm_step(wt, index, c, row, col)
    st.markdown(f"**{wt.stages[index].name}** — batch norm with its running mean and variance:")
    st.code(step.text(), language=None, wrap_lines=True)


def _activation_step(wt: Any, index: int, c: int, row: int, col: int) -> None:
    step = activation_step(wt, index, c, row, col)
    st.markdown(f"**{wt.stages[index].name}** — {step.function}({step.x:.4g}) = {step.y:.4g}")
    st.plotly_chart(activation_figure(step), width="stretch", key=f"wt_act_{index}", config={"displaylogo": False})


def _pooling_step(wt: Any, index: int, c: int, row: int, col: int) -> None:
    step = pooling_step(wt, index, c, row, col)
    how = "the largest" if step.op == "max" else f"the sum divided by {step.divisor}"
    st.markdown(f"**{wt.stages[index].name}** — {step.op} pooling: rows {step.rows[0]}–{step.rows[1]}, columns "
                f"{step.cols[0]}–{step.cols[1]} of its input; {how} = **{step.result:.4g}** "
                f"(model: {step.recorded:.4g})")
    if step.values.size <= 144:
        st.plotly_chart(values_figure(step.values, "Pooling window"), width="stretch", key="wt_pool",
                        config={"displaylogo": False, "staticPlot": True})


def _steps(ctx: Any, wt: Any, index: int, c: int, row: int, col: int, fold: bool) -> None:
    for i in wt.chain(index):
        kind = wt.stages[i].kind
        if kind == "norm" and fold and wt.stages[i].source is not None and wt.stages[wt.stages[i].source].kind == "conv" \
                and i != index:
            continue  # folded into the convolution's sum above
        with st.container(border=True):
            try:
                if kind == "conv":
                    _conv_step(ctx, wt, i, c, row, col, fold)
                elif kind == "norm":
                    _norm_step(wt, i, c, row, col)
                elif kind == "activation":
                    _activation_step(wt, i, c, row, col)
                elif kind == "pooling":
                    _pooling_step(wt, i, c, row, col)
            except Exception as exc:
                show_error(exc, context=f"stage {wt.stages[i].name}")


def _softmax_section(ctx: Any, logits: Any, wt: Any | None) -> None:
    st.subheader("Logits → softmax → top-5", anchor="softmax")
    t = remembered_slider("Temperature T", "wt_temp", min_value=0.1, max_value=10.0, default=1.0, step=0.1,
                          help=f"softmax(logits / T). T < 1 sharpens, T > 1 flattens; the order never changes "
                               f"(allowed {TEMPERATURES[0]}–{TEMPERATURES[1]})")
    result = softmax(logits, t, k=5)
    names = ctx.backbone.categories
    labels = [f"{names[i] if i < len(names) else i}" for i, _ in result.top]
    left, right = st.columns([3, 2])
    left.plotly_chart(softmax_figure(result.top, labels, logits), width="stretch", key="wt_softmax", config={"displaylogo": False})
    top_index = result.top[0][0]
    right.markdown(f"Top class **{literal(labels[0])}**: logit {float(logits[top_index]):.4g}, "
                   f"probability {result.top[0][1]:.2%} at T = {t:g}.")
    if wt is not None:
        try:
            head = classifier(wt)
            right.caption(f"Its logit: the weighted sum of {head.input.numel()} features by the last layer ({head.name}):")
            right.code(linear_step(wt, head.index, top_index, top=5).text(), language=None, wrap_lines=True)
        except Exception as exc:
            show_error(exc, context="the classifier's sum")


# --- page ------------------------------------------------------------------------------------------------------

def _transformer(ctx: Any) -> None:
    st.info(TRANSFORMER_NOTE, icon=":material/info:")
    try:
        att = tokens_cached(ctx)
    except Exception as exc:
        show_error(exc, context="attention")
        return
    h, w = att.grid
    a, b, c, d = st.columns(4)
    with a:
        block = remembered_select("Block", list(range(len(att.blocks))), "wt_block", default=len(att.blocks) - 1,
                                  format_func=lambda i: f"{i + 1}. {att.blocks[i]}", depends_on=(ctx.model_key,))
    heads = att.weights[block].shape[0]
    with b:
        head = remembered_select("Head", [-1, *range(heads)], "wt_head", default=-1,
                                 format_func=lambda k: "mean of all heads" if k < 0 else f"head {k}",
                                 depends_on=(ctx.model_key,))
    depends = (ctx.model_key, "tokens")
    _apply_click("wt_att_map", depends, (h, w))
    row = _number("Patch row", "wt_row", h - 1, h // 2, depends, c)
    col = _number("Patch column", "wt_col", w - 1, w // 2, depends, d)
    rgb = input_rgb(ctx.x, ctx.backbone.spec.mean, ctx.backbone.spec.std)
    ph, pw = att.patch
    left, right = st.columns(2)
    left.image(with_box(rgb, Box(row * ph, col * pw, (row + 1) * ph - 1, (col + 1) * pw - 1)), width="stretch",
               caption=f"The photo as {h}×{w} patches of {ph}×{pw} px; the clicked patch ringed")
    plane = att.of_patch(block, row, col, None if head < 0 else head)
    with right:
        st.plotly_chart(map_figure(plane, row, col, f"Attention of patch ({row}, {col}) in block {block + 1}"),
                        width="stretch", key="wt_att_map", on_select="rerun", selection_mode="points",
                        config={"displaylogo": False})
    _softmax_section(ctx, att.logits, None)


def main(ctx: Any) -> None:
    if is_transformer(ctx.backbone.model):
        _transformer(ctx)
        return
    try:
        with st.spinner("Running the photo through every stage…"):
            wt = walk_cached(ctx)
    except Exception as exc:
        show_error(exc, context="the walkthrough")
        return
    stages = [s.index for s in wt.stages if s.is_map and s.kind in KINDS_SHOWN]
    step = state.view().pop("wt_step", None)  # a Learn link: open at the first stage of that kind
    if step in KINDS_SHOWN:
        first = next(i for i in stages if wt.stages[i].kind == step) if any(
            wt.stages[i].kind == step for i in stages) else stages[0]
        set_remembered("wt_stage", first, (ctx.model_key,))
    s, ch, r, co, f = st.columns([5, 2, 2, 2, 2])
    with s:
        index = remembered_select("Stage", stages, "wt_stage", default=stages[0],
                                  format_func=lambda i: wt.stages[i].label(), depends_on=(ctx.model_key,),
                                  help="Every convolution, batch norm, activation and pooling the photo passes "
                                       "through, in order. Type to search")
    stage = wt.stages[index]
    c_max, h, w = stage.shape
    depends = (ctx.model_key, index)
    reset_when_changed("wt_channel", ctx.model_key, c_max)  # kept while the next stage has as many channels
    reset_when_changed("wt_row", ctx.model_key, h, w)  # the same position followed through stages of one grid
    reset_when_changed("wt_col", ctx.model_key, h, w)
    channel = _number("Channel", "wt_channel", c_max - 1, stage.strongest_channel(), depends, ch)
    plane = stage.plane(channel)
    peak_r, peak_c = stage.peak(channel)
    _apply_click("wt_map", depends, (h, w))
    row = _number("Row", "wt_row", h - 1, peak_r, depends, r)
    col = _number("Column", "wt_col", w - 1, peak_c, depends, co)
    with f:
        fold = st.toggle("Fold BN", value=bool(state.view().get("wt_fold", 0)), key="wt_fold_toggle",
                         help="Multiply the batch norm into the kernel and bias (as deployed models do): the sum "
                              "then equals the batch norm's output")
        state.remember("wt_fold", int(fold))

    try:
        box = wt.receptive_field(index, row, col)
    except Exception as exc:
        box = None
        show_error(exc, context="receptive field")
    spec = ctx.backbone.spec
    photo, fmap = st.columns([2, 3])
    with photo:
        rgb = wt.input_rgb(spec.mean, spec.std)
        if box is not None:
            photo.image(with_box(rgb, box), width="stretch",
                        caption=f"Receptive field of ({row}, {col}): rows {box.top}–{box.bottom}, columns "
                                f"{box.left}–{box.right} of the {rgb.shape[0]}×{rgb.shape[1]} input "
                                f"({box.height}×{box.width} px), composed from each kernel, stride, padding and "
                                f"dilation on the way")
            photo.image(enlarged(wt.input_rgb(spec.mean, spec.std, box), 160), caption="The patch of the photo")
    with fmap:
        st.plotly_chart(map_figure(plane, row, col, f"{stage.name}, channel {channel}: click a position"),
                        width="stretch", key="wt_map", on_select="rerun", selection_mode="points",
                        config={"displaylogo": False})
    _steps(ctx, wt, index, channel, row, col, fold)
    _softmax_section(ctx, wt.logits, wt)


photo_page("Walkthrough",
           "From pixels to prediction: pick a stage, click a position on its feature map, and follow the numbers — "
           "receptive field, kernel, weighted sum, batch norm, activation, pooling, then logits → softmax.", main)
