"""Confidence intervals shared by every analysis that reports a proportion."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson_interval(successes: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``successes / trials`` (95% for the default z); (nan, nan) without trials."""
    if trials <= 0:
        return (math.nan, math.nan)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))

__all__ = ["Z95", "wilson_interval"]
