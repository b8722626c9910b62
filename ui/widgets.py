"""Small widget helpers every page uses: errors without tracebacks, widgets that remember their value
across pages (through the shareable view), and method-parameter inputs built from a ``ParamSpec``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from cam_core.errors import CamError
from cam_core.registry import METHODS
from models.backbone import FILL_COLOURS

from . import state
from .cache import predict_cached

log = logging.getLogger("cam_explorer.ui")


def show_error(exc: BaseException, where: Any = None, *, context: str = "") -> None:
    """Show ``exc`` as one line with ``st.error`` (in ``where``, default the main area) and log it.

    A ``CamError`` is the person's to fix: its message is shown as is. Anything else is our bug: the page
    says so in one line. Either way the traceback goes to the server log, never to the page.
    """
    target = where if where is not None else st
    prefix = f"{context}: " if context else ""
    if isinstance(exc, CamError):
        log.warning("%s%s", prefix, exc, exc_info=exc)
        target.error(f"{prefix}{exc}", icon=":material/error:")
    else:
        log.exception("%sunexpected %s", prefix, type(exc).__name__, exc_info=exc)
        first = str(exc).splitlines()[0] if str(exc) else ""
        target.error(f"{prefix}something went wrong ({type(exc).__name__}: {first[:200]}); "
                     "the details are in the server log.", icon=":material/error:")


def predictions_or_error(ctx: Any, top: int = 5) -> list[Any] | None:
    """The image's top-``top`` classes (cached), or ``None`` after showing why they could not be had."""
    try:
        return predict_cached(ctx, top=top)
    except Exception as exc:
        show_error(exc, context="prediction")
        return None


def remembered_select(label: str, options: Sequence[Any], view_key: str, *, default: Any = None,
                      format_func: Callable[[Any], str] = str, where: Any = None,
                      depends_on: tuple[Any, ...] = (), **kwargs: Any) -> Any:
    """A selectbox whose value lives in the shareable view under ``view_key`` (so it survives page
    switches and travels in the URL when ``view_key`` is one of ``state.URL_KEYS``).

    ``depends_on`` names what the options (or their labels) depend on — image digest, model, layer: the
    widget is keyed to it (``state.widget_key``), so after a change it shows the new options, never the
    old ones' labels. The stored value is used when it is one of ``options``, else ``default`` (else the
    first option).
    """
    options = list(options)
    key = state.widget_key(view_key, depends_on)
    current = state.view().get(view_key, default)
    if current not in options:
        current = default if default in options else (options[0] if options else None)
    ss = st.session_state
    if key in ss and ss[key] not in options:
        del ss[key]  # a value set for other options: start from the view's value
    target = where if where is not None else st
    if key in ss:  # the widget's own (or a callback's) value wins; passing a default too makes Streamlit warn
        choice = target.selectbox(label, options, format_func=format_func, key=key, **kwargs)
    else:
        choice = target.selectbox(label, options, index=options.index(current) if options else None,
                                  format_func=format_func, key=key, **kwargs)
    state.remember(view_key, choice)
    return choice


def reset_when_changed(view_key: str, *depends_on: Any) -> None:
    """Drop the view entry ``view_key`` when what it was chosen for changed (e.g. a channel when the layer
    changes), so that its widget starts from its default; a value that came with a link is kept."""
    v = state.view()
    marks: dict[str, Any] = v.setdefault("_chosen_for", {})
    sig = repr(depends_on)
    if marks.get(view_key, sig) != sig:
        v.pop(view_key, None)
    marks[view_key] = sig


def set_remembered(view_key: str, value: Any, depends_on: tuple[Any, ...] = ()) -> None:
    """Set a remembered widget's value from code (e.g. a click on a chart), before the widget is drawn."""
    state.remember(view_key, value)
    st.session_state[state.widget_key(view_key, depends_on)] = value


def remembered_slider(label: str, view_key: str, *, min_value: Any, max_value: Any, default: Any,
                      step: Any, where: Any = None, depends_on: tuple[Any, ...] = (), **kwargs: Any) -> Any:
    """A slider (one number, or a ``(low, high)`` range when ``default`` is a pair) whose value lives in the
    shareable view under ``view_key``; ints stay ints. Keyed to ``depends_on`` like ``remembered_select``."""
    cast = type(min_value)
    key = state.widget_key(view_key, depends_on)

    def clamp(v: Any) -> Any:
        return min(max(cast(v), min_value), max_value)

    stored = state.view().get(view_key, default)
    try:
        value = tuple(clamp(v) for v in stored) if isinstance(default, tuple) else clamp(stored)
        if isinstance(default, tuple) and (len(value) != 2 or value[0] > value[1]):
            raise ValueError(stored)
    except (TypeError, ValueError):
        value = default
    ss = st.session_state
    if key in ss:  # keep a value set from code (or by the widget) inside the range
        try:
            ss[key] = tuple(clamp(v) for v in ss[key]) if isinstance(default, tuple) else clamp(ss[key])
        except (TypeError, ValueError):
            del ss[key]
    target = where if where is not None else st
    if key in ss:
        choice = target.slider(label, min_value=min_value, max_value=max_value, step=step, key=key, **kwargs)
    else:
        choice = target.slider(label, min_value=min_value, max_value=max_value, value=value, step=step, key=key,
                               **kwargs)
    choice = tuple(cast(v) for v in choice) if isinstance(default, tuple) else cast(choice)
    state.remember(view_key, choice)
    return choice


