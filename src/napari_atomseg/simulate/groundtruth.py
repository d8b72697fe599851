"""The exact ground truth: one row per atomic column inside the field of view.

Columns come from the scene (atoms within ``merge_distance_nm`` laterally are already one
column). Each row states where the column *appears* in the image (after scan distortion
and detector lag), its summed Z, atom count, composition, the region it belongs to, and
whether it is ``visible``: its own signal must exceed ``visibility_snr`` times the local
noise (shot noise, read noise and the clutter of amorphous material around it).
Amorphous support and contamination atoms are not columns and are not listed; they are
described by the class masks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from ase.data import atomic_numbers
from scipy.ndimage import uniform_filter

from .scene import REGIONS, Scene

COLUMNS = ["y_px", "x_px", "y_nm", "x_nm", "z_sum", "n_atoms", "elements", "visible", "region"]


def formula_strings(counts: np.ndarray, elements: list[str]) -> list[str]:
    """'Mo', 'S2', 'Ti10O10': elements by decreasing Z, count appended when > 1."""
    if len(counts) == 0:
        return []
    order = np.argsort([-atomic_numbers[e] for e in elements], kind="stable")
    unique, inverse = np.unique(counts, axis=0, return_inverse=True)
    names = []
    for row in unique:
        parts = []
        for i in order:
            n = int(row[i])
            if n:
                parts.append(elements[i] + (str(n) if n > 1 else ""))
        names.append("".join(parts))
    return [names[i] for i in np.asarray(inverse).ravel()]


def empty_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y_px": pd.Series(dtype="float64"),
            "x_px": pd.Series(dtype="float64"),
            "y_nm": pd.Series(dtype="float64"),
            "x_nm": pd.Series(dtype="float64"),
            "z_sum": pd.Series(dtype="int64"),
            "n_atoms": pd.Series(dtype="int64"),
            "elements": pd.Series(dtype="object"),
            "visible": pd.Series(dtype="bool"),
            "region": pd.Series(dtype="object"),
        }
    )


def column_table(
    scene: Scene,
    index: np.ndarray,
    y_px: np.ndarray,
    x_px: np.ndarray,
    pixel_size_nm: float,
    visible: np.ndarray,
) -> pd.DataFrame:
    """Table of the scene columns ``index`` at apparent pixel positions ``y_px, x_px``."""
    if len(index) == 0:
        return empty_table()
    counts = scene.column_counts[index]
    z = scene.column_atomic_numbers()
    return pd.DataFrame(
        {
            "y_px": y_px.astype(np.float64),
            "x_px": x_px.astype(np.float64),
            "y_nm": (y_px * pixel_size_nm).astype(np.float64),
            "x_nm": (x_px * pixel_size_nm).astype(np.float64),
            "z_sum": (counts @ z).astype(np.int64),
            "n_atoms": counts.sum(1).astype(np.int64),
            "elements": formula_strings(counts, scene.elements),
            "visible": visible.astype(bool),
            "region": np.asarray(REGIONS, dtype=object)[scene.column_region[index]],
        }
    )[COLUMNS]


def local_std(image: np.ndarray, size_px: int) -> np.ndarray:
    """Standard deviation of ``image`` in a moving ``size_px`` window."""
    size = max(3, int(size_px) | 1)
    mean = uniform_filter(image.astype(np.float64), size, mode="reflect")
    sq = uniform_filter(image.astype(np.float64) ** 2, size, mode="reflect")
    return np.sqrt(np.maximum(sq - mean**2, 0.0))


def sample_nearest(image: np.ndarray, y_px: np.ndarray, x_px: np.ndarray) -> np.ndarray:
    r = np.clip(np.round(y_px).astype(int), 0, image.shape[0] - 1)
    c = np.clip(np.round(x_px).astype(int), 0, image.shape[1] - 1)
    return image[r, c]


def inside_field(y_px: np.ndarray, x_px: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return (y_px >= -0.5) & (y_px < shape[0] - 0.5) & (x_px >= -0.5) & (x_px < shape[1] - 0.5)
