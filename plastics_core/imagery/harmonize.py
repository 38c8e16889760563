"""Sentinel-2 L1C radiometric harmonization and solar-day grouping.

From processing baseline 04.00 (products generated from 2022-01-25) ESA adds a
radiometric offset: ``DN = reflectance * 10000 + 1000``. The GPW models were trained on
pre-2022 L1C (``DN = reflectance * 10000``), so newer products are shifted back by 1000 DN.
The decision uses the product's processing baseline (STAC ``s2:processing_baseline``,
EarthOne ``processing_baseline`` / product URI ``_Nxxyy_``), never a per-catalog
"offset applied" flag; only when the baseline is unknown does the acquisition date decide.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np

from plastics_core.errors import ImageryError

#: DN offset added by ESA from processing baseline 04.00.
BASELINE_04_OFFSET = 1000
#: First day of baseline >= 04.00 products (used only when the baseline is unknown).
BASELINE_04_START = dt.date(2022, 1, 25)

_URI_BASELINE = re.compile(r"_N(\d{2})(\d{2})_")


def parse_baseline(value: str | float | None) -> float | None:
    """``"05.10"`` -> 5.1; ``"N0510"``/product URI ``..._N0510_...`` -> 5.1; None -> None.

    A catalog value that is not a baseline (a boolean, NaN or infinity) raises ImageryError rather
    than deciding the -1000 DN correction."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or (isinstance(value, int | float) and not math.isfinite(value)):
        raise ImageryError(
            f"Sentinel-2 processing baseline {value!r} is not a number: the catalog item is "
            "malformed; fix or drop it"
        )
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    m = _URI_BASELINE.search(f"_{text}_")
    if m:
        return int(m.group(1)) + int(m.group(2)) / 100.0
    raise ImageryError(f"cannot parse Sentinel-2 processing baseline {value!r}: expected e.g. '05.10'")


def needs_offset_removal(baseline: str | float | None, acquired: dt.date | None = None) -> bool:
    """True if the product carries the +1000 DN offset (baseline >= 04.00).

    With an unknown baseline, products acquired on/after 2022-01-25 are assumed offset.
    """
    parsed = parse_baseline(baseline)
    if parsed is not None:
        return parsed >= 4.0
    return acquired is not None and acquired >= BASELINE_04_START


def harmonize_dn(data: np.ndarray, offset: bool, nodata: int = 0) -> np.ndarray:
    """Remove the baseline-04.00 offset from uint16 DN (any shape); returns a new uint16 array.

    Nodata (``0``) stays 0; valid pixels become ``max(DN - 1000, 1)`` so that a valid dark
    pixel never turns into nodata. ``offset=False`` returns an unchanged copy.
    """
    out = np.asarray(data).astype(np.uint16, copy=True)
    if not offset:
        return out
    valid = out != nodata
    shifted = np.maximum(out.astype(np.int32) - BASELINE_04_OFFSET, 1).astype(np.uint16)
    out[valid] = shifted[valid]
    return out


def solar_day(when: dt.datetime, lon: float) -> dt.date:
    """Local solar date of an acquisition at longitude ``lon`` (degrees east).

    Scenes of one orbit pass over neighbouring MGRS tiles share a solar day even when their
    UTC dates differ (e.g. east of 165 E), so they are mosaicked together.
    """
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return (when + dt.timedelta(hours=lon / 15.0)).date()
