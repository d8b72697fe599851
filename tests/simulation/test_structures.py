"""Ground-truth geometry: projected spacings, column contents, defects, merging."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from napari_atomseg.simulation import SimulationParameters, simulate
from napari_atomseg.simulation.engine import _fov_bounds
from napari_atomseg.simulation.materials import column_cell, parse_zone_axis
from napari_atomseg.simulation.scene import build_scene, merge_atoms


def _nn_nm(columns, mask=None) -> np.ndarray:
    c = columns if mask is None else columns[mask]
    pts = np.stack([c.y_nm.to_numpy(), c.x_nm.to_numpy()], axis=1)
    d, _ = cKDTree(pts).query(pts, k=2)
    return d[:, 1]


def _lattice(**kw):
    base = dict(
        shape_px=(128, 128), pixel_size_nm=0.02, dose_e_per_A2=1e6, seed=4, rotation_deg=17.0
    )
    base.update(kw)
    return simulate(SimulationParameters(**base))


def test_mos2_projected_spacings():
    r = _lattice(material="MoS2", layers=1)
    cols = r.columns
    mo = cols.elements == "Mo"
    s2 = cols.elements == "S2"
    assert mo.sum() > 50 and s2.sum() > 50
    assert set(cols.elements) == {"Mo", "S2"}
    # Mo-S2 projected distance a / sqrt(3) = 0.1824 nm; Mo-Mo = a = 0.316 nm.
    assert np.median(_nn_nm(cols)) == pytest.approx(0.3160 / np.sqrt(3), abs=1e-3)
    assert np.median(_nn_nm(cols, mo.to_numpy())) == pytest.approx(0.3160, abs=1e-3)
    assert set(cols.z_sum[mo]) == {42} and set(cols.z_sum[s2]) == {32}


def test_mos2_bilayer_columns_hold_both_layers():
    r = _lattice(material="MoS2", layers=2)
    # In 2H stacking every column is the Mo of one layer over the S2 of the other.
    assert set(r.columns.elements) == {"MoS2"}
    assert set(r.columns.z_sum) == {74}


def test_si_011_dumbbell_separation():
    r = _lattice(material="Si", zone_axis="011", thickness_nm=5.0, pixel_size_nm=0.01)
    nn = _nn_nm(r.columns)
    assert np.median(nn) == pytest.approx(0.136, abs=1e-3)  # a / 4 = 0.1358 nm


def test_au_001_column_spacing_and_atoms_per_column():
    r = _lattice(material="Au", zone_axis="001", thickness_nm=4.078)
    assert np.median(_nn_nm(r.columns)) == pytest.approx(0.4078 / 2, abs=1e-3)
    # A 4.078 nm slab is 10 unit cells: one atom per cell in each [001] column.
    assert set(r.columns.n_atoms) == {10}
    assert set(r.columns.elements) == {"Au10"}


def test_srtio3_column_types():
    r = _lattice(material="SrTiO3", zone_axis="001", thickness_nm=3.905)
    assert set(r.columns.elements) == {"Sr10", "Ti10O10", "O10"}


def test_zone_axis_parsing_handles_four_indices():
    assert parse_zone_axis("11-20") == (1, 1, 0)
    assert parse_zone_axis("[0001]") == (0, 0, 1)
    assert parse_zone_axis("022") == (0, 1, 1)


def test_column_cell_area_is_cell_volume_over_repeat():
    cell = column_cell("Au", "011")
    assert cell.area_A2 * cell.repeat_A == pytest.approx(4.078**3, rel=1e-9)
    # The repeat of the conventional cubic lattice along [011] is a sqrt(2), with two
    # atoms per column (the fcc centring halves it physically; same structure).
    assert cell.repeat_A == pytest.approx(4.078 * np.sqrt(2), rel=1e-9)
    assert np.bincount(cell.atom_column).tolist() == [2, 2]


def test_merging_joins_close_atoms_only():
    yx = np.array([[0.0, 0.0], [0.0, 0.1], [0.0, 1.0], [5.0, 5.0]])
    el = np.array([0, 1, 0, 0])
    pos, counts, label = merge_atoms(yx, el, 2, merge_A=0.3)
    assert len(pos) == 3
    assert label[0] == label[1] != label[2]
    np.testing.assert_allclose(pos[label[0]], [0.0, 0.05])
    np.testing.assert_array_equal(counts[label[0]], [1, 1])


def test_vacancies_remove_the_requested_fraction():
    r = _lattice(
        material="MoS2", layers=1, vacancy_fraction=0.2, vacancy_element="S", shape_px=(256, 256)
    )
    s_sites = r.columns[r.columns.elements.str.startswith("S")]
    missing = 2 * len(s_sites) - s_sites.n_atoms.sum()
    assert missing / (2 * len(s_sites)) == pytest.approx(0.2, abs=0.04)
    assert set(r.columns[r.columns.elements.str.startswith("Mo")].n_atoms) == {1}


def test_substitution_puts_the_dopant_on_the_host_sites():
    r = _lattice(
        material="MoS2",
        layers=1,
        substitution="W:Mo",
        substitution_fraction=0.3,
        shape_px=(192, 192),
    )
    metal = r.columns[r.columns.elements.isin(["Mo", "W"])]
    assert (metal.elements == "W").mean() == pytest.approx(0.3, abs=0.08)
    assert set(r.columns.z_sum[r.columns.elements == "W"]) == {74}


def test_grain_boundary_gives_two_orientations():
    p = SimulationParameters(
        material="graphene",
        shape_px=(128, 128),
        pixel_size_nm=0.03,
        grain_boundary_deg=21.0,
        seed=2,
    )
    b = _fov_bounds(p)
    scene = build_scene(
        p, (b[0] - 10, b[1] + 10, b[2] - 10, b[3] + 10), b, np.random.default_rng(0)
    )
    pts = scene.column_yx_A
    _, idx = cKDTree(pts).query(pts, k=2)
    bond = pts[idx[:, 1]] - pts
    angles = np.degrees(np.arctan2(bond[:, 0], bond[:, 1])) % 60.0
    hist, _ = np.histogram(angles, bins=60, range=(0, 60))
    top = np.sort(hist)[::-1]
    assert top[1] > 0.2 * top[0]  # a second strong bond orientation
    # No two columns closer than half a bond after removing clashes at the boundary.
    d, _ = cKDTree(pts).query(pts, k=2)
    assert d[:, 1].min() > 0.5 * 1.42


def test_particle_columns_hold_every_atom():
    from napari_atomseg.simulation.particles import oriented_particle

    p = SimulationParameters(
        scene="particles",
        material="Au",
        particle_shape="icosahedron",
        particle_axis="5fold",
        particle_diameter_nm=2.0,
        shape_px=(128, 128),
        pixel_size_nm=0.05,
        seed=1,
    )
    r = simulate(p)
    n_atoms = len(oriented_particle("Au", "icosahedron", "5fold", 20.0, 0.0, 0.0, 0.0))
    part = r.columns[r.columns.region == "particle"]
    assert part.n_atoms.sum() == n_atoms
    assert (r.masks["particle"] == 1).any()
    # The particle mask covers the particle's columns.
    rr = np.round(part.y_px).astype(int).clip(0, 127)
    cc = np.round(part.x_px).astype(int).clip(0, 127)
    assert r.masks["particle"][rr, cc].mean() > 0.95


def test_single_atoms_sit_on_the_support_with_min_spacing():
    r = simulate(
        SimulationParameters(
            scene="single_atoms",
            single_atom_element="Pt",
            single_atom_density_per_nm2=1.0,
            support_thickness_nm=5,
            support_coverage=0.7,
            shape_px=(192, 192),
            pixel_size_nm=0.03,
            dose_e_per_A2=1e5,
            seed=8,
        )
    )
    atoms = r.columns[r.columns.region == "single_atom"]
    assert len(atoms) > 10
    assert set(atoms.elements) == {"Pt"}
    assert _nn_nm(atoms).min() >= 0.25 - 1e-9
    rr = np.round(atoms.y_px).astype(int).clip(0, 191)
    cc = np.round(atoms.x_px).astype(int).clip(0, 191)
    assert (r.masks["classes"][rr, cc] == 2).mean() > 0.9
