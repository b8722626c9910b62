"""Command-line text to values, in process and without a model: methods and aliases from the registry,
``--param`` through ``ParamSpec``, classes by index or label, the parser's commands."""
from __future__ import annotations

from dataclasses import replace

import pytest

from cam_core.registry import METHODS, ParamSpec
from cam_explorer import cli, commands, parsing  # noqa: F401  (cli registers every command)
from cam_explorer.parsing import UsageError, apply_colours, parse_methods, parse_params, resolve_class


def test_argument_helpers():
    cats = ["tench", "goldfish", "Tabby"]
    assert resolve_class("2", cats) == 2
    assert resolve_class("Tabby", cats) == 2 and resolve_class("tabby", cats) == 2
    for wrong in ("3", "-1", "tabbycat"):
        with pytest.raises(UsageError):
            resolve_class(wrong, cats)
    assert parse_methods(["gradcam,occlusion", "gradcam"]) == ["gradcam", "occlusion"]
    params = parse_params(["patch=8", "stride=4", "samples=3"], ["occlusion", "smoothgrad", "gradcam"])
    assert params == {"occlusion": {"patch": 8, "stride": 4}, "smoothgrad": {"samples": 3}, "gradcam": {}}
    for wrong in (["stride=x"], ["patch=0"], ["nokey"], ["colour=3"]):
        with pytest.raises(UsageError):
            parse_params(wrong, ["occlusion"])


def test_every_alias_names_its_method_and_unknown_names_list_the_registry():
    for name, spec in METHODS.items():
        for alias in (name, name.upper(), *spec.aliases):
            assert parse_methods([alias]) == [name]
    with pytest.raises(UsageError, match="choose one of " + ", ".join(METHODS).replace("+", r"\+")):
        parse_methods(["nope"])
    with pytest.raises(UsageError, match="no method given"):
        parse_methods([" , "])


def test_params_follow_the_registrys_types_and_ranges():
    samples = METHODS["smoothgrad"].params["samples"]
    parsed = parse_params([f"samples={samples.max}", "squared=yes", "noise=0.25"], ["smoothgrad"])["smoothgrad"]
    assert parsed == {"samples": samples.max, "squared": True, "noise": 0.25}
    assert type(parsed["samples"]) is int and type(parsed["noise"]) is float
    assert parse_params(["squared=off"], ["smoothgrad"])["smoothgrad"] == {"squared": False}
    for text in (f"samples={samples.max + 1}", f"samples={samples.min - 1}", "squared=perhaps", "noise=nan",
                 "noise=inf", "samples=2.5"):
        with pytest.raises(UsageError, match=f"--param {text.split('=')[0]}="):
            parse_params([text], ["smoothgrad"])
    with pytest.raises(UsageError, match="between"):  # the registry's own message follows the flag
        parse_params(["samples=0"], ["smoothgrad"])


def test_free_form_fill_numbers_lists_and_colours():
    got = parse_params(["fill=0.5"], ["occlusion"])["occlusion"]["fill"]
    assert got == 0.5
    assert parse_params(["fill=1,2,3"], ["occlusion"])["occlusion"]["fill"] == [1.0, 2.0, 3.0]

    class Backbone:  # fill_value: an RGB colour in the model's normalized space, here (v - 127.5) / 127.5
        def fill_value(self, rgb):
            return [(v - 127.5) / 127.5 for v in rgb]

    params = parse_params(["fill=white"], ["occlusion"])
    apply_colours(params, Backbone())
    assert params["occlusion"]["fill"] == [1.0, 1.0, 1.0]
    params = parse_params(["fill=#000000"], ["occlusion"])
    apply_colours(params, Backbone())
    assert params["occlusion"]["fill"] == [-1.0, -1.0, -1.0]
    params = parse_params(["fill=mean"], ["occlusion"])
    apply_colours(params, Backbone())
    assert params["occlusion"]["fill"] == 0.0
    params = parse_params(["fill=purple"], ["occlusion"])
    with pytest.raises(UsageError, match="#rrggbb"):
        apply_colours(params, Backbone())


def test_choices_declared_in_a_paramspec_are_enforced(monkeypatch):
    spec = replace(METHODS["smoothgrad"], name="choosy",
                   params={"mode": ParamSpec(str, "a", "test-only choice", choices=("a", "b"))})
    monkeypatch.setitem(METHODS, "choosy", spec)
    assert parse_params(["mode=b"], ["choosy"])["choosy"] == {"mode": "b"}
    with pytest.raises(UsageError, match="--param mode=c: .*one of a, b"):
        parse_params(["mode=c"], ["choosy"])


def test_every_subcommand_has_its_command_function():
    parser = parsing.build_parser("cam-explorer")
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(commands.COMMANDS) == {"predict", "explain", "evaluate", "sanity", "methods", "layers",
                                                                 "visualize", "audit-report", "audit", "top-patches",
                                                                 "walkthrough", "evolution"}
    assert parser.parse_args(["explain", "a.png", "--method", "occlusion"]).command == "explain"
