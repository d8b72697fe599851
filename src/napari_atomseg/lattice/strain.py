"""Per-column deformation gradient, polar decomposition, strain, rotation and their errors.

Every column's *local cell* L (2x2: ideal fractional step -> observed vector, px) is the
least-squares fit of the vectors to its same-sublattice neighbours within
``neighbour_cells`` cells, ``r_j - r_i = L (q_j - q_i)``, solved for all columns at once
(batched normal equations, no loop over columns). Against the reference cell A,
``F = L A^-1`` is the deformation gradient; ``F = R U`` (polar decomposition) gives

- the Biot strain ``U - I``: ``strain_xx``, ``strain_yy``, ``strain_xy`` (tensor shear),
  so a pure rotation gives zero strain and a 3 % stretch along x gives 0.030;
- ``rotation_deg`` from R, positive counter-clockwise *as displayed* (y pointing down);
- ``dilatation`` = det F - 1 (relative change of the cell's area);
- the same strain along the reference cell's axes: ``strain_aa`` along a, ``strain_bb``
  perpendicular to a on b's side, ``strain_ab`` the shear between them.

Arrays are in (y, x) order: index 0 is the row (y) axis, 1 the column (x) axis.

Errors: with independent position noise sigma per coordinate, each row of F has
covariance ``sigma^2 C`` with ``C = (V'V)^-1 + (V'V)^-1 s s' (V'V)^-1`` (V: the reference
vectors, s their sum; the second term is the centre column's own noise). To first order
the std of ``strain_xx`` is ``sigma sqrt(C_xx)``, of ``strain_yy`` ``sigma sqrt(C_yy)``, of
``strain_xy`` and of the rotation (rad) ``sigma / 2 sqrt(C_xx + C_yy)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

#: Extra neighbours queried beyond the (2 n + 1)^2 - 1 cells around (missing columns).
EXTRA_NEIGHBOURS = 6


@dataclass(frozen=True)
class LocalCells:
    """Per-column least-squares local cells (NaN where not computable)."""

    cell: np.ndarray  # (n, 2, 2)
    n_neighbours: np.ndarray  # (n,)
    cq: np.ndarray  # (n, 2, 2) error matrix in fractional (q) space
    rss: np.ndarray  # (n,) residual sum of squares, px^2
    dof: np.ndarray  # (n,) expected rss / sigma^2


def local_cells(
    positions_px: np.ndarray,
    q: np.ndarray,
    sublattice: np.ndarray,
    neighbour_cells: int = 1,
    min_neighbours: int = 3,
    skip: LocalCells | None = None,
    skip_sublattice: int | None = None,
) -> LocalCells:
    """Local cell of every column from its same-sublattice neighbours.

    ``q`` are the ideal fractional coordinates (n, 2) of the columns (NaN: not indexed);
    neighbours are the columns of the same sublattice with ``0 < max|q_j - q_i| <=
    neighbour_cells``. ``skip_sublattice``'s columns are copied from ``skip`` (computed
    before) instead of fitted again.
    """
    n = len(positions_px)
    cell = np.full((n, 2, 2), np.nan)
    cq = np.full((n, 2, 2), np.nan)
    count = np.zeros(n, dtype=np.int64)
    rss = np.full(n, np.nan)
    dof = np.full(n, np.nan)
    k = (2 * neighbour_cells + 1) ** 2 - 1 + EXTRA_NEIGHBOURS
    ok_all = (sublattice >= 0) & np.isfinite(q).all(axis=1)
    if skip is not None:
        done = sublattice == skip_sublattice
        cell[done], cq[done], count[done] = skip.cell[done], skip.cq[done], skip.n_neighbours[done]
        rss[done], dof[done] = skip.rss[done], skip.dof[done]
    for m in np.unique(sublattice[ok_all]):  # a few sublattices, not columns
        if skip is not None and m == skip_sublattice:
            continue
        members = np.nonzero(ok_all & (sublattice == m))[0]
        if members.size < 3:
            continue
        pos, qm = positions_px[members], q[members]
        kk = min(k + 1, members.size)
        _, idx = cKDTree(pos).query(pos, k=kk, workers=-1)
        nb = idx[:, 1:]
        dq = qm[nb] - qm[:, None, :]
        dr = pos[nb] - pos[:, None, :]
        cheb = np.abs(dq).max(axis=2)
        w = ((cheb > 1e-6) & (cheb <= neighbour_cells + 1e-6)).astype(np.float64)
        res = _fit(dr, dq, w, min_neighbours)
        cell[members], cq[members], count[members] = res[0], res[1], res[2]
        rss[members], dof[members] = res[3], res[4]
    return LocalCells(cell, count, cq, rss, dof)


def _fit(dr: np.ndarray, dq: np.ndarray, w: np.ndarray, min_neighbours: int):
    """Batched weighted least squares ``dr = L dq``; returns L, C_q, count, rss, dof.

    Written out on the 2x2 components: many times faster than einsum on (n, k, 2)."""
    q0, q1, r0, r1 = dq[..., 0], dq[..., 1], dr[..., 0], dr[..., 1]
    count = w.sum(axis=1)
    wq0, wq1 = w * q0, w * q1
    a, b, d = (wq0 * q0).sum(1), (wq0 * q1).sum(1), (wq1 * q1).sum(1)
    det = a * d - b * b
    good = (count >= min_neighbours) & (det > 0.25)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv_det = np.where(good, 1.0 / det, np.nan)
    inv = np.empty((len(w), 2, 2))
    inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 1] = d * inv_det, -b * inv_det, a * inv_det
    inv[:, 1, 0] = inv[:, 0, 1]
    s_rq = np.empty((len(w), 2, 2))
    s_rq[:, 0, 0], s_rq[:, 0, 1] = (wq0 * r0).sum(1), (wq1 * r0).sum(1)
    s_rq[:, 1, 0], s_rq[:, 1, 1] = (wq0 * r1).sum(1), (wq1 * r1).sum(1)
    cell = s_rq @ inv
    s_q = np.column_stack([wq0.sum(1), wq1.sum(1)])
    t = (inv @ s_q[:, :, None])[:, :, 0]
    cq = inv + t[:, :, None] * t[:, None, :]
    e0 = r0 - cell[:, 0, 0, None] * q0 - cell[:, 0, 1, None] * q1
    e1 = r1 - cell[:, 1, 0, None] * q0 - cell[:, 1, 1, None] * q1
    rss = (w * (e0 * e0 + e1 * e1)).sum(1)
    dof = 2.0 * (2.0 * count - 2.0 - (s_q * t).sum(1))
    rss[~good] = np.nan
    dof[~good] = np.nan
    return cell, cq, count.astype(np.int64), rss, dof


def reference_cell(cells: np.ndarray, use: np.ndarray) -> np.ndarray | None:
    """Element-wise median of the local cells of the columns ``use`` (robust to defects)."""
    chosen = cells[use]
    chosen = chosen[np.isfinite(chosen).all(axis=(1, 2))]
    if len(chosen) == 0:
        return None
    return np.median(chosen, axis=0)


def position_std_px(local: LocalCells, sublattice: np.ndarray) -> np.ndarray:
    """Per-column position noise (px) estimated per sublattice from the fit residuals.

    The mean over a sublattice of rss / dof (the residual variance each column's fit
    implies; columns above 5x the median -- defects, misplaced clicks -- left out). It
    includes any real non-affine wiggle of the lattice, so it errs on the side of larger
    errors. (The median would be biased low: neighbouring fits share columns.)
    """
    out = np.full(len(sublattice), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = local.rss / local.dof
    for m in np.unique(sublattice[sublattice >= 0]):
        members = sublattice == m
        v = var[members & np.isfinite(var) & (local.dof > 0)]
        if v.size:
            v = v[v <= 5.0 * np.median(v)]
            out[members] = np.sqrt(np.mean(v))
    return out


def polar(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation angle (rad, counter-clockwise as displayed) and stretch U of F = R U."""
    theta = np.arctan2(f[:, 1, 0] - f[:, 0, 1], f[:, 0, 0] + f[:, 1, 1])
    c, s = np.cos(theta), np.sin(theta)
    # U = R^T F with R = [[c, -s], [s, c]] in (y, x) components.
    u = np.empty_like(f)
    u[:, 0, 0] = c * f[:, 0, 0] + s * f[:, 1, 0]
    u[:, 0, 1] = c * f[:, 0, 1] + s * f[:, 1, 1]
    u[:, 1, 0] = -s * f[:, 0, 0] + c * f[:, 1, 0]
    u[:, 1, 1] = -s * f[:, 0, 1] + c * f[:, 1, 1]
    sym = 0.5 * (u[:, 0, 1] + u[:, 1, 0])
    u[:, 0, 1] = sym
    u[:, 1, 0] = sym
    return theta, u


