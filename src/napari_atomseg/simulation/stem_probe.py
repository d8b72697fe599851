"""The STEM probe on a grid and its effective PSF, shared by :mod:`.stem` (the focal
probe) and :mod:`.stem_depth` (the probe at other depths).

A module of its own so that those two need not import each other.
"""

from __future__ import annotations

import numpy as np

from . import optics
from .render import RenderGrid, radial_function

#: rms width (Angstrom) of the ADF "object" of one atom: thermal vibration plus the
#: finite extent of high-angle scattering
ATOM_BLUR_A = 0.08


def probe_on_grid(p, shape, sampling_A: float, defocus_A: float | None = None) -> np.ndarray:
    """The coherent probe's intensity on a periodic grid (1/A^2), centred on (0, 0)."""
    return optics.probe_intensity(
        shape,
        sampling_A,
        p.energy_keV,
        p.convergence_mrad,
        defocus_A=p.defocus_nm * 10 if defocus_A is None else defocus_A,
        cs_A=p.cs_um * 1e4,
        astigmatism_A=p.astigmatism_nm * 10,
        astigmatism_angle_rad=np.deg2rad(p.astigmatism_angle_deg),
    )


def blurred_probe_ft(p, grid: RenderGrid, probe_ft: np.ndarray) -> np.ndarray:
    """rfft2 of the probe intensity -> that of the effective PSF: source-size and atom
    blur, and the broad halo of ``probe_tail_fraction``."""
    blur = np.hypot(optics.fwhm_to_sigma(p.source_size_nm * 10), ATOM_BLUR_A)
    gauss = radial_function(grid, lambda k: np.exp(-2 * np.pi**2 * blur**2 * k**2))
    psf_ft = probe_ft * gauss
    tail = getattr(p, "probe_tail_fraction", 0.0)
    if tail > 0:
        # Probe tails (higher-order aberrations, chromatic and source blur, scattering in
        # the column above): part of the current lands in a broad Gaussian halo.
        sigma = optics.fwhm_to_sigma(p.probe_tail_nm * 10)
        halo = radial_function(grid, lambda k: np.exp(-2 * np.pi**2 * sigma**2 * k**2))
        psf_ft = (1.0 - tail) * psf_ft + tail * halo / grid.sampling_A**2
    return psf_ft
