"""The block-wise clean-up gives the masks of the plain whole-image algorithms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_atomseg.segmentation.cleanup import (
    _blur,
    clean_labels,
    fill_holes,
    remove_small_regions,
    smooth_boundaries,
)
from tests._data import shared_path

_EIGHT = np.ones((3, 3), dtype=bool)


# --- the plain algorithms, as first written (whole image, no blocks or crops) ---------


def reference_smooth(lab: np.ndarray, sigma_px: float) -> np.ndarray:
    classes = np.unique(lab)
    if sigma_px == 0 or classes.size < 2:
        return lab.copy()

    def blur(ind):
        return ndi.gaussian_filter(ind.astype(np.float32), sigma_px, mode="nearest", truncate=3.0)

    out = lab.copy()
    if classes.size == 2:
        lo, hi = classes
        frac = blur(lab == hi)
        out[frac > 0.5] = hi
        out[frac < 0.5] = lo
        return out
    best = np.full(lab.shape, -1.0, dtype=np.float32)
    for c in classes:
        blurred = blur(lab == c) + (lab == c) * np.float32(1e-4)
        better = blurred > best
        out[better] = c
        best[better] = blurred[better]
    return out


def reference_small_regions(lab: np.ndarray, min_region_px: int) -> np.ndarray:
    drop = np.zeros(lab.shape, dtype=bool)
    for c in np.unique(lab):
        comp, _ = ndi.label(lab == c, structure=_EIGHT)
        small = np.bincount(comp.ravel()) < min_region_px
        small[0] = False
        drop |= small[comp]
    if not drop.any() or drop.all():
        return lab.copy()
    _, (iy, ix) = ndi.distance_transform_edt(drop, return_indices=True)
    return lab[iy, ix]


def reference_fill_holes(lab: np.ndarray, max_hole_px: int | None = None) -> np.ndarray:
    out = lab.copy()
    for c in [c for c in np.unique(lab) if c != 0]:
        inside = out == c
        holes = ndi.binary_fill_holes(inside) & ~inside
        if max_hole_px is not None:
            comp, _ = ndi.label(holes, structure=_EIGHT)
            keep = np.bincount(comp.ravel()) <= max_hole_px
            keep[0] = False
            holes = keep[comp]
        out[holes] = c
    return out


def blobs(shape, n_classes, seed, scale=6.0, rare_last=False):
    """Random label image of smooth blobs (thresholded smoothed noise) plus speckle."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), scale)
    edges = np.quantile(field, np.linspace(0, 1, n_classes + 1)[1:-1])
    lab = np.digitize(field, edges).astype(np.uint8)
    if rare_last:  # the last class only in a few small patches (like vacuum)
        lab[lab == n_classes - 1] = 0
        for _ in range(4):
            y, x = rng.integers(0, shape[0] - 12), rng.integers(0, shape[1] - 12)
            lab[y : y + rng.integers(3, 12), x : x + rng.integers(3, 12)] = n_classes - 1
    speckle = rng.random(shape) < 0.01
    lab[speckle] = rng.integers(0, n_classes, int(speckle.sum()))
    return lab


# --- equivalence --------------------------------------------------------------------


def test_blur_is_ndimage_gaussian_bit_for_bit():
    rng = np.random.default_rng(0)
    for sigma in (0.4, 2.97, 6.3):
        ind = rng.random((70, 90)) < 0.4
        expected = ndi.gaussian_filter(ind.astype(np.float32), sigma, mode="nearest", truncate=3.0)
        np.testing.assert_array_equal(_blur(ind, sigma), expected)


@pytest.mark.parametrize(
    ("n_classes", "sigma", "rare_last"),
    [
        (2, 1.0, False),
        (2, 6.3, False),
        (3, 2.97, True),
        (3, 1.5, False),
        (4, 2.0, True),
        (12, 2.0, False),  # label values >= 8: the general class-presence path
    ],
)
def test_smoothing_equals_whole_image_algorithm(n_classes, sigma, rare_last):
    for seed in range(3):
        lab = blobs((300, 260), n_classes, seed, rare_last=rare_last)
        np.testing.assert_array_equal(smooth_boundaries(lab, sigma), reference_smooth(lab, sigma))


