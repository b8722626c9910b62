"""Methods offered by what the model can run: no attention method on a CNN (Inspect, Compare), a link or a
switch from a small random ViT to the CNN falls back to the default method and says so in one line."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import models
from models import registry
from models.backbone import Backbone
from models.labels import IMAGENET_CATEGORIES
from models.vit_any_size import AnySizeViT
from tests.app.conftest import keyed

TINY = "tiny_vit_test"


@pytest.fixture()
def tiny_vit(monkeypatch):
    """A small random ViT registered as TINY (the sidebar lists it; ``models.load`` builds it, no weights)."""
    spec = dataclasses.replace(models.SPECS["vit_b_16"], name=TINY, display="Tiny random ViT", source="embedded",
                               builder=lambda n: AnySizeViT(image_size=64, num_classes=n, patch_size=16,
                                                            num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64),
                               input_size=64, default_layer="encoder.layers.encoder_layer_1.ln_1")
    monkeypatch.setitem(registry.SPECS, TINY, spec)
    real = models.load

    def load(name: str = models.DEFAULT_MODEL, device=None, progress=True, input_size=None):
        if name != TINY:
            return real(name, device=device, progress=progress, input_size=input_size)
        torch.manual_seed(0)
        return Backbone(spec, spec.build(1000).eval(), list(IMAGENET_CATEGORIES), torch.device("cpu"))

    monkeypatch.setattr(models, "load", load)
    return TINY


def _notes(at) -> str:
    return " ".join(i.value for i in at.info)


def test_inspect_offers_no_attention_method_on_a_cnn_and_a_link_to_one_falls_back(app):
    from cam_core.registry import METHODS

    app.query_params["method"] = "attention_rollout"
    at = app.run()
    assert not at.exception
    picker = keyed(at, "selectbox", "method")
    assert picker.options and not [m for m in picker.options if "ttention" in m or "ollout" in m]
    assert picker.value == "gradcam"
    assert not at.error  # no red box
    note = [i.value for i in at.info if "cannot run on" in i.value]
    assert len(note) == 1 and METHODS["attention_rollout"].display in note[0] and "Grad-CAM" in note[0]


def test_switching_from_a_vit_to_the_cnn_falls_back_on_compare(app, tiny_vit):
    """A link opens Compare on the ViT with an attention method chosen; switching the model to the CNN
    leaves it out and says so. (The link drives the state: AppTest's switch_page does not carry sidebar
    widget values across pages, which the browser does:
    tests/e2e/test_state_browser.py::test_input_size_is_picked_once_and_kept_across_pages.)"""
    app.query_params.update({"model": tiny_vit, "compare_methods": "gradcam,attention_rollout"})
    at = app.switch_page("pages/compare.py").run()
    assert not at.exception and not at.error
    methods = at.multiselect(key="w_compare_methods")
    assert "Attention rollout" in methods.options and methods.value == ["gradcam", "attention_rollout"]
    assert "cannot run on" not in _notes(at)

    keyed(at, "selectbox", "model").set_value(models.DEFAULT_MODEL).run()  # the CNN
    assert not at.exception and not at.error
    methods = at.multiselect(key="w_compare_methods")
    assert "Attention rollout" not in methods.options and methods.value == ["gradcam"]
    note = [i.value for i in at.info if "cannot run on" in i.value]
    assert len(note) == 1 and note[0].startswith("Attention rollout cannot run on") and "left out" in note[0]
    assert at.query_params["compare_methods"] == "gradcam"  # the link forgets it too


def test_switching_from_a_vit_to_the_cnn_falls_back_on_inspect(app, tiny_vit):
    """The same on Inspect: a link to the ViT with Attention rollout, then the CNN: Grad-CAM, said once."""
    app.query_params.update({"model": tiny_vit, "method": "attention_rollout"})
    at = app.run()
    assert not at.exception and not at.error
    picker = keyed(at, "selectbox", "method")
    assert "Attention rollout" in picker.options and picker.value == "attention_rollout"
    assert "cannot run on" not in _notes(at)

    keyed(at, "selectbox", "model").set_value(models.DEFAULT_MODEL).run()  # the CNN
    assert not at.exception and not at.error
    picker = keyed(at, "selectbox", "method")
    assert "Attention rollout" not in picker.options and picker.value == "gradcam"
    note = [i.value for i in at.info if "cannot run on" in i.value]
    assert len(note) == 1 and note[0].startswith("Attention rollout cannot run on") and "Grad-CAM" in note[0]
    at.run()  # the note stays through the reruns that follow, while the model and the choice do
    assert len([i for i in at.info if "cannot run on" in i.value]) == 1
