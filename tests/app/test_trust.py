"""Inspect's "Can I trust this map?" through AppTest, with the real engines: curves with their verdict against
random maps (automatic when quick, else on a click), the sanity check on demand, cached, tied to the map."""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from ui.cache import ENGINE_CALLS
from ui.trust import unsure_message

STEPS = 3  # few curve steps keep the real deletion/insertion run short


def _no_problem(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _text(at) -> str:
    return " ".join(m.value for m in at.markdown)


def _verdicts(at) -> list[str]:
    return [m.value for m in (*at.success, *at.warning, *at.error) if m.value.startswith("Sanity check ")]


def _ask_metrics(at):
    at.number_input(key="w_trust_steps").set_value(STEPS).run()
    _no_problem(at)
    at.button(key="trust_metrics").click().run()
    _no_problem(at)
    return at


def test_nothing_is_computed_until_asked_when_slow(app):
    at = app.run()  # AUTO_SECONDS = 0 (conftest): nothing is quick enough to start by itself
    _no_problem(at)
    assert "#### Can I trust this map?" in [m.value for m in at.markdown]  # open under the map, no expander
    assert "Can I trust this map?" not in [e.label for e in at.expander]
    assert ENGINE_CALLS["evaluate"] == 0 and ENGINE_CALLS["sanity"] == 0
    captions = " ".join(c.value for c in at.caption)
    assert "Expected: " in captions and " model runs" in captions and "maps" in captions
    assert at.button(key="trust_metrics").label == "Compute deletion and insertion"
    assert "AUC" not in _text(at) and not _verdicts(at)


def test_the_tiers_rule():
    from ui.trust import tier

    assert tier(0.5, 0.1, False, 15) == "full"  # quick: the curves with their verdict at once
    assert tier(40, 2, False, 15) == "own"  # the random maps are slow: the map's own curves, verdict on a click
    assert tier(None, None, False, 15) == "own"  # speed not measured: the own curves measure it
    assert tier(400, 30, False, 15) == "wait"
    assert tier(400, 30, True, 15) == "full" and tier(None, None, True, 0) == "full"  # asked
    assert tier(None, None, False, 0) == "wait"


@pytest.mark.slow
def test_quick_curves_come_by_themselves_with_their_verdict(app, monkeypatch):
    from ui import trust

    at = app.run()
    at.number_input(key="w_trust_steps").set_value(2).run()
    assert ENGINE_CALLS["evaluate"] == 0
    monkeypatch.setattr(trust, "AUTO_SECONDS", 1e9)
    at.run()
    _no_problem(at)
    text = _text(at)
    assert "Deletion: the map is " in text and "Insertion: the map is " in text
    assert "random map" in text and "AUC 0." in text
    assert not [b for b in at.button if b.key == "trust_metrics"]  # nothing left to click
    assert any(c.key == "trust_curves" for c in at.get("plotly_chart"))


@pytest.mark.slow
def test_auc_shown_and_not_recomputed_when_alpha_moves(app):
    at = _ask_metrics(app.run())
    assert ENGINE_CALLS["evaluate"] == 1
    text = _text(at)
    assert "Deletion: the map is " in text and "Insertion: the map is " in text  # the verdict first
    assert "random map" in text and "AUC 0." in text
    assert "lower is better" in text and "higher is better" in text
    assert any(c.key == "trust_curves" for c in at.get("plotly_chart"))
    calls = dict(ENGINE_CALLS)
    at.slider(key="w_alpha").set_value(0.8).run()
    at.selectbox(key="w_cmap").set_value("viridis").run()
    _no_problem(at)
    assert dict(ENGINE_CALLS) == calls
    assert "Deletion: the map is " in _text(at)  # still shown, from the cache


@pytest.mark.slow
def test_sanity_check_verdict_and_thumbnails(app):
    at = app.run()
    at.button(key="trust_sanity").click().run()
    _no_problem(at)
    assert ENGINE_CALLS["sanity"] == 1
    verdicts = _verdicts(at)
    assert len(verdicts) == 1 and verdicts[0].split(":")[0] in (
        "Sanity check passed", "Sanity check warning", "Sanity check failed")
    import re

    assert not re.search(r"class \d", verdicts[0])  # classes named by label (the backbone's categories)
    assert any(c.key == "trust_sanity_plot" for c in at.get("plotly_chart"))
    captions = [c for el in at.main.get("image") for c in el.captions]
    assert "original" in captions and any("(ρ=" in c for c in captions)
    at.slider(key="w_alpha").set_value(0.3).run()
    assert ENGINE_CALLS["sanity"] == 1 and len(_verdicts(at)) == 1


@pytest.mark.slow
def test_switching_image_or_method_clears_the_results(app):
    at = _ask_metrics(app.run())
    at.button(key="trust_sanity").click().run()
    _no_problem(at)
    assert "Deletion: " in _text(at) and _verdicts(at)
    at.sidebar.selectbox(key="w_sample").set_value("coffee").run()
    _no_problem(at)
    assert "Deletion: " not in _text(at) and not _verdicts(at)
    assert ENGINE_CALLS["evaluate"] == 1 and ENGINE_CALLS["sanity"] == 1  # nothing computed for the new map
    # Another method on the first image: also a different map, so nothing is shown either.
    at.sidebar.selectbox(key="w_sample").set_value("chelsea").run()
    at.selectbox(key="w_method").set_value("gradcam++").run()
    _no_problem(at)
    assert "Deletion: " not in _text(at) and not _verdicts(at)


@pytest.mark.slow
def test_results_are_keyed_to_the_map_and_the_steps(app):
    at = _ask_metrics(app.run())
    from ui import trust

    asked = at.session_state[trust._ASKED]
    assert asked["metrics"] == STEPS and not asked["sanity"]
    assert asked["key"][2] and asked["key"][3] == "gradcam"  # image digest, method, …
    at.number_input(key="w_trust_steps").set_value(STEPS + 1).run()  # other steps: other curves, not shown
    _no_problem(at)
    assert "Deletion: " not in _text(at) and ENGINE_CALLS["evaluate"] == 1
    at.number_input(key="w_trust_steps").set_value(STEPS).run()  # back: shown again, from the cache
    assert "Deletion: " in _text(at) and ENGINE_CALLS["evaluate"] == 1


P = namedtuple("P", "label prob class_idx")


def test_unsure_banner_rules():
    assert unsure_message([P("tabby", 0.03, 281), P("lynx", 0.02, 287)]) == (
        "The model is unsure: top class tabby at 3%; maps of an unsure prediction are hard to read.")
    close = unsure_message([P("tabby", 0.45, 281), P("tiger cat", 0.41, 282)])
    assert close and "within 5 points" in close and "tabby (45%)" in close
    assert unsure_message([P("tabby", 0.45, 281), P("tiger cat", 0.39, 282)]) is None
    assert unsure_message([P("tabby", 0.20, 281)]) is None


def test_agreement_is_the_mean_pairwise_spearman():
    from scipy.stats import spearmanr

    from ui.trust import agreement

    rng = np.random.default_rng(0)
    maps = [rng.random((6, 5)) for _ in range(3)]
    maps[1][:2] = 0.0  # ties
    expected = np.mean([spearmanr(maps[i].ravel(), maps[j].ravel())[0] for i, j in ((0, 1), (0, 2), (1, 2))])
    assert agreement(maps) == pytest.approx(expected, abs=1e-12)
    assert agreement(maps[:1]) is None
    assert agreement([maps[0], np.zeros((6, 5))]) is None  # a blank map has no ranking


@pytest.mark.slow
def test_compare_ranks_every_method_at_the_top_with_each_tiles_verdict(app):
    at = app.run()
    at.number_input(key="w_trust_steps").set_value(2).run()  # Compare scores with Inspect's curve steps
    at.switch_page("pages/compare.py").run()
    _no_problem(at)
    assert [m.label for m in at.metric] == ["Agreement between the maps"]
    assert at.metric[0].value.startswith("ρ = ")
    assert ENGINE_CALLS["evaluate"] == 0  # AUTO_SECONDS = 0: the verdicts wait for the click
    assert any("wait for their verdict" in c.value for c in at.caption)
    at.button(key="trust_compare").click().run()
    _no_problem(at)
    chosen = at.multiselect(key="w_compare_methods").value
    assert ENGINE_CALLS["evaluate"] == len(chosen)
    markdown = [m.value for m in at.markdown]
    tiles = [i for i, v in enumerate(markdown) if "deletion: " in v and "insertion: " in v]
    assert len(tiles) == len(chosen)  # each tile its verdict
    (top,) = [i for i, v in enumerate(markdown) if v.startswith("**Ranking** — ")]
    assert top < min(tiles)  # the ranking above the tiles
    table = at.dataframe[0].value
    assert list(table.columns) == ["place", "method", "deletion", "insertion", "margin over random (spreads)"]
    assert set(table["deletion"]) <= {"better", "unclear", "no better"}
    places = [int(p.rstrip("=")) for p in table["place"]]
    assert places[0] == 1 and places == sorted(places)
    assert any(c.value.startswith("Ranked by deletion and insertion against the random maps") for c in at.caption)
    assert not any("wait for their verdict" in c.value for c in at.caption)
    at.slider(key="w_alpha").set_value(0.2).run()  # alpha: no recompute, verdicts still shown
    assert ENGINE_CALLS["evaluate"] == len(chosen)
    assert len([m for m in at.markdown if "deletion: " in m.value and "insertion: " in m.value]) == len(chosen)
