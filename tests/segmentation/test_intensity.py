"""Particles by Z contrast (segmentation.intensity), for images too coarse for lattice fringes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg._progress import drain
from napari_atomseg.segmentation.instances import particle_table
from napari_atomseg.segmentation.intensity import iter_particles_by_intensity
from tests._synth import OVERVIEW_PIXEL_SIZE_NM as PS_NM
from tests._synth import nanoparticle_overview


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("bright", [True, False])
def test_particles_found_with_their_sizes(bright: bool) -> None:
    image, mask, diameters = nanoparticle_overview(bright=bright)
    before = image.copy()
    result = drain(iter_particles_by_intensity(image, PS_NM, bright=bright))
    np.testing.assert_array_equal(image, before)  # input untouched
    assert result.task == "particles" and result.method == "intensity"
    assert result.class_names == ("background", "particle")
    assert _dice(result.labels == 1, mask) > 0.9
    table = result.details["particles"]
    assert len(table) == len(diameters)
    found = np.sort(table["equivalent_diameter_nm"].to_numpy())
    np.testing.assert_allclose(found, np.sort(diameters), atol=1.5 * PS_NM)


def test_the_carbon_gradient_is_not_a_particle() -> None:
    image, mask, _ = nanoparticle_overview(seed=2)
    result = drain(iter_particles_by_intensity(image, PS_NM))
    right = np.s_[:, 120:]  # the thick carbon side
    assert (result.labels[right] == 1).sum() <= 1.2 * mask[right].sum() + 5


def test_particle_table_of_a_known_disc() -> None:
    labels = np.zeros((40, 40), int)
    yy, xx = np.mgrid[:40, :40]
    labels[np.hypot(yy - 20, xx - 10) <= 5] = 1
    table = particle_table(labels, 0.5)
    (row,) = table.itertuples()
    assert (row.centroid_y_px, row.centroid_x_px) == pytest.approx((20.0, 10.0))
    assert row.area_px == (labels == 1).sum()
    assert row.equivalent_diameter_nm == pytest.approx(2 * np.sqrt(row.area_px / np.pi) * 0.5)
    assert row.centroid_x_nm == pytest.approx(5.0) and not row.touches_border
    assert particle_table(np.zeros((8, 8), int), None).empty
