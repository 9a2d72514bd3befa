"""Ladders of workloads: dimensions, level specs from levels/*.toml, and the source generator."""

from __future__ import annotations

from threshold_probe.ladder.dimensions import DIMENSIONS, Dimension, DimensionValue
from threshold_probe.ladder.generate import generate
from threshold_probe.ladder.spec import Ladder, Level, list_ladders, load_ladder, shipped_dir
from threshold_probe.ladder.workload import Workload

__all__ = [
    "DIMENSIONS",
    "Dimension",
    "DimensionValue",
    "Ladder",
    "Level",
    "Workload",
    "generate",
    "list_ladders",
    "load_ladder",
    "shipped_dir",
]
