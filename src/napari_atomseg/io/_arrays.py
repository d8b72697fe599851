"""Turn whatever pixel type a file holds into arrays napari and the compute code accept.

- structured RGB(A) dtypes (DM, rosettasciio) -> a trailing channel axis, ``rgb=True``;
- bool -> uint8 (0/1), float16 -> float32, big-endian -> native byte order;
- complex -> magnitude and phase, two separate images.
"""

from __future__ import annotations

import numpy as np


def native(array: np.ndarray) -> np.ndarray:
    """``array`` in native byte order (torch and some napari paths refuse big-endian data)."""
    array = np.asarray(array)
    if array.dtype.byteorder not in ("=", "|") and array.dtype.kind != "V":
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def structured_rgb_to_channels(array: np.ndarray) -> np.ndarray | None:
    """A structured ``(R, G, B[, A])`` array as a regular array with a channel axis, else None."""
    names = array.dtype.names
    if not names or tuple(n.upper() for n in names) not in (("R", "G", "B"), ("R", "G", "B", "A")):
        return None
    return np.stack([native(np.asarray(array[n])) for n in names], axis=-1)


def to_display_dtype(array: np.ndarray) -> np.ndarray:
    """Real-valued, native-order pixels: bool -> uint8, float16 -> float32."""
    array = native(array)
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array


def split_complex(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude and phase (radians, -pi..pi) of a complex array, as float32 or float64."""
    array = native(array)
    real_dtype = np.float32 if array.dtype == np.complex64 else np.float64
    return np.abs(array).astype(real_dtype), np.angle(array).astype(real_dtype)
