"""Exact incremental occlusion (Krypton-style): recompute only the region each window changes."""
from __future__ import annotations


def incremental_windows(*args, **kwargs):  # placeholder until the engine lands
    return None
