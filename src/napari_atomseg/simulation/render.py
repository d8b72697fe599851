"""The internal simulation grid and depositing the specimen onto it.

Fast models compute on an internal grid that is finer than the output pixels when the
output is too coarse to sample the probe or the transferred frequencies (oversampling
1-4x), and padded so that probe tails, HRTEM delocalisation and scan distortion never
wrap around. Render points are deposited with bilinear weights (and the bilinear blur is
undone in Fourier space); dense amorphous layers are deposited statistically: the number
of atoms in each internal pixel is drawn as mean + sqrt(variance) * N(0, 1), which has
the same spectrum as random atom positions at every frequency the optics transfer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

from .scene import Scene

#: most the internal grid is oversampled relative to the output pixels; coarser output
#: pixels alias what the optics transfer, as a real detector would
MAX_OVERSAMPLING = 2


@dataclass(frozen=True)
class RenderGrid:
    """Internal grid: ``shape`` pixels of ``sampling_A``; pixel (0, 0) centred at ``origin_A``.

    Output pixel (r, c) is centred at (r, c) * ``pixel_A``; in the internal grid that is
    index ``(r * oversample + offset_px, c * oversample + offset_px)`` (for STEM, where the
    output samples a point) or the centre of the ``oversample`` x ``oversample`` block
    starting at ``(r * oversample + block_start_px, ...)`` (for HRTEM, where a camera pixel
    integrates its area).
    """

    shape: tuple[int, int]
    sampling_A: float
    origin_A: tuple[float, float]
    oversample: int
    pixel_A: float
    output_shape: tuple[int, int]
    block_start_px: int

    @property
    def y_A(self) -> np.ndarray:
        """Row centres of the internal grid, Angstrom."""
        return self.origin_A[0] + np.arange(self.shape[0]) * self.sampling_A

    @property
    def x_A(self) -> np.ndarray:
        """Column centres of the internal grid, Angstrom."""
        return self.origin_A[1] + np.arange(self.shape[1]) * self.sampling_A

    @property
    def bounds_A(self) -> tuple[float, float, float, float]:
        """(y first, y last, x first, x last) pixel centres, Angstrom."""
        y, x = self.y_A, self.x_A
        return (float(y[0]), float(y[-1]), float(x[0]), float(x[-1]))

    def to_index(self, y_A: np.ndarray, x_A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional internal indices of positions in Angstrom."""
        return (
            (np.asarray(y_A) - self.origin_A[0]) / self.sampling_A,
            (np.asarray(x_A) - self.origin_A[1]) / self.sampling_A,
        )

    def bin_to_output(self, fine: np.ndarray) -> np.ndarray:
        """Average ``oversample`` x ``oversample`` blocks into the output pixels (camera)."""
        s = self.oversample
        h, w = self.output_shape
        b = self.block_start_px
        block = fine[b : b + h * s, b : b + w * s]
        if s == 1:
            return block.copy()
        return block.reshape(h, s, w, s).mean(axis=(1, 3))


def make_grid(
    output_shape: tuple[int, int],
    pixel_A: float,
    target_sampling_A: float,
    margin_A: float,
    camera: bool,
) -> RenderGrid:
    """Internal grid for an output of ``output_shape`` pixels of ``pixel_A``.

    ``target_sampling_A`` is the coarsest internal sampling that avoids aliasing the
    optics; ``margin_A`` the padding on every side. ``camera`` aligns oversampled blocks
    with output pixels (HRTEM); otherwise output pixels are internal grid points (STEM).
    """
    s = int(min(MAX_OVERSAMPLING, max(1, math.ceil(pixel_A / target_sampling_A - 1e-9))))
    sampling = pixel_A / s
    pad = math.ceil(margin_A / sampling)
    shape = tuple(sfft.next_fast_len(n * s + 2 * pad, real=True) for n in output_shape)
    # Centre of the first output pixel: a grid point (STEM) or the middle of its block.
    first_centre = pad * sampling + ((s - 1) / 2 * sampling if camera else 0.0)
    origin = (-first_centre, -first_centre)
    return RenderGrid(
        shape=shape,  # type: ignore[arg-type]
        sampling_A=sampling,
        origin_A=origin,
        oversample=s,
        pixel_A=pixel_A,
        output_shape=tuple(output_shape),  # type: ignore[arg-type]
        block_start_px=pad,
    )


