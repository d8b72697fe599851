"""Scan distortion: report on a known fast/slow-scan distortion and its correction."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg import analyse_lattice
from napari_atomseg.lattice.distortion import correction_matrix, distortion_report
from napari_atomseg.simulation.deformation import perovskite_columns

PS = 0.02
A = 0.3905


def _distorted(scale: float, shear: float):
    cols = perovskite_columns((400, 400), PS, oxygen=False)
    cols["intensity"] = cols["element"].map({"Sr": 3.0, "Ti": 2.0})
    y, x = cols["y_px"].to_numpy(), cols["x_px"].to_numpy()
    # Slow scan (y) stretched by `scale`, rows shifted along x by `shear` per row.
    cols["y_px"], cols["x_px"] = (1 + scale) * y, x + shear * y
    return cols.drop(columns=["y_nm", "x_nm"])


def test_report_recovers_scale_and_shear():
    res = analyse_lattice(_distorted(0.02, 0.01), pixel_size_nm=PS)
    report = res.attrs["scan_distortion"]
    assert report["symmetry"] == "square"
    assert report["slow_scan_scale"] == pytest.approx(0.02, abs=1e-6)
    assert report["scan_shear_deg"] == pytest.approx(np.degrees(np.arctan(0.01 / 1.02)), abs=1e-4)
    assert any("scan distortion" in w for w in res.attrs["warnings"])


def test_correction_from_the_reference_removes_the_distortion():
    cols = _distorted(0.03, -0.015)
    cell = ((0.0, A), (A, 0.0))
    raw = analyse_lattice(cols, pixel_size_nm=PS, cell_nm=cell)
    assert np.nanmedian(raw["strain_yy"]) == pytest.approx(0.03, abs=2e-3)
    fixed = analyse_lattice(cols, pixel_size_nm=PS, cell_nm=cell, scan_correction=True)
    assert fixed.attrs["scan_distortion"]["applied"] == "linear"
    for name in ("strain_xx", "strain_yy", "strain_xy", "rotation_deg"):
        assert np.nanmax(np.abs(fixed[name])) < 1e-6, name
    assert not any("scan distortion" in w for w in fixed.attrs["warnings"])


def test_no_symmetry_no_claim():
    cell = np.array([[0.0, 30.0], [20.0, 0.0]])  # 2:3 rectangle, columns a, b (y, x)
    report = distortion_report(cell, "auto")
    assert report["symmetry"] == "none" and "slow_scan_scale" not in report
    report = distortion_report(cell, (30.0 / 20.0, 90.0))
    assert report["slow_scan_scale"] == pytest.approx(0.0, abs=1e-12)


def test_correction_matrix_makes_the_cell_hexagonal():
    hexagon = np.array([[0.0, 10.0], [10 * np.sqrt(3) / 2, 5.0]]).T
    distortion = np.array([[0.97, 0.0], [0.02, 1.0]])
    t = correction_matrix(distortion @ hexagon, 1.0, 60.0)
    fixed = t @ distortion @ hexagon
    la, lb = np.linalg.norm(fixed, axis=0)
    assert la == pytest.approx(lb, rel=1e-9)
    assert np.degrees(np.arccos(fixed[:, 0] @ fixed[:, 1] / la / lb)) == pytest.approx(60.0)


def test_nonlinear_correction_follows_drift_that_changes_through_the_frame():
    cols = perovskite_columns((800, 800), 0.01, oxygen=False)
    cols["intensity"] = cols["element"].map({"Sr": 3.0, "Ti": 2.0})
    y, x = cols["y_px"].to_numpy(), cols["x_px"].to_numpy()
    # Slow-scan drift varying along y, and a non-linear fast scan along x.
    cols["y_px"] = y + 6 * np.sin(2 * np.pi * y / 600)
    cols["x_px"] = x + 3 * np.sin(2 * np.pi * y / 500) + 5 * np.sin(2 * np.pi * x / 700)
    cols = cols.drop(columns=["y_nm", "x_nm"])
    linear = analyse_lattice(cols, pixel_size_nm=0.01, scan_correction="linear")
    fixed = analyse_lattice(cols, pixel_size_nm=0.01, scan_correction="nonlinear")
    assert fixed.attrs["scan_distortion"]["applied"] == "nonlinear"
    inner = (y > 60) & (y < 740) & (x > 60) & (x < 740)
    sr = (cols["element"] == "Sr").to_numpy() & inner
    for name in ("strain_xx", "strain_yy", "strain_xy"):
        before = float(np.nanstd(linear[name][sr]))
        after = float(np.nanstd(fixed[name][sr]))
        assert after < 0.15 * before and after < 2e-3, name
    cell = fixed.attrs["cell"]
    assert cell["a"] == pytest.approx(cell["b"], rel=1e-3)
