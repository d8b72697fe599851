"""Point-set metrics: one-to-one matching of detected and true columns within a radius,
then precision, recall, F1, Jaccard, Chamfer distance and RMS localisation error.

Matching is an optimal assignment (minimum total distance, Hungarian algorithm) restricted
to pairs closer than the match radius. Pairs are found with a KD-tree and the assignment is
solved per connected group of mutually reachable points, so 10^5 columns match in well under
a second and the result equals the global optimum (groups do not interact).

The match radius can be given in pixels, in nm (with the pixel size) or as a fraction of
the true columns' median nearest-neighbour spacing; the usual choice for lattices is half
the spacing, so no point can be matched to a neighbour's column.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .._validate import check_pixel_size_nm
from ..errors import InputError
from .spacing import as_points, median_spacing_px


@dataclass(frozen=True)
class Matching:
    """A one-to-one matching: ``predicted[i]`` is matched to ``true[i]`` at ``distance_px[i]``."""

    predicted: np.ndarray  # (K,) int64 indices into the predicted points
    true: np.ndarray  # (K,) int64 indices into the true points
    distance_px: np.ndarray  # (K,) float64


def match_points(predicted_px: object, true_px: object, radius_px: float) -> Matching:
    """Optimal one-to-one matching of two point sets, pairs closer than ``radius_px`` only.

    The matching has the largest possible number of pairs, and among those the smallest
    total distance (a detection is never left unmatched to shave distance off another).

    Parameters
    ----------
    predicted_px, true_px
        ``(N, 2)`` and ``(M, 2)`` (row, col) positions in pixels.
    radius_px
        Largest distance of a matched pair, pixels (positive).

    Returns
    -------
    Matching
        Index pairs into the two sets and their distances in pixels, ordered by the
        predicted index.
    """
    pred = as_points(predicted_px, "predicted")
    true = as_points(true_px, "true")
    radius = float(radius_px)
    if not math.isfinite(radius) or radius <= 0:
        raise InputError(f"radius_px: must be a positive number of pixels, got {radius_px}")
    empty = Matching(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if len(pred) == 0 or len(true) == 0:
        return empty
    pairs = cKDTree(pred).sparse_distance_matrix(cKDTree(true), radius, output_type="ndarray")
    pi = pairs["i"].astype(np.int64)
    ti = pairs["j"].astype(np.int64)
    d = pairs["v"].astype(np.float64)
    if len(pi) == 0:
        return empty
    n_p, n_t = len(pred), len(true)
    # Graph over pred (0..n_p-1) and true (n_p..n_p+n_t-1) nodes: components are independent.
    graph = coo_matrix((np.ones(len(pi)), (pi, ti + n_p)), shape=(n_p + n_t, n_p + n_t))
    _, comp = connected_components(graph, directed=False)
    pair_comp = comp[pi]
    order = np.argsort(pair_comp, kind="stable")
    pi, ti, d, pair_comp = pi[order], ti[order], d[order], pair_comp[order]
    bounds = np.flatnonzero(np.diff(pair_comp)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(pi)]])
    sizes = ends - starts
    # Most groups are a single pair: take them all at once.
    single = sizes == 1
    out_p = [pi[starts[single]]]
    out_t = [ti[starts[single]]]
    out_d = [d[starts[single]]]
    for s, e in zip(starts[~single], ends[~single]):
        gp, gt, gd = pi[s:e], ti[s:e], d[s:e]
        up, p_idx = np.unique(gp, return_inverse=True)
        ut, t_idx = np.unique(gt, return_inverse=True)
        # Each real pair earns a bonus larger than the largest possible total distance of
        # the group, so the assignment maximises the number of pairs first, then closeness.
        bonus = radius * (min(len(up), len(ut)) + 1)
        reachable = np.zeros((len(up), len(ut)), dtype=bool)
        reachable[p_idx, t_idx] = True
        dist = np.zeros((len(up), len(ut)))
        dist[p_idx, t_idx] = gd
        cost = np.where(reachable, dist - bonus, 0.0)
        rows, cols = linear_sum_assignment(cost)
        real = reachable[rows, cols]
        out_p.append(up[rows[real]])
        out_t.append(ut[cols[real]])
        out_d.append(dist[rows[real], cols[real]])
    mp, mt, md = (np.concatenate(x) for x in (out_p, out_t, out_d))
    order = np.argsort(mp, kind="stable")
    return Matching(mp[order].astype(np.int64), mt[order].astype(np.int64), md[order])


@dataclass(frozen=True)
class PointMetrics:
    """Detection and localisation quality of a predicted point set against the truth.

    Distances are in pixels, and also in nm when the pixel size was given.
    ``chamfer_px`` is the symmetric Chamfer distance: the mean, over both sets, of each
    point's distance to the nearest point of the other set (unmatched points included, so
    it punishes both misses and false positives). ``rms_error_px`` is the root-mean-square
    distance of matched pairs (localisation precision).
    """

    n_predicted: int
    n_true: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float
    jaccard: float
    chamfer_px: float
    rms_error_px: float
    radius_px: float
    pixel_size_nm: float | None = None

    @property
    def rms_error_pm(self) -> float:
        """RMS localisation error in picometres (NaN without a pixel size)."""
        if self.pixel_size_nm is None:
            return float("nan")
        return self.rms_error_px * self.pixel_size_nm * 1000.0

    @property
    def chamfer_pm(self) -> float:
        """Chamfer distance in picometres (NaN without a pixel size)."""
        if self.pixel_size_nm is None:
            return float("nan")
        return self.chamfer_px * self.pixel_size_nm * 1000.0

    def as_dict(self) -> dict[str, float]:
        """Flat dict including the pm-valued properties (for tables)."""
        out = asdict(self)
        out["rms_error_pm"] = self.rms_error_pm
        out["chamfer_pm"] = self.chamfer_pm
        return out


def resolve_radius_px(
    true_px: np.ndarray,
    radius_px: float | None = None,
    radius_nm: float | None = None,
    radius_fraction_of_spacing: float | None = None,
    pixel_size_nm: float | None = None,
) -> float:
    """The match radius in pixels from exactly one of the three ways of giving it."""
    given = [x is not None for x in (radius_px, radius_nm, radius_fraction_of_spacing)]
    if sum(given) != 1:
        raise InputError(
            "match radius: give exactly one of radius_px, radius_nm, radius_fraction_of_spacing"
        )
    if radius_px is not None:
        return float(radius_px)
    if radius_nm is not None:
        ps = check_pixel_size_nm(pixel_size_nm)
        if ps is None:
            raise InputError("radius_nm: needs pixel_size_nm to convert the radius to pixels")
        return float(radius_nm) / ps
    spacing = median_spacing_px(true_px)
    if not math.isfinite(spacing):
        raise InputError(
            "radius_fraction_of_spacing: the true points need at least two columns to "
            "define a spacing; give radius_px or radius_nm instead"
        )
    return float(radius_fraction_of_spacing) * spacing


def point_metrics(
    predicted_px: object,
    true_px: object,
    radius_px: float | None = None,
    radius_nm: float | None = None,
    radius_fraction_of_spacing: float | None = None,
    pixel_size_nm: float | None = None,
) -> PointMetrics:
    """Precision, recall, F1, Jaccard, Chamfer and RMS error of ``predicted`` vs ``true``.

    Points are ``(N, 2)`` (row, col) in pixels. The match radius is given by exactly one of
    ``radius_px``, ``radius_nm`` (needs ``pixel_size_nm``) or
    ``radius_fraction_of_spacing`` (times the true points' median nearest-neighbour
    spacing). Empty sets are handled: precision is 1 when nothing was predicted, recall 1
    when nothing was there to find (so two empty sets score F1 = 1).

    Parameters
    ----------
    predicted_px, true_px
        ``(N, 2)`` and ``(M, 2)`` (row, col) positions in pixels.
    radius_px, radius_nm, radius_fraction_of_spacing
        The match radius; exactly one of them.
    pixel_size_nm
        nm per pixel: needed by ``radius_nm``; when given, the result also reports the
        errors in picometres.

    Returns
    -------
    PointMetrics
        Counts, precision, recall, F1, Jaccard, Chamfer distance and RMS error (px).
    """
    pred = as_points(predicted_px, "predicted")
    true = as_points(true_px, "true")
    radius = resolve_radius_px(
        true, radius_px, radius_nm, radius_fraction_of_spacing, pixel_size_nm
    )
    if pixel_size_nm is not None:
        pixel_size_nm = check_pixel_size_nm(pixel_size_nm)
    m = match_points(pred, true, radius)
    tp = len(m.predicted)
    fp = len(pred) - tp
    fn = len(true) - tp
    precision = tp / len(pred) if len(pred) else 1.0
    recall = tp / len(true) if len(true) else 1.0
    denom = 2 * tp + fp + fn
    f1 = 2 * tp / denom if denom else 1.0
    jaccard = tp / (tp + fp + fn) if (tp + fp + fn) else 1.0
    if len(pred) and len(true):
        d_pt = cKDTree(true).query(pred)[0]
        d_tp = cKDTree(pred).query(true)[0]
        chamfer = float(0.5 * (d_pt.mean() + d_tp.mean()))
    else:
        chamfer = float("nan")
    rms = float(np.sqrt(np.mean(m.distance_px**2))) if tp else float("nan")
    return PointMetrics(
        n_predicted=len(pred),
        n_true=len(true),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        jaccard=float(jaccard),
        chamfer_px=chamfer,
        rms_error_px=rms,
        radius_px=radius,
        pixel_size_nm=pixel_size_nm,
    )


def box_iou_metrics(
    predicted_px: object, true_px: object, box_px: float = 21.0, min_iou: float = 0.5
) -> PointMetrics:
    """Detection metrics by the box rule of the Pt single-atom paper (Mitchell et al.).

    Each point is the centre of a ``box_px`` x ``box_px`` square; a prediction and a true
    point match when their squares overlap with intersection over union above
    ``min_iou``, one to one (Hungarian assignment: most matches, then highest IoU). With
    21 px boxes a match needs the centres closer than about 7 px along one axis.
    ``rms_error_px`` is over matched pairs; ``radius_px`` reports the box side.
    """
    pred = as_points(predicted_px, "predicted")
    true = as_points(true_px, "true")
    side = float(box_px)
    if not math.isfinite(side) or side <= 0:
        raise InputError(f"box_px: must be a positive number of pixels, got {box_px}")
    tp, dist = 0, np.zeros(0)
    if len(pred) and len(true):
        pairs = cKDTree(pred).sparse_distance_matrix(
            cKDTree(true), side * math.sqrt(2), p=2, output_type="ndarray"
        )
        pi, ti = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
        d = np.abs(pred[pi] - true[ti])
        inter = np.clip(side - d[:, 0], 0, None) * np.clip(side - d[:, 1], 0, None)
        iou = inter / (2 * side * side - inter)
        ok = iou > min_iou
        pi, ti, iou = pi[ok], ti[ok], iou[ok]
        if len(pi):
            up, p_idx = np.unique(pi, return_inverse=True)
            ut, t_idx = np.unique(ti, return_inverse=True)
            cost = np.full((len(up), len(ut)), 10.0)
            cost[p_idx, t_idx] = 1.0 - iou  # a real pair always beats no pair
            rows, cols = linear_sum_assignment(cost)
            real = cost[rows, cols] < 10.0
            tp = int(real.sum())
            dist = np.linalg.norm(pred[up[rows[real]]] - true[ut[cols[real]]], axis=1)
    fp, fn = len(pred) - tp, len(true) - tp
    denom = 2 * tp + fp + fn
    return PointMetrics(
        n_predicted=len(pred),
        n_true=len(true),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=tp / len(pred) if len(pred) else 1.0,
        recall=tp / len(true) if len(true) else 1.0,
        f1=2 * tp / denom if denom else 1.0,
        jaccard=tp / (tp + fp + fn) if (tp + fp + fn) else 1.0,
        chamfer_px=float("nan"),
        rms_error_px=float(np.sqrt(np.mean(dist**2))) if tp else float("nan"),
        radius_px=side,
    )
