"""Sign and convention checks on positions built by hand (they fail if a convention breaks)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg import analyse_lattice
from tests._synth import TABLE_PIXEL_SIZE_NM as PS_NM
from tests._synth import square_cell_nm, square_perovskite, to_table


def _analyse(table, **kw):
    return analyse_lattice(table, pixel_size_nm=PS_NM, cell_nm=square_cell_nm(), **kw)


def _interior(res):
    return np.isfinite(res["strain_xx"]).to_numpy()


def test_pure_rotation_counter_clockwise_as_displayed_gives_zero_strain():
    cols = square_perovskite()
    phi = np.radians(2.0)
    x, y = cols["x_nm"].to_numpy(), cols["y_nm"].to_numpy()
    # Counter-clockwise on screen with y pointing down: +x moves up (to -y).
    x2 = x * np.cos(phi) + y * np.sin(phi)
    y2 = -x * np.sin(phi) + y * np.cos(phi)
    res = _analyse(to_table(cols, y2, x2))
    ok = _interior(res)
    assert ok.mean() > 0.9
    np.testing.assert_allclose(res["rotation_deg"][ok], 2.0, atol=1e-9)
    for name in ("strain_xx", "strain_yy", "strain_xy", "dilatation"):
        np.testing.assert_allclose(res[name][ok], 0.0, atol=1e-9)


def test_three_percent_stretch_along_x():
    cols = square_perovskite()
    res = _analyse(to_table(cols, cols["y_nm"].to_numpy(), 1.03 * cols["x_nm"].to_numpy()))
    ok = _interior(res)
    np.testing.assert_allclose(res["strain_xx"][ok], 0.030, atol=1e-9)
    np.testing.assert_allclose(res["strain_yy"][ok], 0.0, atol=1e-9)
    np.testing.assert_allclose(res["strain_xy"][ok], 0.0, atol=1e-9)
    np.testing.assert_allclose(res["rotation_deg"][ok], 0.0, atol=1e-9)
    np.testing.assert_allclose(res["dilatation"][ok], 0.030, atol=1e-9)
    # Along the crystal axes: a is along x here.
    np.testing.assert_allclose(res["strain_aa"][ok], 0.030, atol=1e-9)
    assert res.attrs["cell_nm"][0] == pytest.approx([0.0, 0.3905])


def test_simple_shear_is_half_tensor_shear_plus_rotation():
    cols = square_perovskite()
    gamma = 0.02
    y, x = cols["y_nm"].to_numpy(), cols["x_nm"].to_numpy()
    res = _analyse(to_table(cols, y, x + gamma * y))
    ok = _interior(res)
    # F = [[1, 0], [gamma, 1]] in (y, x): tensor shear ~ gamma / 2, rotation ~ -gamma / 2.
    f = np.array([[1.0, 0.0], [gamma, 1.0]])
    theta = np.arctan2(f[1, 0] - f[0, 1], f[0, 0] + f[1, 1])
    r = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    u = r.T @ f
    np.testing.assert_allclose(res["strain_xy"][ok], u[0, 1], atol=1e-9)
    np.testing.assert_allclose(res["rotation_deg"][ok], np.degrees(theta), atol=1e-7)
    assert res["strain_xy"][ok].iloc[0] == pytest.approx(gamma / 2, rel=1e-3)


def test_positive_displacement_x_points_to_larger_x():
    cols = square_perovskite()
    y, x = cols["y_nm"].to_numpy().copy(), cols["x_nm"].to_numpy().copy()
    ti = (cols["element"] == "Ti").to_numpy()
    x[ti] += 0.020  # 20 pm to the right
    y[ti] -= 0.010  # 10 pm up the screen
    res = _analyse(to_table(cols, y, x))
    done = ti & np.isfinite(res["displacement_x_pm"]).to_numpy()
    assert done.sum() > 0.8 * ti.sum()
    np.testing.assert_allclose(res["displacement_x_pm"][done], 20.0, atol=1e-6)
    np.testing.assert_allclose(res["displacement_y_pm"][done], -10.0, atol=1e-6)
    # The reference (brightest) sublattice has no displacement.
    assert res["displacement_x_pm"][~ti].isna().all()
    assert res.attrs["reference_sublattice"] == 0
    assert set(res["sublattice"][ti]) == {1}


def test_rows_come_back_in_order_with_every_column():
    cols = square_perovskite(12)
    table = to_table(cols, cols["y_nm"].to_numpy(), cols["x_nm"].to_numpy())
    table = table.sample(frac=1.0, random_state=3)
    table["my_note"] = np.arange(len(table))
    res = analyse_lattice(table, pixel_size_nm=PS_NM)
    assert list(res.index) == list(table.index)
    np.testing.assert_array_equal(res["my_note"], table["my_note"])
    np.testing.assert_array_equal(res["x_px"], table["x_px"])
    for name in (
        "sublattice", "lattice_h", "lattice_k", "strain_xx", "strain_yy", "strain_xy",
        "rotation_deg", "displacement_y_pm", "displacement_x_pm", "intensity_integrated",
    ):  # fmt: skip
        assert name in res
    assert "sublattice" not in table  # the input is not modified
