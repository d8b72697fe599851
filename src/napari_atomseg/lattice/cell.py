"""Unit-cell vectors from positions: peaks of the neighbour-vector histogram.

A lattice translation is a vector that leads from (nearly) *every* column to another
column; a vector between two sublattices leads from only some. So the histogram of the
vectors to each column's nearest neighbours has peaks at the translations with a height
close to the number of columns sampled, and the primitive cell is the shortest
non-collinear pair of those. Missing columns, vacancies and noise lower the peaks a little;
the threshold (:data:`TRANSLATION_FRACTION`) leaves room for that.

Cells are 2x2 arrays whose *columns* are the vectors a and b in (y, x) pixel components
(row axis first, as everywhere in this package).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from ..errors import InputError

#: A histogram peak is a lattice translation when this share of the sampled columns has
#: a neighbour there (a vector between two of four sublattices reaches at most ~1/2).
TRANSLATION_FRACTION = 0.6
#: Columns sampled for the histogram (the estimate needs far fewer than a large field has).
SAMPLE_SIZE = 4000
#: Neighbours per sampled column whose vectors enter the histogram.
NEIGHBOURS = 12
#: Histogram bin, as a fraction of the median nearest-neighbour distance.
BIN_FRACTION = 0.08


def nearest_neighbour_distance(positions_px: np.ndarray) -> np.ndarray:
    """Distance from each position to its nearest other position (inf if alone)."""
    if len(positions_px) < 2:
        return np.full(len(positions_px), np.inf)
    d, _ = cKDTree(positions_px).query(positions_px, k=2, workers=-1)
    return d[:, 1]


def translation_peaks(
    positions_px: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Peaks of the neighbour-vector histogram.

    Returns ``(vectors, fractions, spacing)``: the (m, 2) peak vectors (y, x) in px,
    refined as the mean of the vectors near each peak, the share of sampled columns
    having a neighbour there, and the median nearest-neighbour distance (px).
    """
    pos = np.asarray(positions_px, dtype=np.float64)
    n = len(pos)
    if n < 6:
        raise InputError(f"lattice: {n} column(s) are too few to find a unit cell (need >= 6)")
    rng = np.random.default_rng(seed)
    sample = pos if n <= SAMPLE_SIZE else pos[rng.choice(n, SAMPLE_SIZE, replace=False)]
    k = min(NEIGHBOURS + 1, n)
    dist, idx = cKDTree(pos).query(sample, k=k, workers=-1)
    spacing = float(np.median(dist[:, 1]))
    if not spacing > 0:
        raise InputError("lattice: several columns sit at the same position")
    vectors = (pos[idx[:, 1:]] - sample[:, None, :]).reshape(-1, 2)
    reach = 3.0 * spacing + dist[:, 1:].max()
    bin_px = BIN_FRACTION * spacing
    nbins = int(np.ceil(2 * reach / bin_px))
    edges = np.linspace(-reach, reach, nbins + 1)
    hist, _, _ = np.histogram2d(vectors[:, 0], vectors[:, 1], bins=(edges, edges))
    smooth = ndi.uniform_filter(hist, size=3, mode="constant")
    peaks = (smooth == ndi.maximum_filter(smooth, size=5, mode="constant")) & (
        smooth * 9 >= 0.2 * len(sample)
    )
    centres = 0.5 * (edges[:-1] + edges[1:])
    iy, ix = np.nonzero(peaks)
    if iy.size == 0:
        raise InputError("lattice: the columns show no periodic arrangement")
    guess = np.column_stack([centres[iy], centres[ix]])
    # Refine each peak as the mean of the vectors within a third of the spacing.
    tree = cKDTree(vectors)
    groups = tree.query_ball_point(guess, r=spacing / 3.0)
    out, frac = [], []
    for g in groups:  # a few dozen peaks, not columns
        if len(g) == 0:
            continue
        v = vectors[g]
        out.append(v.mean(axis=0))
        frac.append(len(g) / len(sample))
    vecs = np.asarray(out)
    fr = np.asarray(frac)
    keep = np.hypot(vecs[:, 0], vecs[:, 1]) > 0.3 * spacing
    return vecs[keep], fr[keep], spacing


