"""Synthetic test images for segmentation: a hexagonal lattice with amorphous patches.

Phase-contrast-like: the lattice is the sum of three cosines (six Bragg spots at
``1 / period_px``); "contamination" adds smooth random speckle (no Bragg spots) on top of
the lattice inside a mask, as a hydrocarbon layer lies on top of graphene.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def hex_lattice(shape: tuple[int, int], period_px: float, angle_deg: float = 7.0) -> np.ndarray:
    """Sum of three cosines 120 degrees apart, values in [-1.5, 3]."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    out = np.zeros(shape)
    for k in range(3):
        a = np.deg2rad(angle_deg + 60.0 * k)
        out += np.cos(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period_px)
    return out


def disc(shape: tuple[int, int], centre: tuple[float, float], radius_px: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius_px**2


def contaminated_lattice(
    shape: tuple[int, int] = (256, 256),
    period_px: float = 6.3,
    mask: np.ndarray | None = None,
    amorphous_amplitude: float = 3.0,
    noise: float = 1.0,
    seed: int = 0,
    vacuum: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, contamination mask) -- positive, count-like intensities around 100.

    ``vacuum``: pixels where the lattice is absent (and no contamination).
    """
    rng = np.random.default_rng(seed)
    if mask is None:
        mask = disc(shape, (shape[0] * 0.4, shape[1] * 0.55), min(shape) * 0.2)
    lattice = hex_lattice(shape, period_px)
    if vacuum is not None:
        lattice = lattice * ~vacuum
    speckle = ndi.gaussian_filter(rng.normal(size=shape), period_px / 3.0)
    speckle *= amorphous_amplitude / speckle.std()
    image = 100.0 + 10.0 * (lattice + speckle * mask + noise * rng.normal(size=shape))
    return image.astype(np.float32), mask
