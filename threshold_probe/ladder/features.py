"""Syntactic-feature emitters: the parts of real functions that trip up runners which ship source."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from threshold_probe.ladder.generate import Parts


def apply(parts: Parts) -> None:
    """Add the syntactic features the values ask for to the parts of a workload."""
    return None
