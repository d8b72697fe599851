"""Scoring tracks against known trajectories (simulated movies): link recall and precision.

Detections are matched to the true objects frame by frame (one-to-one, within
``radius_px``; :func:`napari_atomseg.atoms.metrics.match_points`). A *true link* joins
two consecutive frames in which an object is visible; it is recovered when the
detections matched to it in both frames carry the same ``track_id``. A *gap link* joins
the last frame before an object fades to the first frame after it returns. A *predicted
link* joins consecutive detections of one track; it is correct when both ends are matched
to the same object (links with an unmatched end are not judged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class LinkScores:
    """Counts and rates of a tracking result against the truth."""

    true_links: int
    recovered: int
    moving_links: int  # true links of objects whose kind is ``moving_kind``
    moving_recovered: int
    gap_links: int
    gap_recovered: int
    predicted_links: int  # with both ends matched
    correct_links: int
    detection_recall: float

    @property
    def recall(self) -> float:
        """Share of the true links recovered (NaN without any)."""
        return self.recovered / self.true_links if self.true_links else float("nan")

    @property
    def moving_recall(self) -> float:
        """Share of the moving objects' true links recovered (NaN without any)."""
        return self.moving_recovered / self.moving_links if self.moving_links else float("nan")

    @property
    def gap_recall(self) -> float:
        """Share of the gap links recovered (NaN without any)."""
        return self.gap_recovered / self.gap_links if self.gap_links else float("nan")

    @property
    def precision(self) -> float:
        """Share of the judged predicted links that are correct (NaN without any)."""
        return self.correct_links / self.predicted_links if self.predicted_links else float("nan")


def inside(truth: pd.DataFrame, shape: tuple[int, int], border_px: float) -> pd.DataFrame:
    """Truth rows at least ``border_px`` inside a frame of ``shape`` (a column cut by the
    frame's edge is not a fair test of the tracker)."""
    h, w = shape
    y, x = truth["y_px"], truth["x_px"]
    keep = (y >= border_px) & (y <= h - 1 - border_px) & (x >= border_px) & (x <= w - 1 - border_px)
    return truth[keep]


def match_to_truth(tracks: pd.DataFrame, truth: pd.DataFrame, radius_px: float) -> pd.DataFrame:
    """``truth`` (visible rows) with the matched detection's ``track_id`` (-1: none)."""
    from ..atoms.metrics import match_points

    visible = truth[truth["visible"]].copy()
    visible["track_id"] = -1
    for frame, rows in visible.groupby("frame"):
        det = tracks[tracks["frame"] == frame]
        if len(det) == 0:
            continue
        m = match_points(
            det[["y_px", "x_px"]].to_numpy(), rows[["y_px", "x_px"]].to_numpy(), radius_px
        )
        ids = np.full(len(rows), -1, dtype=np.int64)
        ids[m.true] = det["track_id"].to_numpy()[m.predicted]
        visible.loc[rows.index, "track_id"] = ids
    return visible


def score_links(
    tracks: pd.DataFrame,
    truth: pd.DataFrame,
    radius_px: float,
    moving_kind: str = "single_atom",
) -> LinkScores:
    """Link recall (all, moving objects, across gaps) and precision of ``tracks``.

    ``tracks``: ``frame, y_px, x_px, track_id`` (raw frame coordinates); ``truth``:
    ``object_id, frame, y_px, x_px, visible, kind`` (as :mod:`napari_atomseg.simulation.movie`
    makes it; filter it with :func:`inside` first). A gap link needs the object in the
    field, not visible, on every frame between its two ends (a column that left the
    field and came back is no gap the tracker should close).

    Parameters
    ----------
    tracks
        ``frame, y_px, x_px, track_id`` (raw frame coordinates).
    truth
        ``object_id, frame, y_px, x_px, visible, kind``.
    radius_px
        Match radius between detections and true objects, px.
    moving_kind
        The ``kind`` of the objects whose links :attr:`LinkScores.moving_recall` scores.

    Returns
    -------
    LinkScores
        Link counts, recoveries and the detection recall.
    """
    present = truth.sort_values(["object_id", "frame"])
    matched = match_to_truth(tracks, present, radius_px).sort_values(["object_id", "frame"])
    obj = matched["object_id"].to_numpy()
    frame = matched["frame"].to_numpy()
    ids = matched["track_id"].to_numpy()
    kind = matched["kind"].to_numpy()
    same_obj = obj[1:] == obj[:-1]
    step = frame[1:] - frame[:-1]
    found = (ids[1:] == ids[:-1]) & (ids[1:] >= 0)
    consecutive = same_obj & (step == 1)
    # A gap is fair when the object was present (invisible) on every frame in between.
    rows_of = present.groupby("object_id")["frame"].apply(lambda f: set(f.tolist())).to_dict()
    gaps = np.zeros(len(step), bool)
    for k in np.flatnonzero(same_obj & (step > 1)):
        frames = rows_of.get(obj[k], set())
        gaps[k] = all(f in frames for f in range(frame[k] + 1, frame[k + 1]))
    moving = consecutive & (kind[1:] == moving_kind)
    correct, judged = _predicted_links(tracks, matched)
    return LinkScores(
        true_links=int(consecutive.sum()),
        recovered=int((consecutive & found).sum()),
        moving_links=int(moving.sum()),
        moving_recovered=int((moving & found).sum()),
        gap_links=int(gaps.sum()),
        gap_recovered=int((gaps & found).sum()),
        predicted_links=judged,
        correct_links=correct,
        detection_recall=float((ids >= 0).mean()) if len(ids) else float("nan"),
    )


def _predicted_links(tracks: pd.DataFrame, matched: pd.DataFrame) -> tuple[int, int]:
    """(correct, judged) links between consecutive detections of each track."""
    key = matched[matched["track_id"] >= 0].set_index(["frame", "track_id"])["object_id"]
    lookup = key[~key.index.duplicated()].to_dict()
    t = tracks.sort_values(["track_id", "frame"])
    tid = t["track_id"].to_numpy()
    fr = t["frame"].to_numpy()
    same = tid[1:] == tid[:-1]
    correct = judged = 0
    for a, b, k in zip(fr[:-1][same], fr[1:][same], tid[1:][same]):
        oa = lookup.get((a, k))
        ob = lookup.get((b, k))
        if oa is None or ob is None:
            continue
        judged += 1
        correct += int(oa == ob)
    return correct, judged


def drift_rms_px(estimated_px: np.ndarray, true_px: np.ndarray) -> float:
    """RMS length of the drift error vectors (px)."""
    err = np.asarray(estimated_px, float) - np.asarray(true_px, float)
    return float(np.sqrt((err**2).sum(axis=1).mean()))
