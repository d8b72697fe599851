"""Synthetic column images with exactly known sub-pixel centres, for the atoms tests.

Columns are pixel-integrated-free, point-sampled 2-D Gaussians (the model the Gaussian
refiner fits), rendered locally per column so thousands of columns take milliseconds.
"""

from __future__ import annotations

import numpy as np


def hex_lattice_px(
    shape: tuple[int, int],
    spacing_px: float,
    margin_px: float = 0.0,
    jitter_px: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """(row, col) of a hexagonal lattice filling ``shape`` (nearest-neighbour = spacing)."""
    rng = np.random.default_rng(seed)
    dy = spacing_px * np.sqrt(3) / 2
    pts = []
    for i in range(-1, int(shape[0] / dy) + 2):
        for j in range(-1, int(shape[1] / spacing_px) + 2):
            pts.append((i * dy, j * spacing_px + (i % 2) * spacing_px / 2))
    pts = np.array(pts, dtype=np.float64) + rng.uniform(0, spacing_px, 2)
    keep = (
        (pts[:, 0] >= margin_px)
        & (pts[:, 1] >= margin_px)
        & (pts[:, 0] < shape[0] - margin_px)
        & (pts[:, 1] < shape[1] - margin_px)
    )
    pts = pts[keep]
    if jitter_px:
        pts = pts + rng.normal(0, jitter_px, pts.shape)
    return pts


def render(
    shape: tuple[int, int],
    centres_px: np.ndarray,
    sigma_px: float | np.ndarray,
    amplitude: float | np.ndarray = 1.0,
    background: float = 0.0,
    reach_sigmas: float = 5.0,
) -> np.ndarray:
    """Sum of Gaussians (peak ``amplitude``) on a constant ``background`` (float64)."""
    img = np.full(shape, float(background))
    n = len(centres_px)
    sig = np.broadcast_to(np.asarray(sigma_px, float), (n,))
    amp = np.broadcast_to(np.asarray(amplitude, float), (n,))
    half = int(np.ceil(reach_sigmas * sig.max())) if n else 0
    off = np.arange(-half, half + 1)
    for (y, x), s, a in zip(centres_px, sig, amp):
        r0, c0 = int(np.rint(y)), int(np.rint(x))
        rows, cols = r0 + off, c0 + off
        rv = (rows >= 0) & (rows < shape[0])
        cv = (cols >= 0) & (cols < shape[1])
        gy = np.exp(-((rows[rv] - y) ** 2) / (2 * s * s))
        gx = np.exp(-((cols[cv] - x) ** 2) / (2 * s * s))
        img[np.ix_(rows[rv], cols[cv])] += a * np.outer(gy, gx)
    return img


def heatmap_for(shape: tuple[int, int], centres_px: np.ndarray, sigma_px: float) -> np.ndarray:
    """A network-like heatmap: max of unit-peak Gaussians (float32, in [0, 1])."""
    heat = np.zeros(shape)
    half = int(np.ceil(4 * sigma_px))
    off = np.arange(-half, half + 1)
    for y, x in centres_px:
        r0, c0 = int(np.rint(y)), int(np.rint(x))
        rows, cols = r0 + off, c0 + off
        rv = (rows >= 0) & (rows < shape[0])
        cv = (cols >= 0) & (cols < shape[1])
        g = np.outer(
            np.exp(-((rows[rv] - y) ** 2) / (2 * sigma_px**2)),
            np.exp(-((cols[cv] - x) ** 2) / (2 * sigma_px**2)),
        )
        sub = np.ix_(rows[rv], cols[cv])
        heat[sub] = np.maximum(heat[sub], g)
    return heat.astype(np.float32)


def hex_hollows_px(true: np.ndarray, spacing_px: float, shape: tuple[int, int]) -> np.ndarray:
    """Centres of a :func:`hex_lattice_px` lattice's triangles (no column there), inside
    the field: where a network fooled by a phase-contrast pattern puts its peaks."""
    dy = spacing_px * np.sqrt(3) / 2
    h = np.asarray(true, dtype=float) + np.array([dy / 3, spacing_px / 2])
    inside = (h >= 4).all(axis=1) & (h[:, 0] < shape[0] - 4) & (h[:, 1] < shape[1] - 4)
    return h[inside]


def low_dose_lattice_with_hollows(
    shape: tuple[int, int], pixel_size_nm: float, seed: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, heatmap, columns, hollows): a Poisson-noisy lattice, columns 0.3 nm apart
    (4 counts at a column above 2 of background), whose heatmap marks every column at 0.85
    and every hollow at 0.5, as the default network does at low dose (docs/atoms.md)."""
    rng = np.random.default_rng(seed)
    spacing, width = 0.3 / pixel_size_nm, 0.045 / pixel_size_nm
    true = hex_lattice_px(shape, spacing, margin_px=4, seed=seed)
    img = rng.poisson(render(shape, true, width, 4, 2)).astype(np.float32)
    hollows = hex_hollows_px(true, spacing, shape)
    heat = np.maximum(
        0.85 * heatmap_for(shape, true, width), 0.5 * heatmap_for(shape, hollows, width)
    )
    return img, heat, true, hollows
