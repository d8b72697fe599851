"""Smooth random fields in the specimen plane (thickness maps, region boundaries).

A field is drawn once on a coarse grid covering the scene and evaluated anywhere by
bilinear interpolation, so the same field gives the amorphous thickness used for the
image *and* the class masks evaluated at the (scan-distorted) pixel positions.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates


class SmoothField:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``corr_A``.

    ``roughness`` adds a second field at a quarter of the correlation length (irregular
    edges); the sum is renormalised to unit variance.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        bounds_A: tuple[float, float, float, float],
        corr_A: float,
        roughness: float = 0.0,
        max_grid: int = 128,
    ):
        y0, y1, x0, x1 = bounds_A
        corr_A = max(float(corr_A), 1e-3)
        small = corr_A / 4 if roughness else corr_A
        # A grid step of 1/4 of the finest scale resolves it; cap the grid at max_grid^2
        # (the fields are smooth, and evaluating them on image grids must stay cheap).
        step = max(small / 4, max(y1 - y0, x1 - x0) / (max_grid - 1))
        shape = (int(np.ceil((y1 - y0) / step)) + 2, int(np.ceil((x1 - x0) / step)) + 2)
        grid = gaussian_filter(rng.standard_normal(shape), corr_A / step, mode="wrap")
        grid = _standardise(grid)
        if roughness:
            fine = gaussian_filter(rng.standard_normal(shape), small / step, mode="wrap")
            grid = _standardise(grid + roughness * _standardise(fine))
        self.origin = (y0, x0)
        self.step = step
        self.grid = grid.astype(np.float32)

    def __call__(self, y_A: np.ndarray, x_A: np.ndarray) -> np.ndarray:
        """Field value at positions (Angstrom, any matching shapes)."""
        y = (np.asarray(y_A, dtype=np.float64) - self.origin[0]) / self.step
        x = (np.asarray(x_A, dtype=np.float64) - self.origin[1]) / self.step
        shape = np.broadcast(y, x).shape
        coords = np.stack([np.broadcast_to(y, shape).ravel(), np.broadcast_to(x, shape).ravel()])
        return map_coordinates(self.grid, coords, order=1, mode="nearest").reshape(shape)

    def on_grid(self, y_A: np.ndarray, x_A: np.ndarray) -> np.ndarray:
        """Field on the outer product of 1-D coordinates ``y_A`` x ``x_A`` (separable)."""
        iy, fy = _interp_weights(
            (np.asarray(y_A, dtype=np.float64) - self.origin[0]) / self.step, self.grid.shape[0]
        )
        ix, fx = _interp_weights(
            (np.asarray(x_A, dtype=np.float64) - self.origin[1]) / self.step, self.grid.shape[1]
        )
        g = self.grid
        along_x = g[:, ix] * (1 - fx)[None, :] + g[:, ix + 1] * fx[None, :]
        return along_x[iy, :] * (1 - fy)[:, None] + along_x[iy + 1, :] * fy[:, None]

    def threshold_for_coverage(self, coverage: float, bounds_A) -> float:
        """Level above which the field covers ``coverage`` of the area inside ``bounds_A``."""
        y0, y1, x0, x1 = bounds_A
        yy, xx = np.meshgrid(np.linspace(y0, y1, 96), np.linspace(x0, x1, 96), indexing="ij")
        return float(np.quantile(self(yy, xx), 1.0 - coverage))


def _standardise(a: np.ndarray) -> np.ndarray:
    a = a - a.mean()
    return a / (a.std() + 1e-12)


def _interp_weights(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower node index and fraction for linear interpolation on ``n`` nodes (clamped)."""
    c = np.clip(coords, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(c).astype(np.int64), n - 2)
    return i0, (c - i0).astype(np.float32)


class Region:
    """Part of the plane where a smooth field exceeds a level (holes, edges, blobs).

    ``coverage >= 1`` is the whole plane, ``<= 0`` nothing. ``ramp`` (field units) sets
    how fast ``weight`` rises from 0 at the edge to 1 inside, for soft thickness edges.
    """

    def __init__(self, field: SmoothField | None, level: float, ramp: float = 0.3):
        self.field = field
        self.level = level
        self.ramp = ramp

    @classmethod
    def everywhere(cls) -> Region:
        """The whole plane."""
        return cls(None, -np.inf)

    @classmethod
    def nowhere(cls) -> Region:
        """The empty region."""
        return cls(None, np.inf)

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        coverage: float,
        bounds_A,
        fov_bounds_A,
        corr_A: float,
        roughness: float = 0.5,
        ramp: float = 0.3,
    ) -> Region:
        """A random region covering about ``coverage`` of ``fov_bounds_A``.

        The field is a :class:`SmoothField` over ``bounds_A`` with correlation length
        ``corr_A`` (Angstrom) and ``roughness``; its level is set for the coverage.
        """
        if coverage >= 1.0:
            return cls.everywhere()
        if coverage <= 0.0:
            return cls.nowhere()
        field = SmoothField(rng, bounds_A, corr_A, roughness)
        return cls(field, field.threshold_for_coverage(coverage, fov_bounds_A), ramp)

    def weight(self, y_A: np.ndarray, x_A: np.ndarray) -> np.ndarray:
        """0 outside, rising to 1 inside over ``ramp`` field units."""
        shape = np.broadcast(np.asarray(y_A), np.asarray(x_A)).shape
        if self.field is None:
            return np.full(shape, 1.0 if self.level == -np.inf else 0.0)
        value = (self.field(y_A, x_A) - self.level) / self.ramp
        return np.clip(value, 0.0, 1.0)

    def weight_on_grid(self, y_A: np.ndarray, x_A: np.ndarray) -> np.ndarray:
        """:meth:`weight` on the outer product of 1-D coordinates."""
        shape = (len(y_A), len(x_A))
        if self.field is None:
            return np.full(shape, 1.0 if self.level == -np.inf else 0.0, dtype=np.float32)
        return np.clip((self.field.on_grid(y_A, x_A) - self.level) / self.ramp, 0.0, 1.0)

    def contains(self, y_A: np.ndarray, x_A: np.ndarray) -> np.ndarray:
        """bool: whether (y, x) in Angstrom lies inside (the field above its level)."""
        shape = np.broadcast(np.asarray(y_A), np.asarray(x_A)).shape
        if self.field is None:
            return np.full(shape, self.level == -np.inf)
        return self.field(y_A, x_A) > self.level
