"""The simulator's known deformation, and the analysis of a simulated HAADF image."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from napari_atomseg import analyse_lattice
from napari_atomseg.simulation import Deformation, SimulationParameters, simulate

A = 0.3905


@pytest.fixture(scope="module")
def pair():
    p = SimulationParameters(
        material="SrTiO3", shape_px=(160, 160), pixel_size_nm=0.02, dose_e_per_A2=1e5,
        thickness_nm=8, seed=1,
    )  # fmt: skip
    d = Deformation(strain_xx=0.02, rotation_deg=1.0, shifts_pm=(("Ti", 0.0, 20.0),))
    return simulate(p), simulate(p, d), d


def test_simulated_columns_move_as_the_deformation_says(pair):
    plain, deformed, d = pair
    c0, c1 = plain.columns, deformed.columns
    centre = np.array([159 / 2, 159 / 2]) * 0.02
    elements = {"Ti": c0["elements"].str.startswith("Ti").to_numpy()}
    expected = d.displace_nm(c0[["y_nm", "x_nm"]].to_numpy(), centre, elements)
    dist, _ = cKDTree(c1[["y_nm", "x_nm"]].to_numpy()).query(expected)
    inner = (np.abs(expected - centre) < 1.2).all(axis=1)
    assert np.max(dist[inner]) < 1e-9


def test_analysis_of_the_simulated_image(pair):
    _, deformed, _ = pair
    cols = deformed.columns[deformed.columns["visible"]]
    res = analyse_lattice(
        cols[["y_px", "x_px", "elements"]], image=deformed.image, pixel_size_nm=0.02,
        cell_nm=((0.0, A), (A, 0.0)),
    )  # fmt: skip
    kinds = res.groupby("sublattice")["elements"].agg(lambda e: {s[:2] for s in e})
    assert kinds[0] == {"Sr"} and kinds[1] == {"Ti"}
    ok = np.isfinite(res["strain_xx"])
    assert np.median(res["strain_xx"][ok]) == pytest.approx(0.02, abs=1e-6)
    assert np.median(res["rotation_deg"][ok]) == pytest.approx(1.0, abs=1e-4)
    ti = (res["sublattice"] == 1) & np.isfinite(res["displacement_x_pm"])
    assert np.median(res["displacement_x_pm"][ti]) == pytest.approx(20.0, abs=0.01)
    sr = res["sublattice"] == 0
    assert res["intensity_integrated"][sr].median() > res["intensity_integrated"][ti].median()
