"""Synthetic images for the widget tests."""

from __future__ import annotations

import numpy as np


def lattice(shape=(128, 128), spacing_px=12.0, seed=0):
    """(image, heatmap, true positions): a square lattice whose peaks have graded heights.

    Peak heights of the heatmap run from 0.2 to 1.0, so the number of columns found
    depends on the threshold in a known way.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.meshgrid(
        np.arange(spacing_px / 2, shape[0], spacing_px),
        np.arange(spacing_px / 2, shape[1], spacing_px),
        indexing="ij",
    )
    true = np.stack([ys.ravel(), xs.ravel()], axis=1)
    heights = np.linspace(0.2, 1.0, len(true))
    rng.shuffle(heights)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape)
    heat = np.zeros(shape)
    for (y, x), h in zip(true, heights):
        g = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.8**2))
        image += 100 * g
        heat = np.maximum(heat, h * g)
    image = rng.poisson(image + 20).astype(np.float32)
    return image, heat.astype(np.float32), true, heights
