"""The image's say on each heatmap peak: the columns' contrast and the image check.

The network has learned lattices well enough to mark where a column *should* be; a peak
is kept only where the image itself has a local extremum in the columns' contrast
(:func:`check_peaks`). :func:`columns_are_dark` tells bright from dark columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import check_range
from .peaks import local_prominence
from .spacing import nearest_neighbour_distances_px

#: Refinement window's upper bound: isolated atoms need a window sized to the atom, nm.
WINDOW_MAX_NM = 0.12
#: When the image check removes more than this share of the network's peaks (and there
#: were at least CHECK_WARN_MIN_PEAKS), the peaks disagree with the columns' contrast:
#: the result carries a warning and find_atoms takes a second look. On 100 synthetic
#: tuning/development images (20 HRTEM) the check removed at most 48 % where the network
#: was right, 80-98 % where it marked the hollows.
CHECK_WARN_FRACTION = 0.6
CHECK_WARN_MIN_PEAKS = 10
#: The stricter image check (``min_prominence``) applied by default to white-atom HRTEM
#: (``imaging="hrtem"`` with bright columns); chosen on synthetic HRTEM images apart from
#: the test images (docs/atoms.md). A card may set its own (``min_prominence_hrtem``).
HRTEM_MIN_PROMINENCE = 0.4


def window_max_px(pixel_size_nm: float | None) -> float:
    """The largest refinement / check window, px (6 px without a pixel size)."""
    window = WINDOW_MAX_NM / pixel_size_nm if pixel_size_nm is not None else 6.0
    return max(window, 2.5)


def columns_are_dark(
    image: np.ndarray, positions_px: np.ndarray, radius_px: float, max_columns: int = 2000
) -> bool:
    """True when the columns are darker than their surroundings (black-atom HRTEM contrast).

    For (up to ``max_columns`` evenly chosen) columns, the mean of the 3x3 pixels at the
    column is compared with the mean of a disc of ``radius_px`` around it; the sign of the
    median difference decides. Only pixels near the columns are read.
    """
    from .refine import gather_patches

    n = len(positions_px)
    if n == 0:
        return False
    pick = np.linspace(0, n - 1, min(n, max_columns)).astype(int)
    pos = np.asarray(positions_px, dtype=np.float64)[pick]
    radius = max(2.0, float(radius_px))
    pt = gather_patches(image, pos, np.full(len(pos), radius), radius)
    values = pt.values * pt.weight
    core = pt.weight * ((np.abs(pt.dy) <= 1.5) & (np.abs(pt.dx) <= 1.5))
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (values * core).sum(1) / core.sum(1)
        around = values.sum(1) / pt.weight.sum(1)
    diff = centre - around
    diff = diff[np.isfinite(diff)]
    return bool(diff.size and np.median(diff) < 0)


def judge_dark(
    image: np.ndarray, positions_px: np.ndarray, nn_px: np.ndarray, contrast: str, window: float
) -> bool:
    """Whether the columns are dark: as given, or judged from the image for ``"auto"``."""
    finite = np.isfinite(nn_px)
    typical = float(np.median(nn_px[finite])) if finite.any() else 4.0 * window
    return contrast == "dark" or (
        contrast == "auto" and columns_are_dark(image, positions_px, min(0.5 * typical, window))
    )


@dataclass(frozen=True)
class CheckResult:
    """What the image check kept (``keep``) and why it dropped the rest."""

    keep: np.ndarray  # (N,) bool
    removed: int  # not an image extremum in the columns' contrast
    faint: int  # below ``min_prominence`` x the median column's prominence


def check_peaks(
    image: np.ndarray,
    positions_px: np.ndarray,
    nn_px: np.ndarray,
    window: float,
    contrast_check: bool,
    min_prominence: float,
) -> CheckResult:
    """Keep peaks that are a local maximum of ``image`` (already in the columns' contrast:
    bright columns) and, with ``min_prominence`` > 0, stand out enough.

    An isolated peak is judged against a ring at its refinement window's scale.
    """
    n = len(positions_px)
    if not (contrast_check or min_prominence > 0) or n == 0:
        return CheckResult(np.ones(n, dtype=bool), 0, 0)
    prominence = local_prominence(
        image, positions_px, np.where(np.isfinite(nn_px), nn_px, 2.0 * window)
    )
    keep = prominence > 0 if contrast_check else np.ones(n, dtype=bool)
    removed = int((~keep).sum())
    faint_count = 0
    if min_prominence > 0 and keep.any():
        faint = keep & (prominence < min_prominence * np.median(prominence[keep]))
        faint_count = int(faint.sum())
        keep &= ~faint
    return CheckResult(keep, removed, faint_count)


def apply_check(
    positions_px: np.ndarray, confidence: np.ndarray, nn_px: np.ndarray, check: CheckResult
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The peaks the check kept, with their nearest-neighbour distances recomputed."""
    if check.keep.all():
        return positions_px, confidence, nn_px
    pos, conf = positions_px[check.keep], confidence[check.keep]
    return pos, conf, nearest_neighbour_distances_px(pos)


def default_min_prominence(
    imaging: str | None, dark: bool, postprocess: Mapping[str, Any] | None = None
) -> float:
    """``min_prominence`` when the caller leaves it out: :data:`HRTEM_MIN_PROMINENCE` (or
    the card's ``postprocess.min_prominence_hrtem``) for white-atom HRTEM, else the
    card's ``postprocess.min_prominence``, else 0 (off)."""
    pp = postprocess or {}
    if imaging == "hrtem" and not dark:
        value = pp.get("min_prominence_hrtem", HRTEM_MIN_PROMINENCE)
        return check_range(value, 0.0, 1.0, "postprocess.min_prominence_hrtem")
    return check_range(pp.get("min_prominence", 0.0), 0.0, 1.0, "postprocess.min_prominence")


def check_disagrees(n_removed: int, n_candidates: int) -> bool:
    """Whether the image check removed so many peaks that the network's answer and the
    columns' contrast disagree (see :data:`CHECK_WARN_FRACTION`)."""
    return n_candidates >= CHECK_WARN_MIN_PEAKS and n_removed > CHECK_WARN_FRACTION * n_candidates


def check_warnings(n_removed: int, n_candidates: int, dark: bool) -> list[str]:
    """The warning for a result whose image check disagreed with the network (or [])."""
    if not check_disagrees(n_removed, n_candidates):
        return []
    kind, other = ("dark", "bright") if dark else ("bright", "dark")
    return [
        f"the image check removed {n_removed} of the network's {n_candidates} peaks "
        f"({100 * n_removed / n_candidates:.0f} %): they are not {kind}er than their "
        f"surroundings. Either the columns are {other}, not {kind} (set the contrast to "
        f"{other!r}), or the network marked the hollows of a phase-contrast lattice "
        "(HRTEM at this defocus is ambiguous: check the points; contrast_check=False keeps "
        "every peak)"
    ]