def test_smoothing_of_a_mask_with_few_boundaries_touches_only_them():
    lab = np.zeros((512, 512), np.uint8)
    lab[100:140, 300:360] = 1
    lab[400:420, 10:30] = 2
    lab[450, 450] = 1
    np.testing.assert_array_equal(smooth_boundaries(lab, 3.0), reference_smooth(lab, 3.0))
    bool_mask = lab == 1
    np.testing.assert_array_equal(
        smooth_boundaries(bool_mask, 3.0), reference_smooth(bool_mask.astype(np.uint8), 3.0)
    )


@pytest.mark.parametrize("n_classes", [2, 3])
def test_small_regions_equal_whole_image_transform(n_classes):
    for seed in range(3):
        lab = blobs((300, 260), n_classes, seed, scale=3.0)
        for min_px in (5, 40, 300):
            got = remove_small_regions(lab, min_px)
            ref = reference_small_regions(lab, min_px)
            # Equal up to the choice among equidistant kept pixels (none on these).
            assert np.count_nonzero(got != ref) <= 2, (seed, min_px)


def test_small_regions_far_from_any_kept_pixel():
    # A 120 x 120 board of 2 x 2 squares in four classes (no two squares of a class
    # touch, even diagonally): every square is small, so the nearest kept pixel of the
    # board's centre lies ~60 px away, beyond the first crop margin.
    lab = np.zeros((256, 256), np.uint8)
    yy, xx = np.mgrid[:120, :120]
    lab[60:180, 70:190] = 1 + (yy // 2) % 2 + 2 * ((xx // 2) % 2)
    lab[:40, :] = 5
    got = remove_small_regions(lab, 10)
    ref = reference_small_regions(lab, 10)
    assert set(np.unique(got).tolist()) == {0, 5}
    assert np.count_nonzero(got != ref) <= 2


def test_fill_holes_equals_binary_fill_holes():
    for seed in range(4):
        lab = blobs((200, 230), 3, seed, scale=4.0)
        for max_px in (None, 3, 50):
            np.testing.assert_array_equal(
                fill_holes(lab, max_px), reference_fill_holes(lab, max_px)
            )
    # Holes touching the border are not holes; a hole inside a hole is filled too.
    lab = np.zeros((40, 40), np.uint8)
    lab[5:35, 5:35] = 1
    lab[10:30, 10:30] = 0
    lab[15:25, 15:25] = 1
    lab[18:22, 18:22] = 0
    lab[0:20, 0:3] = 0
    np.testing.assert_array_equal(fill_holes(lab), reference_fill_holes(lab))
    assert (fill_holes(lab)[5:35, 5:35] == 1).all()


def test_clean_labels_on_real_graphene_masks_equals_reference():
    from napari_atomseg.segmentation.data import load_graphene_contamination

    items = load_graphene_contamination(shared_path("graphene_contamination"))
    rng = np.random.default_rng(3)
    for item in items[::3]:
        lab = item.mask.astype(np.uint8)
        # A third class in a few patches (as vacuum), and label noise at the edges.
        for _ in range(3):
            y, x = rng.integers(0, lab.shape[0] - 20, 2)
            lab[y : y + 15, x : x + 20] = 2
        edge = ndi.binary_dilation(lab == 1) & ~ndi.binary_erosion(lab == 1)
        flip = edge & (rng.random(lab.shape) < 0.3)
        lab[flip] = 1 - np.minimum(lab[flip], 1)
        for sigma, area in ((2.97, 881), (6.3, 640)):
            got = clean_labels(lab, smooth_sigma_px=sigma, min_region_px=area)
            ref = reference_fill_holes(reference_small_regions(reference_smooth(lab, sigma), area))
            assert np.count_nonzero(got != ref) <= 2, item.name
