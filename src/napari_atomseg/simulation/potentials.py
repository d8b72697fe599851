"""Atomic form factors: projected potentials (HRTEM) and ADF cross-sections (STEM).

The projected potential of one atom is the Lobato & Van Dyck (2014) parametrisation,
read from the very ``lobato.json`` table abTEM ships and scaled exactly as abTEM scales it,
so a potential built here equals abTEM's ``Potential(..., projection="infinite")`` (a test
checks it). abTEM itself is *not* imported (it takes seconds); only its data file is read.

The annular dark-field signal is modelled in the incoherent approximation: each atom of
atomic number Z scatters a fraction sigma_ADF(Z) / A of the probe into the detector, with
sigma_ADF(Z) = sigma_S * (Z / 16)^n (n ~ 1.2-1.9, the "Z-contrast" exponent, fitted to
frozen-phonon multislice by :func:`calibrated_z_exponent`).
"""

from __future__ import annotations

import importlib.util
import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from ..errors import InputError
from .electron import wavelength_A

#: kappa = 4 pi eps0 / (2 pi a0 e) in ASE units (Angstrom, eV), as abtem.core.constants.
#: Converts the dimensionless Lobato parameters to volts * Angstrom.
_BOHR_A = 0.5291772105638411
_EPS0_ASE = 0.005526349406596203  # vacuum permittivity in e^2 / (eV Angstrom)
_KAPPA = 4 * math.pi * _EPS0_ASE / (2 * math.pi * _BOHR_A)

#: the element whose Wentzel cross-section anchors the fast HAADF model (sulfur)
HAADF_REFERENCE_Z = 16
#: abTEM multislice / screened-Rutherford (Wentzel) cross-section ratio for isolated atoms,
#: measured by benchmarks/calibrate_haadf.py (docs/simulation.md)
WENTZEL_SCALE = 1.0
_ELECTRON_REST_keV = 510.99895


def _abtem_data_dir() -> Path:
    spec = importlib.util.find_spec("abtem")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("abTEM is not installed; it is needed for the atomic potentials")
    return Path(next(iter(spec.submodule_search_locations))) / "parametrizations" / "data"


@lru_cache(maxsize=1)
def _lobato_table() -> dict[str, np.ndarray]:
    with open(_abtem_data_dir() / "lobato.json") as fh:
        raw = json.load(fh)
    return {symbol: np.asarray(values, dtype=np.float64) for symbol, values in raw.items()}


def element_symbol(element: str | int) -> str:
    """Canonical chemical symbol for a symbol or atomic number; InputError if unknown."""
    if isinstance(element, (int, np.integer)):
        if not 1 <= int(element) < len(chemical_symbols):
            raise InputError(f"element: atomic number {element} does not exist")
        return chemical_symbols[int(element)]
    symbol = str(element).strip()
    symbol = symbol[:1].upper() + symbol[1:].lower()
    if symbol not in atomic_numbers:
        raise InputError(f"element: {element!r} is not a chemical symbol")
    return symbol


@lru_cache(maxsize=128)
def _lobato_scaled(symbol: str) -> tuple[np.ndarray, np.ndarray]:
    table = _lobato_table()
    if symbol not in table:
        raise InputError(f"element: no potential parametrisation for {symbol}")
    p = table[symbol]
    a = np.pi**2 * p[0] / p[1] ** 1.5 / _KAPPA
    b = 2 * np.pi / np.sqrt(p[1])
    return a, b


def projected_potential_ft(symbol: str, k2_per_A2: np.ndarray) -> np.ndarray:
    """Fourier transform of one atom's projected potential (V * Angstrom^3) at |k|^2.

    Convention: V_proj(r) = integral F(k) exp(2 pi i k.r) d^2k, so on a periodic grid of
    pixel size s the potential of atoms deposited as counts per pixel is
    ``ifft2(fft2(counts) * F(k)) / s**2``. Identical to abTEM's
    ``LobatoParametrization().projected_scattering_factor(symbol)``.
    """
    a, b = _lobato_scaled(symbol)
    k2 = 4 * np.pi**2 * np.asarray(k2_per_A2, dtype=np.float64)
    out = np.zeros_like(k2)
    for ai, bi in zip(a, b):
        denom = k2 + bi**2
        out += ai / bi / denom + ai * bi / denom**2
    return 8 * np.pi * out


