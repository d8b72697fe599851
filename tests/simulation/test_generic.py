"""Generic lattices (random 2-D crystals as a simulator material) and empty lattice sites."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_numbers
from scipy.spatial import cKDTree

from napari_atomseg.errors import InputError
from napari_atomseg.simulation import (
    MixConfig,
    SimulationParameters,
    generate_library,
    open_library,
    random_parameters,
    simulate,
)
from napari_atomseg.simulation.generic import (
    GenericLattice,
    GenericRanges,
    GenericSite,
    generic_column_cell,
    random_generic_lattice,
)
from napari_atomseg.simulation.lattice2d import BRAVAIS
from napari_atomseg.simulation.scene import build_scene

#: a square lattice with a bright W site and a faint S2 site at the cell centre
SQUARE = GenericLattice(
    kind="square",
    a_nm=0.32,
    sites=(GenericSite((0.0, 0.0), "W", 1), GenericSite((0.5, 0.5), "S", 2)),
    repeat_nm=0.3,
)


def _ranges(**kw) -> GenericRanges:
    return GenericRanges(
        bravais={k: 1.0 for k in BRAVAIS}, sublattices={"1": 1.0, "2": 1.0, "3": 1.0}, **kw
    )


def test_spec_round_trips_and_builds_the_column_cell():
    again = GenericLattice.from_json(SQUARE.to_json())
    assert again == SQUARE
    cell = generic_column_cell(SQUARE.to_json())
    np.testing.assert_allclose(np.abs(np.linalg.det(cell.basis_A)), 3.2**2)
    np.testing.assert_allclose(cell.column_yx_A[1], [1.6, 1.6], atol=1e-9)
    assert cell.repeat_A == pytest.approx(3.0)
    # One W atom in column 0 and two S atoms in column 1 per repeat, at distinct depths.
    assert sorted(cell.atom_z[cell.atom_column == 0]) == [74]
    assert sorted(cell.atom_z[cell.atom_column == 1]) == [16, 16]
    assert np.all((cell.atom_depth_A >= 0) & (cell.atom_depth_A < 3.0))
    assert len(set(np.round(cell.atom_depth_A[cell.atom_column == 1], 6))) == 2
    assert cell.nearest_neighbour_A() == pytest.approx(10 * SQUARE.nearest_neighbour_nm())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "cubic"}, "kind 'cubic' is not one of"),
        ({"sites": [{"fraction": [0, 0], "element": "Xx"}]}, "not a chemical symbol"),
        ({"sites": [{"fraction": [0, 0], "element": "W", "atoms": 12}]}, "atoms per repeat 12"),
        (
            {
                "sites": [
                    {"fraction": [0, 0], "element": "W"},
                    {"fraction": [0.05, 0.0], "element": "S"},
                ]
            },
            r"two columns are 0\.016 nm apart",
        ),
        ({"colour": "red"}, "unknown key"),
        ({"strain": [[0.5, 0], [0, 0]]}, "strain must be"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(change, message):
    data = SQUARE.to_dict()
    data.update(change)
    with pytest.raises(InputError, match=message):
        GenericLattice.from_json(json.dumps(data))


def test_parameters_need_a_valid_spec_and_round_trip():
    with pytest.raises(InputError, match="material 'generic' needs a lattice"):
        SimulationParameters(material="generic")
    with pytest.raises(InputError, match="not valid JSON"):
        SimulationParameters(material="generic", generic_lattice="{nope")
    p = SimulationParameters(material="generic", generic_lattice=SQUARE.to_json(), thickness_nm=2.0)
    assert SimulationParameters.from_dict(json.loads(p.to_json())) == p


def test_random_lattices_span_every_bravais_type_spacing_and_ratio():
    rng = np.random.default_rng(0)
    ranges = _ranges(p_dumbbell=0.3)
    kinds, counts, dumbbells = collections.Counter(), collections.Counter(), []
    for _ in range(300):
        g = random_generic_lattice(rng, ranges)
        kinds[g.kind] += 1
        weight = [s.atoms * atomic_numbers[s.element] ** 1.5 for s in g.sites]
        # The brightest site sets the scale; the others are 0.1-1 of it (to the nearest
        # element, so a little beyond at either end).
        assert min(weight) / max(weight) > 0.05
        counts[len(g.sites)] += 1
        nn = g.nearest_neighbour_nm()
        lattice_nn = GenericLattice(
            g.kind, g.a_nm, g.sites[:1], g.b_nm, g.gamma_deg, g.strain, g.repeat_nm
        ).nearest_neighbour_nm()
        assert lattice_nn >= 0.11  # the Bravais lattice itself is never finer than 0.12 nm
        if nn < 0.116:  # a dumbbell: two sites 0.08-0.15 nm apart
            dumbbells.append(nn)
        assert 0.07 < nn < 0.65
    assert set(kinds) == set(BRAVAIS)
    assert {1, 2, 3} <= set(counts)  # and 4 with a dumbbell
    assert dumbbells and min(dumbbells) >= 0.079


def test_generic_lattice_images_like_any_material():
    p = SimulationParameters(
        material="generic",
        generic_lattice=SQUARE.to_json(),
        thickness_nm=0.3,
        shape_px=(96, 96),
        pixel_size_nm=0.02,
        rotation_deg=17.0,
        dose_e_per_A2=1e6,
        seed=2,
    )
    r = simulate(p)
    t = r.columns
    assert set(t.elements) == {"W", "S2"}
    inner = t[t.y_px.between(5, 90) & t.x_px.between(5, 90)]
    yx = inner[["y_px", "x_px"]].to_numpy() * p.pixel_size_nm
    d, _ = cKDTree(yx).query(yx, k=2)
    np.testing.assert_allclose(np.median(d[:, 1]), 0.32 / np.sqrt(2), rtol=0.02)
    img = r.image_clean
    at = lambda rows: img[rows.y_px.round().astype(int), rows.x_px.round().astype(int)]  # noqa: E731
    assert at(inner[inner.elements == "W"]).mean() > 1.5 * at(inner[inner.elements == "S2"]).mean()
    hrtem = simulate(p.replace(mode="hrtem", energy_keV=80.0, defocus_nm=-5.0, cs_um=-15.0))
    assert len(hrtem.columns) == len(t) and hrtem.image.std() > 0


def test_generic_lattice_builds_explicit_atoms_for_multislice():
    p = SimulationParameters(
        material="generic", generic_lattice=SQUARE.to_json(), thickness_nm=0.9, shape_px=(40, 40)
    )
    bounds = (-5.0, 12.0, -5.0, 12.0)
    fov = (0.0, 7.8, 0.0, 7.8)
    fast = build_scene(p, bounds, fov, np.random.default_rng(1))
    explicit = build_scene(p, bounds, fov, np.random.default_rng(1), explicit=True)
    # Same columns; 3 repeats: 3 W and 6 S atoms per column pair.
    np.testing.assert_allclose(
        np.sort(fast.column_yx_A, axis=0), np.sort(explicit.column_yx_A, axis=0), atol=1e-6
    )
    assert sorted(fast.column_counts.sum(1).tolist()) == sorted(
        explicit.column_counts.sum(1).tolist()
    )
    assert set(fast.column_counts.sum(1).tolist()) == {3, 6}


def test_empty_sites_leave_no_column_and_no_signal():
    base = SimulationParameters(
        material="MoS2", shape_px=(96, 96), pixel_size_nm=0.02, dose_e_per_A2=1e6, seed=4
    )
    full = simulate(base)
    holed = simulate(base.replace(column_vacancy_fraction=0.2))
    assert 0.7 * len(full.columns) < len(holed.columns) < 0.9 * len(full.columns)
    # Every remaining column is a site of the full lattice; the missing sites are dark.
    a = full.columns[["y_px", "x_px"]].to_numpy()
    b = holed.columns[["y_px", "x_px"]].to_numpy()
    d, _ = cKDTree(a).query(b)
    assert d.max() < 1e-6
    d_back, _ = cKDTree(b).query(a)
    missing = full.columns[(d_back > 1e-6) & (full.columns.elements == "Mo")]
    missing = missing[missing.y_px.between(3, 92) & missing.x_px.between(3, 92)]
    assert len(missing) >= 5
    img = holed.image_clean
    mo_peak = np.median(
        img[holed.columns.y_px.round().astype(int), holed.columns.x_px.round().astype(int)][
            (holed.columns.elements == "Mo").to_numpy()
        ]
    )
    at_missing = img[missing.y_px.round().astype(int), missing.x_px.round().astype(int)]
    assert np.all(at_missing < 0.5 * mo_peak)


def test_mix_draws_generic_lattices_and_empty_sites_only_when_asked():
    mix = MixConfig(
        scenes={"lattice": 1.0},
        materials={"generic": 1.0},
        hrtem_materials={"generic": 1.0},
        p_column_vacancies=0.5,
    )
    rng = np.random.default_rng(3)
    ps = [random_parameters(rng, mix) for _ in range(60)]
    assert all(p.material == "generic" and p.generic_lattice for p in ps)
    assert 10 < sum(p.column_vacancy_fraction > 0 for p in ps) < 50
    default = [random_parameters(np.random.default_rng(3)) for _ in range(20)]
    assert not any(p.column_vacancy_fraction or p.generic_lattice for p in default)


def test_mix_refuses_bad_generic_ranges():
    with pytest.raises(InputError, match="generic_spacing_nm_log"):
        MixConfig(generic_spacing_nm_log=(0.05, 0.6))
    with pytest.raises(InputError, match="generic_bravais: unknown entries cubic"):
        MixConfig(generic_bravais={"cubic": 1.0})


def test_generic_recipes_survive_the_library(tmp_path):
    mix = MixConfig(
        shape_px=(40, 40),
        pixel_size_nm_log=(0.02, 0.03),
        scenes={"lattice": 1.0},
        materials={"generic": 1.0},
        hrtem_materials={"generic": 1.0},
        p_column_vacancies=1.0,
    )
    out = tmp_path / "lib.zarr"
    generate_library(out, 2, mix, seed=5, scheduler="synchronous", chunk_images=2)
    lib = open_library(out)
    for i in range(2):
        p = lib.parameters(i)
        assert p.material == "generic" and p.column_vacancy_fraction > 0
        np.testing.assert_array_equal(lib.result(i).image, simulate(p).image)


def test_a_draw_the_lattice_refuses_is_redrawn_not_raised():
    """About 3 draws in 10,000 of the mix's ranges make a cell over 5 nm (sites close
    together in an oblique cell); such a draw once stopped a training run. Seed 4752's
    first draw is one: the public function redraws, the valid draws are unchanged."""
    from napari_atomseg.simulation import generic
    from napari_atomseg.simulation.mix import load_mix
    from napari_atomseg.simulation.mix_realism import generic_ranges

    repo = Path(__file__).parents[2]
    ranges = generic_ranges(load_mix(repo / "configs" / "atoms_mix_v2.yaml"))
    with pytest.raises(InputError, match="a_nm and b_nm"):
        generic._draw_generic_lattice(np.random.default_rng(4752), ranges)
    lattice = generic.random_generic_lattice(np.random.default_rng(4752), ranges)
    assert 0.05 <= lattice.a_nm <= 5.0
    first = generic._draw_generic_lattice(np.random.default_rng(4753), ranges)
    assert generic.random_generic_lattice(np.random.default_rng(4753), ranges) == first
