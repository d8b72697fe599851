"""The STEM probe below (and above) its focal plane: depth of field in the fast HAADF model.

An aberration-corrected probe is sharp over only a few nm along the beam (depth of field
~ lambda / alpha^2: 3-6 nm at 200-300 kV and 25 mrad). Single atoms inside or under a
thick amorphous support are imaged by a defocused probe -- broader, fainter blobs -- and
the support's own speckle is averaged over its depth; real single-atom micrographs look
like that. With ``SimulationParameters.depth_of_field`` the fast model renders:

- single atoms, clusters and adatoms with the probe defocused by their depth:
  effective defocus = ``defocus_nm`` - depth (positive ``defocus_nm`` = underfocus puts
  the focal plane that far below the entrance surface, abTEM's convention);
- the support (depth 0 .. its thickness) and the contamination on top of it with the
  probe averaged over their depth.

Crystals and particles keep the probe of ``defocus_nm`` (the fast model does not follow
channelling down a column). Depths are binned on a scale of the depth of field, so a
scene needs one extra probe per occupied bin (a few).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import fft as sfft

from . import _fft, optics, render
from .render import RenderGrid
from .stem_probe import blurred_probe_ft, probe_on_grid

#: signed defocus bins, in units of the depth of field lambda / alpha^2
_BINS = np.array([0.0, 0.75, 1.5, 3.0, 6.0, 12.0, 24.0, 48.0])
BIN_CENTRES = np.concatenate([-_BINS[:0:-1], _BINS])
#: how far (A) the Airy rings of the probe are kept beyond its geometric disc
_AIRY_A = 12.0
#: points a layer's depth range is sampled with to weight its bins
_LAYER_SAMPLES = 96


class DepthProbes:
    """Probe PSFs (rfft2, as :func:`.stem.probe_psf_ft`) per depth bin, made on demand."""

    def __init__(self, p, grid: RenderGrid) -> None:
        lam = optics.wavelength_A(p.energy_keV)
        alpha = p.convergence_mrad * 1e-3
        self.dof_A = lam / alpha**2
        self.focus_A = p.defocus_nm * 10.0
        self._p = p
        self._grid = grid
        self._cache: dict[int, tuple[np.ndarray, float]] = {}

    def bin_of(self, depth_A: np.ndarray) -> np.ndarray:
        """Index into :data:`BIN_CENTRES` of the defocus seen at each depth."""
        u = (self.focus_A - np.asarray(depth_A, dtype=np.float64)) / self.dof_A
        return np.abs(u[:, None] - BIN_CENTRES[None, :]).argmin(axis=1)

    def psf(self, index: int) -> tuple[np.ndarray, float]:
        """(psf_ft, peak per A^2) of bin ``index``."""
        cached = self._cache.get(index)
        if cached is None:
            self._cache[index] = cached = self._make(float(BIN_CENTRES[index]) * self.dof_A)
        return cached

    def _make(self, defocus_A: float) -> tuple[np.ndarray, float]:
        """The probe on a patch just large enough for it (its disc, alpha x defocus, and
        Airy tails), embedded in the full grid: one full-size FFT instead of four."""
        p, grid = self._p, self._grid
        alpha = p.convergence_mrad * 1e-3
        blur_A = 3.0 * p.source_size_nm * 10
        if getattr(p, "probe_tail_fraction", 0.0) > 0:
            blur_A += 3.0 * p.probe_tail_nm * 10
        reach_A = (
            alpha * (abs(defocus_A) + abs(p.astigmatism_nm * 10)) + abs(p.cs_um) * 1e4 * alpha**3
        )
        size = [
            min(n, sfft.next_fast_len(2 * int((reach_A + _AIRY_A + blur_A) / grid.sampling_A) + 1))
            for n in grid.shape
        ]
        small = replace(grid, shape=tuple(size))
        probe = probe_on_grid(p, small.shape, grid.sampling_A, defocus_A)
        small_ft = blurred_probe_ft(p, small, sfft.rfft2(probe, workers=_fft.FFT_WORKERS))
        peak = float(sfft.irfft2(small_ft, s=small.shape, workers=_fft.FFT_WORKERS).max())
        if small.shape == grid.shape:
            return small_ft, peak
        # Wrap the patch (centred on pixel (0, 0)) into the corners of the full grid.
        full = np.zeros(grid.shape)
        hy, hx = (size[0] + 1) // 2, (size[1] + 1) // 2
        full[:hy, :hx] = probe[:hy, :hx]
        full[:hy, -(size[1] - hx) :] = probe[:hy, hx:]
        full[-(size[0] - hy) :, :hx] = probe[hy:, :hx]
        full[-(size[0] - hy) :, -(size[1] - hx) :] = probe[hy:, hx:]
        psf_ft = blurred_probe_ft(p, grid, sfft.rfft2(full, workers=_fft.FFT_WORKERS))
        return psf_ft, peak

    def layer_psf_ft(self, top_A: float, bottom_A: float) -> np.ndarray:
        """The PSF averaged over a layer between two depths (uniform in depth)."""
        depths = np.linspace(top_A, bottom_A, _LAYER_SAMPLES)
        bins, counts = np.unique(self.bin_of(depths), return_counts=True)
        out = None
        for b, n in zip(bins, counts):
            term = self.psf(int(b))[0] * np.float32(n / _LAYER_SAMPLES)
            out = term if out is None else out + term
        return out


def depth_points(scene, region_codes: tuple[int, ...]) -> np.ndarray:
    """Render points drawn with the probe of their own depth: columns of the given regions
    (single atoms, adatoms) whose depth is known."""
    col = scene.point_column
    is_col = col >= 0
    if not is_col.any():
        return is_col
    region = np.where(is_col, scene.column_region[np.maximum(col, 0)], -1)
    return is_col & np.isin(region, region_codes) & np.isfinite(scene.point_depth_A)


def render_depth_columns(
    probes: DepthProbes,
    grid: RenderGrid,
    scene,
    select: np.ndarray,
    weights: np.ndarray,
    correction: np.ndarray,
    column_peak: np.ndarray,
) -> np.ndarray | None:
    """rfft2 of the selected points, each bin with its probe; sets each of their columns'
    probe peak in ``column_peak`` (that of the column's mean depth)."""
    if not select.any():
        return None
    depth = scene.point_depth_A[select]
    cols = scene.point_column[select]
    bins = probes.bin_of(depth)
    out = None
    for b in np.unique(bins):
        sel = bins == b
        dep = render.deposit(grid, scene.point_yx_A[select][sel], weights[select][sel])
        psf_ft, _ = probes.psf(int(b))
        term = sfft.rfft2(dep, workers=_fft.FFT_WORKERS) * correction * psf_ft
        out = term if out is None else out + term
    # Each column's peak: the probe of its atoms' mean depth.
    n = scene.n_columns
    mean_depth = np.bincount(cols, depth, n) / np.maximum(np.bincount(cols, None, n), 1)
    touched = np.unique(cols)
    for c, b in zip(touched, probes.bin_of(mean_depth[touched])):
        column_peak[c] = probes.psf(int(b))[1]
    return out


def layer_depth_ranges(scene) -> dict[int, tuple[float, float]]:
    """Depth range (A) of each amorphous layer code: support 1 below depth 0, contamination
    2 above it (as the multislice scene stacks them)."""
    ranges = {1: (0.0, 0.0), 2: (0.0, 0.0)}
    for layer in scene.amorphous:
        if layer.kind == "support":
            ranges[1] = (0.0, float(layer.thickness_A))
        else:
            ranges[2] = (-float(layer.thickness_A), 0.0)
    return ranges
