"""The Evolution page through AppTest, on two random EfficientNet-Lite0 files (4 classes) as safetensors: one column
per file, each column's mean is that file's own channel mean (a plain forward hook on a net loaded here), another
channel redraws every column, a pickled .pth or a file of another architecture is one line and the good file stays,
the visualization toggle and the top-patches button fill every column."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save

import models
from models.preprocess import preprocess as model_preprocess
from tests.app.conftest import keyed
from ui.samples import sample_png

PAGE = "pages/evolution.py"
ARCH = "efficientnet_lite0"
OCTET = "application/octet-stream"


@pytest.fixture(scope="module")
def files():
    """Two 4-class random Lite0 weight files (name, bytes, state dict)."""
    out = []
    for i in range(2):
        torch.manual_seed(10 + i)
        state = {k: v.contiguous() for k, v in models.SPECS[ARCH].build(4).state_dict().items()}
        out.append((f"epoch{i}.safetensors", save(state), state))
    return out


def _maps(state, layer, sample="chelsea"):
    """``layer``'s maps on a bundled sample (C×u×v) at the model's own size, by a plain forward hook."""
    from cam_core.imaging import load_image

    spec = models.SPECS[ARCH]
    x = model_preprocess(load_image(sample_png(sample)), spec.input_size, spec.mean, spec.std, "cpu")
    net = models.SPECS[ARCH].build(4)
    net.load_state_dict(state)
    net.eval()
    kept = {}
    handle = net.get_submodule(layer).register_forward_hook(lambda _m, _i, out: kept.setdefault("out", out))
    try:
        with torch.no_grad():
            net(x)
    finally:
        handle.remove()
    return kept["out"][0]


def _channel_means(state, layer):
    """Every channel's mean of ``layer`` on the default sample (Chelsea)."""
    return _maps(state, layer).mean(dim=(1, 2))


