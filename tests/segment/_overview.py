"""A synthetic low-magnification image of nanoparticles (known mask and sizes)."""

from __future__ import annotations

import numpy as np

PS_NM = 1.25


def overview(seed: int = 0, shape=(160, 160), bright: bool = True):
    """A low-magnification HAADF-like scene: discs of 5-12 nm on carbon whose thickness
    rises across the field, shot noise. Returns (image, true mask, true diameters nm)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    diameters = rng.uniform(5.0, 12.0, 10)
    centres, mask = [], np.zeros(shape, bool)
    while len(centres) < len(diameters):
        c = rng.uniform(12, shape[0] - 12, 2)
        if all(np.hypot(*(c - o)) > 14 for o in centres):
            centres.append(c)
    for (cy, cx), d in zip(centres, diameters):
        mask |= np.hypot(yy - cy, xx - cx) <= d / PS_NM / 2
    carbon = 40.0 * (1.0 + 0.6 * xx / shape[1])  # a thickness gradient
    signal = carbon + np.where(mask, 140.0, 0.0)
    image = rng.poisson(signal).astype(np.float32)
    if not bright:  # bright-field TEM: particles dark on a bright background
        image = image.max() - image
    return image, mask, diameters
