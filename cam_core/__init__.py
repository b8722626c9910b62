"""cam_core — why an image classifier decided what it decided (no Streamlit in here).

``explain(model, x, method, ...)`` runs any registered method (``METHODS``) on any ``nn.Module`` classifier.
"""
from .errors import CamError, ImageLoadError
from .explain import explain
from .explanation import Explanation
from .features import FeatureMaps, activations, first_layer_filters, stage_maps
from .layers import LayerInfo, auto_layer, layers, resolve_layer
from .registry import METHODS, MethodSpec, ParamSpec, get_method

__version__ = "0.1.0"

__all__ = [
    "CamError", "ImageLoadError", "Explanation", "FeatureMaps", "LayerInfo", "METHODS", "MethodSpec",
    "ParamSpec", "activations", "auto_layer", "explain", "first_layer_filters", "get_method", "layers",
    "resolve_layer", "stage_maps", "__version__",
]
