"""The beam electron: physical constants and the relativistic wavelength.

A module of its own, needing only :mod:`math`, so that :mod:`.potentials` and
:mod:`.optics` (which re-exports :func:`wavelength_A`) share it without importing each
other.
"""

from __future__ import annotations

import math

# CODATA constants (SI), the same ones ase.units uses.
H_PLANCK = 6.62607015e-34  # J s
C_LIGHT = 299792458.0  # m / s
M_E = 9.1093837015e-31  # kg
E_CHARGE = 1.602176634e-19  # C


def wavelength_A(energy_keV: float) -> float:
    """Relativistic electron wavelength in Angstrom for an energy in keV."""
    energy_eV = float(energy_keV) * 1e3
    return (
        H_PLANCK
        * C_LIGHT
        / math.sqrt(energy_eV * (2 * M_E * C_LIGHT**2 / E_CHARGE + energy_eV))
        / E_CHARGE
        * 1e10
    )
