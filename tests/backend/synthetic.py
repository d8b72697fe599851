"""Synthetic micrographs with known pixel size for the backend's tests and benchmarks.

Gaussian "columns" (standard deviation ``sigma_nm``) on a hexagonal or square lattice of
nearest-neighbour spacing ``spacing_nm``, or scattered at random ("single atoms"), on a
smooth background, with Poisson noise. Independent of the simulation engine on purpose.
"""

from __future__ import annotations

import numpy as np


def lattice_positions_nm(
    rng: np.random.Generator,
    extent_nm: tuple[float, float],
    spacing_nm: float,
    kind: str,
    angle_rad: float,
) -> np.ndarray:
    lh, lw = extent_nm
    if kind == "random":
        n = max(3, int(lh * lw / spacing_nm**2 * 0.08))
        return rng.uniform([0, 0], [lh, lw], size=(n, 2))
    a1 = np.array([1.0, 0.0])
    a2 = np.array([0.5, np.sqrt(3) / 2]) if kind == "hex" else np.array([0.0, 1.0])
    rot = np.array(
        [[np.cos(angle_rad), -np.sin(angle_rad)], [np.sin(angle_rad), np.cos(angle_rad)]]
    )
    a1, a2 = rot @ a1 * spacing_nm, rot @ a2 * spacing_nm
    n = int(2 * max(lh, lw) / spacing_nm) + 4
    i, j = np.mgrid[-n:n, -n:n]
    pos = i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2 + rng.uniform(0, spacing_nm, 2)
    keep = (pos[:, 0] > -0.5) & (pos[:, 0] < lh + 0.5) & (pos[:, 1] > -0.5) & (pos[:, 1] < lw + 0.5)
    return pos[keep]


def synthetic_image(
    shape: tuple[int, int],
    pixel_size_nm: float,
    *,
    spacing_nm: float = 0.3,
    sigma_nm: float = 0.05,
    kind: str = "hex",
    dose: float = 30.0,
    background: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    """A float32 (H, W) counts image; columns' peak height ~``dose`` counts above background."""
    rng = np.random.default_rng(seed)
    h, w = shape
    pos = lattice_positions_nm(
        rng, (h * pixel_size_nm, w * pixel_size_nm), spacing_nm, kind, rng.uniform(0, np.pi)
    )
    yy = (np.arange(h) + 0.5) * pixel_size_nm
    xx = (np.arange(w) + 0.5) * pixel_size_nm
    img = np.zeros(shape, np.float64)
    r = int(np.ceil(4 * sigma_nm / pixel_size_nm)) + 1
    for py, px in pos:
        ci, cj = int(py / pixel_size_nm), int(px / pixel_size_nm)
        i0, i1, j0, j1 = max(0, ci - r), min(h, ci + r + 1), max(0, cj - r), min(w, cj + r + 1)
        if i0 < i1 and j0 < j1:
            gy = np.exp(-((yy[i0:i1] - py) ** 2) / (2 * sigma_nm**2))
            gx = np.exp(-((xx[j0:j1] - px) ** 2) / (2 * sigma_nm**2))
            img[i0:i1, j0:j1] += np.outer(gy, gx)
    # A smooth background varying over a few nm (support film thickness).
    gy = np.linspace(0, 1, h)[:, None]
    gx = np.linspace(0, 1, w)[None, :]
    img += background * (1 + 0.5 * np.sin(2 * np.pi * (gy * 0.7 + gx * 0.4) + rng.uniform(0, 6)))
    return rng.poisson(img * dose).astype(np.float32)
