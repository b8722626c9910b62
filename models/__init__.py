"""Backbones for CAM Explorer: a registry of pretrained classifiers (embedded EfficientNet-Lite, torchvision zoo)
and a person's own weights, each loaded as a ready-to-use ``Backbone``."""
from models.backbone import Backbone
from models.own_weights import load_own_weights
from models.registry import DEFAULT_MODEL, INPUT_SIZES, SPECS, available, input_size_error, load
from models.spec import BackboneSpec

__all__ = ["SPECS", "DEFAULT_MODEL", "INPUT_SIZES", "available", "input_size_error", "load", "load_own_weights",
           "Backbone", "BackboneSpec"]