def _upload(at, chosen):
    at.file_uploader(key="evolution_files").set_value([(name, data, OCTET) for name, data, *_ in chosen]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown_means(at):
    return [float(c.split(" · ")[0].removeprefix("mean ")) for el in at.main.get("image") for c in el.captions
            if c.startswith("mean ")]


def test_two_files_two_columns_each_its_own_channel_mean(app, files):
    at = app.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any("at least 2" in i.value for i in at.info)
    _upload(at, files)
    assert not at.error, [e.value for e in at.error]
    assert [m.value for m in at.markdown if m.value.startswith("**epoch")] == ["**epoch0.safetensors**",
                                                                               "**epoch1.safetensors**"]
    layer = models.SPECS[ARCH].default_layer
    assert keyed(at, "selectbox", "evo_layer").value == layer
    means = [_channel_means(state, layer) for *_, state in files]
    channel = int(means[0].argmax())  # the default: the first file's most active channel on the photo
    assert keyed(at, "selectbox", "evo_channel").value == channel
    assert _shown_means(at) == pytest.approx([float(m[channel]) for m in means], rel=1e-4, abs=1e-6)
    other = int(means[0].argmin())
    keyed(at, "selectbox", "evo_channel").set_value(other).run()
    assert not at.exception
    assert _shown_means(at) == pytest.approx([float(m[other]) for m in means], rel=1e-4, abs=1e-6)


def test_a_pickle_or_another_architecture_is_one_line_and_the_good_file_stays(app, files, tmp_path):
    at = app.run()
    at.switch_page(PAGE).run()
    hostile = ("hostile.pth", b"\x80\x02cos\nsystem\nq\x00.")
    _upload(at, [files[0], hostile])
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("hostile.pth: refused") and "\n" not in errors[0]
    assert any("loaded: epoch0.safetensors" in i.value for i in at.info)
    foreign = ("tiny.safetensors", save({"conv.weight": torch.zeros(2, 3, 1, 1), "fc.weight": torch.zeros(3, 2)}))
    _upload(at, [files[0], foreign, files[1], hostile])
    errors = [e.value for e in at.error]
    assert any(e.startswith("tiny.safetensors: these weights do not fit efficientnet_lite0") for e in errors), errors
    assert len(_shown_means(at)) == 2  # the two good files still side by side
    torch.manual_seed(3)
    five = save({k: v.contiguous() for k, v in models.SPECS[ARCH].build(5).state_dict().items()})
    _upload(at, [files[0], ("five.safetensors", five)])
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "five.safetensors: not the same architecture as epoch0.safetensors" in errors[0]
    assert not _shown_means(at)


def test_visualization_and_top_patches_fill_every_column(app, files, monkeypatch):
    from ui import evolution_view as evo
    from ui.samples import SAMPLES

    monkeypatch.setitem(evo.VIS, "steps", 2)
    monkeypatch.setitem(evo.VIS, "size", 32)
    monkeypatch.setattr(evo, "SAMPLES", {k: SAMPLES[k] for k in ("chelsea", "coffee")})  # two photos, one shape
    at = app.run()
    at.switch_page(PAGE).run()
    _upload(at, files)
    at.toggle(key="evo_visualize").set_value(True).run()
    assert not at.exception
    captions = [c for el in at.main.get("image") for c in el.captions]
    assert captions.count("looks for") == 2
    at.button(key="evo_patches").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = [c for el in at.main.get("image") for c in el.captions]
    pairs = [c for c in captions if c.endswith("(crop | deconvnet)")]
    assert len(pairs) == 2 * 2 and all(c.startswith(("chelsea · ", "coffee · ")) for c in pairs)  # 2 per file
    layer, channel = keyed(at, "selectbox", "evo_layer").value, keyed(at, "selectbox", "evo_channel").value
    for (*_, state), column in zip(files, (pairs[:2], pairs[2:])):  # each file's photos, strongest first
        best = {name: float(_maps(state, layer, name)[channel].max()) for name in ("chelsea", "coffee")}
        order = sorted(best, key=lambda n: -best[n])
        assert [c.split(" · ")[0] for c in column] == order or best["chelsea"] == best["coffee"]
        assert [float(c.split(" · ")[1].split(" ")[0]) for c in column] == pytest.approx(
            [best[n] for n in order], rel=5e-3, abs=1e-3)  # shown to 3 significant digits
    at.run()  # kept: a rerun shows them without the button
    assert not [b for b in at.button if b.key == "evo_patches"]
    assert sum(c.endswith("(crop | deconvnet)") for el in at.main.get("image") for c in el.captions) == 4


def test_files_survive_leaving_the_page_and_can_be_forgotten(app, files):
    at = app.run()
    at.switch_page(PAGE).run()
    _upload(at, files)
    assert len(_shown_means(at)) == 2
    at.switch_page("pages/layers.py").run()
    at.switch_page(PAGE).run()  # the page's uploader is empty again, as in a browser
    assert not at.exception
    assert len(_shown_means(at)) == 2
    assert any(c.value.startswith("Kept from before: epoch0.safetensors, epoch1.safetensors") for c in at.caption)
    _upload(at, files[:1])  # the same file again beside the kept ones: shown once
    assert len(_shown_means(at)) == 2
    assert any("epoch0.safetensors: the same weights as epoch0.safetensors" in e.value for e in at.error)
    at.button(key="evo_forget").click().run()
    assert not at.exception
    assert any("at least 2" in i.value and "loaded: epoch0.safetensors" in i.value for i in at.info)


def test_a_new_photo_reorders_the_channels_by_that_photo(app, files):
    at = app.run()
    at.switch_page(PAGE).run()
    _upload(at, files)
    layer = models.SPECS[ARCH].default_layer
    at.sidebar.selectbox(key="w_sample").set_value("coffee").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    coffee = _maps(files[0][2], layer, "coffee").mean(dim=(1, 2))
    chosen = keyed(at, "selectbox", "evo_channel")
    assert chosen.value == int(coffee.argmax())  # the new photo's strongest channel, not the old photo's
    label = next(o for o in chosen.options if o.startswith(f"ch {chosen.value} "))
    assert f"mean {float(coffee[chosen.value]):.3f}" in label and "(rank 1)" in label


def test_broken_weights_are_said_so_not_drawn_as_a_quiet_channel(app, files):
    name, _, state = files[1]
    broken = {k: (torch.full_like(v, float("nan")) if k.endswith("weight") and v.dim() == 4 else v)
              for k, v in state.items()}
    at = app.run()
    at.switch_page(PAGE).run()
    _upload(at, [files[0], ("nan.safetensors", save(broken))])
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("This file's weights give NaN or infinite activations"), errors
    assert len(_shown_means(at)) == 1  # the good file's map is still drawn, on a scale of its own values
    layer = keyed(at, "selectbox", "evo_layer").value
    assert _shown_means(at) == pytest.approx([float(_channel_means(files[0][2], layer).max())], rel=1e-4, abs=1e-6)
