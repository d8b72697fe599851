"""Sub-pixel column positions, measured on the image (never on the network's heatmap).

The heatmap says *which* image features are columns; where a column is comes from the
image, so positions follow the specimen and not the lattice the network expects (a
displaced sublattice keeps its displacement).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .refine import refine_center_of_mass, refine_gaussian

#: Refinement window: this fraction of the nearest-neighbour distance (Atomap uses 0.4) ...
WINDOW_FRACTION_OF_NN = 0.4
#: ... but never wider than this (isolated atoms need a window sized to the atom), nm.
WINDOW_MAX_NM = 0.12


@dataclass(frozen=True)
class Refined:
    """Refined positions with the intensity, width and fit status of each column."""

    positions_px: np.ndarray  # (N, 2)
    intensity: np.ndarray  # (N,)
    sigma_px: np.ndarray  # (N,) Gaussian width (NaN unless refine="gaussian")
    ok: np.ndarray  # (N,) False where the Gaussian fit failed


def window_max_px(pixel_size_nm: float | None) -> float:
    """The largest refinement window radius, px (6 px without a pixel size)."""
    window = WINDOW_MAX_NM / pixel_size_nm if pixel_size_nm is not None else 6.0
    return max(window, 2.5)


def refine_positions(
    image_bright: np.ndarray,
    positions_px: np.ndarray,
    nn_px: np.ndarray,
    window: float,
    refine: str,
    threads: int = 1,
) -> Refined:
    """Refine columns on the image (columns bright) in a disc of 0.4 x the nearest-neighbour
    distance (at most ``window``).

    ``refine``: ``"gaussian"`` (2-D elliptical Gaussian with a constant background, as
    Atomap fits), ``"com"`` (background-subtracted centre of mass, re-centred twice) or
    ``"none"`` (the network's peak as it is: fast, but it follows the lattice the network
    expects). Each starts at the network's peak. ``threads``: CPU threads for the
    Gaussian fits (the same results for any number).
    """
    n = len(positions_px)
    start = np.asarray(positions_px, dtype=np.float64).reshape(-1, 2)
    radius = np.clip(
        np.where(np.isfinite(nn_px), WINDOW_FRACTION_OF_NN * nn_px, window), 1.5, window
    )
    ok = np.ones(n, dtype=bool)
    sigma_px = np.full(n, np.nan)
    if refine == "none" or n == 0:
        intensity = (
            ndi.map_coordinates(image_bright, start.T, order=1, mode="nearest").astype(np.float64)
            if n
            else np.zeros(0)
        )
        return Refined(start, intensity, sigma_px, ok)
    if refine == "com":
        com = refine_center_of_mass(image_bright, start, radius, n_iter=2)
        return Refined(com.positions_px, com.intensity, sigma_px, ok)
    fit = refine_gaussian(image_bright, start, radius, sigma_px=radius / 2.5, threads=threads)
    # A failed fit keeps the start position; its intensity is the window's sum.
    intensity = fit.intensity.copy()
    failed = np.flatnonzero(~fit.ok)
    if len(failed):
        intensity[failed] = refine_center_of_mass(
            image_bright, start[failed], radius[failed], n_iter=1
        ).intensity
    sigma_px = np.sqrt(fit.sigma_major_px * fit.sigma_minor_px)
    return Refined(fit.positions_px, intensity, sigma_px, fit.ok)
