"""(h, k) indices of every column by unwrapping from a seed, and the sites of a cell.

A global ``round(inv(cell) @ r)`` drifts: a 0.5 % error in the cell, or a 2 degree
rotation, moves the 100th cell by half a cell. Unwrapping walks the neighbour graph
breadth-first from a seed instead and adds, on each step, the *local* increment between
two neighbours, which is exact while the lattice is distorted by less than ~25 % over one
step. Each breadth-first level is one vectorised step (no loop over columns).

Sites are the columns' positions inside the cell (fractions of a and b, in [0, 1)); a cell
with several columns per cell (a honeycomb, a perovskite) has several sites. A column is
assigned to the site its position predicts within :data:`SITE_TOLERANCE` x the spacing;
others stay unassigned (site -1): interstitials, misplaced hand clicks, another grain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

#: A column further than this fraction of the nearest-neighbour spacing from where its
#: site predicts it is left unassigned.
SITE_TOLERANCE = 0.3
#: Neighbours of each column in the unwrapping graph, and their largest distance
#: (x the median nearest-neighbour spacing).
GRAPH_NEIGHBOURS = 8
GRAPH_REACH = 1.6
#: Components of the graph smaller than this are not indexed (isolated columns).
MIN_COMPONENT = 4
#: At most this many separate components (grains, islands) are indexed.
MAX_COMPONENTS = 200
#: Radius (in cells) of the patch around the seed in which the sites are found.
SITE_PATCH_CELLS = 6.0


@dataclass(frozen=True)
class Indexing:
    """Result of :func:`unwrap`: per column, site (-1: unassigned) and integer (h, k)."""

    site: np.ndarray
    hk: np.ndarray  # (n, 2) int64; meaningless where site == -1
    sites: np.ndarray  # (m, 2) fractional site positions in [0, 1)

    @property
    def assigned(self) -> np.ndarray:
        """(n,) bool: the columns that fit a site."""
        return self.site >= 0

    def fractional(self) -> np.ndarray:
        """(n, 2) ideal fractional coordinates hk + site offset (NaN where unassigned)."""
        out = np.full(self.hk.shape, np.nan)
        ok = self.assigned
        out[ok] = self.hk[ok] + self.sites[self.site[ok]]
        return out


def neighbour_graph(positions_px: np.ndarray, spacing_px: float) -> csr_matrix:
    """Symmetric graph linking each column to its nearest neighbours (CSR, bool)."""
    n = len(positions_px)
    k = min(GRAPH_NEIGHBOURS + 1, n)
    dist, idx = cKDTree(positions_px).query(positions_px, k=k, workers=-1)
    ok = (dist[:, 1:] <= GRAPH_REACH * spacing_px) & np.isfinite(dist[:, 1:])
    rows = np.repeat(np.arange(n), k - 1)[ok.ravel()]
    cols = idx[:, 1:].ravel()[ok.ravel()]
    graph = csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(n, n))
    return (graph + graph.T).tocsr()


def _wrap(frac: np.ndarray) -> np.ndarray:
    return frac - np.round(frac)


def find_sites(
    positions_px: np.ndarray, cell: np.ndarray, seed: int, spacing_px: float
) -> np.ndarray:
    """Fractional positions (m, 2) of the sites of ``cell``, site 0 at the seed (0, 0).

    Found on the patch of columns within :data:`SITE_PATCH_CELLS` cells of the seed, where
    the cell's own small error cannot accumulate: peaks of the histogram of fractional
    positions folded into one cell.
    """
    inv = np.linalg.inv(cell)
    reach = SITE_PATCH_CELLS * float(np.linalg.norm(cell, axis=0).max())
    near = cKDTree(positions_px).query_ball_point(positions_px[seed], r=reach)
    frac = (positions_px[near] - positions_px[seed]) @ inv.T
    folded = frac - np.floor(frac)
    bins = 24
    hist, _, _ = np.histogram2d(folded[:, 0], folded[:, 1], bins=bins, range=((0, 1), (0, 1)))
    smooth = ndi.uniform_filter(hist, size=3, mode="wrap")
    peaks = (smooth == ndi.maximum_filter(smooth, size=3, mode="wrap")) & (
        smooth >= 0.25 * smooth.max()
    )
    guesses = (np.argwhere(peaks) + 0.5) / bins
    sites: list[np.ndarray] = []
    for g in guesses[np.argsort(-smooth[peaks])]:
        d = np.linalg.norm(_wrap(frac - g) @ cell.T, axis=1)
        members = d < SITE_TOLERANCE * spacing_px
        if members.sum() < 2:
            continue
        centre = g + _wrap(frac[members] - g).mean(axis=0)
        if all(
            np.linalg.norm(_wrap(centre - s) @ cell.T) > SITE_TOLERANCE * spacing_px for s in sites
        ):
            sites.append(centre)
    if not sites:
        return np.zeros((1, 2))
    arr = np.asarray(sites)
    # Site 0 is the seed's own site, placed at the origin.
    zero = int(np.argmin(np.linalg.norm(_wrap(arr) @ cell.T, axis=1)))
    arr = arr - arr[zero]
    arr = arr - np.floor(arr + 1e-9)
    return np.vstack([arr[zero], np.delete(arr, zero, axis=0)])


def _expand(graph: csr_matrix, frontier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All edges (src, dst) leaving ``frontier``."""
    starts, ends = graph.indptr[frontier], graph.indptr[frontier + 1]
    counts = ends - starts
    src = np.repeat(frontier, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    dst = graph.indices[np.repeat(starts, counts) + offsets]
    return src, dst


def _place(
    rel: np.ndarray, cell: np.ndarray, sites: np.ndarray, tol_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest site and cell of fractional positions ``rel``; ok where within ``tol_px``."""
    diff = rel[:, None, :] - sites[None, :, :]
    dist = np.linalg.norm(_wrap(diff) @ cell.T, axis=2)
    best = np.argmin(dist, axis=1)
    hk = np.rint(rel - sites[best]).astype(np.int64)
    return best, hk, dist[np.arange(len(rel)), best] <= tol_px


def unwrap(
    positions_px: np.ndarray,
    cell: np.ndarray,
    spacing_px: float,
    seed: int,
    sites: np.ndarray | None = None,
    graph: csr_matrix | None = None,
) -> Indexing:
    """Index every column breadth-first from ``seed`` (site 0, cell (0, 0)).

    ``sites`` defaults to :func:`find_sites`. Components of the graph the walk does not
    reach (another grain, an island) are started from their column nearest to an indexed
    one, so their indices continue the first component's.
    """
    pos = np.asarray(positions_px, dtype=np.float64)
    n = len(pos)
    if sites is None:
        sites = find_sites(pos, cell, seed, spacing_px)
    if graph is None:
        graph = neighbour_graph(pos, spacing_px)
    inv_t = np.linalg.inv(cell).T
    tol = SITE_TOLERANCE * spacing_px
    site = np.full(n, -1, dtype=np.int64)
    hk = np.zeros((n, 2), dtype=np.int64)
    tried = np.zeros(n, dtype=bool)
    site[seed] = 0
    tried[seed] = True
    start = np.array([seed])
    for _ in range(MAX_COMPONENTS):  # components, not columns
        _walk(graph, pos, cell, inv_t, sites, tol, site, hk, tried, start)
        fresh = np.nonzero(~tried)[0]
        if fresh.size < MIN_COMPONENT:
            break
        done = np.nonzero(site >= 0)[0]
        if done.size == 0:
            break
        d, j = cKDTree(pos[done]).query(pos[fresh])
        new = fresh[int(np.argmin(d))]
        ref = done[j[int(np.argmin(d))]]
        rel = sites[site[ref]] + hk[ref] + (pos[new] - pos[ref]) @ inv_t
        s, h, _ = _place(rel[None, :], cell, sites, np.inf)
        site[new], hk[new], tried[new] = s[0], h[0], True
        start = np.array([new])
    return Indexing(site, hk, sites)


def _walk(graph, pos, cell, inv_t, sites, tol, site, hk, tried, frontier) -> None:
    """Breadth-first walk from ``frontier``, filling ``site``/``hk`` in place."""
    while frontier.size:
        src, dst = _expand(graph, frontier)
        fresh = ~tried[dst]
        src, dst = src[fresh], dst[fresh]
        if dst.size == 0:
            break
        dst, first = np.unique(dst, return_index=True)
        src = src[first]
        rel = sites[site[src]] + hk[src] + (pos[dst] - pos[src]) @ inv_t
        best, cells, ok = _place(rel, cell, sites, tol)
        # A column off every site is tried again only from another neighbour.
        accept = dst[ok]
        tried[accept] = True
        site[accept] = best[ok]
        hk[accept] = cells[ok]
        frontier = accept
    # Columns next to indexed ones that never fitted a site stay unassigned for good.
    touched = np.asarray(graph[site >= 0].sum(axis=0)).ravel() > 0
    tried |= touched & (site < 0)
