"""The exact ground truth: one row per atomic column inside the field of view.

Columns come from the scene (atoms within ``merge_distance_nm`` laterally are already one
column). Each row states where the column *appears* in the image (after scan distortion
and detector lag), its summed Z, atom count, composition, the region it belongs to, and
whether it is ``visible``: its own signal must exceed ``visibility_snr`` times the local
noise (shot noise, read noise and the clutter of amorphous material around it), *and* it
must be resolved -- the noise-free image of the columns alone must have its own peak at
the column (:func:`resolved_columns`). A light column on the shoulder of a heavy one
(N beside Ga in a GaN [11-20] dumbbell, O beside Sr) has signal but no peak of its own:
no eye, peak finder or network can place it, so it is not a visible column. Equivalent
columns (same composition, same region) share one signal level and one resolved vote
(:func:`group_consensus`): whether a column counts must not flicker with its sub-pixel
position, or training targets and scores would mark a random subset of one sublattice.
Amorphous support and contamination atoms are not columns and are not listed; they are
described by the class masks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from ase.data import atomic_numbers
from scipy.ndimage import maximum_filter, uniform_filter
from scipy.spatial import cKDTree

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
    """The column table with no rows (the columns and dtypes of :func:`column_table`)."""
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


def local_mean(image: np.ndarray, size_px: int) -> np.ndarray:
    """Mean of ``image`` in a moving ``size_px`` window (odd, at least 3)."""
    return uniform_filter(image.astype(np.float64), max(3, int(size_px) | 1), mode="reflect")


def local_std(image: np.ndarray, size_px: int) -> np.ndarray:
    """Standard deviation of ``image`` in a moving ``size_px`` window."""
    mean = local_mean(image, size_px)
    sq = local_mean(image.astype(np.float64) ** 2, size_px)
    return np.sqrt(np.maximum(sq - mean**2, 0.0))


def sample_nearest(image: np.ndarray, y_px: np.ndarray, x_px: np.ndarray) -> np.ndarray:
    """``image`` at the nearest pixel of each (y, x), clipped to the image."""
    r = np.clip(np.round(y_px).astype(int), 0, image.shape[0] - 1)
    c = np.clip(np.round(x_px).astype(int), 0, image.shape[1] - 1)
    return image[r, c]


def inside_field(y_px: np.ndarray, x_px: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool: whether (y, x) lies on one of the image's pixels (their edges at +-0.5)."""
    return (y_px >= -0.5) & (y_px < shape[0] - 0.5) & (x_px >= -0.5) & (x_px < shape[1] - 0.5)


def resolved_columns(
    column_image: np.ndarray,
    y_px: np.ndarray,
    x_px: np.ndarray,
    sign: np.ndarray | float = 1.0,
    radius_fraction: float = 0.3,
) -> np.ndarray:
    """Which columns have their own peak in ``column_image`` (noise-free, columns only).

    A column is resolved when ``sign * column_image`` has a local maximum (3 x 3
    neighbourhood, above the image's median) within ``max(1 px, radius_fraction x`` the
    distance to the nearest other column``)`` of its position: a column that is only a
    shoulder of a brighter neighbour has no maximum of its own there. ``sign`` is +1 for
    bright columns and -1 for dark ones (per column or one for all)."""
    return peak_distance_ratio(column_image, y_px, x_px, sign, radius_fraction) <= 1.0


def peak_distance_ratio(
    column_image: np.ndarray,
    y_px: np.ndarray,
    x_px: np.ndarray,
    sign: np.ndarray | float = 1.0,
    radius_fraction: float = 0.3,
) -> np.ndarray:
    """Distance from each column to the nearest peak of ``sign * column_image``, over the
    radius :func:`resolved_columns` allows (<= 1: resolved; inf: no peak at all).

    Continuous, so that equivalent columns can agree on it before it is thresholded
    (:func:`sublattice_consensus`): a vote of booleans splits a sublattice whose peaks sit
    near the edge of the radius."""
    n = len(y_px)
    if n == 0:
        return np.zeros(0)
    yx = np.column_stack([y_px, x_px]).astype(np.float64)
    if n >= 2:
        nn = cKDTree(yx).query(yx, k=2)[0][:, 1]
    else:
        nn = np.full(1, np.inf)
    radius = np.maximum(1.0, radius_fraction * nn)
    sign = np.broadcast_to(np.asarray(sign, np.float64), (n,))
    out = np.full(n, np.inf)
    img = np.asarray(column_image, np.float64)
    for s in (1.0, -1.0):
        sel = sign * s > 0
        if not sel.any():
            continue
        im = s * img
        peaks = (maximum_filter(im, size=3, mode="nearest") == im) & (im > np.median(im))
        pk = np.argwhere(peaks).astype(np.float64)
        if len(pk) == 0:
            continue
        d = cKDTree(pk).query(yx[sel])[0]
        out[sel] = d / (radius[sel] + 1e-9)
    return out


