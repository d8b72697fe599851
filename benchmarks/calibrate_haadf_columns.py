"""Fit the fast HAADF model's Z-contrast exponents to frozen-phonon multislice.

The fast model scatters sigma_S (Z / 16)^n per atom, n = ``z_exponent`` for atoms in
columns and ``z_exponent_isolated`` for isolated atoms; by default both are calibrated
(``potentials.calibrated_z_exponent``: Wentzel's exponent for the energy and detector
plus a fitted offset per kind). This script images the very same atoms with abTEM
(frozen phonons) and with the fast model, reads the mean intensity of two kinds of
columns (or the cross-sections of isolated atoms), finds the n at which the fast model
gives the multislice ratio, and shows the fast model's ratio with the old default
(n = 1.7) and with the calibrated one. Cases:

- ``mos2``: MoS2 monolayer, 60 kV, 60-130 mrad, Mo vs S2 columns (the case of
  tests/simulation/test_validation.py; the columns' offset is fitted on it);
- ``sto``: SrTiO3 [001], 2 nm, 80 kV, 60-150 mrad, Sr vs Ti-O columns (held out: longer
  columns, other elements, energy and detector);
- ``isolated``: single atoms (Pt against C, N, O, Si; no channelling) at 300 and 200 kV,
  70-200 mrad, as single-atom catalysts on carbon are imaged (the isolated atoms' offset
  is their mean: no case held out).

Run (minutes to tens of minutes on 2 cores; each case can be run alone)::

    OMP_NUM_THREADS=2 python benchmarks/calibrate_haadf_columns.py mos2 sto isolated

Prints a Markdown table for docs/simulation.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np


def _at(image: np.ndarray, table) -> np.ndarray:
    return image[np.round(table.y_px).astype(int), np.round(table.x_px).astype(int)]


def _ratio(image: np.ndarray, table, first: str, second: str, margin: int = 1) -> float:
    h, w = image.shape
    inner = table[
        table.y_px.between(margin, h - 1 - margin) & table.x_px.between(margin, w - 1 - margin)
    ]
    a = inner[inner.elements == first]
    b = inner[inner.elements == second]
    return float(_at(image, a).mean() / _at(image, b).mean())


def _fit_exponent(params, first: str, second: str, target: float) -> tuple[float, float, float]:
    """n in [1.0, 2.2] at which the fast model's ratio equals ``target`` (bisection), and
    the fast model's ratio at the old default n = 1.7 and at its calibrated default."""
    from napari_atomseg.simulation import simulate

    def ratio(n: float | None) -> float:
        r = simulate(params.replace(z_exponent=n, mode="haadf"))
        return _ratio(r.image_clean.astype(np.float64), r.columns, first, second)

    lo, hi = 1.0, 2.2
    old, calibrated = ratio(1.7), ratio(None)
    if not ratio(lo) <= target <= ratio(hi):
        return float("nan"), old, calibrated
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ratio(mid) < target else (lo, mid)
    return 0.5 * (lo + hi), old, calibrated


def column_case(name: str, phonons: int) -> dict:
    from napari_atomseg.simulation import SimulationParameters, engine, simulate

    engine.STEM_MARGIN_A = 4.0  # a small specimen margin keeps the multislice grid small
    if name == "mos2":
        p = SimulationParameters(
            material="MoS2",
            shape_px=(16, 16),
            pixel_size_nm=0.045,
            rotation_deg=17.0,
            energy_keV=60.0,
            adf_inner_mrad=60.0,
            adf_outer_mrad=130.0,
            multislice_sampling_nm=0.008,
            frozen_phonons=phonons,
            dose_e_per_A2=1e9,
            seed=1,
        )
        first, second, label = "Mo", "S2", "MoS2 1L, 60 kV, 60-130 mrad, Mo / S2"
    else:
        p = SimulationParameters(
            material="SrTiO3",
            zone_axis="001",
            thickness_nm=2.0,
            shape_px=(20, 20),
            pixel_size_nm=0.04,
            rotation_deg=9.0,
            energy_keV=80.0,
            adf_inner_mrad=60.0,
            adf_outer_mrad=150.0,
            multislice_sampling_nm=0.0075,
            frozen_phonons=phonons,
            dose_e_per_A2=1e9,
            seed=2,
        )
        first, second, label = "Sr6", "Ti5O6", "SrTiO3 [001] 2 nm, 80 kV, 60-150 mrad, Sr / TiO"
    t0 = time.perf_counter()
    ms = simulate(p.replace(mode="haadf_multislice"))
    seconds = time.perf_counter() - t0
    target = _ratio(ms.image_clean.astype(np.float64), ms.columns, first, second)
    from napari_atomseg.simulation.stem import z_exponent

    n_fit, fast_old, fast_calibrated = _fit_exponent(p, first, second, target)
    return {
        "case": f"{label} ({phonons} phonons)",
        "multislice": target,
        "fast_old": fast_old,
        "fast_calibrated": fast_calibrated,
        "n_calibrated": z_exponent(p),
        "n_fit": n_fit,
        "seconds": seconds,
    }


def isolated_cases() -> list[dict]:
    """Single atoms: the ADF cross-section of each element by abTEM, and the exponent n
    that makes sigma ~ Z^n reproduce Pt against each light element."""
    sys.path.insert(0, str(Path(__file__).parent))
    from calibrate_haadf import abtem_sigma

    from napari_atomseg.simulation.potentials import calibrated_z_exponent

    rows = []
    for energy, inner, outer in ((300.0, 70.0, 200.0), (200.0, 70.0, 200.0)):
        t0 = time.perf_counter()
        sigma = {s: abtem_sigma(s, energy, inner, outer) for s in ("C", "N", "O", "Si", "Pt")}
        seconds = time.perf_counter() - t0
        n_cal = calibrated_z_exponent(energy, inner, outer, "isolated")
        for light, z in (("C", 6), ("N", 7), ("O", 8), ("Si", 14)):
            ratio = sigma["Pt"] / sigma[light]
            rows.append(
                {
                    "case": f"isolated atoms, {energy:.0f} kV, {inner:.0f}-{outer:.0f} mrad, Pt / {light}",
                    "multislice": ratio,
                    "fast_old": (78 / z) ** 1.7,
                    "fast_calibrated": (78 / z) ** n_cal,
                    "n_calibrated": n_cal,
                    "n_fit": math.log(ratio) / math.log(78 / z),
                    "seconds": seconds,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=["mos2", "sto", "isolated"])
    parser.add_argument("--phonons", type=int, default=6)
    args = parser.parse_args(argv)
    rows: list[dict] = []
    for case in args.cases:
        if case == "isolated":
            rows += isolated_cases()
        else:
            rows.append(column_case(case, args.phonons))
        print(rows[-1], flush=True)
    print(
        "\n| case | multislice | fast, n = 1.7 (old default) | n matching multislice | "
        "calibrated n | fast, calibrated | s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['multislice']:.2f} | {r['fast_old']:.2f} | {r['n_fit']:.2f} "
            f"| {r['n_calibrated']:.2f} | {r['fast_calibrated']:.2f} | {r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
