"""The one registry of explanation methods: name → implementation, display name, citation, parameters.

The UI's method list, the CLI's ``--method`` choices and the Learn page all read ``METHODS``.
A new method (Score-CAM, LayerCAM, …) is one more entry here and one function in ``methods/``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import CamError
from .methods import cam, gradcam, guided_gradcam, occlusion, pixel, smoothgrad
from .methods import attention as _attention
from .methods.base import MapResult, Target


@dataclass(frozen=True)
class ParamSpec:
    """One method parameter: its type, default and range, for widgets, CLI parsing and validation."""

    type: type
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def parse(self, name: str, value: Any) -> Any:
        """Convert (e.g. from CLI text) and range-check a value; raise ``CamError`` when it is out of range."""
        if value is None and self.default is None:
            return None
        try:
            if self.type is bool and isinstance(value, str):
                text = value.strip().lower()
                if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError(text)
                value = text in ("1", "true", "yes", "on")
            elif self.type is not object:
                value = self.type(value)
        except (TypeError, ValueError):
            raise CamError(f"parameter {name!r} must be a {self.type.__name__}, got {value!r}") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise CamError(f"parameter {name!r} must be between {self.min} and {self.max}, got {value}")
        return value


@dataclass(frozen=True)
class MethodSpec:
    """A method: what it computes (``fn``), what it is called, where it comes from, what it takes."""

    name: str
    display: str
    kind: str  # "cam" (needs a spatial layer), "pixel" (input gradients), "perturbation"
    fn: Callable[..., MapResult]
    citation: str
    paper_url: str
    summary: str
    formula: str
    good_at: str
    bad_at: str
    params: dict[str, ParamSpec] = field(default_factory=dict)
    feature_target: bool = False  # accepts a (layer, channel) target instead of a class
    needs_layer: bool = False  # works on a chosen layer (layer CAMs, and products that contain one)
    long_running: bool = False  # many forward passes: show an estimate first, a progress bar, run on request
    aliases: tuple[str, ...] = ()  # other names accepted by ``get_method`` (CLI, URLs)

    def run(self, target: Target, params: dict[str, Any]) -> MapResult:
        return self.fn(target, **params)

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, unknown names refused, values range-checked."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise CamError(f"{self.display} has no parameter {', '.join(unknown)} (it takes: {known})")
        return {k: spec.parse(k, given.get(k, spec.default)) for k, spec in self.params.items()}


_CHUNK = ParamSpec(int, None, "copies run per batch (default: sized to the device's memory)", 1, 1024)

METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec(
        "gradcam", "Grad-CAM", "cam", gradcam.run_gradcam,
        "Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization, ICCV 2017",
        "https://arxiv.org/abs/1610.02391",
        "Weights each feature map of a layer by how much the class score rises when that map rises "
        "(its average gradient), adds the weighted maps and keeps the positive part.",
        r"\alpha_k^c = \frac{1}{Z}\sum_{i,j}\frac{\partial y^c}{\partial A^k_{ij}},\qquad "
        r"L^c = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big)",
        "Any CNN and any layer; class-discriminative; costs about one forward pass.",
        "Coarse (the layer's grid); averaging gradients can miss several instances of a class.",
        needs_layer=True, aliases=("grad_cam",)),
    MethodSpec(
        "gradcam++", "Grad-CAM++", "cam", gradcam.run_gradcampp,
        "Chattopadhay et al., Grad-CAM++: Improved Visual Explanations for Deep CNNs, WACV 2018",
        "https://arxiv.org/abs/1710.11063",
        "Like Grad-CAM, but weights each location of each map by higher-order terms of the gradient, "
        "so several objects of the same class all light up.",
        r"a^{kc}_{ij} = \frac{(g^{kc}_{ij})^2}{2(g^{kc}_{ij})^2 + \sum_{a,b} A^k_{ab}(g^{kc}_{ij})^3},\quad "
        r"w^c_k = \sum_{i,j} a^{kc}_{ij}\,\mathrm{ReLU}(g^{kc}_{ij}),\quad L^c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k\Big)",
        "Several instances of a class; fuller coverage of large objects.",
        "Same coarse grid as Grad-CAM; the exponential-score derivation is an approximation.",
        needs_layer=True, aliases=("gradcampp", "gradcam_pp", "grad_cam++", "gradcamplusplus")),
    MethodSpec(
        "cam", "CAM", "cam", cam.run_cam,
        "Zhou et al., Learning Deep Features for Discriminative Localization, CVPR 2016",
        "https://arxiv.org/abs/1512.04150",
        "For networks that end in global average pooling and one linear layer: weights each feature map "
        "of the last convolutional layer by the class's weight in that linear layer.",
        r"M_c(i,j) = \sum_k w^c_k\, A^k_{ij}",
        "Exact and cheap — no gradients; the original class activation map.",
        "Only the layer feeding global-average-pool → linear; other heads need Grad-CAM.",
        needs_layer=True),
    MethodSpec(
        "saliency", "Saliency (gradient)", "pixel", pixel.run_saliency,
        "Simonyan et al., Deep Inside Convolutional Networks, ICLR workshop 2014",
        "https://arxiv.org/abs/1312.6034",
        "How much each pixel, nudged, would change the class score: the largest absolute input gradient over "
        "the colour channels.",
        r"M_{ij} = \max_{ch} \left|\frac{\partial y^c}{\partial x_{ch,ij}}\right|",
        "Pixel-sharp; no layer to choose.", "Noisy; a local linear view of the model.",
        feature_target=True),
    MethodSpec(
        "smoothgrad", "SmoothGrad", "pixel", smoothgrad.run_smoothgrad,
        "Smilkov et al., SmoothGrad: removing noise by adding noise, 2017",
        "https://arxiv.org/abs/1706.03825",
        "Averages the input gradient over many noisy copies of the image; the noise cancels, the structure stays.",
        r"\hat M_c(x) = \frac{1}{n}\sum_{i=1}^{n} \frac{\partial y^c}{\partial x}\big(x + \varepsilon_i\big),\quad "
        r"\varepsilon_i \sim \mathcal N(0, \sigma^2)",
        "Much cleaner than plain gradients; seedable, so reproducible.", "n forward+backward passes.",
        long_running=True,
        params={
            "samples": ParamSpec(int, 25, "noisy copies averaged (n)", 1, 500, 1),
            "noise": ParamSpec(float, 0.15, "σ as a fraction of the input's range", 0.0, 1.0, 0.01),
            "squared": ParamSpec(bool, False, "average squared gradients (SmoothGrad-SQ)"),
            "seed": ParamSpec(int, 0, "noise seed", 0, 2**31 - 1, 1),
            "chunk": _CHUNK,
        }),
    MethodSpec(
        "guided_backprop", "Guided backprop", "pixel", pixel.run_guided_backprop,
        "Springenberg et al., Striving for Simplicity: The All Convolutional Net, ICLR workshop 2015",
        "https://arxiv.org/abs/1412.6806",
        "Backpropagates the class score to the pixels, but each ReLU lets through only positive gradient "
        "where its input was positive: sharp images of what excites the class (or one feature map).",
        r"R^{l} = \mathbb 1[f^{l} > 0]\cdot \mathbb 1[R^{l+1} > 0]\cdot R^{l+1}",
        "Crisp, detailed pixel images; works for a class or a single feature map.",
        "Barely class-discriminative; passes sanity checks poorly (Adebayo et al. 2018).",
        feature_target=True),
    MethodSpec(
        "deconvnet", "Deconvnet", "pixel", pixel.run_deconvnet,
        "Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
        "https://arxiv.org/abs/1311.2901",
        "Projects a class score or one feature map back to pixels, rectifying the signal at every ReLU "
        "whatever the forward pass did; max-pooling routes through the recorded switches.",
        r"R^{l} = \mathrm{ReLU}\big(R^{l+1}\big)",
        "Shows the input pattern a unit responds to (Zeiler & Fergus fig. 2).",
        "Little class-specificity; images depend on the architecture.",
        feature_target=True),
    MethodSpec(
        "guided_gradcam", "Guided Grad-CAM", "pixel", guided_gradcam.run_guided_gradcam,
        "Selvaraju et al., Grad-CAM, ICCV 2017",
        "https://arxiv.org/abs/1610.02391",
        "Multiplies the sharp guided-backprop image by the class-discriminative Grad-CAM map.",
        r"G^c = R_{\text{guided}} \odot \mathrm{upsample}(L^c_{\text{Grad-CAM}})",
        "Sharp and class-discriminative.", "Inherits guided backprop's weak model dependence.",
        needs_layer=True),
    MethodSpec(
        "occlusion", "Occlusion sensitivity", "perturbation", occlusion.run_occlusion,
        "Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014 (§4.2)",
        "https://arxiv.org/abs/1311.2901",
        "Covers the image with a grey square at every position and records how much the class probability "
        "drops; also which class wins with each part hidden.",
        r"M(i,j) = \operatorname*{mean}_{w \ni (i,j)} \big[p^c(x) - p^c(x_{\setminus w})\big]",
        "Model-agnostic, easy to trust: it measures the output directly.",
        "One forward pass per position; blurry at the patch scale.",
        long_running=True,
        params={
            "patch": ParamSpec(int, 32, "occluder side in input pixels", 1, 512, 1),
            "stride": ParamSpec(int, 16, "step between positions in input pixels", 1, 512, 1),
            "fill": ParamSpec(object, 0.0, "occluder value in normalized input space (0 = dataset mean)"),
            "chunk": _CHUNK,
        }),
    MethodSpec(
        "attention_rollout", "Attention rollout", "attention", _attention.run_attention_rollout,
        "Abnar & Zuidema, Quantifying Attention Flow in Transformers, ACL 2020",
        "https://arxiv.org/abs/2005.00928",
        "Follows how much of the class token's information comes from each image patch, by multiplying the "
        "attention matrices of all layers (each mixed half-and-half with the skip connection).",
        r"\hat A_l = \mathrm{rownorm}\Big(\tfrac{1}{2}\big(\mathrm{fuse}_h(A_l) + I\big)\Big),\quad "
        r"R = \hat A_L \cdots \hat A_1,\quad M = R_{\mathrm{cls},\,\mathrm{patches}}",
        "Vision transformers (ViT, DeiT); no gradients, about one forward pass; shows where the model looks.",
        "The same map for every class; attention is not attribution; no global attention in Swin, none in CNNs.",
        params={
            "head_fusion": ParamSpec(str, "mean", "how the heads of a layer are combined", choices=("mean", "max", "min")),
            "discard_ratio": ParamSpec(float, 0.0, "fraction of the weakest attention entries zeroed per layer",
                                       0.0, 0.99, 0.05),
        }),
    MethodSpec(
        "transformer_attribution", "Transformer attribution (gradient × attention)", "attention",
        _attention.run_transformer_attribution,
        "Chefer, Gur & Wolf, Transformer Interpretability Beyond Attention Visualization, CVPR 2021 "
        "(gradient × attention rollout rule of Chefer et al., ICCV 2021)",
        "https://arxiv.org/abs/2012.09838",
        "Like attention rollout, but each head's attention is weighted by its gradient for the class and only "
        "the positive part is kept, so the map is class-specific.",
        r"\bar A_l = \mathbb E_h\big[(\nabla A_l^h \odot A_l^h)^+\big],\quad R \leftarrow R + \bar A_l R "
        r"\ (R_0 = I),\quad M = R_{\mathrm{cls},\,\mathrm{patches}}",
        "Class-discriminative maps for ViT/DeiT at the patch grid; one forward and one backward.",
        "Patch-coarse (16×16 px); no LRP relevances (the paper's full rule); only global-attention transformers."),
)}


_ALIASES: dict[str, MethodSpec] = {alias: spec for spec in METHODS.values() for alias in spec.aliases}


def get_method(name: str) -> MethodSpec:
    """The registered method called ``name`` (case-insensitive), or a ``CamError`` listing the choices."""
    key = str(name).strip().lower().replace("-", "_")
    spec = METHODS.get(key) or _ALIASES.get(key)
    if spec is None:
        raise CamError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return spec
