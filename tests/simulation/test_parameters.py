"""Parameter validation: absurd values are refused with messages that name the problem."""

from __future__ import annotations

import json

import pytest

from napari_atomseg.errors import InputError
from napari_atomseg.simulation import SimulationParameters, estimate_memory_bytes


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(material="Unobtainium"), "material: unknown 'Unobtainium'"),
        (dict(material="MoS2", zone_axis="011"), "zone_axis: '011' is not available for MoS2"),
        (dict(zone_axis="xyz"), "zone_axis: cannot parse"),
        (dict(mode="sem"), "mode: 'sem' is not one of"),
        (dict(dose_e_per_A2=-5.0), "dose_e_per_A2"),
        (dict(pixel_size_nm=0.0), "pixel_size_nm"),
        (dict(pixel_size_nm=2e-3 * 0.5), "pixel_size_nm"),
        (dict(shape_px=(8, 256)), "shape_px"),
        (dict(layers=0), "layers"),
        (dict(material="Au", thickness_nm=500.0), "thickness_nm"),
        (dict(vacancy_fraction=0.9), "vacancy_fraction"),
        (dict(substitution="W"), "substitution: 'W' must look like 'W:Mo'"),
        (dict(substitution="Xx:Mo"), "not a chemical symbol"),
        (dict(scene="particles", material="MoS2"), "cannot be a nanoparticle"),
        (dict(scene="particles", material="Au", particle_shape="cube"), "particle_shape"),
        (dict(scene="particles", material="Au", particle_axis="001"), "particle_axis"),
        (dict(scene="single_atoms"), "single_atom_density_per_nm2: must be > 0"),
        (dict(seed=-1), "seed"),
        (dict(energy_keV=5.0), "energy_keV"),
        (dict(shape_px=(4096, 4096), pixel_size_nm=0.1), "field of view"),
    ],
)
def test_absurd_parameters_are_refused_with_a_clear_message(kw, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SimulationParameters(**kw)


def test_multislice_refuses_large_fields_and_coarse_pixels():
    with pytest.raises(InputError, match="too large for multislice"):
        SimulationParameters(mode="haadf_multislice", shape_px=(512, 512), pixel_size_nm=0.02)
    with pytest.raises(InputError, match="too coarse for multislice"):
        SimulationParameters(mode="haadf_multislice", shape_px=(64, 64), pixel_size_nm=0.08)


def test_memory_estimate_beyond_ram_is_refused(monkeypatch):
    from napari_atomseg.simulation import parameters

    monkeypatch.setattr(parameters, "available_memory_bytes", lambda: 2 * 1024**3)
    p = SimulationParameters(shape_px=(256, 256))  # fine with 2 GB
    assert estimate_memory_bytes(p) < 0.8 * 2 * 1024**3
    with pytest.raises(InputError, match=r"memory: this simulation needs about .* GB"):
        SimulationParameters(shape_px=(8192, 8192), pixel_size_nm=0.02)


def test_multislice_memory_estimate_counts_the_probe_batch(monkeypatch):
    from napari_atomseg.simulation import parameters

    monkeypatch.setattr(parameters, "available_memory_bytes", lambda: 10**13)
    small = SimulationParameters(
        mode="haadf_multislice",
        shape_px=(24, 24),
        pixel_size_nm=0.04,
        multislice_sampling_nm=0.0075,
        frozen_phonons=1,
    )
    # Measured peak of this run: 4.7 GB (240 probe waves on a 435^2 grid).
    assert 3.5e9 < estimate_memory_bytes(small) < 7e9
    # The largest multislice field allowed by the other checks (8 nm at 0.05 nm/px) needs
    # tens of GB: refused on a 16 GB machine with the estimate in the message.
    monkeypatch.setattr(parameters, "available_memory_bytes", lambda: 16 * 1024**3)
    with pytest.raises(InputError, match=r"memory: .* needs about \d+\.\d GB but only 17\.2 GB"):
        SimulationParameters(mode="haadf_multislice", shape_px=(160, 160), pixel_size_nm=0.05)


def test_dict_and_json_round_trip():
    p = SimulationParameters(material="Au", zone_axis="011", thickness_nm=3.5, drift_nm=(0.1, 0.2))
    q = SimulationParameters.from_dict(json.loads(p.to_json()))
    assert q == p
    assert isinstance(q.shape_px, tuple) and isinstance(q.drift_nm, tuple)


def test_unknown_keys_are_refused():
    with pytest.raises(InputError, match=r"unknown field.*pixelsize"):
        SimulationParameters.from_dict({"pixelsize": 0.02})


def test_zone_axis_accepts_equivalent_spellings():
    p = SimulationParameters(material="GaN", zone_axis="[11-20]")
    assert p.zone_axis == "[11-20]"
    SimulationParameters(material="Si", zone_axis="[0 1 1]")
