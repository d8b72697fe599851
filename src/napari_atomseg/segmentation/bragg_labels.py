"""Labels from the Bragg filter's maps, alone or averaged with the U-Net's probabilities.

- :func:`bragg_labels`: the Bragg method's classes (contamination: residual above its
  threshold is amorphous; no residual and no fringes is vacuum. Particles: where the
  lattice fringes dominate).
- :func:`bragg_contamination_map` and :func:`unet_bragg_labels`: the U-Net/Bragg average
  of ``method="unet"`` (``api.UnetOptions``).
- :func:`vacuum_needs_no_lattice`: U-Net "vacuum" that shows lattice fringes is crystal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..backend.normalisation import stats_sample
from . import bragg as _bragg
from .preprocess import STATS_MAX_VALUES

if TYPE_CHECKING:
    from .api import UnetOptions

#: Slope of the logistic that turns the Bragg residual / threshold ratio into a map.
_BRAGG_MAP_SLOPE = 6.0


def bragg_contamination_map(result: _bragg.BraggResult) -> np.ndarray:
    """float32 map in (0, 1) from a Bragg filter result: 0.5 where the residual equals the
    filter's threshold, towards 1 above it (a logistic of ``residual / threshold``)."""
    thr = float(result.threshold)
    if not (math.isfinite(thr) and thr > 0):
        return np.zeros(result.residual.shape, dtype=np.float32)
    ratio = result.residual.astype(np.float32, copy=False) / np.float32(thr)
    return (1.0 / (1.0 + np.exp(-_BRAGG_MAP_SLOPE * (ratio - 1.0)))).astype(np.float32)


def unet_bragg_labels(
    probabilities: np.ndarray, bragg_map: np.ndarray, options: UnetOptions, flagged: int
) -> np.ndarray:
    """Labels from the U-Net/Bragg average (see :class:`UnetOptions`); 3-class task."""
    w = options.bragg_weight
    score = (1.0 - w) * probabilities[flagged] + w * bragg_map
    # Not flagged: crystal or vacuum, whichever the U-Net finds more probable.
    other = np.where(probabilities[2] > probabilities[0], 2, 0).astype(np.uint8)
    return np.where(score > options.flag_threshold, np.uint8(flagged), other).astype(np.uint8)


def _fringes(result: _bragg.BraggResult, clean: np.ndarray, vacuum_fraction: float) -> np.ndarray:
    """Where the Bragg filter sees lattice fringes: fringe strength >= ``vacuum_fraction`` x
    the "full lattice" level (its 90th percentile over the ``clean`` pixels). Vacuum is
    what lies below it (and has no residual either)."""
    lattice = result.lattice_amplitude
    sample = stats_sample(lattice, STATS_MAX_VALUES)[stats_sample(clean, STATS_MAX_VALUES)]
    if not sample.size:  # every clean pixel fell between the sample's grid points
        sample = lattice[clean]
    reference = float(np.percentile(sample, 90))
    return lattice >= vacuum_fraction * reference


def vacuum_needs_no_lattice(
    labels: np.ndarray, result: _bragg.BraggResult, vacuum_fraction: float | None
) -> np.ndarray:
    """Unflagged pixels the U-Net calls vacuum where the Bragg filter sees lattice fringes
    (:func:`_fringes`, the Bragg method's own vacuum rule) are crystal: vacuum has no
    lattice. The contaminated (flagged) pixels are not touched."""
    if vacuum_fraction is None or result.lattice_amplitude is None or result.peaks.empty:
        return labels
    clean = labels != 1
    if not clean.any():
        return labels
    out = labels.copy()
    out[(labels == 2) & _fringes(result, clean, vacuum_fraction)] = 0
    return out


def bragg_labels(
    result: _bragg.BraggResult, task: str, vacuum_fraction: float | None, particle_fraction: float
) -> np.ndarray:
    """Class labels from the Bragg maps (see the module docstring)."""
    labels = np.zeros(result.mask.shape, dtype=np.uint8)
    if task == "particles":
        total = result.lattice_amplitude + result.residual
        fraction = np.divide(
            result.lattice_amplitude, total, out=np.zeros_like(total), where=total > 0
        )
        labels[fraction > particle_fraction] = 1
        return labels
    labels[result.mask] = 1
    if vacuum_fraction is not None and not result.peaks.empty:
        clean = ~result.mask
        if clean.any():
            labels[clean & ~_fringes(result, clean, vacuum_fraction)] = 2
    return labels
