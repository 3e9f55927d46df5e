"""Small conversions of numbers for JSON and tables."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_or_none"]


def finite_or_none(x: Any) -> float | None:
    """``x`` as a float when it is a finite number, else None (NaN, inf, None, text): the value a
    JSON file or a table cell holds for "no number"."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
