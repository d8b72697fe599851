"""Exact fields through the whole analysis: strains, rotation, gradient, displacements."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_atomseg import analyse_lattice
from napari_atomseg.errors import InputError
from napari_atomseg.simulation.deformation import Deformation, perovskite_columns

PS = 0.02
A = 0.3905
CELL = ((0.0, A), (A, 0.0))
SHAPE = (400, 400)


def _columns(deformation: Deformation, oxygen: bool = True, noise_px: float = 0.0, seed: int = 0):
    cols = perovskite_columns(SHAPE, PS, deformation, oxygen=oxygen)
    rng = np.random.default_rng(seed)
    bright = {"Sr": 3.0, "Ti": 2.0, "O": 0.5}
    cols["intensity"] = cols["element"].map(bright) + rng.normal(0, 0.05, len(cols))
    if noise_px:
        cols[["y_px", "x_px"]] += rng.normal(0, noise_px, (len(cols), 2))
    return cols


def _median_errors(res):
    ok = np.isfinite(res["strain_xx"])
    return {
        k: float(np.median(np.abs(res[k][ok] - res[f"true_{k}"][ok])))
        for k in ("strain_xx", "strain_yy", "strain_xy", "rotation_deg")
    }


@pytest.mark.parametrize(
    "deformation",
    [
        Deformation(strain_xx=0.03, strain_yy=-0.03),
        Deformation(strain_xx=-0.03, strain_yy=0.03),
        Deformation(strain_xy=0.015),
        Deformation(rotation_deg=2.0),
        Deformation(strain_xx=0.02, strain_xy=-0.01, rotation_deg=-2.0),
        Deformation(strain_xx_gradient_per_nm=0.003),
    ],
    ids=["stretch_x", "stretch_y", "shear", "rotation", "combined", "gradient"],
)
def test_exact_fields_against_the_known_cell(deformation):
    res = analyse_lattice(_columns(deformation), pixel_size_nm=PS, cell_nm=CELL)
    errors = _median_errors(res)
    assert max(errors["strain_xx"], errors["strain_yy"], errors["strain_xy"]) <= 5e-4
    assert errors["rotation_deg"] <= 0.01
    assert np.isfinite(res["strain_xx"]).mean() > 0.97


@pytest.mark.parametrize("shift_pm", [(0.0, 5.0), (30.0, 0.0), (-12.0, 21.0)])
def test_b_site_displacements_in_a_strained_rotated_cell(shift_pm):
    d = Deformation(strain_xx=0.02, rotation_deg=2.0, shifts_pm=(("Ti", *shift_pm),))
    res = analyse_lattice(_columns(d), pixel_size_nm=PS, cell_nm=CELL)
    ti = (res["element"] == "Ti") & np.isfinite(res["displacement_x_pm"])
    assert ti.sum() > 0.9 * (res["element"] == "Ti").sum()
    for axis in ("y", "x"):
        err = res[f"displacement_{axis}_pm"][ti] - res[f"true_displacement_{axis}_pm"][ti]
        assert np.abs(err).max() < 1.0
    o = (res["element"] == "O") & np.isfinite(res["displacement_x_pm"])
    assert np.abs(res["displacement_x_pm"][o]).max() < 1e-6


def test_median_reference_and_box_reference():
    d = Deformation(strain_xx_gradient_per_nm=0.004)
    cols = _columns(d)
    centre = (SHAPE[1] - 1) / 2
    # A box centred on the unstrained middle: strains relative to the undeformed cell.
    box = (0, SHAPE[0], centre - 40, centre + 40)
    res = analyse_lattice(cols, pixel_size_nm=PS, reference=box)
    assert max(_median_errors(res).values()) < 2e-4
    assert "box" in res.attrs["reference"]
    mask = np.zeros(SHAPE, bool)
    mask[:, 160:240] = True  # the pixels whose centres are in the box
    res_mask = analyse_lattice(cols, pixel_size_nm=PS, reference=mask)
    assert max(_median_errors(res_mask).values()) < 2e-4
    # The whole field's median cell: a uniform stretch is then no strain.
    res = analyse_lattice(_columns(Deformation(strain_xx=0.03)), pixel_size_nm=PS)
    assert np.nanmax(np.abs(res["strain_xx"])) < 1e-9
    assert res.attrs["cell"]["a"] == pytest.approx(1.03 * A, rel=1e-9)


def test_unwrapping_keeps_indices_where_global_rounding_fails():
    # strain_xx from -12 % to +12 % across the field: the edge columns are more than a
    # cell away from where the centre's cell would put them.
    d = Deformation(strain_xx_gradient_per_nm=0.03)
    res = analyse_lattice(_columns(d, oxygen=False), pixel_size_nm=PS, cell_nm=CELL)
    sr = (res["element"] == "Sr").to_numpy()
    dh = (res["lattice_h"] - res["true_k"])[sr]
    dk = (res["lattice_k"] - res["true_h"])[sr]
    assert dh.nunique() == 1 and dk.nunique() == 1
    x = res["x_nm"].to_numpy() - (SHAPE[1] - 1) / 2 * PS
    naive = np.rint(x[sr] / A)
    assert (naive != res["true_k"][sr] + 0).any()  # what a global rounding would give
    assert _median_errors(res)["strain_xx"] < 5e-4


def test_sublattices_from_positions_and_brightness():
    res = analyse_lattice(_columns(Deformation()), pixel_size_nm=PS)
    groups = res.groupby("sublattice")["element"].agg(lambda e: set(e))
    assert groups[0] == {"Sr"} and groups[1] == {"Ti"}
    assert groups[2] == {"O"} and groups[3] == {"O"}
    sites = {s["sublattice"]: tuple(s["site"]) for s in res.attrs["sublattices"]}
    assert sites[0] == (0.0, 0.0) and sites[1] == (0.5, 0.5)
    # Without brightness the columns form one square lattice of half the cell.
    bare = _columns(Deformation(), oxygen=False).drop(columns=["intensity"])
    res = analyse_lattice(bare, pixel_size_nm=PS)
    assert set(res["sublattice"]) == {0}
    assert res.attrs["cell"]["a"] == pytest.approx(A / np.sqrt(2), rel=1e-6)


def test_honeycomb_without_intensity_has_two_sublattices():
    a = 0.246
    i, j = np.meshgrid(np.arange(-20, 21), np.arange(-20, 21), indexing="ij")
    a1, a2 = np.array([0.0, a]), np.array([a * np.sqrt(3) / 2, a / 2])
    origins = i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2
    delta = (a1 + a2) / 3
    yx = np.concatenate([origins, origins + delta]) + 8.0
    yx = yx[(yx > 1).all(axis=1) & (yx < 15).all(axis=1)]
    table = pd.DataFrame({"y_px": yx[:, 0] / 0.01, "x_px": yx[:, 1] / 0.01})
    res = analyse_lattice(table, pixel_size_nm=0.01)
    assert set(res["sublattice"]) == {0, 1}
    assert res.attrs["cell"]["a"] == pytest.approx(a, rel=1e-6)
    assert res.attrs["cell"]["angle_deg"] == pytest.approx(60.0, abs=1e-6) or res.attrs["cell"][
        "angle_deg"
    ] == pytest.approx(120.0, abs=1e-6)
    assert np.nanmax(np.abs(res["strain_xx"])) < 1e-9
    assert np.nanmax(np.abs(res["displacement_x_pm"])) < 1e-6
    # 12 % of slow-scan stretch: the cell is far from hexagonal, the sites still at thirds.
    stretched = table.assign(y_px=table["y_px"] * 1.12)
    res = analyse_lattice(stretched, pixel_size_nm=0.01)
    assert set(res["sublattice"]) == {0, 1}
    assert np.nanmax(np.abs(res["displacement_x_pm"])) < 1e-6


def test_hand_reassignment_is_kept_and_unassigned_columns_are_filled():
    res = analyse_lattice(_columns(Deformation()), pixel_size_nm=PS)
    edited = res.drop(columns=[c for c in res.columns if c.startswith(("strain", "displ"))])
    edited["sublattice"] = np.where(edited["sublattice"] == 3, 2, edited["sublattice"])
    again = analyse_lattice(edited, pixel_size_nm=PS)
    assert set(again["sublattice"]) == {0, 1, 2}
    assert again.attrs["sublattice_detection"]["source"] == "table"
    # The merged O sublattice keeps zero strain and displacement.
    o = again["sublattice"] == 2
    assert np.nanmax(np.abs(again["strain_xx"][o])) < 1e-9
    assert np.nanmax(np.abs(again["displacement_x_pm"][o])) < 1e-6
    fresh = analyse_lattice(edited, pixel_size_nm=PS, use_table_sublattices=False)
    assert set(fresh["sublattice"]) == {0, 1, 2, 3}


def test_error_estimates_match_the_scatter():
    cols = _columns(Deformation(), noise_px=0.2, seed=4)
    res = analyse_lattice(cols, pixel_size_nm=PS)
    sr = res["sublattice"] == 0
    assert res.attrs["sublattices"][0]["position_std_pm"] == pytest.approx(4.0, rel=0.1)
    inner = sr & res["x_px"].between(60, 340) & res["y_px"].between(60, 340)
    for name in ("strain_xx", "strain_yy", "strain_xy", "rotation_deg"):
        actual = float(np.std(res[name][inner] - res[f"true_{name}"][inner]))
        predicted = float(np.median(res[f"{name}_std"][inner]))
        assert predicted == pytest.approx(actual, rel=0.2), name


def test_uncalibrated_results_stay_in_pixels():
    cols = _columns(Deformation(shifts_pm=(("Ti", 0.0, 20.0),)))
    table = cols[["y_px", "x_px", "intensity", "element"]]
    res = analyse_lattice(table)
    assert res.attrs["length_unit"] == "px"
    assert "displacement_x_px" in res and "displacement_x_pm" not in res
    ti = (res["element"] == "Ti") & np.isfinite(res["displacement_x_px"])
    np.testing.assert_allclose(res["displacement_x_px"][ti], 1.0, atol=1e-6)  # 20 pm / 20 pm
    assert "cell_px" in res.attrs
    # The nm columns of a table give the pixel size when none is passed.
    res = analyse_lattice(cols)
    assert res.attrs["pixel_size_nm"] == pytest.approx(PS)


def test_bad_input_raises_clear_errors():
    cols = _columns(Deformation())
    with pytest.raises(InputError, match="y_px"):
        analyse_lattice(cols.drop(columns=["y_px"]))
    with pytest.raises(InputError, match="unknown option"):
        analyse_lattice(cols, pixel_size_nm=PS, neighbor_cells=1)
    with pytest.raises(InputError, match="too few"):
        analyse_lattice(cols.iloc[:4], pixel_size_nm=PS)
    with pytest.raises(InputError, match="parallel"):
        analyse_lattice(cols, pixel_size_nm=PS, cell_nm=((0, 1), (0, 2)))
    with pytest.raises(InputError, match="reference_sublattice"):
        analyse_lattice(cols, pixel_size_nm=PS, reference_sublattice=9)
    with pytest.raises(InputError, match="box"):
        analyse_lattice(cols, pixel_size_nm=PS, reference=(10, 5, 0, 3))
    nan = cols.copy()
    nan.loc[3, "x_px"] = np.nan
    with pytest.raises(InputError, match="NaN"):
        analyse_lattice(nan, pixel_size_nm=PS)
    rng = np.random.default_rng(0)
    glass = pd.DataFrame({"y_px": rng.uniform(0, 300, 400), "x_px": rng.uniform(0, 300, 400)})
    with pytest.raises(InputError, match="lattice"):
        analyse_lattice(glass)


def test_sublattices_when_a_parity_class_is_itself_a_mixture():
    # Brightness as a simulated SrTiO3 HAADF image gives it: Sr 128, Ti-O 46, O 10. The
    # first split (Sr + Ti-O against O) compares a bimodal class with a faint one.
    cols = _columns(Deformation())
    rng = np.random.default_rng(3)
    level = cols["element"].map({"Sr": 128.0, "Ti": 46.0, "O": 10.0}).to_numpy()
    cols["intensity"] = level * (1 + rng.normal(0, 0.08, len(cols)))
    res = analyse_lattice(cols, pixel_size_nm=PS)
    groups = res.groupby("sublattice")["element"].agg(lambda e: set(e))
    assert list(groups) == [{"Sr"}, {"Ti"}, {"O"}, {"O"}]
