"""Candidate columns of a heatmap: peaks above the threshold, the threshold chosen.

:func:`find_candidates` is the runtime step of post-processing: heatmap peaks with
non-maximum suppression (or a circular Hough transform), above the caller's threshold or
the card's, which is raised on noisy lattices (:func:`default_threshold`) or replaced by
the card's per-peak rescorer on regular noisy lattices (:mod:`.rescore`).
:func:`peak_candidates` exposes the same inputs for fitting the rescorer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import check_range
from ..errors import InputError
from .heatmap import HeatmapResult
from .image_check import WINDOW_MAX_NM, columns_are_dark
from .options import DEFAULT_NMS_FRACTION, DEFAULT_THRESHOLD, ResolvedPost, min_separation_px
from .peaks import find_peaks, suppress
from .rescore import (
    CANDIDATE_THRESHOLD,
    Lattice,
    Rescorer,
    lattice_from_distances,
    lattice_of,
)
from .rescore import FEATURE_NAMES as RESCORER_FEATURES
from .rescore import features as rescore_features
from .spacing import nearest_neighbour_distances_px

#: Noise levels (:func:`napari_atomseg.atoms.noise.noise_level`) between which a card's
#: ``threshold_noisy`` takes over from its ``threshold`` when its card gives no
#: ``noise_ramp`` (:func:`default_threshold`).
DEFAULT_NOISE_RAMP = (0.1, 0.2)
#: The noise ramp is for lattices: columns found at the card's threshold closer than this
#: (median nearest-neighbour distance, nm) -- atomic columns are 0.1-0.3 nm apart, isolated
#: atoms on a support 0.5 nm and more (card: ``postprocess.noise_ramp_max_spacing_nm``).
NOISE_RAMP_MAX_SPACING_NM = 0.4


@dataclass(frozen=True)
class Candidates:
    """Candidate columns of one image and how their threshold was chosen."""

    positions_px: np.ndarray  # (N, 2) row, col of the heatmap peaks
    confidence: np.ndarray  # (N,) heatmap value at each peak
    nn_px: np.ndarray  # (N,) nearest-neighbour distance among the candidates
    threshold: float  # the threshold used
    threshold_from: str  # "given", "model card", "noise" or "rescorer"
    rescorer_added: int = 0  # peaks the rescorer kept below ``threshold``
    rescorer_removed: int = 0  # ... and dropped above it


def card_rescorer(postprocess: Mapping[str, Any] | None) -> Rescorer | None:
    """The card's per-peak rescorer for noisy lattices (``postprocess.rescorer``;
    :mod:`~napari_atomseg.atoms.rescore`), or None where it has none."""
    spec = (postprocess or {}).get("rescorer")
    return None if spec is None else Rescorer.from_card(spec)


def find_candidates(
    result: HeatmapResult,
    post: ResolvedPost,
    method: str = "heatmap",
    contrast: str = "auto",
    imaging: str | None = None,
    exclude_border_px: int = 0,
    hough_score: float = 0.5,
) -> Candidates:
    """The candidate columns of ``result`` with the resolved settings ``post``."""
    if method == "hough":
        return _hough_candidates(result, post, exclude_border_px, hough_score)
    return _heatmap_candidates(result, post, contrast, imaging, exclude_border_px)


def _spacing_map_px(result: HeatmapResult) -> np.ndarray | None:
    """A spacing head's local column spacing in px, or None."""
    if result.spacing_nm is None or result.pixel_size_nm is None:
        return None
    return result.spacing_nm / np.float32(result.pixel_size_nm)


