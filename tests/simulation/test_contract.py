"""The public simulation contract other packages build on (names, dtypes, shapes)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.simulation import (
    MixConfig,
    SimulationParameters,
    SimulationResult,
    list_materials,
    random_parameters,
    simulate,
)

CONTRACT_COLUMNS = [
    "y_px",
    "x_px",
    "y_nm",
    "x_nm",
    "z_sum",
    "n_atoms",
    "elements",
    "visible",
    "region",
]


@pytest.mark.parametrize(
    "kw",
    [
        dict(material="MoS2", zone_axis="001", mode="haadf"),
        dict(
            material="graphene",
            zone_axis="001",
            mode="hrtem",
            energy_keV=80,
            cs_um=-15,
            defocus_nm=-5,
            contamination_coverage=0.3,
        ),
        dict(
            scene="particles",
            material="Au",
            particle_shape="decahedron",
            particle_diameter_nm=2.5,
            support_thickness_nm=3,
            pixel_size_nm=0.03,
        ),
        dict(
            scene="single_atoms",
            single_atom_element="Pt",
            single_atom_density_per_nm2=0.5,
            support_thickness_nm=10,
            pixel_size_nm=0.03,
        ),
    ],
)
def test_result_follows_the_contract(kw):
    p = SimulationParameters(shape_px=(96, 128), dose_e_per_A2=1e5, seed=3, **kw)
    r = simulate(p)
    assert isinstance(r, SimulationResult)
    assert r.image.shape == r.image_clean.shape == (96, 128)
    assert r.image.dtype == r.image_clean.dtype == np.float32
    assert r.pixel_size_nm == p.pixel_size_nm
    assert list(r.columns.columns) == CONTRACT_COLUMNS
    assert r.columns["visible"].dtype == bool
    assert r.heatmap.shape == (96, 128) and r.heatmap.dtype == np.float32
    assert r.heatmap.min() >= 0.0 and r.heatmap.max() <= 1.0
    assert set(r.masks) == {"classes", "particle", "column_labels"}
    assert r.masks["classes"].dtype == np.uint8 and r.masks["particle"].dtype == np.uint8
    assert r.masks["column_labels"].dtype == np.int32
    assert set(np.unique(r.masks["classes"])) <= {0, 1, 2, 3}
    assert r.parameters is p
    # Positions in nm are the pixel positions times the pixel size.
    np.testing.assert_allclose(r.columns.y_nm, r.columns.y_px * p.pixel_size_nm)
    # Every visible column has its own label and a heatmap peak of 1 near it.
    vis = np.nonzero(r.columns.visible.to_numpy())[0]
    assert len(vis) > 0
    labels = set(np.unique(r.masks["column_labels"])) - {0}
    assert labels <= set(vis + 1)
    inside = r.columns.iloc[vis]
    rr = np.clip(np.round(inside.y_px).astype(int), 0, 95)
    cc = np.clip(np.round(inside.x_px).astype(int), 0, 127)
    assert np.median(r.heatmap[rr, cc]) > 0.5
    assert np.isfinite(r.column_spacing_nm)


def test_listed_materials_cover_the_catalogue():
    mats = list_materials()
    for name in ("MoS2", "WS2", "graphene", "hBN", "Au", "Pt", "SrTiO3", "Si", "Ge", "GaN", "CdSe"):
        assert name in mats
    assert "011" in mats["Si"]["zone_axes"]
    assert set(mats["Au"]["zone_axes"]) == {"001", "011", "111"}
    assert mats["MoS2"]["kind"] == "layered"


def test_random_parameters_are_valid_and_reproducible():
    a = [random_parameters(np.random.default_rng(5), MixConfig()) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    ps = [random_parameters(rng) for _ in range(60)]
    assert {p.mode for p in ps} == {"haadf", "hrtem"}
    assert {"lattice", "particles", "single_atoms"} <= {p.scene for p in ps}
    assert len({p.material for p in ps if p.scene == "lattice"}) >= 6
