"""Mixtures: shipped YAML files, validation, and the spread of random recipes."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from napari_atomseg.errors import InputError
from napari_atomseg.simulation import MixConfig, load_mix, random_parameters
from napari_atomseg.simulation.mix import MIXES_DIR


def test_default_yaml_equals_the_dataclass_defaults():
    assert MixConfig.from_yaml(MIXES_DIR / "default.yaml") == MixConfig()


@pytest.mark.parametrize("name", ["default", "atoms", "particles"])
def test_shipped_mixes_load_and_produce_valid_recipes(name):
    mix = load_mix(name)
    rng = np.random.default_rng(1)
    params = [random_parameters(rng, mix) for _ in range(40)]
    assert all(p.shape_px == mix.shape_px for p in params)


def test_atoms_mix_favours_single_atoms_in_haadf():
    rng = np.random.default_rng(0)
    ps = [random_parameters(rng, load_mix("atoms")) for _ in range(200)]
    scenes = collections.Counter(p.scene for p in ps)
    assert scenes["single_atoms"] > 0.45 * len(ps)
    assert sum(p.mode == "haadf" for p in ps) > 0.8 * len(ps)


def test_default_mix_spans_dose_pixel_size_and_conditions():
    rng = np.random.default_rng(3)
    ps = [random_parameters(rng) for _ in range(400)]
    haadf = [p.dose_e_per_A2 for p in ps if p.mode == "haadf"]
    assert min(haadf) < 1e4 and max(haadf) > 1e6
    px = [p.pixel_size_nm for p in ps]
    assert min(px) < 0.01 and max(px) > 0.06
    assert any(p.contamination_coverage > 0 for p in ps)
    assert any(p.vacancy_fraction > 0 for p in ps)
    assert any(p.grain_boundary_deg > 0 for p in ps)
    assert any(p.scan_jitter_px > 0 for p in ps)
    assert any(p.cs_um > 300 for p in ps)  # uncorrected microscopes too
    hrtem = [p for p in ps if p.mode == "hrtem" and abs(p.cs_um) < 100]
    # Corrected HRTEM: both white-atom (Cs < 0) and black-atom (Cs > 0) settings.
    assert any(p.cs_um < 0 for p in hrtem) and any(p.cs_um > 0 for p in hrtem)


def test_yaml_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modes: {haadf: 1.0}\nmaterialz: {Au: 1}\n")
    with pytest.raises(InputError, match=r"unknown key.*materialz"):
        MixConfig.from_yaml(bad)
    bad.write_text("materials: {Kryptonite: 1.0}\n")
    with pytest.raises(InputError, match="materials: unknown entries Kryptonite"):
        MixConfig.from_yaml(bad)
    bad.write_text("p_tilt: 1.5\n")
    with pytest.raises(InputError, match=r"p_tilt: 1\.5 is not a probability"):
        MixConfig.from_yaml(bad)
    bad.write_text("pixel_size_nm_log: [0.05, 0.01]\n")
    with pytest.raises(InputError, match=r"expected \[low, high\]"):
        MixConfig.from_yaml(bad)
    with pytest.raises(InputError, match="no such file"):
        MixConfig.from_yaml(tmp_path / "missing.yaml")


def test_yaml_round_trip(tmp_path):
    mix = MixConfig(name="mine", shape_px=(128, 96), modes={"haadf": 1.0, "hrtem": 0.0})
    path = tmp_path / "mine.yaml"
    path.write_text(mix.to_yaml())
    assert MixConfig.from_yaml(path) == mix
    p = random_parameters(np.random.default_rng(0), mix)
    assert p.mode == "haadf" and p.shape_px == (128, 96)


def test_crystals_are_imaged_with_a_sharp_source_single_atoms_with_any():
    """``crystal_source_size_nm_log``: lattices and particles draw their effective source
    from it (log-uniform), single atoms keep the broad ``source_size_nm`` of survey images.
    With the broad range for every scene, most lattices' columns were unresolved."""
    from dataclasses import replace
    from pathlib import Path

    shipped = MixConfig.from_yaml(Path(__file__).parents[2] / "configs" / "atoms_mix_v2.yaml")
    mix = replace(shipped, crystal_source_size_nm_log=(0.03, 0.25))
    rng = np.random.default_rng(4)
    ps = [random_parameters(rng, mix) for _ in range(300)]
    crystal = [
        p.source_size_nm for p in ps if p.mode == "haadf" and p.scene in ("lattice", "particles")
    ]
    single = [p.source_size_nm for p in ps if p.mode == "haadf" and p.scene == "single_atoms"]
    assert len(crystal) > 30 and len(single) > 30
    assert min(crystal) >= 0.03 and max(crystal) <= 0.25 and np.median(crystal) < 0.12
    assert max(single) > 0.3  # survey-like broad sources stay for single atoms
    with pytest.raises(InputError, match="crystal_source_size_nm_log"):
        MixConfig(crystal_source_size_nm_log=(0.0, 0.2))
