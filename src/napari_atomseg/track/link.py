"""Linking per-frame positions into tracks, after the drift is removed.

Two established trackers are wrapped behind one function, :func:`link`:

- ``"laptrack"`` (the default): the linear-assignment-problem tracker of Jaqaman et al.
  (Nat. Methods 5, 695, 2008) as the ``laptrack`` package implements it: frame-to-frame
  links by a global optimal assignment of squared distances, then gap closing -- a track
  that ends is joined to one that starts up to ``gap_frames`` frames later -- by a second
  assignment;
- ``"trackpy"``: Crocker-Grier linking (``trackpy.link``) with ``memory`` for gaps.

They were compared on simulated movies with known trajectories (columns that fade and
come back, single atoms hopping between lattice sites): see docs/tracking.md for the
table and why laptrack is the default. Positions enter in drift-corrected pixels;
``track_id`` is the only thing added.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError

LINKERS = ("two-stage", "laptrack", "trackpy")
DEFAULT_LINKER = "two-stage"
#: Two-stage linking: first links only within this distance (px) of a still position.
DEFAULT_STILL_DISTANCE_PX = 3.0


def link(
    positions: pd.DataFrame,
    max_distance_px: float,
    gap_frames: int = 5,
    gap_distance_px: float | None = None,
    linker: str = DEFAULT_LINKER,
    coordinates: tuple[str, str] = ("y", "x"),
    still_distance_px: float = DEFAULT_STILL_DISTANCE_PX,
    brightness: str | None = None,
    brightness_weight_px: float = 0.0,
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
        ``"two-stage"`` (default): trackpy links every position to the same place in the
        next frames (within ``still_distance_px``, across up to ``gap_frames`` missing
        frames); laptrack then joins the track ends left over -- an atom that moved --
        to track starts up to ``max_distance_px`` away by a global assignment, with those
        first links fixed. ``"laptrack"`` or ``"trackpy"``: one tracker alone, with
        ``max_distance_px`` as its search radius.
    still_distance_px
        The first stage's search radius (two-stage only).
    brightness, brightness_weight_px
        A column of ``positions`` (e.g. ``"intensity"``) whose log ratio to its median
        enters laptrack's cost as a third coordinate scaled by ``brightness_weight_px``:
        a bright single atom that moved is then joined to a bright position, not to a
        faint column that happens to be as near (0: positions only).
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
    gap = int(gap_frames)
    if linker == "trackpy":
        ids = _trackpy(table, float(max_distance_px), gap)
    elif linker == "laptrack":
        ids = _laptrack(table, float(max_distance_px), gap, gap_distance)
    else:
        still = _trackpy(table, min(float(still_distance_px), float(max_distance_px)), gap)
        ids = _laptrack(table, float(max_distance_px), gap, gap_distance, fixed=still)
    return _renumber(ids)


def _fixed_edges(ids: np.ndarray, frame: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive detections (row indices) of each track of ``ids``."""
    order = np.lexsort((frame, ids))
    same = ids[order][1:] == ids[order][:-1]
    return list(zip(order[:-1][same].tolist(), order[1:][same].tolist()))


def _laptrack(
    table: pd.DataFrame, max_d: float, gap: int, gap_d: float, fixed: np.ndarray | None = None
) -> np.ndarray:
    """laptrack on ``table``; ``fixed`` (track ids of a first stage) are kept as links."""
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
        # (laptrack's default, a percentile of all candidate costs, left hops unlinked).
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
    # Node of a row: (frame, index within the frame).
    node_of = np.empty((len(table), 2), dtype=np.int64)
    node_of[order, 0] = frame
    node_of[order, 1] = np.arange(len(table)) - starts[frame]
    known = None
    if fixed is not None:
        rows = _fixed_edges(fixed, table["frame"].to_numpy())
        known = [(tuple(node_of[a]), tuple(node_of[b])) for a, b in rows]
    # predict() returns the graph of (frame, index) nodes; its dataframe conversion is
    # far slower than the tracking itself on thousands of columns, so do that here.
    tree = tracker.predict(coords, connected_edges=known)
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
