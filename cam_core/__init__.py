"""cam_core — why an image classifier decided what it decided (no Streamlit in here).

``explain(model, x, method, ...)`` runs any registered method (``METHODS``) on any ``nn.Module`` classifier.
"""
import os as _os

# Large CPU tensors on transparent huge pages: PyTorch's own switch, read at its first allocation (so set before
# it; Linux only, a no-op elsewhere). Without it each batched forward of occlusion or SmoothGrad faults its
# activations back in 4 KiB at a time, about a fifth of their time on ResNet-18 (docs/benchmarks.md).
# A value the caller set, e.g. THP_MEM_ALLOC_ENABLE=0, is kept.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from .errors import CamError, ImageLoadError
from .explain import explain
from .explanation import Explanation
from .features import FeatureMaps, activations, first_layer_filters, stage_maps
from .layers import LayerInfo, auto_layer, layers, resolve_layer
from .metrics import MetricResult, evaluate
from .registry import METHODS, MethodSpec, ParamSpec, get_method
from .sanity import SanityResult, sanity_check
from .visualize import Visualization, visualize

__version__ = "0.1.0"

__all__ = [
    "CamError", "ImageLoadError", "Explanation", "FeatureMaps", "LayerInfo", "METHODS", "MethodSpec",
    "MetricResult", "ParamSpec", "SanityResult", "activations", "auto_layer", "evaluate", "explain",
    "first_layer_filters", "get_method", "layers", "resolve_layer", "sanity_check", "stage_maps", "Visualization",
    "visualize", "__version__",
]