def group_consensus(
    values: np.ndarray, counts: np.ndarray, region: np.ndarray, min_group: int = 5
) -> np.ndarray:
    """Each column's ``values`` replaced by the median over its equivalent columns.

    Equivalent = same atom counts per element and same region code; groups smaller than
    ``min_group`` keep their own values. For a boolean ``values`` this is a majority vote
    (ties count as True)."""
    values = np.asarray(values)
    n = len(values)
    out = values.astype(np.float64).copy()
    if n == 0:
        return values.copy()
    keys = np.column_stack([np.asarray(counts).reshape(n, -1), np.asarray(region).reshape(n, 1)])
    _, inverse, sizes = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = np.asarray(inverse).ravel()
    for g in np.flatnonzero(sizes >= min_group):
        sel = inverse == g
        out[sel] = np.median(out[sel])
    if values.dtype == bool:
        return out >= 0.5
    return out.astype(values.dtype, copy=False)


def sublattice_consensus(
    values: np.ndarray,
    counts: np.ndarray,
    region: np.ndarray,
    yx_px: np.ndarray,
    z_sum: np.ndarray,
    neighbours: int = 64,
    z_tolerance: float = 0.25,
    min_group: int = 5,
    independent: np.ndarray | None = None,
) -> np.ndarray:
    """Each column's ``values`` replaced by the median over its sublattice, locally.

    A column's peers are the ``neighbours`` nearest columns of the same region and the
    same elements whose summed Z is within ``z_tolerance`` of its own: columns of one
    sublattice that differ by an atom or two (the partial repeat at the slab's surface,
    a vacancy in a long column, a thickness wedge) vote together, while a column that
    lost half its atoms or gained a dopant does not; being local, the vote follows a
    wedge or a tilt across the field. Columns with fewer than ``min_group`` peers, and
    those marked ``independent`` (single atoms: no two are alike), keep their own
    values. Booleans become a majority vote (ties count as True).
    """
    values = np.asarray(values)
    n = len(values)
    if n == 0:
        return values.copy()
    out = values.astype(np.float64).copy()
    src = out.copy()
    present = np.asarray(counts).reshape(n, -1) > 0
    keys = np.column_stack([present, np.asarray(region).reshape(n, 1)])
    _, kind = np.unique(keys, axis=0, return_inverse=True)
    kind = np.asarray(kind).ravel()
    z = np.asarray(z_sum, dtype=np.float64)
    yx = np.asarray(yx_px, dtype=np.float64).reshape(n, 2)
    if independent is not None:
        kind = np.where(np.asarray(independent, bool), -1, kind)
    for g in np.unique(kind):
        rows = np.flatnonzero(kind == g)
        if g < 0:
            continue
        if len(rows) < min_group:
            continue
        k = min(len(rows), 4 * neighbours)
        _, nb = cKDTree(yx[rows]).query(yx[rows], k=k)
        nb = rows[np.asarray(nb).reshape(len(rows), k)]
        peer = np.abs(z[nb] - z[rows, None]) <= z_tolerance * z[rows, None]
        peer &= np.cumsum(peer, axis=1) <= neighbours
        enough = peer.sum(1) >= min_group
        vals = np.where(peer, src[nb], np.nan)
        med = np.nanmedian(np.where(enough[:, None], vals, 0.0), axis=1)
        out[rows[enough]] = med[enough]
    if values.dtype == bool:
        return out >= 0.5
    return out.astype(values.dtype, copy=False)
