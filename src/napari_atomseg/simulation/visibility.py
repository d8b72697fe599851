"""Why a simulated micrograph shows no columns, and HRTEM optics that show them.

The simulator marks a column *visible* when its matched-filter signal-to-noise ratio
reaches ``visibility_snr``. When none is, the user needs the reason, which is one of:

- **no phase contrast** (HRTEM): a thin specimen is a weak phase object; the lens turns
  phase into intensity through sin(chi), and with no defocus and no spherical aberration
  chi = 0 at every frequency, so the image is flat. Some defocus (and Cs) is needed:
  Scherzer's for an uncorrected lens, or with an aberration corrector a small negative
  Cs with the matching overfocus (white atoms; Lentzen's negative-Cs imaging);
- **too coarse sampling**: pixels larger than half the column spacing cannot resolve
  the columns;
- **too low a dose** for the columns' contrast.

:func:`default_hrtem_optics` gives the optics the Simulate widget starts HRTEM with;
:func:`invisible_columns_reason` says which of the above applies.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .optics import scherzer_defocus_A, wavelength_A

#: Cs of an aberration-corrected HRTEM used by default (micrometres; negative: white atoms).
CORRECTED_CS_UM = -20.0
#: Below this |sin chi| x envelope at the columns' spacing, phase contrast is lost.
MIN_PHASE_TRANSFER = 0.15
#: Fewer electrons per pixel than this hides columns whatever their contrast.
MIN_ELECTRONS_PER_PX = 3.0


def optimum_defocus_nm(cs_um: float, energy_keV: float) -> float:
    """Scherzer defocus (nm, abTEM sign: positive = underfocus) for ``cs_um``.

    For negative Cs this is an overfocus of the same size, the condition of
    negative-Cs imaging (bright atoms). 0 for Cs = 0.
    """
    return scherzer_defocus_A(cs_um * 1e4, energy_keV) / 10.0


def default_hrtem_optics(energy_keV: float) -> tuple[float, float]:
    """(Cs in um, defocus in nm): an aberration-corrected HRTEM at its optimum focus."""
    return CORRECTED_CS_UM, optimum_defocus_nm(CORRECTED_CS_UM, energy_keV)


def phase_transfer(params: Any, spacing_nm: float) -> float:
    """|sin chi| x temporal and spatial envelopes at the frequency 1 / ``spacing_nm``
    (params: a :class:`~napari_atomseg.simulation.SimulationParameters`)."""
    lam = wavelength_A(params.energy_keV)
    k = 1.0 / (spacing_nm * 10.0)  # 1/Angstrom
    alpha = k * lam
    defocus_A, cs_A = params.defocus_nm * 10.0, params.cs_um * 1e4
    chi = 2 * math.pi / lam * (-0.5 * defocus_A * alpha**2 + 0.25 * cs_A * alpha**4)
    dchi = 2 * math.pi / lam * (-defocus_A * alpha + cs_A * alpha**3)
    focal = params.focal_spread_nm * 10.0
    temporal = math.exp(-((0.5 * math.pi / lam * focal * alpha**2) ** 2))
    spatial = math.exp(-((params.angular_spread_mrad * 1e-3 / 2) ** 2) * dchi**2)
    return abs(math.sin(chi)) * temporal * spatial


def column_spacing_nm(columns: Any) -> float:
    """Median nearest-neighbour distance (nm) of all columns (``y_nm, x_nm``); nan if < 2."""
    if columns is None or len(columns) < 2:
        return float("nan")
    from scipy.spatial import cKDTree

    xy = np.column_stack([columns["y_nm"].to_numpy(float), columns["x_nm"].to_numpy(float)])
    distances, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(distances[:, 1]))


def invisible_columns_reason(params: Any, columns: Any) -> str:
    """Why no column of a simulation is visible, with what to change ('' if some are)."""
    if columns is None or len(columns) == 0:
        return "the scene has no atomic columns in the field of view"
    if "visible" in columns and bool(columns["visible"].any()):
        return ""
    spacing = column_spacing_nm(columns)
    if math.isfinite(spacing) and params.pixel_size_nm > spacing / 2:
        return (
            f"the pixels ({params.pixel_size_nm:g} nm) are larger than half the column "
            f"spacing ({spacing:.3g} nm): choose a pixel size below {spacing / 2:.3g} nm"
        )
    if params.mode.startswith("hrtem") and math.isfinite(spacing):
        transfer = phase_transfer(params, spacing)
        if transfer < MIN_PHASE_TRANSFER:
            cs, defocus = default_hrtem_optics(params.energy_keV)
            return (
                f"the lens transfers almost no phase contrast at the column spacing "
                f"({spacing:.3g} nm): |sin chi| x envelope = {transfer:.2f} at defocus "
                f"{params.defocus_nm:g} nm and Cs {params.cs_um:g} um. A thin specimen is a "
                "phase object, invisible in focus without aberrations (sin chi = 0); use "
                f"e.g. Cs {cs:g} um with defocus {defocus:.3g} nm (its optimum; white atoms) "
                "or the Scherzer defocus of your Cs"
            )
    electrons = params.dose_e_per_A2 * (params.pixel_size_nm * 10.0) ** 2
    if electrons < MIN_ELECTRONS_PER_PX:
        return (
            f"the dose gives {electrons:.2g} electrons per pixel: too few to see the "
            "columns; raise the dose"
        )
    return (
        f"no column reaches a signal-to-noise ratio of {params.visibility_snr:g} (the "
        "visibility criterion): raise the dose or the thickness, or change the focus"
    )
