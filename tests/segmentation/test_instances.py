"""Particle instances and their table; the particle-size measure; bright-field renderer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_atomseg.segmentation.instances import TABLE_COLUMNS, particle_instances
from napari_atomseg.segmentation.particle_scale import (
    TARGET_DIAMETER_PX,
    blob_diameter_px,
    particle_zoom,
)


def _discs(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for cy, cx in centres:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    return mask


def test_touching_particles_are_split_and_measured():
    mask = _discs((80, 120), [(40, 30), (40, 48), (15, 100)], 9.5)  # two touch, one alone
    mask[75, 5] = True  # a one-pixel speck is dropped
    instances, table = particle_instances(mask, pixel_size_nm=0.5)
    assert instances.dtype == np.int32 and instances.max() == 3 == len(table)
    assert set(TABLE_COLUMNS) <= set(table.columns)
    assert not instances[75, 5]
    # Each disc keeps its own label, and every mask pixel but the speck is labelled.
    assert len({instances[40, 30], instances[40, 48], instances[15, 100]}) == 3
    assert ((instances > 0) == mask).sum() == mask.size - 1
    alone = table.loc[table["label"] == instances[15, 100]].iloc[0]
    area = int(_discs((80, 120), [(15, 100)], 9.5).sum())
    assert alone["area_px"] == area
    assert alone["equivalent_diameter_px"] == pytest.approx(2 * math.sqrt(area / math.pi))
    assert alone["equivalent_diameter_nm"] == pytest.approx(alone["equivalent_diameter_px"] * 0.5)
    assert (alone["centroid_y_px"], alone["centroid_x_px"]) == pytest.approx((15, 100))
    assert not table["touches_border"].any()


def test_no_particles_gives_an_empty_table():
    instances, table = particle_instances(np.zeros((32, 32), bool))
    assert instances.max() == 0 and len(table) == 0 and "equivalent_diameter_px" in table


@pytest.mark.parametrize("diameter", [6.0, 12.0, 30.0])
def test_blob_diameter_follows_particle_size(diameter):
    rng = np.random.default_rng(1)
    n = 14 if diameter < 20 else 5
    centres = rng.uniform(diameter, 256 - diameter, size=(n, 2))
    image = 1.0 - 0.5 * _discs((256, 256), centres, diameter / 2) + rng.normal(0, 0.05, (256, 256))
    found = blob_diameter_px(image)
    assert found == pytest.approx(diameter, rel=0.35)
    zoom, _ = particle_zoom(image)
    assert zoom * found == pytest.approx(TARGET_DIAMETER_PX, rel=0.2) or zoom in (1.0, 2.0)


def test_featureless_image_is_left_at_its_sampling():
    image = np.random.default_rng(0).normal(size=(128, 128))
    assert particle_zoom(image) == (1.0, None)


def test_bright_field_renderer_truth_and_export():
    from napari_atomseg.simulation.bf_particles import random_bf_parameters, render_bf_particles

    rng = np.random.default_rng(5)
    params = random_bf_parameters(rng, diameter_px=(6, 9), shape_px=(160, 160))
    a = render_bf_particles(params)
    b = render_bf_particles(params)
    np.testing.assert_array_equal(a.image, b.image)  # deterministic given the seed
    assert a.image.shape == a.mask.shape == a.instances.shape == (160, 160)
    if params.quantise:
        assert np.all(a.image == np.round(a.image)) and 0 <= a.image.min() <= a.image.max() <= 255
    assert a.mask.any() and a.instances.max() >= 1
    assert np.array_equal(a.instances > 0, a.mask)
    # Particles are darker than the support on average (mass-thickness contrast).
    assert a.image[a.mask].mean() < a.image[~a.mask].mean()


def test_bright_field_truth_holds_only_the_particles_the_image_shows():
    """A particle whose contrast the noise swamps is not in the truth (an annotator would
    not mark it): starved of electrons, most particles are hidden; at a high dose with
    strong contrast, almost none; hidden + shown is every particle the pixels hold."""
    from dataclasses import replace

    from napari_atomseg.simulation.bf_particles import random_bf_parameters, render_bf_particles

    rng = np.random.default_rng(7)
    base = random_bf_parameters(rng, diameter_px=(6, 9), shape_px=(160, 160))
    clear = render_bf_particles(replace(base, dose_e_per_px=5e4, mass_thickness_nm=10.0))
    starved = render_bf_particles(replace(base, dose_e_per_px=0.05, mass_thickness_nm=200.0))
    shown_clear, shown_starved = int(clear.instances.max()), int(starved.instances.max())
    assert shown_clear + clear.hidden_particles == shown_starved + starved.hidden_particles
    assert clear.hidden_particles <= 0.05 * shown_clear
    assert starved.hidden_particles > 0.8 * (shown_starved + starved.hidden_particles)
    assert np.array_equal(starved.mask, starved.instances > 0)
    assert int(starved.all_instances.max()) == shown_starved + starved.hidden_particles
    assert np.array_equal(starved.all_instances > 0, clear.all_instances > 0)