def _heatmap_candidates(
    result: HeatmapResult,
    post: ResolvedPost,
    contrast: str,
    imaging: str | None,
    exclude_border_px: int,
) -> Candidates:
    ps = result.pixel_size_nm
    spacing_map = _spacing_map_px(result)

    def peaks_above(level: float) -> tuple[np.ndarray, np.ndarray]:
        return find_peaks(
            result.heatmap,
            threshold=level,
            min_separation_px=post.min_separation_px,
            # Only a spacing head's local column spacing widens the suppression radius:
            # the heatmap's lattice period is a multiple of the column spacing in
            # structures with a basis (dumbbells, SrTiO3's O columns) and suppressed
            # real columns (Ge [110]: recall 0.52 -> 0.92 on the tuning images).
            spacing_px=spacing_map,
            nms_fraction=post.nms_fraction,
            exclude_border_px=exclude_border_px,
        )

    base = post.threshold
    # Read (and checked) before any peak is found, as a bad card must fail on any image.
    rescorer = (
        card_rescorer(result.postprocess)
        if not post.threshold_given and ps is not None and imaging != "hrtem"
        else None
    )
    pos, conf = peaks_above(base)
    nn = nearest_neighbour_distances_px(pos)
    if post.threshold_given or ps is None or len(pos) <= 1:
        return Candidates(pos, conf, nn, base, "given" if post.threshold_given else "model card")
    # A noisy lattice gets a higher threshold (default_threshold): the peaks above it are
    # those found at the card's, as suppression only removes a peak for a higher one ...
    lattice = lattice_from_distances(nn)
    threshold = default_threshold(result, imaging, lattice.spacing_px * ps)
    keep = conf >= threshold
    source = "noise" if threshold != base else "model card"
    added = removed = 0
    # ... or, where the card has a rescorer and the image is one it was fitted for, a
    # decision per peak down to the rescorer's candidate threshold (rescore.py).
    if rescorer is not None and rescorer.gate(
        lattice,
        ps,
        lambda: result.noise_level,
        imaging,
        kept=lattice if keep.all() else lattice_of(pos[keep], conf[keep], threshold),
    ):
        pos, conf = peaks_above(min(base, rescorer.candidate_threshold))
        feats = _rescorer_features(result, pos, conf, lattice, base, contrast)
        keep = rescorer.keep(feats)
        by_ramp = conf >= threshold
        added = int((keep & ~by_ramp).sum())
        removed = int((by_ramp & ~keep).sum())
        source = "rescorer"
    if not keep.all():
        pos, conf = pos[keep], conf[keep]
        nn = nearest_neighbour_distances_px(pos)
    return Candidates(pos, conf, nn, threshold, source, added, removed)


def _hough_candidates(
    result: HeatmapResult, post: ResolvedPost, exclude_border_px: int, hough_score: float
) -> Candidates:
    from .hough import hough_columns

    heat = result.heatmap
    found = hough_columns(
        heat,
        level=post.threshold,
        score_threshold=hough_score,
        min_separation_px=max(post.min_separation_px, 1.0),
    )
    pos = found.positions_px
    idx = np.clip(np.rint(pos).astype(int), 0, np.array(heat.shape) - 1)
    conf = heat[idx[:, 0], idx[:, 1]].astype(np.float32)
    keep = suppress(pos, conf, post.min_separation_px)
    pos, conf = pos[keep], conf[keep]
    if exclude_border_px > 0 and len(pos):
        b = exclude_border_px
        inside = (pos >= b).all(axis=1) & (pos < np.array(heat.shape) - b).all(axis=1)
        pos, conf = pos[inside], conf[inside]
    order = np.argsort(-conf, kind="stable")
    pos, conf = pos[order], conf[order]
    nn = nearest_neighbour_distances_px(pos)
    source = "given" if post.threshold_given else "model card"
    return Candidates(pos, conf, nn, post.threshold, source)


