"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018): does a map depend on the model and class?

``sanity_check(model, x, method, …)`` → ``SanityResult``; the pieces it is built from (stages found from the
model, seeded re-initialisation, Spearman ρ and SSIM) live in ``stages`` and ``similarity``.
"""
from .check import CHANGED_BELOW, MODES, OUTCOMES, SanityResult, StageResult, sanity_check
from .similarity import average_ranks, edge_map, spearman, ssim
from .stages import Stage, find_stages, randomize

__all__ = ["CHANGED_BELOW", "MODES", "OUTCOMES", "SanityResult", "Stage", "StageResult", "average_ranks", "edge_map",
           "find_stages", "randomize", "sanity_check", "spearman", "ssim"]
