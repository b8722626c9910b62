"""The one registry of explanation methods: name → implementation, display name, citation, parameters.

The UI's method list, the CLI's ``--method`` choices and the Learn page all read ``METHODS``.
A new method (Score-CAM, LayerCAM, …) is one more entry here and one function in ``methods/``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .batching import run_seconds
from .errors import CamError
from .methods import ablation_cam, attention, cam, integrated_gradients, layer_cam, occlusion, rise, score_cam
from .methods.base import MapResult, Method, Target, needs_layer
from .methods.layer_cam import EIGENCAM, GRADCAM, GRADCAMPP, HIRESCAM, XGRADCAM
from .methods.pixel import DECONVNET, GUIDED_BACKPROP, SALIENCY
from .methods.wrappers import Path, Product, Smooth


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
        if self.choices is not None and value not in self.choices:
            raise CamError(f"parameter {name!r} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise CamError(f"parameter {name!r} must be between {self.min} and {self.max}, got {value}")
        return value


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """A method: what it computes (``method``), what it is called, where it comes from, what it takes.

    ``method`` is a method object (``methods.base.Method``: ``run(target, **params)`` and ``needs_layer``);
    whether the method works on a chosen layer is the object's, never written here twice.
    """

    name: str
    display: str
    kind: str  # "cam" (a layer's feature maps), "pixel" (input gradients), "perturbation", "attention"
    method: Method
    citation: str
    paper_url: str
    summary: str
    formula: str
    good_at: str
    bad_at: str
    params: dict[str, ParamSpec] = field(default_factory=dict)
    feature_target: bool = False  # accepts a (layer, channel) target instead of a class
    long_running: bool = False  # many forward passes: show an estimate first, a progress bar, run on request
    aliases: tuple[str, ...] = ()  # other names accepted by ``get_method`` (CLI, URLs)
    #: (model, x, resolved params, layer) → seconds a run will take: the method's count of forwards (or
    #: forward+backwards, windows, channels) × this model's time per item at this input, measured now if never
    #: measured (``batching.calibrate``), plus its clean forward and set-up; ``None`` without a needed layer
    estimate: Callable[[Any, Any, dict[str, Any], str | None], float | None] | None = None

    @property
    def needs_layer(self) -> bool:
        """Works on a chosen layer (layer CAMs, and wrappers or products that contain one)."""
        return needs_layer(self.method)

    @property
    def fn(self) -> Callable[..., MapResult]:
        """The method's ``run(target, **params)``."""
        return self.method.run

    def expected_seconds(self, model: Any, x: Any, params: dict[str, Any], layer: str | None = None) -> float | None:
        """Seconds a run on ``x`` at ``layer`` with ``params`` (defaults filled in) should take; ``None`` for a
        method without an estimate, or a layer method asked without its layer. The one estimator the app and
        the CLI show."""
        if self.estimate is None:
            return None
        return self.estimate(model, x, self.resolve_params(params), layer)

    def run(self, target: Target, params: dict[str, Any]) -> MapResult:
        return self.method.run(target, **params)

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, unknown names refused, values range-checked."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise CamError(f"{self.display} has no parameter {', '.join(unknown)} (it takes: {known})")
        return {k: spec.parse(k, given.get(k, spec.default)) for k, spec in self.params.items()}


_CHUNK = ParamSpec(int, None, "copies run per batch (default: the fastest size, measured on first use)", 1, 1024)
_SEED = ParamSpec(int, 0, "random seed (same seed, same map)", 0, 2**31 - 1, 1)
_SMOOTH_PARAMS = {
    "samples": ParamSpec(int, 25, "noisy copies averaged (n)", 1, 500, 1),
    "noise": ParamSpec(float, 0.15, "σ as a fraction of the input's range", 0.0, 1.0, 0.01),
    "squared": ParamSpec(bool, False, "average squared attributions (SmoothGrad-SQ)"),
    "seed": _SEED,
    "chunk": _CHUNK,
}


