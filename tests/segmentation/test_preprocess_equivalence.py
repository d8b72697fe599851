"""The fast spike filter gives exactly the pixels of the plain rank-filter algorithm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_atomseg.segmentation.preprocess import _median3, median_filter, remove_spikes
from tests._data import shared_path
from tests._synth import cosine_hex_lattice


def reference_remove_spikes(image: np.ndarray, threshold_sigma: float = 8.0):
    """The algorithm as first written: ndimage's median, MAD of the difference."""
    img = np.asarray(image, dtype=np.float32)
    med = ndi.median_filter(img, size=3, mode="mirror")
    diff = img - med
    sigma = 1.4826 * float(np.median(np.abs(diff - np.median(diff))))
    if sigma == 0.0:
        sigma = float(diff.std())
    if sigma == 0.0:
        return img.copy(), 0
    spikes = np.abs(diff) > threshold_sigma * sigma
    out = img.copy()
    out[spikes] = med[spikes]
    return out, int(np.count_nonzero(spikes))


@pytest.mark.parametrize("shape", [(16, 16), (17, 40), (129, 64)])
def test_median3_equals_rank_filter_with_ties_and_edges(shape):
    rng = np.random.default_rng(sum(shape))
    continuous = rng.normal(size=shape).astype(np.float32)
    ties = rng.integers(0, 3, size=shape).astype(np.float32)  # many equal values
    for image in (continuous, ties):
        expected = ndi.median_filter(image, size=3, mode="mirror")
        np.testing.assert_array_equal(_median3(image), expected)
        np.testing.assert_array_equal(median_filter(image, 3), expected)
    # Other sizes still go through ndimage.
    np.testing.assert_array_equal(
        median_filter(continuous, 5), ndi.median_filter(continuous, size=5, mode="mirror")
    )


def test_remove_spikes_same_as_reference_on_injected_spikes():
    rng = np.random.default_rng(7)
    shape = (192, 160)
    image = (100 + 10 * cosine_hex_lattice(shape, 5.5) + rng.normal(0, 2, shape)).astype(np.float32)
    where = rng.choice(image.size, 60, replace=False)
    image.flat[where] += rng.choice([-1.0, 1.0], 60) * rng.uniform(40, 400, 60)
    out, n = remove_spikes(image)
    ref, n_ref = reference_remove_spikes(image)
    np.testing.assert_array_equal(out, ref)
    assert n == n_ref
    replaced = set(np.flatnonzero(out != image))
    # Every strong injected spike is caught; nothing else but a rare noise outlier.
    strong = {int(i) for i in where if abs(image.flat[i] - ref.flat[i]) > 0}
    assert strong <= replaced and len(strong) >= 55
    assert len(replaced - set(where.tolist())) <= 2


def test_remove_spikes_same_as_reference_on_real_graphene():
    from napari_atomseg.segmentation.data import load_graphene_contamination

    items = load_graphene_contamination(shared_path("graphene_contamination"))
    for item in items[:8]:
        out, n = remove_spikes(item.image)
        ref, n_ref = reference_remove_spikes(item.image)
        np.testing.assert_array_equal(out, ref)
        assert n == n_ref
