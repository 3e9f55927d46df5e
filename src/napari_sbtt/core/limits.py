"""Sanity bounds on physical settings and on sizes read from files.

Every bound is far outside what a two-photon microscope or a recording does, so no real
setting is refused; a typo or a crafted file (``line_period`` 1e-300, an onset delay of 1e9 ms,
a 10^6 x 10^6 image) is refused with a message instead of making a fit crawl or allocate
terabytes. Times are in seconds.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import OptionError

__all__ = [
    "MIN_LINE_PERIOD_S",
    "MAX_LINE_PERIOD_S",
    "MIN_FRAME_PERIOD_S",
    "MAX_FRAME_PERIOD_S",
    "MAX_FACTOR",
    "MAX_ONSET_DELAY_S",
    "MAX_WINDOW_S",
    "MAX_IMAGE_SIDE",
    "MAX_IMAGE_PIXELS",
    "MAX_SWEEPS",
    "check_seconds",
]

#: one scanned line: 1 us is faster than any scanner (an 8 kHz resonant line is ~63 us); 1 s
#: is slower than any galvo line
MIN_LINE_PERIOD_S = 1e-6
MAX_LINE_PERIOD_S = 1.0
#: one frame (sweep): 10 us to an hour
MIN_FRAME_PERIOD_S = 1e-5
MAX_FRAME_PERIOD_S = 3600.0
#: fine-grid bins per sweep (a 512-line line scan timed line by line needs 512)
MAX_FACTOR = 1024
#: calcium kernel onset delay (GCaMP6f: ~20 ms; the slowest indicators well under 1 s)
MAX_ONSET_DELAY_S = 1.0
#: a training window
MAX_WINDOW_S = 600.0
#: image size from a file's header (a labels image of this size is 1 GiB of int32)
MAX_IMAGE_SIDE = 65536
MAX_IMAGE_PIXELS = 2**28
#: sweeps (frames) in one recording
MAX_SWEEPS = 10**9


def check_seconds(value: Any, lo: float, hi: float, name: str, *, spelling: str | None = None,
                  what: str = "seconds") -> float:
    """``value`` as a float after checking ``lo <= value <= hi``.

    Raises :class:`OptionError` naming the setting as ``{name}`` (Python spelling ``spelling``,
    default ``name``) with the bounds, for a non-number (bool and text included), NaN/inf or a
    value outside the bounds.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not lo <= value <= hi:
        raise OptionError(f"{{{name}}} must be a number of {what} from {lo:g} to {hi:g}, got {value!r}",
                          **{name: spelling or name})
    return float(value)
