"""Calibrate the fast HAADF model's cross-sections against abTEM multislice.

For isolated atoms (no channelling, so multislice gives the exact single-atom ADF
signal) the integrated ADF intensity over the scan, times the pixel area, is the atom's
ADF cross-section sigma (A^2). This script measures it with abTEM for a few elements,
energies and detectors and compares it with the screened-Rutherford (Wentzel) formula
used by :func:`napari_atomseg.simulation.potentials.haadf_cross_section_A2`, printing a
table. Run::

    python benchmarks/calibrate_haadf.py          # ~2-4 min on 2 cores

The fitted scale is ``potentials.WENTZEL_SCALE``.
"""

from __future__ import annotations

import time

import numpy as np


def abtem_sigma(symbol: str, energy_keV: float, inner: float, outer: float) -> float:
    import abtem
    import dask
    from ase import Atoms

    cell = 10.0
    atoms = Atoms(symbol, positions=[(cell / 2, cell / 2, 2.0)], cell=[cell, cell, 4.0])
    lam = 12.2643 / np.sqrt(energy_keV * 1e3 * (1 + 0.978476e-6 * energy_keV * 1e3))
    # Sample finely enough that the detector's outer angle survives abTEM's 2/3
    # antialiasing aperture.
    sampling = 0.95 * (2 / 3) * lam / (2 * outer * 1e-3)
    with dask.config.set(scheduler="synchronous"):
        potential = abtem.Potential(atoms, sampling=sampling, slice_thickness=4.0)
        probe = abtem.Probe(energy=energy_keV * 1e3, semiangle_cutoff=25)
        # The ADF signal of one atom falls off within ~3 A; the scan covers +-3.5 A.
        step = 0.25
        half = 3.5
        scan = abtem.GridScan(
            start=(cell / 2 - half, cell / 2 - half),
            end=(cell / 2 + half, cell / 2 + half),
            sampling=step,
        )
        detector = abtem.AnnularDetector(inner=inner, outer=outer)
        image = probe.scan(potential, scan=scan, detectors=detector, lazy=False, max_batch=16)
        values = np.asarray(image.array, dtype=np.float64)
    return float(values.sum() * step * step)


def main() -> None:
    from napari_atomseg.simulation.potentials import wentzel_cross_section_A2

    rows = []
    cases = [
        (200.0, 70.0, 200.0),
        (80.0, 60.0, 150.0),
        (300.0, 60.0, 200.0),
    ]
    print(
        f"{'element':>7} {'E/keV':>6} {'det/mrad':>10} {'abTEM A^2':>10} {'Wentzel':>10} {'ratio':>6}  s"
    )
    for energy, inner, outer in cases:
        for symbol in ("C", "S", "Mo", "Au"):
            t0 = time.perf_counter()
            measured = abtem_sigma(symbol, energy, inner, outer)
            model = float(wentzel_cross_section_A2(symbol, energy, inner, outer, scale=1.0))
            rows.append(measured / model)
            print(
                f"{symbol:>7} {energy:6.0f} {inner:4.0f}-{outer:<5.0f} {measured:10.5f} "
                f"{model:10.5f} {measured / model:6.3f}  {time.perf_counter() - t0:.0f}"
            )
    print(f"median ratio (abTEM / Wentzel) = {np.median(rows):.3f}")


if __name__ == "__main__":
    main()