def remembered_radio(label: str, options: Sequence[Any], view_key: str, *, default: Any = None, where: Any = None,
                     **kwargs: Any) -> Any:
    """A radio whose value lives in the shareable view under ``view_key``."""
    options = list(options)
    key = state.widget_key(view_key)
    current = state.view().get(view_key, default)
    if current not in options:
        current = default if default in options else options[0]
    ss = st.session_state
    if key in ss and ss[key] not in options:
        del ss[key]
    target = where if where is not None else st
    if key in ss:
        choice = target.radio(label, options, key=key, **kwargs)
    else:
        choice = target.radio(label, options, index=options.index(current), key=key, **kwargs)
    state.remember(view_key, choice)
    return choice


_MARKDOWN = set("\\`*[]<>!$~|")  # ":" stays: a shortcode (:smile:) is harmless; :red[…] needs "["


def literal(text: str, limit: int = 120) -> str:
    """``text`` from outside (a file name, a link's parameter) made safe inside Markdown: shown as typed, never
    as a link, an image fetched from elsewhere, coloured text or a formula; cut to ``limit`` characters."""
    text = "".join(ch for ch in str(text) if ch.isprintable())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return "".join("\\" + ch if ch in _MARKDOWN else ch for ch in text)


def problem_card(problem: Any, where: Any = None) -> None:
    """A ``state.Problem`` as one card in the main area: what failed, why, what to do (and a button)."""
    target = where if where is not None else st
    with target.container(border=True, key=f"problem_{problem.kind}"):
        st.markdown(f"#### {problem.title}")
        st.error(problem.why, icon=problem.icon)
        st.markdown(f"**What to do:** {problem.todo}")
        if problem.details:
            st.caption(problem.details)
        if problem.action is not None:
            label, callback = problem.action
            st.button(label, on_click=callback, type="primary", icon=":material/undo:",
                      key=f"problem_action_{problem.kind}")


def param_inputs(method: str, backbone: Any, where: Any = None) -> dict[str, Any]:
    """Widgets for ``method``'s parameters, built from its ``ParamSpec`` schema; returns name → value.

    Parameters whose default is ``None`` (engine-tuned, e.g. ``chunk``) are left to the engine. An
    occlusion ``fill`` is offered as colours converted into the model's normalized space.
    """
    spec = METHODS[method]
    target = where if where is not None else st
    stored: dict[str, Any] = state.view().setdefault("params", {}).setdefault(method, {})
    values: dict[str, Any] = {}
    for name, p in spec.params.items():
        if p.default is None:
            continue
        key = f"w_param_{method}_{name}"
        current = stored.get(name, p.default)
        if name == "fill" and p.type is object:
            fills = _fill_choices(backbone)
            labels = list(fills)
            pick = target.selectbox("Occluder fill", labels, index=labels.index(current) if current in labels else 0,
                                    key=key, help=p.help)
            stored[name] = pick
            values[name] = fills[pick]
        elif p.choices:
            choices = list(p.choices)
            value = target.selectbox(_title(name), choices, index=choices.index(current) if current in choices else 0,
                                     key=key, help=p.help)
            stored[name] = values[name] = value
        elif p.type is bool:
            stored[name] = values[name] = bool(target.checkbox(_title(name), value=bool(current), key=key, help=p.help))
        elif p.type in (int, float):
            values[name] = stored[name] = _number(target, name, p, current, key)
        else:
            continue
    return values


def stored_params(method: str, backbone: Any) -> dict[str, Any]:
    """The parameters last chosen for ``method`` with ``param_inputs`` (on any page), else its defaults."""
    stored = state.view().get("params", {}).get(method, {})
    values: dict[str, Any] = {}
    for name, p in METHODS[method].params.items():
        if p.default is None or name not in stored:
            continue
        if name == "fill" and p.type is object:
            values[name] = _fill_choices(backbone).get(stored[name], p.default)
        else:
            values[name] = stored[name]
    return values


def _number(target: Any, name: str, p: Any, current: Any, key: str) -> int | float:
    cast = p.type
    lo = cast(p.min) if p.min is not None else None
    hi = cast(p.max) if p.max is not None else None
    step = cast(p.step) if p.step is not None else (1 if cast is int else 0.01)
    try:
        value = cast(current)
    except (TypeError, ValueError):
        value = cast(p.default)
    if lo is not None:
        value = max(value, lo)
    if hi is not None:
        value = min(value, hi)
    # A slider where the range is short enough to drag through; a number box otherwise (e.g. seeds).
    if lo is not None and hi is not None and (cast is float or (hi - lo) / step <= 1000):
        return cast(target.slider(_title(name), min_value=lo, max_value=hi, value=value, step=step, key=key,
                                  help=p.help))
    return cast(target.number_input(_title(name), min_value=lo, max_value=hi, value=value, step=step, key=key,
                                    help=p.help))


def _fill_choices(backbone: Any) -> dict[str, Any]:
    """Occluder colours offered to the user → the value in the model's normalized input space."""
    return {"dataset mean (0)": 0.0, **{name: tuple(backbone.fill_value(rgb)) for name, rgb in FILL_COLOURS.items()}}


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()
