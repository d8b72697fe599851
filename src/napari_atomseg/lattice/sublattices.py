"""Sublattices: which columns are equivalent, from their place in the cell and brightness.

Positions alone give the *geometric* cell: the translations of the set of columns
(:mod:`.cell`), with one site per column of that cell (:mod:`.indexing`). Chemically
different columns can still be related by a geometric translation -- Sr and Ti-O columns
of a perovskite seen along [001] both sit on one centred square -- so each site is split
by brightness when the bright and dark columns alternate with the parity of h, of k or of
h + k (one class brighter than the other in at least :data:`SPLIT_AUC` of the pairs): the
true cell is then the corresponding supercell, and every site of the supercell is a
sublattice. Sublattices are numbered by decreasing median brightness (0 = brightest;
without brightness, by decreasing number of columns); -1 is "unassigned".
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .cell import primitive_cell
from .indexing import unwrap

#: A site is split when one parity class is brighter than the other with this
#: probability (the area under the ROC curve of the two classes' brightness; 0.5 for
#: identical columns, ~1 for Sr against Ti-O). A rank statistic, so a class that is itself
#: a mixture (Sr and Ti-O against O, before Sr and Ti-O are told apart) still counts.
SPLIT_AUC = 0.85
#: ... and each class holds at least this share of the site's columns.
SPLIT_MIN_SHARE = 0.2
#: (parity vector c, supercell C): columns with even / odd (c . hk) differ; C's columns
#: are the supercell's vectors in the old cell's basis.
PARITIES = (
    (np.array([1, 0]), np.array([[2, 0], [0, 1]])),
    (np.array([0, 1]), np.array([[1, 0], [0, 2]])),
    (np.array([1, 1]), np.array([[1, 1], [1, -1]])),
)


def _auc(a: np.ndarray, b: np.ndarray) -> float:
    """P(a > b) for a random pair (ties count half), from ranks."""
    ranks = rankdata(np.concatenate([a, b]))
    return float((ranks[: a.size].sum() - a.size * (a.size + 1) / 2) / (a.size * b.size))


def _best_split(frac: np.ndarray, brightness: np.ndarray) -> tuple[float, int] | None:
    """The parity (index into PARITIES) that best splits one site by brightness."""
    labels, site_frac = site_labels(frac)
    hk = np.floor(frac + 1e-6)
    best: tuple[float, int] | None = None
    for m in range(len(site_frac)):
        members = np.nonzero((labels == m) & np.isfinite(brightness))[0]
        if members.size < 6:
            continue
        for p, (c, _) in enumerate(PARITIES):
            odd = (hk[members] @ c).astype(np.int64) % 2 == 1
            a, b = brightness[members[odd]], brightness[members[~odd]]
            if min(a.size, b.size) < max(3, SPLIT_MIN_SHARE * members.size):
                continue
            score = abs(_auc(a, b) - 0.5) + 0.5
            if score > SPLIT_AUC and (best is None or score > best[0]):
                best = (score, p)
    return best


def site_labels(frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Site label of each ideal fractional position (NaN rows: -1) and the sites (m, 2)."""
    ok = np.isfinite(frac).all(axis=1)
    folded = frac[ok] - np.floor(frac[ok] + 1e-6)
    codes = np.rint(folded * 1000).astype(np.int64) % 1000
    keys, inverse = np.unique(codes[:, 0] * 1000 + codes[:, 1], return_inverse=True)
    labels = np.full(len(frac), -1, dtype=np.int64)
    labels[ok] = np.asarray(inverse).ravel()
    sites = np.column_stack([keys // 1000, keys % 1000]) / 1000.0
    return labels, sites


def order_by_brightness(labels: np.ndarray, brightness: np.ndarray | None) -> np.ndarray:
    """Renumber labels >= 0 so that 0 is the brightest (or the most populated)."""
    present = np.unique(labels[labels >= 0])
    if present.size == 0:
        return labels.copy()
    counts = np.array([(labels == m).sum() for m in present])
    if brightness is not None and np.isfinite(brightness).any():
        med = np.array([np.nanmedian(np.where(labels == m, brightness, np.nan)) for m in present])
        key = np.lexsort((-counts, -np.nan_to_num(med, nan=-np.inf)))
    else:
        key = np.argsort(-counts, kind="stable")
    mapping = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    mapping[present[key]] = np.arange(present.size)
    out = np.full(len(labels), -1, dtype=np.int64)
    ok = labels >= 0
    out[ok] = mapping[labels[ok]]
    return out


def auto_sublattices(
    positions_px: np.ndarray,
    brightness: np.ndarray | None,
    seed: int,
    rng_seed: int = 0,
) -> tuple[np.ndarray, dict[str, object]]:
    """Sublattice of every column (-1: fits no site) and what was found.

    ``brightness`` (per column, any units; None or NaN where unknown) splits the
    geometric sites; ``seed`` is the column the indexing starts from.
    """
    cell, spacing = primitive_cell(positions_px, rng_seed)
    indexing = unwrap(positions_px, cell, spacing, seed)
    frac = indexing.fractional()
    splits: list[str] = []
    if brightness is not None:
        for _ in range(2):  # e.g. a double perovskite's B-site order needs two
            best = _best_split(frac, brightness)
            if best is None:
                break
            c, supercell = PARITIES[best[1]]
            frac = frac @ np.linalg.inv(supercell).T
            splits.append(f"parity of {'h' if c[1] == 0 else 'k' if c[0] == 0 else 'h+k'}")
    labels, _ = site_labels(frac)
    labels = order_by_brightness(labels, brightness)
    info = {
        "geometric_cell": cell,
        "geometric_sites": len(indexing.sites),
        "brightness_splits": splits,
        "n_sublattices": int(labels.max() + 1) if (labels >= 0).any() else 0,
    }
    return labels, info
