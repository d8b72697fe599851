"""The default method's guard, the synthetic label rule, the final split, the task options."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.segmentation.guard import (
    GROSS_DISAGREEMENT,
    contamination_decision,
    input_warnings,
    lattice_in_view,
    noise_fraction,
)
from napari_atomseg.simulation import SimulationParameters, simulate


def _labels(shape, amorphous_fraction):
    labels = np.zeros(shape, np.uint8)
    labels[:, : int(shape[1] * amorphous_fraction)] = 1
    return labels


def test_no_lattice_means_no_crystal():
    unet = _labels((32, 32), 0.25)
    unet[:4] = 2  # vacuum stays vacuum
    out, report = contamination_decision(unet, unet, lattice=False, fallback=True)
    assert not (out == 0).any() and (out[:4] == 2).all()
    assert report.has_lattice is False and "no lattice" in report.warnings[0]


@pytest.mark.parametrize("fallback", [True, False])
def test_gross_disagreement_falls_back_only_for_auto(fallback):
    unet = _labels((40, 40), 0.9)
    bragg = _labels((40, 40), 0.9 - GROSS_DISAGREEMENT - 0.1)
    out, report = contamination_decision(unet, bragg, lattice=True, fallback=fallback)
    if fallback:
        assert report.method_used == "bragg (fallback)" and np.array_equal(out, bragg)
    else:
        assert report.method_used == "unet" and np.array_equal(out, unet)
    assert "Bragg filter" in report.warnings[0]
    agree, quiet = contamination_decision(unet, unet, lattice=True, fallback=True)
    assert np.array_equal(agree, unet) and not quiet.warnings


def test_lattice_in_view_and_input_checks():
    lattice = simulate(
        SimulationParameters(material="MoS2", shape_px=(128, 128), pixel_size_nm=0.02, seed=1)
    ).image
    assert lattice_in_view(lattice)
    rng = np.random.default_rng(2)
    assert not lattice_in_view(rng.normal(size=(128, 128)))
    assert noise_fraction(rng.normal(size=(64, 64))) > 0.9
    assert noise_fraction(np.outer(np.arange(64.0), np.ones(64))) < 0.01
    warns = input_warnings(rng.integers(0, 5, (64, 64)).astype(float), 0.01, 0.05, 3.0)
    assert any("grey levels" in w for w in warns) and any("period" in w for w in warns)


def _faint_hexagonal_lattice(seed: int, amplitude: float = 0.1, n: int = 192) -> np.ndarray:
    """Three cosines 60 degrees apart (period 7 px) under white noise of unit variance."""
    y, x = np.mgrid[:n, :n].astype(float)
    waves = sum(
        np.cos(2 * np.pi / 7.0 * (x * np.cos(a) + y * np.sin(a))) for a in np.deg2rad([10, 70, 130])
    )
    return amplitude * waves + np.random.default_rng(seed).normal(size=(n, n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_faint_lattice_is_seen_by_its_closing_spots_and_noise_is_not(seed):
    """A lattice whose spots are too weak one by one (as the transfer function leaves
    graphene's in some full-multislice images) is still a lattice: three weaker spots
    close as g1 - g2 = g3. Noise, white or smoothed far beyond its pixel (where the
    spectrum's steep fall once made maxima near Nyquist), is not a lattice."""
    from scipy import ndimage as ndi

    from napari_atomseg.scale.spectrum import closing_spots, find_spots, power_spectrum

    spec = power_spectrum(_faint_hexagonal_lattice(seed))
    assert find_spots(spec) == []  # no spot passes the single-spot threshold
    spots = closing_spots(spec)
    assert len(spots) == 3 and all(abs(1 / s.k - 7.0) < 0.2 for s in spots)
    assert lattice_in_view(_faint_hexagonal_lattice(seed))
    noise = np.random.default_rng(100 + seed).normal(size=(192, 192))
    for image in (noise, ndi.gaussian_filter(noise, 2.0)):
        assert closing_spots(power_spectrum(image)) == []
        assert not lattice_in_view(image)


def test_covered_bulk_crystal_stays_crystal_covered_monolayer_does_not():
    from napari_atomseg.segmentation.synthetic_labels import visible_lattice_labels
    from napari_atomseg.segmentation.training import sim_classes_to_labels

    common = {"shape_px": (192, 192), "pixel_size_nm": 0.03, "contamination_coverage": 0.4}
    bulk = simulate(
        SimulationParameters(
            material="SrTiO3", mode="haadf", thickness_nm=20, contamination_thickness_nm=1.5,
            seed=4, **common,
        )
    )  # fmt: skip
    geometric = sim_classes_to_labels(bulk.masks, "contamination")
    assert (geometric == 1).mean() > 0.2  # the engine calls the covered part contamination
    visible = visible_lattice_labels(bulk.image_clean, geometric, bulk.masks["particle"])
    assert (visible == 0).mean() > 0.95  # ... but its lattice shows through: crystal
    # The training task applies the rule to bulk crystals only: monolayers keep the masks.
    from napari_atomseg.segmentation.training import _is_bulk_lattice

    assert _is_bulk_lattice(bulk.parameters)
    assert not _is_bulk_lattice(SimulationParameters(material="graphene"))
    assert not _is_bulk_lattice(SimulationParameters(material="Au", scene="particles"))


def test_final_split_is_date_grouped_and_fixed():
    from napari_atomseg.segmentation.data import date_of, final_split

    names = [f"2014_0{m}01_Gr_{k}" for m in range(1, 10) for k in range(3)]
    selection, final = final_split(names)
    assert len(final) == 9 and len(selection) == 18
    assert not {date_of(names[i]) for i in final} & {date_of(names[i]) for i in selection}
    again = final_split(names)
    assert np.array_equal(again[1], final)


def test_task_scale_jitter_and_real_pair_scales():
    from napari_atomseg.segmentation.training import SegmentationTask

    def params(rng):
        return SimulationParameters(material="MoS2", shape_px=(64, 64), pixel_size_nm=0.02,
                                    seed=int(rng.integers(1e6)))  # fmt: skip

    task = SegmentationTask(working_pixel_size_nm=0.05, tile_px=32, parameters_fn=params,
                            scale_jitter=0.5)  # fmt: skip
    assert task.real_pair_scales() == pytest.approx((np.exp(-0.5), 1.0, np.exp(0.5)))
    x, y = task.make_example(np.random.default_rng(0))
    assert x.shape == (1, 32, 32) and y.shape == (32, 32)
    image = np.random.default_rng(1).normal(size=(100, 100)).astype(np.float32)
    mask = np.zeros((100, 100), bool)
    small = task.real_example(image, mask, 0.05, scale=2.0)[0]
    assert small.shape == (1, 50, 50)
    with pytest.raises(Exception, match="scale-free"):
        SegmentationTask(mode="particles", working_pixel_size_nm=0.08, particle_diameter_px=(5, 40))
    free = SegmentationTask(
        mode="particles", working_pixel_size_nm=None, tile_px=48, particle_diameter_px=(5, 40),
        bf_fraction=1.0,
    )  # fmt: skip
    x, y = free.make_example(np.random.default_rng(3))
    assert x.shape == (1, 48, 48) and set(np.unique(y)) <= {0, 1}
    assert free.card_defaults()["input"]["working_pixel_size_nm"] is None