def default_threshold(
    result: HeatmapResult, imaging: str | None = None, spacing_nm: float | None = None
) -> float:
    """The detection threshold when the caller gives none.

    The card's ``postprocess.threshold`` (else :data:`DEFAULT_THRESHOLD`), raised on noisy
    images where the card says how (``threshold_noisy``, ``noise_ramp``): linearly from
    the threshold at noise level ``noise_ramp[0]`` to ``threshold_noisy`` at
    ``noise_ramp[1]``. Only for a lattice -- ``spacing_nm``, the median distance between
    the columns found at the card's threshold, below ``noise_ramp_max_spacing_nm`` -- and
    not for HRTEM: at low dose the network fills the empty hollows of a lattice with
    columns of confidence 0.5-0.6, while faint single atoms on a support sit at 0.4-0.6
    and need the card's threshold (docs/atoms.md).
    """
    pp = result.postprocess or {}
    base = check_range(pp.get("threshold", DEFAULT_THRESHOLD), 0.0, 1.0, "postprocess.threshold")
    if "threshold_noisy" not in pp:
        return base
    from .noise import check_noise_ramp, noise_adapted_threshold

    noisy = check_range(pp["threshold_noisy"], 0.0, 1.0, "postprocess.threshold_noisy")
    try:
        ramp = check_noise_ramp(pp.get("noise_ramp", DEFAULT_NOISE_RAMP))
    except InputError as exc:
        raise InputError(f"postprocess.noise_ramp: {exc}") from None
    max_spacing = pp.get("noise_ramp_max_spacing_nm", NOISE_RAMP_MAX_SPACING_NM)
    max_spacing = check_range(max_spacing, 0.0, 100.0, "postprocess.noise_ramp_max_spacing_nm")
    if imaging == "hrtem" or spacing_nm is None or not spacing_nm < max_spacing:
        return base
    return noise_adapted_threshold(base, noisy, ramp, result.noise_level)


def _rescorer_features(
    result: HeatmapResult,
    pos: np.ndarray,
    conf: np.ndarray,
    lattice: Lattice,
    base_threshold: float,
    contrast: str,
) -> np.ndarray:
    """:func:`~napari_atomseg.atoms.rescore.features` of candidate peaks, the columns'
    contrast judged on the confident ones where ``contrast`` is "auto"."""
    ps = float(result.pixel_size_nm)
    window_max = max(WINDOW_MAX_NM / ps, 2.5)
    dark = contrast == "dark" or (
        contrast == "auto"
        and columns_are_dark(
            result.image,
            pos[conf >= base_threshold],
            min(0.5 * lattice.spacing_px, window_max),
        )
    )
    return rescore_features(
        result.image,
        pos,
        conf,
        base_threshold=base_threshold,
        noise_level=float(result.noise_level),
        pixel_size_nm=ps,
        dark=dark,
        spacing_px=lattice.spacing_px,
    )


@dataclass(frozen=True)
class PeakCandidates:
    """What the rescorer sees of one image (:func:`peak_candidates`), for fitting it."""

    positions_px: np.ndarray  # (N, 2) peaks down to the candidate threshold
    confidence: np.ndarray  # (N,)
    lattice: Lattice  # spacing statistics of the confident peaks
    kept_lattice: Lattice  # ... of the peaks the noise ramp keeps
    noise_level: float | None
    features: np.ndarray  # (N, len(rescore.FEATURE_NAMES)); empty when not computable
    threshold: float  # the card's threshold with its noise ramp, for comparison


def peak_candidates(
    result: HeatmapResult,
    contrast: str = "auto",
    imaging: str | None = None,
    candidate_threshold: float = CANDIDATE_THRESHOLD,
) -> PeakCandidates:
    """The candidate peaks of the runtime step with the card's defaults, their rescorer
    features and the threshold the noise ramp would use (what the rescorer is fitted on).
    Needs a pixel size."""
    if result.pixel_size_nm is None:
        raise InputError("peak_candidates needs the pixel size")
    pp = result.postprocess or {}
    ps = float(result.pixel_size_nm)
    base = check_range(pp.get("threshold", DEFAULT_THRESHOLD), 0.0, 1.0, "postprocess.threshold")
    pos, conf = find_peaks(
        result.heatmap,
        threshold=min(base, candidate_threshold),
        min_separation_px=min_separation_px(pp.get("min_separation_nm"), None, ps),
        spacing_px=_spacing_map_px(result),
        nms_fraction=pp.get("nms_fraction", DEFAULT_NMS_FRACTION),
    )
    lattice = lattice_of(pos, conf, base)
    if lattice.n_confident > 1:
        threshold = default_threshold(result, imaging, lattice.spacing_px * ps)
        feats = _rescorer_features(result, pos, conf, lattice, base, contrast)
    else:
        threshold = base
        feats = np.zeros((0, len(RESCORER_FEATURES)))
    kept = lattice_of(pos, conf, threshold)
    return PeakCandidates(pos, conf, lattice, kept, result.noise_level, feats, threshold)
