"""Particles by their brightness, for images too coarse for lattice fringes.

At low magnification (pixels of ~0.1 nm and more) a nanoparticle shows no lattice, so
neither the Bragg filter (fringes) nor the particle U-Net (trained up to 0.4 nm/px) sees
it; what it does show is Z contrast: in HAADF a Pt or Au particle is far brighter than
the carbon under it (in bright-field TEM, darker). This is the classical recipe a
microscopist would apply in ImageJ, made robust:

1. smooth with a Gaussian of ``smooth_nm`` (at least one pixel) against shot noise;
2. subtract the support's slowly varying level (a Gaussian of ``background_nm``, far
   wider than a particle) so a thickness gradient of the carbon is not a particle;
3. threshold at Otsu's level of the result;
4. drop specks smaller than a disc of ``min_diameter_nm`` and fill holes.

:func:`iter_particles_by_intensity` returns a
:class:`~napari_atomseg.segmentation.api.SegmentationResult` (task ``particles``, method
``intensity``) whose ``details["particles"]`` is a table of the particles (centre, area,
equivalent diameter, in px and nm).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from .._progress import Progress
from .._validate import as_image2d, check_pixel_size_nm, check_range
from .api import TASK_CLASSES, SegmentationResult

#: Smoothing (nm) against shot noise; never below one pixel.
SMOOTH_NM = 1.0
#: Width (nm) of the support's slowly varying level that is subtracted.
BACKGROUND_NM = 60.0
#: Regions smaller than a disc of this diameter (nm) are not particles.
MIN_DIAMETER_NM = 1.5
#: Smallest region kept, pixels, whatever the pixel size.
MIN_AREA_PX = 4


def iter_particles_by_intensity(
    image: Any,
    pixel_size_nm: float | None = None,
    *,
    bright: bool = True,
    smooth_nm: float = SMOOTH_NM,
    background_nm: float = BACKGROUND_NM,
    min_diameter_nm: float = MIN_DIAMETER_NM,
) -> Generator[Progress, None, SegmentationResult]:
    """Particle mask of ``image`` by intensity (generator yielding Progress).

    Parameters
    ----------
    image
        2-D micrograph (not modified).
    pixel_size_nm
        nm per pixel; without it the lengths are taken in pixels (1 nm = 1 px).
    bright
        True for HAADF / ADF (particles brighter than the support), False for
        bright-field TEM (darker).
    smooth_nm, background_nm, min_diameter_nm
        See the module docstring.
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.segmentation import relabel_sequential

    from .instances import particle_table

    img = as_image2d(image, "image")
    if pixel_size_nm is not None:
        pixel_size_nm = check_pixel_size_nm(pixel_size_nm)
    check_range(smooth_nm, 0.0, 1e4, "smooth_nm")
    check_range(background_nm, 0.0, 1e6, "background_nm")
    check_range(min_diameter_nm, 0.0, 1e4, "min_diameter_nm")
    px = pixel_size_nm or 1.0
    yield Progress(0, 3, "smoothing")
    signal = img if bright else -img
    smooth = ndimage.gaussian_filter(signal, max(1.0, smooth_nm / px) / 2.0)
    if background_nm > 0:
        smooth = smooth - ndimage.gaussian_filter(smooth, background_nm / px, mode="reflect")
    yield Progress(1, 3, "threshold")
    level = float(threshold_otsu(smooth))
    mask = ndimage.binary_fill_holes(smooth > level)
    yield Progress(2, 3, "particles")
    min_area = max(MIN_AREA_PX, np.pi * (min_diameter_nm / px / 2.0) ** 2)
    labels, n = ndimage.label(mask)
    if n:
        areas = np.bincount(labels.ravel())
        keep = areas >= min_area
        keep[0] = False
        labels = np.where(keep[labels], labels, 0)
    labels = relabel_sequential(labels.astype(np.int32))[0]
    table = particle_table(labels, pixel_size_nm)
    yield Progress(3, 3, f"{len(table)} particles")
    return SegmentationResult(
        labels=(labels > 0).astype(np.uint8),
        class_names=TASK_CLASSES["particles"],
        task="particles",
        method="intensity",
        pixel_size_nm=pixel_size_nm,
        details={
            "particles": table,
            "threshold": level,
            "bright": bright,
            "smooth_nm": smooth_nm,
            "background_nm": background_nm,
            "min_diameter_nm": min_diameter_nm,
        },
    )
