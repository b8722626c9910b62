"""The Walkthrough page through AppTest: it renders the steps for the chosen position, a typed position moves the
receptive field, and the temperature or the position never re-runs the forward pass."""
from __future__ import annotations

from tests.app.conftest import keyed
from ui.engine import ENGINE_CALLS

PAGE = "pages/walkthrough.py"


def _captions(at) -> list[str]:
    return [c for el in at.main.get("image") for c in el.captions]


def test_walkthrough_renders_and_moves_without_recomputing(app):
    at = app.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert ENGINE_CALLS["walkthrough"] == 1
    assert keyed(at, "selectbox", "wt_stage").value == 0  # the stem convolution
    sums = [c.value for c in at.code]
    assert len(sums) == 2 and all(" = " in s for s in sums)  # the kernel's sum and the top class's logit
    keyed(at, "number_input", "wt_row").set_value(0).run()
    keyed(at, "number_input", "wt_col").set_value(0).run()
    field = next(c for c in _captions(at) if c.startswith("Receptive field of (0, 0)"))
    assert "rows 0–2, columns 0–2" in field  # 3×3, stride 2 on 224: TF-SAME pads only the bottom/right edge
    keyed(at, "slider", "wt_temp").set_value(2.0).run()
    assert any("at T = 2." in m.value for m in at.markdown)
    assert ENGINE_CALLS["walkthrough"] == 1
    assert not at.exception


def test_learn_links_each_concept_to_its_walkthrough_step(app):
    at = app.run()
    at.switch_page("pages/learn.py").run()
    text = "\n".join(m.value for m in at.markdown)
    for kind in ("conv", "norm", "activation", "pooling"):
        assert f"(/walkthrough?wt_step={kind})" in text


def test_a_learn_link_opens_the_walkthrough_at_that_kind_of_stage(app):
    app.query_params["wt_step"] = "activation"  # what following the link does: a fresh session on that URL
    at = app.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert keyed(at, "selectbox", "wt_stage").value == 2  # stem conv, its batch norm, then the ReLU6 inside it
    assert any(m.value.startswith("**bn1.act** — ReLU6(") for m in at.markdown)
