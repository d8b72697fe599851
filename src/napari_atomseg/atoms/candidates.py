"""Candidate columns: the network's heatmap peaks that the image confirms.

:func:`find_candidates` takes the heatmap's local maxima above the threshold (greedy
non-maximum suppression at the minimum separation) and keeps those where the image shows
a column: evidence (:mod:`.evidence`) of at least ``min_evidence`` noise levels at the
peak. The network decides *which* image features are columns; it cannot report one
where the image has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .evidence import Evidence, column_evidence
from .heatmap import HeatmapResult
from .options import ResolvedPost
from .peaks import find_peaks
from .spacing import nearest_neighbour_distances_px

#: When the image does not support more than this share of the network's peaks (and
#: there were at least UNSUPPORTED_WARN_MIN_PEAKS), the result carries a warning: the
#: network answered for another image than this one (contrast the wrong way round, or
#: hollows of a phase-contrast lattice).
UNSUPPORTED_WARN_FRACTION = 0.5
UNSUPPORTED_WARN_MIN_PEAKS = 10


@dataclass(frozen=True)
class Candidates:
    """Candidate columns of one image, strongest first."""

    positions_px: np.ndarray  # (N, 2) row, col of the heatmap peaks the image supports
    confidence: np.ndarray  # (N,) heatmap value at each peak
    evidence: np.ndarray  # (N,) the image's evidence at each peak (noise levels)
    n_unsupported: int  # heatmap peaks dropped for want of image evidence
    threshold: float  # the confidence threshold used
    threshold_from: str  # "given" or "model card"
    height: np.ndarray  # (N,) fitted column height above the background (image units)

    @property
    def n_peaks(self) -> int:
        """Heatmap peaks above the threshold, supported or not."""
        return len(self.positions_px) + self.n_unsupported


#: Heatmap peaks down to this confidence take part in the joint fit, whatever the
#: threshold: the fit is made once per image and the threshold then only filters.
PROPOSAL_FLOOR = 0.1


@dataclass(frozen=True)
class Proposals:
    """The network's peaks down to :data:`PROPOSAL_FLOOR` and the image's evidence for each."""

    positions_px: np.ndarray  # (N, 2) most confident first
    confidence: np.ndarray  # (N,)
    evidence: Evidence


def proposals(result: HeatmapResult, min_separation_px: float, exclude_border_px: int) -> Proposals:
    """The heatmap's peaks (greedy suppression at ``min_separation_px``) with their
    evidence; computed once per setting and kept on ``result`` for the live preview."""
    key = ("proposals", round(float(min_separation_px), 6), int(exclude_border_px))
    if key not in result._cache:
        pos, conf = find_peaks(
            result.heatmap,
            threshold=PROPOSAL_FLOOR,
            min_separation_px=min_separation_px,
            exclude_border_px=exclude_border_px,
        )
        fit = column_evidence(result.image_bright, pos, result.pixel_size_nm)
        result._cache[key] = Proposals(pos, conf, fit)
    return result._cache[key]


def find_candidates(
    result: HeatmapResult,
    post: ResolvedPost,
    exclude_border_px: int = 0,
    either_sign: bool = False,
) -> Candidates:
    """Heatmap peaks of ``result`` above ``post.threshold`` that the image supports
    (evidence of at least ``post.min_evidence`` noise levels).

    ``either_sign``: a column may stand out of its background as a bright or a dark spot
    (phase contrast: which one depends on defocus and thickness, sublattice by
    sublattice); otherwise only in the columns' contrast (incoherent STEM imaging).
    """
    prop = proposals(result, post.min_separation_px, exclude_border_px)
    # Suppression only ever removes a peak for a higher one, so the peaks above the
    # threshold are those a search at the threshold itself would find.
    above = prop.confidence >= post.threshold
    snr = prop.evidence.snr
    keep = above & ((np.abs(snr) if either_sign else snr) >= post.min_evidence)
    return Candidates(
        prop.positions_px[keep],
        prop.confidence[keep],
        snr[keep].astype(np.float64),
        int((above & ~keep).sum()),
        post.threshold,
        "given" if post.threshold_given else "model card",
        prop.evidence.height[keep].astype(np.float64),
    )


def unsupported_warnings(candidates: Candidates, dark: bool) -> list[str]:
    """A warning when the image did not support most of the network's peaks (or [])."""
    n, dropped = candidates.n_peaks, candidates.n_unsupported
    if n < UNSUPPORTED_WARN_MIN_PEAKS or dropped <= UNSUPPORTED_WARN_FRACTION * n:
        return []
    kind, other = ("dark", "bright") if dark else ("bright", "dark")
    return [
        f"the image shows no column at {dropped} of the network's {n} peaks "
        f"({100 * dropped / n:.0f} %): they were dropped. Either the columns are {other}, "
        f"not {kind} (set the contrast to {other!r}), or the network marked the hollows of "
        "a lattice (check the points, and the pixel size)"
    ]


def nearest_neighbours(candidates: Candidates) -> np.ndarray:
    """Each candidate's distance to the nearest other candidate, px (inf when alone)."""
    return nearest_neighbour_distances_px(candidates.positions_px)