def wentzel_cross_section_A2(
    element: str | int | np.ndarray,
    energy_keV: float,
    inner_mrad: float,
    outer_mrad: float,
    scale: float | None = None,
) -> np.ndarray:
    """Screened-Rutherford (Wentzel) cross-section (Angstrom^2) for scattering between
    ``inner_mrad`` and ``outer_mrad``.

    d sigma / d Omega = 4 gamma^2 Z^2 / (a0^2 (q^2 + q0^2)^2), q = k theta, q0 = 1 / R with
    the Thomas-Fermi radius R = 0.885 a0 Z^(-1/3); integrated over the annulus:
    sigma = 4 pi gamma^2 Z^2 / (a0^2 k^2) [1 / (k^2 t1^2 + q0^2) - 1 / (k^2 t2^2 + q0^2)],
    times ``scale`` (default :data:`WENTZEL_SCALE`, fitted to abTEM).
    """
    if isinstance(element, str):
        z = np.float64(atomic_numbers[element_symbol(element)])
    else:
        z = np.asarray(element, dtype=np.float64)
    gamma = 1.0 + energy_keV / _ELECTRON_REST_keV
    k = 2 * np.pi / wavelength_A(energy_keV)
    q0_sq = (z ** (1 / 3) / (0.885 * _BOHR_A)) ** 2
    t1, t2 = inner_mrad * 1e-3, outer_mrad * 1e-3
    bracket = 1.0 / (k * k * t1 * t1 + q0_sq) - 1.0 / (k * k * t2 * t2 + q0_sq)
    sigma = 4 * np.pi * gamma**2 * z**2 / (_BOHR_A**2 * k * k) * bracket
    return sigma * (WENTZEL_SCALE if scale is None else scale)


def haadf_cross_section_A2(
    z: np.ndarray | int,
    exponent: float,
    energy_keV: float = 200.0,
    inner_mrad: float = 70.0,
    outer_mrad: float = 200.0,
) -> np.ndarray:
    """ADF cross-section (Angstrom^2) per atom of atomic number ``z``.

    sigma_S (Z / 16)^n: the sulfur reference comes from the Wentzel formula for the beam
    energy and detector, the Z-contrast exponent ``n`` is a parameter (1.2-1.9 depending
    on the energy, the detector, thermal scattering and channelling; see
    :func:`calibrated_z_exponent`). Wentzel's formula is close to multislice for light
    atoms and too strong for heavy ones (gold 1.6-1.8x abTEM's isolated atom), so the
    reference is a light atom and the exponent carries the rest: with the calibrated
    exponent gold comes out at 0.67 x Wentzel's.
    """
    reference = wentzel_cross_section_A2(HAADF_REFERENCE_Z, energy_keV, inner_mrad, outer_mrad)
    return reference * (np.asarray(z, dtype=np.float64) / HAADF_REFERENCE_Z) ** exponent


def effective_z_exponent(energy_keV: float, inner_mrad: float, outer_mrad: float) -> float:
    """Exponent n of sigma ~ Z^n implied by the Wentzel formula between S (16) and Au (79)."""
    s = wentzel_cross_section_A2(np.array([16.0, 79.0]), energy_keV, inner_mrad, outer_mrad)
    return float(np.log(s[1] / s[0]) / np.log(79.0 / 16.0))


#: the Z exponents that make the fast model reproduce frozen-phonon multislice, relative
#: to the Wentzel formula's own (see :func:`calibrated_z_exponent`): atoms in columns
#: (crystals, particles) and isolated atoms (single atoms, adatoms, amorphous material)
Z_EXPONENT_OFFSET = {"columns": -0.29, "isolated": -0.08}


def calibrated_z_exponent(
    energy_keV: float, inner_mrad: float, outer_mrad: float, kind: str = "columns"
) -> float:
    """The Z-contrast exponent n for a beam energy and detector, fitted to multislice.

    The screened-Rutherford (Wentzel) exponent (:func:`effective_z_exponent`) plus an
    offset per ``kind`` (:data:`Z_EXPONENT_OFFSET`), fitted by
    ``benchmarks/calibrate_haadf_columns.py``: columns lose Z contrast to channelling and
    cross-talk (MoS2 Mo / S2 at 60 kV: n = 1.31 against Wentzel's 1.60; SrTiO3 Sr / TiO
    at 80 kV, held out: 1.41 against 1.69), isolated atoms much less (Pt against C, N, O,
    Si: 1.68-1.90 at 200-300 kV against 1.89-1.93). docs/simulation.md lists the cases.
    """
    if kind not in Z_EXPONENT_OFFSET:
        raise InputError(f"kind: {kind!r} is not one of {', '.join(Z_EXPONENT_OFFSET)}")
    n = effective_z_exponent(energy_keV, inner_mrad, outer_mrad) + Z_EXPONENT_OFFSET[kind]
    return float(np.clip(n, 1.0, 2.2))


def debye_waller_sigma_A(symbol: str) -> float:
    """Typical room-temperature rms thermal displacement per axis (Angstrom).

    Light elements vibrate more; the values (0.05-0.1 A) blur each atom's image by about
    as much as frozen-phonon multislice does.
    """
    z = atomic_numbers[symbol]
    if z <= 2:
        return 0.12
    if z <= 10:
        return 0.085
    if z <= 20:
        return 0.075
    return 0.07
