"""Linking per-frame positions into tracks, after the drift is removed.

:func:`link` offers three linkers:

- ``"two-stage"`` (the default): each position is joined to the same place in the next
  frame (:func:`still_segments`: a minimum-cost assignment within a few px, the links
  ``trackpy.link`` makes with that radius, 15-20x faster on lattice movies) -- after
  drift correction nearly every column sits still -- and the segments this leaves are
  joined end to start by one global assignment, the gap-closing problem of Jaqaman et
  al. (Nat. Methods 5, 695, 2008) as laptrack and TrackMate pose it
  (:func:`close_segments`): an atom that hopped to a neighbouring site, a column that
  faded for a few frames;
- ``"laptrack"``: the ``laptrack`` package alone (frame-to-frame assignment, then gap
  closing), with the longest allowed step as its cutoff;
- ``"trackpy"``: ``trackpy.link`` alone, with ``memory`` for gaps.

On simulated lattice movies with hopping single atoms the single trackers fail in
opposite ways: with a search radius as long as a hop, laptrack re-assigns columns that
flicker in and out of detection to their neighbours (a neighbour is nearer than a hop)
and trackpy's sub-networks explode; with a short radius neither follows a hop. The
comparison table is in docs/tracking.md. Positions enter in drift-corrected pixels;
``track_id`` is the only thing added.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

LINKERS = ("two-stage", "laptrack", "trackpy")
DEFAULT_LINKER = "two-stage"
#: Two-stage linking: first links only within this distance (px) of a still position.
DEFAULT_STILL_DISTANCE_PX = 3.0
#: Two-stage linking: weight (px per e-fold of brightness) of the brightness coordinate
#: in the second stage (chosen on a development movie, see docs/tracking.md).
DEFAULT_BRIGHTNESS_WEIGHT_PX = 10.0


def link(
    positions: pd.DataFrame,
    max_distance_px: float,
    gap_frames: int = 5,
    gap_distance_px: float | None = None,
    linker: str = DEFAULT_LINKER,
    coordinates: tuple[str, str] = ("y", "x"),
    still_distance_px: float = DEFAULT_STILL_DISTANCE_PX,
    brightness: str | None = None,
    brightness_weight_px: float = DEFAULT_BRIGHTNESS_WEIGHT_PX,
    min_move_confidence: float | None = 0.5,
) -> np.ndarray:
    """Track id (int64, from 0 in order of first appearance) of each row of ``positions``.

    Parameters
    ----------
    positions
        One row per detection with an integer ``frame`` column (consecutive frames are
        1 apart) and the drift-corrected ``coordinates`` in px.
    max_distance_px
        Longest frame-to-frame step a track may make.
    gap_frames
        A track may miss this many frames and go on (0: no gap closing).
    gap_distance_px
        Longest distance bridged across a gap (default ``max_distance_px``).
    linker
        ``"two-stage"`` (default): every position is linked to the same place in the
        next frame (within ``still_distance_px``, :func:`still_segments`); the segments
        this leaves are then joined end to start -- an atom that moved, a column that
        faded for up to ``gap_frames`` frames -- by one global assignment
        (:func:`close_segments`).
        ``"laptrack"`` or ``"trackpy"``: one tracker alone, with ``max_distance_px`` as
        its search radius (compared in docs/tracking.md).
    still_distance_px
        The first stage's search radius (two-stage only).
    brightness, brightness_weight_px
        A column of ``positions`` (e.g. ``"intensity"``) whose log ratio to its median
        enters laptrack's cost as a third coordinate scaled by ``brightness_weight_px``:
        a bright single atom that moved is then joined to a bright position, not to a
        faint column that happens to be as near (0: positions only).
    min_move_confidence
        Two-stage only, with a ``confidence`` column: a join longer than
        ``still_distance_px`` (a move) needs both ends at or above this quantile of the
        confidences (None: no such condition).

    Returns
    -------
    numpy.ndarray
        int64 track id per row of ``positions``, from 0 in order of first appearance.
    """
    if linker not in LINKERS:
        raise InputError(f"linker: expected one of {LINKERS}, got {linker!r}")
    if not max_distance_px > 0:
        raise InputError(f"max_distance_px: {max_distance_px} must be > 0")
    if not 0 <= int(gap_frames) <= 1000:
        raise InputError(f"gap_frames: {gap_frames} must be 0-1000")
    gap_distance = max_distance_px if gap_distance_px is None else float(gap_distance_px)
    if len(positions) == 0:
        return np.zeros(0, dtype=np.int64)
    frame = positions["frame"].to_numpy()
    if not np.issubdtype(frame.dtype, np.integer):
        raise InputError("positions: the frame column must hold integers")
    table = pd.DataFrame(
        {
            "frame": (frame - frame.min()).astype(np.int64),
            "y": positions[coordinates[0]].to_numpy(np.float64),
            "x": positions[coordinates[1]].to_numpy(np.float64),
            "row": np.arange(len(positions)),
        }
    )
    if brightness is not None and brightness_weight_px > 0:
        value = positions[brightness].to_numpy(np.float64)
        ok = np.isfinite(value) & (value > 0)
        ref = float(np.median(value[ok])) if ok.any() else 1.0
        level = np.where(ok, np.log(np.where(ok, value, ref) / ref), 0.0)
        table["b"] = float(brightness_weight_px) * level
    if min_move_confidence is not None and "confidence" in positions:
        conf = positions["confidence"].to_numpy(np.float64)
        level = float(np.nanquantile(conf, min_move_confidence)) if len(conf) else 0.0
        table["sure"] = conf >= level
    gap = int(gap_frames)
    if linker == "trackpy":
        ids = _trackpy(table, float(max_distance_px), gap)
    elif linker == "laptrack":
        ids = _laptrack(table, float(max_distance_px), gap, gap_distance)
    else:
        still = still_segments(table, min(float(still_distance_px), float(max_distance_px)))
        ids = close_segments(
            table, still, max(float(max_distance_px), gap_distance), gap + 1, still_distance_px
        )
    return _renumber(ids)


def _occupied(
    table: pd.DataFrame, frames: np.ndarray, yx: np.ndarray, offsets: range, radius: float
) -> np.ndarray:
    """For each (frame, position): is there a detection within ``radius`` of it in any of
    the frames ``frame + offset``?"""
    from scipy.spatial import cKDTree

    frame_all = table["frame"].to_numpy()
    points = table[["y", "x"]].to_numpy(np.float64)
    trees: dict[int, Any] = {}
    out = np.zeros(len(frames), bool)
    for offset in offsets:
        target = frames + offset
        for f in np.unique(target):
            if f not in trees:
                sel = frame_all == f
                trees[f] = cKDTree(points[sel]) if sel.any() else None
            tree = trees[f]
            if tree is None:
                continue
            rows = np.flatnonzero(target == f)
            d, _ = tree.query(yx[rows], distance_upper_bound=radius)
            out[rows] |= np.isfinite(d)
    return out


def _min_cost_matching(
    i: np.ndarray, j: np.ndarray, cost: np.ndarray, n_a: int, n_b: int, alone: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) of a minimum-cost one-to-one matching between ``n_a`` and ``n_b``
    items, given the allowed pairs ``(i, j)`` and their ``cost``; an item left unmatched
    costs ``alone``. Solved as a full bipartite matching with one stand-in per item
    (laptrack's and TrackMate's construction) by scipy's sparse solver."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    rows = np.concatenate([i, np.arange(n_a), n_a + np.arange(n_b), n_a + j])
    cols = np.concatenate([j, n_b + np.arange(n_a), np.arange(n_b), n_b + i])
    data = np.concatenate(
        [cost + 1e-9, np.full(n_a, alone), np.full(n_b, alone), np.full(len(i), 1e-9)]
    )
    matrix = coo_matrix((data, (rows, cols)), shape=(n_a + n_b, n_b + n_a)).tocsr()
    row_ind, col_ind = min_weight_full_bipartite_matching(matrix)
    keep = (row_ind < n_a) & (col_ind < n_b)
    return row_ind[keep], col_ind[keep]


def still_segments(table: pd.DataFrame, max_distance: float) -> np.ndarray:
    """Segment id per row of ``table`` (``frame``, ``y``, ``x``): each position joined to
    one in the next frame within ``max_distance``, by the matching of least total squared
    distance (a position left alone costs ``max_distance**2``).

    The links ``trackpy.link(search_range=max_distance, memory=0)`` makes (identical on
    the benchmark movies, about 236,000 links each), without its per-particle bookkeeping:
    0.3-0.4 s instead of 5-7 s for 100 frames of 2,400 columns (docs/tracking.md).
    """
    from scipy.spatial import cKDTree

    frame = table["frame"].to_numpy()
    yx = table[["y", "x"]].to_numpy(np.float64)
    order = np.argsort(frame, kind="stable")
    bounds = np.searchsorted(frame[order], np.arange(int(frame.max()) + 2))
    ids = np.empty(len(table), dtype=np.int64)
    next_id, prev_rows, prev_tree = 0, order[:0], None
    for f in range(len(bounds) - 1):
        rows = order[bounds[f] : bounds[f + 1]]
        tree = cKDTree(yx[rows]) if len(rows) else None
        new = np.full(len(rows), -1, dtype=np.int64)
        if tree is not None and prev_tree is not None:
            pairs = prev_tree.sparse_distance_matrix(tree, max_distance, output_type="ndarray")
            a, b = _min_cost_matching(
                pairs["i"], pairs["j"], pairs["v"] ** 2, len(prev_rows), len(rows), max_distance**2
            )
            new[b] = ids[prev_rows[a]]
        fresh = new < 0
        new[fresh] = next_id + np.arange(int(fresh.sum()))
        next_id += int(fresh.sum())
        ids[rows] = new
        prev_rows, prev_tree = rows, tree
    return ids


def close_segments(
    table: pd.DataFrame,
    segment: np.ndarray,
    max_distance: float,
    max_frames: int,
    still_distance: float = DEFAULT_STILL_DISTANCE_PX,
    settle_frames: int = 2,
) -> np.ndarray:
    """Join segments (``segment`` ids of ``table``'s rows) end to start by one global
    assignment: Jaqaman et al.'s gap-closing problem, as laptrack and TrackMate pose it.

    A segment ending at frame t may continue as one starting at t+1..t+``max_frames``
    whose first position is within ``max_distance`` of its last one (``y, x`` and,
    when present, the brightness coordinate ``b``); the cost of a join is the squared
    distance, of leaving an end or a start alone ``max_distance**2`` each, so a join is
    made unless a cheaper arrangement competes for the same ends. Solved with scipy's
    sparse minimum-weight bipartite matching (laptrack's solver); laptrack's own
    gap-closing step builds its candidates row by row in pandas, which takes minutes for
    the thousands of segments of a lattice movie.

    A join longer than ``still_distance`` is a move, allowed only from a site left
    empty for the next ``settle_frames`` frames to a site that was empty for the
    ``settle_frames`` before: a faint column that drops out of detection for good next
    to one that comes back is not an atom that moved, though both leave a track end and
    a track start a neighbour's distance apart.
    """
    from scipy.spatial import cKDTree

    cols = [c for c in ("y", "x", "b") if c in table]
    frame = table["frame"].to_numpy()
    order = np.lexsort((frame, segment))
    seg_sorted = segment[order]
    first_row = order[np.r_[True, seg_sorted[1:] != seg_sorted[:-1]]]
    last_row = order[np.r_[seg_sorted[1:] != seg_sorted[:-1], True]]
    values = table[cols].to_numpy(np.float64)
    ends, starts = values[last_row], values[first_row]
    pairs = cKDTree(ends).sparse_distance_matrix(
        cKDTree(starts), max_distance, output_type="ndarray"
    )
    i, j, d = pairs["i"], pairs["j"], pairs["v"]
    step = frame[first_row][j] - frame[last_row][i]
    keep = (step >= 1) & (step <= max_frames)
    i, j, d, step = i[keep], j[keep], d[keep], step[keep]
    # Moved or stayed: the distance in the image plane (d may include brightness).
    plane = values[last_row][i, :2] - values[first_row][j, :2]
    move = np.hypot(plane[:, 0], plane[:, 1]) > still_distance
    if move.any() and settle_frames > 0:
        yx = table[["y", "x"]].to_numpy(np.float64)
        left = ~_occupied(
            table, frame[last_row], yx[last_row], range(1, settle_frames + 1), still_distance
        )
        fresh = ~_occupied(
            table, frame[first_row], yx[first_row], range(-settle_frames, 0), still_distance
        )
        # A move is seen from one frame to the next; across a gap it is a guess.
        ok = ~move | ((step == 1) & left[i] & fresh[j])
        if "sure" in table:
            sure = table["sure"].to_numpy(bool)
            ok &= ~move | (sure[last_row][i] & sure[first_row][j])
        i, j, d = i[ok], j[ok], d[ok]
    n = len(ends)
    end_of, start_of = _min_cost_matching(i, j, d**2, n, n, max_distance**2)
    parent = np.arange(n)
    # Segment k's end joins segment m's start: m continues k (a chain, never a tree).
    follows = np.full(n, -1)
    follows[start_of] = end_of
    seg_ids = seg_sorted[np.r_[True, seg_sorted[1:] != seg_sorted[:-1]]]
    for m in range(n):
        k = m
        while follows[k] >= 0:
            k = follows[k]
        parent[m] = k
    lookup = dict(zip(seg_ids.tolist(), seg_ids[parent].tolist()))
    return np.array([lookup[s_] for s_ in segment.tolist()], dtype=np.int64)


def _laptrack(table: pd.DataFrame, max_d: float, gap: int, gap_d: float) -> np.ndarray:
    """laptrack alone on ``table`` (frame-to-frame assignment, then gap closing)."""
    from laptrack import LapTrack
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    tracker = LapTrack(
        metric="sqeuclidean",
        cutoff=max_d**2,
        gap_closing_metric="sqeuclidean",
        gap_closing_cutoff=gap_d**2 if gap > 0 else False,
        gap_closing_max_frame_count=max(gap, 1),
        splitting_cutoff=False,
        merging_cutoff=False,
        # Starting or ending a track costs as much as the longest allowed step: any step
        # within reach is taken unless a shorter one competes for the same position
        # (laptrack's default, a percentile of all candidate costs, leaves hops unlinked).
        track_start_cost=max_d**2,
        track_end_cost=max_d**2,
        segment_start_cost=gap_d**2,
        segment_end_cost=gap_d**2,
    )
    n_frames = int(table["frame"].max()) + 1
    order = np.lexsort((table["row"].to_numpy(), table["frame"].to_numpy()))
    frame = table["frame"].to_numpy()[order]
    starts = np.searchsorted(frame, np.arange(n_frames + 1))
    yx = table[[c for c in ("y", "x", "b") if c in table]].to_numpy()[order]
    coords = [yx[starts[f] : starts[f + 1]] for f in range(n_frames)]
    # predict() returns the graph of (frame, index) nodes; its dataframe conversion is
    # far slower than the tracking itself on thousands of columns, so do that here.
    tree = tracker.predict(coords)
    edges = np.array([(starts[a[0]] + a[1], starts[b[0]] + b[1]) for a, b in tree.edges()])
    n = len(table)
    if len(edges) == 0:
        labels = np.arange(n)
    else:
        graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
        labels = connected_components(graph, directed=False)[1]
    ids = np.empty(n, dtype=np.int64)
    ids[table["row"].to_numpy()[order]] = labels
    return ids


def _trackpy(table: pd.DataFrame, max_d: float, gap: int) -> np.ndarray:
    import logging

    import trackpy

    trackpy.quiet()
    logging.getLogger("trackpy").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # trackpy's own use of a pandas keyword pandas 3 deprecates; not ours to fix.
        warnings.filterwarnings("ignore", message=".*inplace keyword.*")
        tracked = trackpy.link(
            table, search_range=max_d, memory=gap, pos_columns=["y", "x"], t_column="frame"
        )
    ids = np.empty(len(table), dtype=np.int64)
    ids[tracked["row"].to_numpy()] = tracked["particle"].to_numpy()
    return ids


def _renumber(ids: np.ndarray) -> np.ndarray:
    """Track ids 0, 1, 2... in order of first appearance."""
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.int64)
