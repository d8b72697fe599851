"""Input checks shared by every compute entry point (atoms, segment, simulate, backend).

Each check raises :class:`napari_atomseg.errors.InputError` with a message that says what
is wrong and what to do, so the widgets and the CLI can show it as it is.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError

#: Smallest side an image may have and still hold a few atomic columns.
MIN_IMAGE_SIDE_PX = 16
#: Largest number of pixels a single 2-D image may have (about 1.07e9, e.g. 32768 x 32768).
MAX_IMAGE_PIXELS = 32768 * 32768


def as_image2d(image: object, name: str = "image") -> np.ndarray:
    """Return ``image`` as a new float32 2-D array, or raise :class:`InputError`.

    Accepts any real numeric 2-D array-like (ints, floats, bool, dask/zarr arrays). Rejects
    RGB/RGBA (asks for a grey-scale conversion), stacks, complex data, NaN/inf values,
    constant images, and images smaller than ``MIN_IMAGE_SIDE_PX`` or larger than
    ``MAX_IMAGE_PIXELS``. The input is never modified.
    """
    try:
        arr = np.asarray(image)
    except Exception as exc:  # pragma: no cover - exotic array-likes
        raise InputError(f"{name}: cannot be converted to a numeric array ({exc})") from exc
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise InputError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise InputError(
            f"{name}: complex data (dtype {arr.dtype}); pass the magnitude (np.abs) or phase"
        )
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise InputError(
            f"{name}: looks like an RGB/RGBA image (shape {arr.shape}); electron micrographs "
            "are grey-scale: convert it first (e.g. skimage.color.rgb2gray)"
        )
    if arr.ndim != 2:
        raise InputError(
            f"{name}: expected a 2-D image, got {arr.ndim}-D with shape {arr.shape}; "
            "pick one frame of a stack"
        )
    if min(arr.shape) < MIN_IMAGE_SIDE_PX:
        raise InputError(
            f"{name}: {arr.shape[0]}x{arr.shape[1]} px is too small; "
            f"need at least {MIN_IMAGE_SIDE_PX} px on each side"
        )
    if arr.size > MAX_IMAGE_PIXELS:
        raise InputError(
            f"{name}: {arr.shape[0]}x{arr.shape[1]} px is larger than the "
            f"{MAX_IMAGE_PIXELS:,} pixels supported; crop or bin it first"
        )
    out = arr.astype(np.float32, copy=True)
    finite = np.isfinite(out)
    if not finite.all():
        n_bad = int(out.size - np.count_nonzero(finite))
        raise InputError(
            f"{name}: contains {n_bad} NaN/inf pixel(s); replace them (e.g. with the median) first"
        )
    if float(out.max()) == float(out.min()):
        raise InputError(
            f"{name}: is constant (every pixel = {float(out.flat[0])}); nothing to find"
        )
    return out


def check_pixel_size_nm(pixel_size_nm: float | None, name: str = "pixel_size_nm") -> float | None:
    """Validate a pixel size in nm (``None`` means unknown). Range: 1e-4 to 100 nm/px."""
    if pixel_size_nm is None:
        return None
    try:
        value = float(pixel_size_nm)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected a number in nm/px, got {pixel_size_nm!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name}: must be a positive finite number of nm per pixel, got {value}")
    if not 1e-4 <= value <= 100:
        raise InputError(
            f"{name}: {value} nm/px is outside 0.0001-100 nm/px; is the unit right "
            "(nm, not m or A)?"
        )
    return value


def check_range(value: float, low: float, high: float, name: str) -> float:
    """Return ``float(value)`` if ``low <= value <= high`` (finite), else raise InputError."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected a number, got {value!r}") from exc
    if not math.isfinite(v) or not low <= v <= high:
        raise InputError(f"{name}: {value} is outside the allowed range [{low}, {high}]")
    return v