def deposit(grid: RenderGrid, yx_A: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bilinear deposit of weighted points on the (periodic) grid; float64 (ny, nx)."""
    ny, nx = grid.shape
    out = np.zeros(ny * nx)
    if len(yx_A) == 0:
        return out.reshape(ny, nx)
    u, v = grid.to_index(yx_A[:, 0], yx_A[:, 1])
    i = np.floor(u).astype(np.int64)
    j = np.floor(v).astype(np.int64)
    fu = u - i
    fv = v - j
    i0, i1 = np.mod(i, ny), np.mod(i + 1, ny)
    j0, j1 = np.mod(j, nx), np.mod(j + 1, nx)
    w = np.asarray(weights, dtype=np.float64)
    idx = np.concatenate([i0 * nx + j0, i0 * nx + j1, i1 * nx + j0, i1 * nx + j1])
    wts = np.concatenate(
        [w * (1 - fu) * (1 - fv), w * (1 - fu) * fv, w * fu * (1 - fv), w * fu * fv]
    )
    out += np.bincount(idx, wts, minlength=ny * nx)
    return out.reshape(ny, nx)


@lru_cache(maxsize=8)
def bilinear_correction(shape: tuple[int, int]) -> np.ndarray:
    """1 / transfer of bilinear deposition on the rfft2 grid (clipped for stability)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    transfer = (np.sinc(fy) * np.sinc(fx)) ** 2
    out = (1.0 / np.maximum(transfer, 0.2)).astype(np.float32)
    out.setflags(write=False)
    return out


#: entries of the radial lookup tables (the functions tabulated are smooth in |k|)
RADIAL_SAMPLES = 4096


@lru_cache(maxsize=8)
def _radial_index(shape: tuple[int, int], sampling_A: float) -> tuple[np.ndarray, float]:
    ky = np.fft.fftfreq(shape[0], d=sampling_A)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=sampling_A)[None, :]
    k = np.sqrt(ky**2 + kx**2)
    dk = float(k.max()) / (RADIAL_SAMPLES - 1)
    index = np.rint(k / dk).astype(np.int32)
    index.setflags(write=False)
    return index, dk


@lru_cache(maxsize=8)
def radial_index_full(shape: tuple[int, int], sampling_A: float) -> tuple[np.ndarray, float]:
    """Like the rfft2 radial index, on the full fft2 grid (same dk for the same grid)."""
    _half, dk = _radial_index(shape, sampling_A)
    ky = np.fft.fftfreq(shape[0], d=sampling_A)[:, None]
    kx = np.fft.fftfreq(shape[1], d=sampling_A)[None, :]
    index = np.rint(np.sqrt(ky**2 + kx**2) / dk).astype(np.int32)
    np.minimum(index, RADIAL_SAMPLES - 1, out=index)
    index.setflags(write=False)
    return index, dk


def radial_function(grid: RenderGrid, func) -> np.ndarray:
    """``func(|k|)`` (a vectorised function of 1/Angstrom) on the rfft2 grid, via a table."""
    index, dk = _radial_index(grid.shape, grid.sampling_A)
    table = np.asarray(func(np.arange(RADIAL_SAMPLES) * dk), dtype=np.float32)
    return table[index]


def statistical_layer_counts(
    scene: Scene, grid: RenderGrid, kinds: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Mean number of atoms per internal pixel, per element, of the statistical layers.

    Only the elements each layer keeps statistical (dense layers; see
    :func:`.scene.build_scene`); for a Poisson count the variance equals the mean.
    ``kinds`` limits the sum to layers of those kinds ("support", "contamination").
    """
    out: dict[str, np.ndarray] = {}
    area = grid.sampling_A**2
    for layer, stat in zip(scene.amorphous, scene.statistical):
        if not stat or (kinds is not None and layer.kind not in kinds):
            continue
        thickness = layer.thickness_on_grid(grid.y_A, grid.x_A)
        for symbol, fraction in stat.items():
            mean = thickness * np.float32(layer.density_per_A3 * fraction * area)
            prev = out.get(symbol)
            out[symbol] = mean if prev is None else prev + mean
    return out


def sample_statistical(
    means: dict[str, np.ndarray], weights: dict[str, float], rng: np.random.Generator
) -> np.ndarray | None:
    """One random realisation of sum_e weight_e * (atoms of e per pixel), Gaussian approx."""
    total = None
    var = None
    for symbol, mean in means.items():
        w = weights[symbol]
        total = mean * w if total is None else total + mean * w
        var = mean * (w * w) if var is None else var + mean * (w * w)
    if total is None:
        return None
    noise = rng.standard_normal(total.shape, dtype=np.float32)
    return (total + np.sqrt(var) * noise).astype(np.float64)