def reduce_cell(cell: np.ndarray) -> np.ndarray:
    """Lagrange-Gauss reduction: the two shortest vectors spanning the same lattice."""
    a, b = cell[:, 0].copy(), cell[:, 1].copy()
    for _ in range(100):
        if a @ a > b @ b:
            a, b = b, a
        mu = round(float(a @ b) / float(a @ a))
        if mu == 0:
            break
        b = b - mu * a
    return np.column_stack([a, b])


def canonical_cell(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reduced cell with a closest to +x and b on the +y (downward) side of a.

    Returns ``(cell, change)`` with ``cell = input @ change`` and ``change`` an integer
    (unimodular) matrix, so Miller-like indices convert as ``hk_new = inv(change) hk``.
    """
    reduced = reduce_cell(np.asarray(cell, dtype=np.float64))
    change = np.rint(np.linalg.solve(cell, reduced))
    candidates = [reduced[:, 0], -reduced[:, 0], reduced[:, 1], -reduced[:, 1]]
    codes = [(0, 1), (0, -1), (1, 1), (1, -1)]
    angle_to_x = [abs(np.arctan2(v[0], v[1])) for v in candidates]
    i = int(np.argmin(angle_to_x))
    col_a, sign_a = codes[i]
    col_b = 1 - col_a
    b = reduced[:, col_b]
    a = candidates[i]
    # b on the +y side of a: the cross product a x b (x, y order) positive as y points down.
    cross = a[1] * b[0] - a[0] * b[1]
    sign_b = 1 if cross > 0 else -1
    new_change = np.zeros((2, 2))
    new_change[col_a, 0] = sign_a
    new_change[col_b, 1] = sign_b
    return reduced @ new_change, np.rint(change @ new_change)


def primitive_cell(positions_px: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """The primitive cell (2x2, columns a and b in px) of the columns' translation lattice.

    Returns ``(cell, spacing)`` with the median nearest-neighbour distance. Raises
    :class:`InputError` when no two non-collinear translations are found (an amorphous
    region, too few columns, or a lattice with most columns missing).
    """
    vecs, frac, spacing = translation_peaks(positions_px, seed)
    good = frac >= TRANSLATION_FRACTION
    if good.sum() < 2:
        best = np.sort(frac)[::-1][:3]
        raise InputError(
            "lattice: no two lattice translations found in the neighbour vectors "
            f"(best peaks reach {', '.join(f'{f:.0%}' for f in best)} of the columns; "
            f"need {TRANSLATION_FRACTION:.0%}): is this a crystal seen along a zone axis?"
        )
    v = vecs[good]
    lengths = np.hypot(v[:, 0], v[:, 1])
    order = np.argsort(lengths)
    a = v[order[0]]
    for j in order[1:]:
        b = v[j]
        sine = abs(a[0] * b[1] - a[1] * b[0]) / (lengths[order[0]] * lengths[j])
        if sine > 0.3:
            break
    else:
        raise InputError("lattice: the lattice translations found are all parallel")
    cell, _ = canonical_cell(np.column_stack([a, b]))
    return cell, spacing


def cell_is_hexagonal(cell: np.ndarray, tolerance: float = 0.05) -> bool:
    """True when |a| ~ |b| and the angle is ~60 or ~120 degrees."""
    la, lb = np.linalg.norm(cell, axis=0)
    cos = float(cell[:, 0] @ cell[:, 1]) / (la * lb)
    return abs(la / lb - 1) < tolerance and abs(abs(cos) - 0.5) < tolerance


def cell_summary(cell: np.ndarray, length_scale: float = 1.0) -> dict[str, float]:
    """Lengths |a|, |b| (times ``length_scale``) and the angle between them (degrees)."""
    la, lb = np.linalg.norm(cell, axis=0)
    cos = float(cell[:, 0] @ cell[:, 1]) / (la * lb)
    return {
        "a": float(la * length_scale),
        "b": float(lb * length_scale),
        "angle_deg": float(np.degrees(np.arccos(np.clip(cos, -1, 1)))),
    }