def _items_estimate(count_param: str, grad: bool, to_layer: bool = False,
                    ) -> Callable[[Any, Any, dict[str, Any], str | None], float | None]:
    """An estimate for a method making one clean forward, then ``params[count_param]`` batched copies of the
    input (with ``grad``, each a forward and a backward: to the input, or ``to_layer`` to a layer CAM's layer)."""
    def estimate(model: Any, x: Any, params: dict[str, Any], layer: str | None) -> float | None:
        if to_layer and layer is None:
            return None
        what = f"layer:{layer}" if to_layer else ""
        return run_seconds(model, x, int(params[count_param]), grad=grad, what=what)
    return estimate


def _occlusion_estimate(model: Any, x: Any, params: dict[str, Any], _layer: str | None) -> float | None:
    return occlusion.estimate_occlusion_seconds(model, x, params["patch"], params["stride"],
                                                engine=params["engine"], fill=params["fill"])


_FILL = ParamSpec(object, 0.0, "a value in normalized input space (0 = dataset mean), one or one per channel")

METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec(
        name="gradcam",
        display="Grad-CAM",
        kind="cam",
        method=GRADCAM,
        citation="Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization, ICCV 2017",
        paper_url="https://arxiv.org/abs/1610.02391",
        summary="Weights each feature map of a layer by how much the class score rises when that map rises "
        "(its average gradient), adds the weighted maps and keeps the positive part.",
        formula=r"\alpha_k^c = \frac{1}{Z}\sum_{i,j}\frac{\partial y^c}{\partial A^k_{ij}},\qquad "
        r"L^c = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big)",
        good_at="Any CNN and any layer; class-discriminative; costs about one forward pass.",
        bad_at="Coarse (the layer's grid); averaging gradients can miss several instances of a class.",
        aliases=("grad_cam",)),
    MethodSpec(
        name="gradcam++",
        display="Grad-CAM++",
        kind="cam",
        method=GRADCAMPP,
        citation="Chattopadhay et al., Grad-CAM++: Improved Visual Explanations for Deep CNNs, WACV 2018",
        paper_url="https://arxiv.org/abs/1710.11063",
        summary="Like Grad-CAM, but weights each location of each map by higher-order terms of the gradient, "
        "so several objects of the same class all light up.",
        formula=r"a^{kc}_{ij} = \frac{(g^{kc}_{ij})^2}{2(g^{kc}_{ij})^2 + \sum_{a,b} A^k_{ab}(g^{kc}_{ij})^3},\quad "
        r"w^c_k = \sum_{i,j} a^{kc}_{ij}\,\mathrm{ReLU}(g^{kc}_{ij}),\quad L^c = \mathrm{ReLU}\Big(\sum_k w^c_k A^k\Big)",
        good_at="Several instances of a class; fuller coverage of large objects.",
        bad_at="Same coarse grid as Grad-CAM; the exponential-score derivation is an approximation.",
        aliases=("gradcampp", "gradcam_pp", "grad_cam_pp", "grad_cam++", "gradcamplusplus")),
    MethodSpec(
        name="cam",
        display="CAM",
        kind="cam",
        method=cam.CAM,
        citation="Zhou et al., Learning Deep Features for Discriminative Localization, CVPR 2016",
        paper_url="https://arxiv.org/abs/1512.04150",
        summary="For networks that end in global average pooling and one linear layer: weights each feature map "
        "of the last convolutional layer by the class's weight in that linear layer.",
        formula=r"M_c(i,j) = \sum_k w^c_k\, A^k_{ij}",
        good_at="Exact and cheap — no gradients; the original class activation map.",
        bad_at="Only the layer feeding global-average-pool → linear; other heads need Grad-CAM."),
    MethodSpec(
        name="saliency",
        display="Saliency (gradient)",
        kind="pixel",
        method=SALIENCY,
        citation="Simonyan et al., Deep Inside Convolutional Networks, ICLR workshop 2014",
        paper_url="https://arxiv.org/abs/1312.6034",
        summary="How much each pixel, nudged, would change the class score: the largest absolute input gradient over "
        "the colour channels.",
        formula=r"M_{ij} = \max_{ch} \left|\frac{\partial y^c}{\partial x_{ch,ij}}\right|",
        good_at="Pixel-sharp; no layer to choose.",
        bad_at="Noisy; a local linear view of the model.",
        feature_target=True),
    MethodSpec(
        name="smoothgrad",
        display="SmoothGrad",
        kind="pixel",
        method=Smooth(SALIENCY),
        citation="Smilkov et al., SmoothGrad: removing noise by adding noise, 2017",
        paper_url="https://arxiv.org/abs/1706.03825",
        summary="Averages the input gradient over many noisy copies of the image; the noise cancels, the structure stays.",
        formula=r"\hat M_c(x) = \frac{1}{n}\sum_{i=1}^{n} \frac{\partial y^c}{\partial x}\big(x + \varepsilon_i\big),\quad "
        r"\varepsilon_i \sim \mathcal N(0, \sigma^2)",
        good_at="Much cleaner than plain gradients; seedable, so reproducible.",
        bad_at="n forward+backward passes.",
        long_running=True,
        estimate=_items_estimate("samples", grad=True),
        params=_SMOOTH_PARAMS),
    MethodSpec(
        name="guided_backprop",
        display="Guided backprop",
        kind="pixel",
        method=GUIDED_BACKPROP,
        citation="Springenberg et al., Striving for Simplicity: The All Convolutional Net, ICLR workshop 2015",
        paper_url="https://arxiv.org/abs/1412.6806",
        summary="Backpropagates the class score to the pixels, but each ReLU lets through only positive gradient "
        "where its input was positive: sharp images of what excites the class (or one feature map).",
        formula=r"R^{l} = \mathbb 1[f^{l} > 0]\cdot \mathbb 1[R^{l+1} > 0]\cdot R^{l+1}",
        good_at="Crisp, detailed pixel images; works for a class or a single feature map.",
        bad_at="Barely class-discriminative; passes sanity checks poorly (Adebayo et al. 2018).",
        feature_target=True),
    MethodSpec(
        name="deconvnet",
        display="Deconvnet",
        kind="pixel",
        method=DECONVNET,
        citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
        paper_url="https://arxiv.org/abs/1311.2901",
        summary="Projects a class score or one feature map back to pixels, rectifying the signal at every ReLU "
        "whatever the forward pass did; max-pooling routes through the recorded switches.",
        formula=r"R^{l} = \mathrm{ReLU}\big(R^{l+1}\big)",
        good_at="Shows the input pattern a unit responds to (Zeiler & Fergus fig. 2).",
        bad_at="Little class-specificity; images depend on the architecture.",
        feature_target=True),
    MethodSpec(
        name="guided_gradcam",
        display="Guided Grad-CAM",
        kind="pixel",
        method=Product(GUIDED_BACKPROP, GRADCAM),
        citation="Selvaraju et al., Grad-CAM, ICCV 2017",
        paper_url="https://arxiv.org/abs/1610.02391",
        summary="Multiplies the sharp guided-backprop image by the class-discriminative Grad-CAM map.",
        formula=r"G^c = R_{\text{guided}} \odot \mathrm{upsample}(L^c_{\text{Grad-CAM}})",
        good_at="Sharp and class-discriminative.",
        bad_at="Inherits guided backprop's weak model dependence."),
    MethodSpec(
        name="occlusion",
        display="Occlusion sensitivity",
        kind="perturbation",
        method=occlusion.OCCLUSION,
        citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014 (§4.2)",
        paper_url="https://arxiv.org/abs/1311.2901",
        summary="Covers the image with a grey square at every position and records how much the class probability "
        "drops; also which class wins with each part hidden.",
        formula=r"M(i,j) = \operatorname*{mean}_{w \ni (i,j)} \big[p^c(x) - p^c(x_{\setminus w})\big]",
        good_at="Model-agnostic, easy to trust: it measures the output directly.",
        bad_at="One forward pass per position; blurry at the patch scale.",
        long_running=True,
        estimate=_occlusion_estimate,
        params={
            "patch": ParamSpec(int, 32, "occluder side in input pixels", 1, 512, 1),
            "stride": ParamSpec(int, 16, "step between positions in input pixels", 1, 512, 1),
            "fill": _FILL,
            "chunk": _CHUNK,
            "engine": ParamSpec(str, "auto", "incremental (recompute only what each window changes) where the "
                                "network allows it, else plain forwards; same map", choices=("auto", "incremental", "full")),
        }),
    MethodSpec(
        name="scorecam",
        display="Score-CAM",
        kind="perturbation",
        method=score_cam.SCORECAM,
        citation="Wang et al., Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural Networks, CVPR-W 2020",
        paper_url="https://arxiv.org/abs/1910.01279",
        summary="Shows the model the image through each feature map in turn (the map, upsampled, as a soft mask) and "
        "weights that map by the class probability it earns; no gradients.",
        formula=r"w_k = p^c\big(x \odot \mathrm{norm}(\mathrm{up}(A^k))\big),\qquad L^c = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)",
        good_at="Gradient-free, so no saturated or noisy gradients; usually cleaner than Grad-CAM.",
        bad_at="One forward pass per distinct channel map (hundreds; constant and duplicate maps are skipped, "
        "exactly); capping the channels is an approximation.",
        long_running=True,
        aliases=("score_cam",),
        estimate=score_cam.estimate_scorecam,
        params={
            "max_channels": ParamSpec(int, 0, "score only this many channels, highest mean activation first "
                                      "(0 = all, exact)", 0, 8192, 1),
            "chunk": _CHUNK,
        }),
    MethodSpec(
        name="ablationcam",
        display="Ablation-CAM",
        kind="perturbation",
        method=ablation_cam.ABLATIONCAM,
        citation="Desai & Ramaswamy, Ablation-CAM: Visual Explanations for Deep Convolutional Network via Gradient-free "
        "Localization, WACV 2020",
        paper_url="https://openaccess.thecvf.com/content_WACV_2020/html/Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.html",
        summary="Switches off one feature map at a time and weights it by how much the class score falls without it.",
        formula=r"w_k = \frac{y^c - y^c_{A^k=0}}{y^c},\qquad L^c = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)",
        good_at="Gradient-free; measures each channel's real effect on the score.",
        bad_at="One pass of the network's tail per channel that is not all zero; the ratio misbehaves when the "
        "class score is near 0.",
        long_running=True,
        aliases=("ablation_cam",),
        estimate=ablation_cam.estimate_ablationcam,
        params={"chunk": _CHUNK}),
    MethodSpec(
        name="layercam",
        display="LayerCAM",
        kind="cam",
        method=layer_cam.LAYERCAM_FUSION,
        citation="Jiang et al., LayerCAM: Exploring Hierarchical Class Activation Maps for Localization, IEEE TIP 2021",
        paper_url="https://ieeexplore.ieee.org/document/9462463",
        summary="Weights every location of every feature map by its own positive gradient, so early, high-resolution "
        "layers give sharp maps; several layers can be fused.",
        formula=r"L^c = \mathrm{ReLU}\Big(\sum_k \mathrm{ReLU}(G^{kc}) \odot A^k\Big);\ \text{fused: } "
        r"\max_l \tanh\big(\gamma\,\hat L^c_l\big)",
        good_at="Fine detail from shallow layers; fusing layers combines detail with class focus.",
        bad_at="Shallow layers alone are less class-discriminative.",
        aliases=("layer_cam",),
        params={
            "fuse_layers": ParamSpec(str, "", "other layers to fuse with the target layer, comma-separated"),
            "gamma": ParamSpec(float, 2.0, "tanh scaling γ of each fused layer's map", 0.1, 10.0, 0.1),
        }),
    MethodSpec(
        name="xgradcam",
        display="XGrad-CAM",
        kind="cam",
        method=XGRADCAM,
        citation="Fu et al., Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs, BMVC 2020",
        paper_url="https://arxiv.org/abs/2008.02312",
        summary="Like Grad-CAM, but averages each map's gradient weighted by the map's own activation, which the "
        "authors derive from two axioms (sensitivity and conservation).",
        formula=r"w_k = \sum_{i,j} \frac{A^k_{ij}}{\sum_{a,b} A^k_{ab}}\, G^{kc}_{ij},\qquad "
        r"L^c = \mathrm{ReLU}\Big(\sum_k w_k A^k\Big)",
        good_at="Principled channel weights; one forward and a partial backward, like Grad-CAM.",
        bad_at="Coarse like Grad-CAM; unstable for channels whose activations sum to nearly 0.",
        aliases=("xgrad_cam",)),
    MethodSpec(
        name="hirescam",
        display="HiResCAM",
        kind="cam",
        method=HIRESCAM,
        citation="Draelos & Carin, Use HiResCAM instead of Grad-CAM for faithful explanations of CNNs, 2020",
        paper_url="https://arxiv.org/abs/2011.08891",
        summary="Multiplies each feature map by its gradient location by location (no averaging), so the map shows "
        "where the model actually used each feature.",
        formula=r"L^c = \mathrm{ReLU}\Big(\sum_k G^{kc} \odot A^k\Big)",
        good_at="Provably faithful to the score for a GAP→linear head (equals CAM there).",
        bad_at="Noisier than Grad-CAM on deep heads.",
        aliases=("hires_cam",)),
    MethodSpec(
        name="eigencam",
        display="EigenCAM",
        kind="cam",
        method=EIGENCAM,
        citation="Muhammad & Yeasin, Eigen-CAM: Class Activation Map using Principal Components, IJCNN 2020",
        paper_url="https://arxiv.org/abs/2008.00299",
        summary="The layer's main pattern of activation: its feature maps projected on their first principal "
        "component. It does not depend on the class.",
        formula=r"L = \mathrm{ReLU}\big((A - \bar A)\, v_1\big),\ v_1 \text{ the first right singular vector of the "
        r"centred } uv\times K \text{ matrix; sign: positive correlation with } \textstyle\sum_k A^k",
        good_at="No gradients and no class: robust, shows what the layer attends to.",
        bad_at="Not class-discriminative: the same map for every class.",
        aliases=("eigen_cam",)),
    MethodSpec(
        name="smoothgradcam++",
        display="SmoothGrad-CAM++",
        kind="cam",
        method=Smooth(GRADCAMPP),
        citation="Omeiza et al., Smooth Grad-CAM++, 2019 (SmoothGrad's noise over Grad-CAM++)",
        paper_url="https://arxiv.org/abs/1908.01224",
        summary="Grad-CAM++ averaged over noisy copies of the image, which steadies its map.",
        formula=r"\hat L^c = \frac{1}{n}\sum_{i=1}^{n} L^c_{\text{Grad-CAM++}}(x + \varepsilon_i)",
        good_at="Steadier than Grad-CAM++ on one image.",
        bad_at="n forward+backward passes.",
        long_running=True,
        aliases=("smoothgradcampp", "smooth_gradcam++"),
        estimate=_items_estimate("samples", grad=True, to_layer=True),
        params=_SMOOTH_PARAMS),
    MethodSpec(
        name="integrated_gradients",
        display="Integrated Gradients",
        kind="pixel",
        method=Path(SALIENCY),
        citation="Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017",
        paper_url="https://arxiv.org/abs/1703.01365",
        summary="Adds up the input gradient along a straight path from a baseline image (black, blurred, a colour) to "
        "the photo; the attributions add up to the score difference (completeness).",
        formula=r"\mathrm{IG}_i(x) = (x_i - x'_i)\int_0^1 \frac{\partial y^c}{\partial x_i}\big(x' + \alpha(x - x')\big)\,d\alpha",
        good_at="Satisfies completeness and sensitivity; the gap left by the finite sum is reported.",
        bad_at="Depends on the baseline; `steps` forward+backward passes.",
        long_running=True,
        aliases=("ig", "integratedgradients"),
        estimate=_items_estimate("steps", grad=True),
        params={
            "steps": ParamSpec(int, 64, "gradient evaluations on the path", 2, 1024, 1),
            "rule": ParamSpec(str, "adaptive", "how the path integral is summed: a trapezoid grid refined where "
                              "its known error is largest, Gauss–Legendre nodes, or equal steps",
                              choices=integrated_gradients.RULES),
            "baseline": ParamSpec(str, "fill", "the path's start: a fill colour, or a Gaussian blur of the image",
                                  choices=("fill", "blur")),
            "fill": _FILL,
            "chunk": _CHUNK,
        }),
    MethodSpec(
        name="rise",
        display="RISE",
        kind="perturbation",
        method=rise.RISE,
        citation="Petsiuk et al., RISE: Randomized Input Sampling for Explanation of Black-box Models, BMVC 2018",
        paper_url="https://arxiv.org/abs/1806.07421",
        summary="Shows the model the image through many random smooth masks and adds up the masks, each weighted by "
        "how much more (or less) of the class probability it kept than the average mask did.",
        formula=r"M = \frac{1}{N\,p}\sum_{i=1}^{N} \big(p^c(x \odot m_i) - \bar p\big)\, m_i,\quad "
        r"\bar p = \frac{1}{N}\sum_i p^c(x \odot m_i)",
        good_at="Model-agnostic (a black box is enough); seeded, so reproducible.",
        bad_at="Hundreds to thousands of forward passes; a grainy map at low N.",
        long_running=True,
        estimate=_items_estimate("masks", grad=False),
        params={
            "masks": ParamSpec(int, 1000, "random masks (N)", 1, 20000, 1),
            "cells": ParamSpec(int, 8, "mask grid cells per side", 2, 64, 1),
            "p": ParamSpec(float, 0.5, "probability that a cell is kept", 0.05, 1.0, 0.05),
            "seed": _SEED,
            "chunk": _CHUNK,
        }),
    MethodSpec(
        name="attention_rollout",
        display="Attention rollout",
        kind="attention",
        method=attention.ROLLOUT,
        citation="Abnar & Zuidema, Quantifying Attention Flow in Transformers, ACL 2020",
        paper_url="https://arxiv.org/abs/2005.00928",
        summary="Follows how much of the class token's information comes from each image patch, by multiplying the "
        "attention matrices of all layers (each mixed half-and-half with the skip connection).",
        formula=r"\hat A_l = \mathrm{rownorm}\Big(\tfrac{1}{2}\big(\mathrm{fuse}_h(A_l) + I\big)\Big),\quad "
        r"R = \hat A_L \cdots \hat A_1,\quad M = R_{\mathrm{cls},\,\mathrm{patches}}",
        good_at="Vision transformers (ViT, DeiT); no gradients, about one forward pass; shows where the model looks.",
        bad_at="The same map for every class; attention is not attribution; no global attention in Swin, none in CNNs.",
        aliases=("rollout",),
        params={
            "head_fusion": ParamSpec(str, "mean", "how the heads of a layer are combined", choices=("mean", "max", "min")),
            "discard_ratio": ParamSpec(float, 0.0, "fraction of the weakest attention entries zeroed per layer",
                                       0.0, 0.99, 0.05),
        }),
    MethodSpec(
        name="transformer_attribution",
        display="Transformer attribution (gradient × attention)",
        kind="attention",
        method=attention.TRANSFORMER_ATTRIBUTION,
        citation="Chefer, Gur & Wolf, Transformer Interpretability Beyond Attention Visualization, CVPR 2021 "
        "(gradient × attention rollout rule of Chefer et al., ICCV 2021)",
        paper_url="https://arxiv.org/abs/2012.09838",
        summary="Like attention rollout, but each head's attention is weighted by its gradient for the class and only "
        "the positive part is kept, so the map is class-specific.",
        formula=r"\bar A_l = \mathbb E_h\big[(\nabla A_l^h \odot A_l^h)^+\big],\quad R \leftarrow R + \bar A_l R "
        r"\ (R_0 = I),\quad M = R_{\mathrm{cls},\,\mathrm{patches}}",
        good_at="Class-discriminative maps for ViT/DeiT at the patch grid; one forward and one backward.",
        bad_at="Patch-coarse (16×16 px); no LRP relevances (the paper's full rule); only global-attention transformers.")
)}


_ALIASES: dict[str, MethodSpec] = {alias: spec for spec in METHODS.values() for alias in spec.aliases}


def methods_for(model: Any) -> list[str]:
    """The registered methods that can run on ``model``: attention methods only where it has attention layers."""
    attn = attention.has_attention(model)
    return [name for name, spec in METHODS.items() if spec.kind != "attention" or attn]


def get_method(name: str) -> MethodSpec:
    """The registered method called ``name`` (case-insensitive), or a ``CamError`` listing the choices."""
    key = str(name).strip().lower().replace("-", "_")
    spec = METHODS.get(key) or _ALIASES.get(key)
    if spec is None:
        raise CamError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return spec