def crystal_frame(reference: np.ndarray) -> np.ndarray:
    """Orthonormal (y, x) frame: columns e_a along a, e_b perpendicular to a on b's side."""
    a, b = reference[:, 0], reference[:, 1]
    e_a = a / np.linalg.norm(a)
    e_b = np.array([e_a[1], -e_a[0]])
    if e_b @ b < 0:
        e_b = -e_b
    return np.column_stack([e_a, e_b])


def strain_table(
    local: LocalCells, reference: np.ndarray, sigma_px: np.ndarray
) -> dict[str, np.ndarray]:
    """Strain, rotation, dilatation, crystal-axes strain and errors of every column."""
    inv_ref = np.linalg.inv(reference)
    f = local.cell @ inv_ref
    theta, u = polar(f)
    eps = u - np.eye(2)
    frame = crystal_frame(reference)
    eps_c = frame.T @ eps @ frame
    # Error matrix of F's rows in (y, x) reference-vector space: A^-T C_q A^-1.
    cv = inv_ref.T @ local.cq @ inv_ref
    var_y, var_x = cv[:, 0, 0], cv[:, 1, 1]
    with np.errstate(invalid="ignore"):
        half = 0.5 * sigma_px * np.sqrt(var_x + var_y)
        out = {
            "strain_xx": eps[:, 1, 1],
            "strain_yy": eps[:, 0, 0],
            "strain_xy": eps[:, 0, 1],
            "rotation_deg": np.degrees(theta),
            "dilatation": f[:, 0, 0] * f[:, 1, 1] - f[:, 0, 1] * f[:, 1, 0] - 1.0,
            "strain_aa": eps_c[:, 0, 0],
            "strain_bb": eps_c[:, 1, 1],
            "strain_ab": eps_c[:, 0, 1],
            "strain_xx_std": sigma_px * np.sqrt(var_x),
            "strain_yy_std": sigma_px * np.sqrt(var_y),
            "strain_xy_std": half,
            "rotation_deg_std": np.degrees(half),
        }
    return out
