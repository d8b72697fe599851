"""What the tracks say about motion: jumps, mean-squared displacement, residence times.

All on drift-corrected positions (``y_corr_px, x_corr_px``), so the stage's drift is not
counted as motion.

- **Jumps** (:func:`detect_jumps`): a step between two consecutive detections of a track
  longer than a threshold. On a crystal the threshold is half the lattice's nearest-
  neighbour spacing (a move to another lattice site, never the position noise of a
  column sitting still: a few pm); on an amorphous support it is a distance the user
  gives (default :data:`AMORPHOUS_JUMP_NM`). :func:`jump_threshold_px` decides which.
- **MSD** (:func:`msd`): mean-squared displacement against lag, per track or over all
  tracks, and a diffusion coefficient ``D = slope / 4`` (2-D) fitted over the first lags.
- **Residence times** (:func:`residence_times`): how long a track stays between jumps;
  the first and last stays of a track are cut by the movie's ends (``censored``).

:func:`track_features` gathers one row per track (what the Tracks layer carries as
features and the CLI writes as a summary).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError

#: Default jump threshold on an amorphous support, nm.
AMORPHOUS_JUMP_NM = 0.1
#: Default jump threshold without a pixel size, px.
AMORPHOUS_JUMP_PX = 5.0
#: On a crystal a jump is a step longer than this fraction of the nearest-neighbour spacing.
CRYSTAL_JUMP_FRACTION = 0.5
#: Lags (frames) the diffusion coefficient is fitted over.
MSD_FIT_LAGS = 4


def support_kind(detections: pd.DataFrame) -> str:
    """``"crystal"`` when the columns' nearest-neighbour spacings are regular (most within
    15 % of their median, on frames with at least 30 columns), else ``"amorphous"``."""
    nn = detections["nn_spacing_px"].to_numpy(np.float64) if "nn_spacing_px" in detections else None
    counts = detections.groupby("frame").size() if len(detections) else pd.Series(dtype=int)
    if nn is None or not len(counts) or counts.median() < 30:
        return "amorphous"
    nn = nn[np.isfinite(nn)]
    if len(nn) == 0:
        return "amorphous"
    regular = np.abs(nn / np.median(nn) - 1.0) <= 0.15
    return "crystal" if regular.mean() >= 0.7 else "amorphous"


def jump_threshold_px(
    detections: pd.DataFrame,
    pixel_size_nm: float | None,
    support: str = "auto",
    jump_threshold_nm: float | None = None,
) -> tuple[float, str]:
    """(threshold in px, the support kind used) for :func:`detect_jumps`."""
    if support not in ("auto", "crystal", "amorphous"):
        raise InputError(f"support: expected auto, crystal or amorphous, got {support!r}")
    kind = support_kind(detections) if support == "auto" else support
    if jump_threshold_nm is not None:
        if not jump_threshold_nm > 0:
            raise InputError(f"jump_threshold_nm: {jump_threshold_nm} must be > 0")
        if pixel_size_nm is None:
            raise InputError("jump_threshold_nm needs a pixel size")
        return float(jump_threshold_nm) / pixel_size_nm, kind
    if kind == "crystal":
        nn = detections["nn_spacing_px"].to_numpy(np.float64)
        return CRYSTAL_JUMP_FRACTION * float(np.nanmedian(nn)), kind
    if pixel_size_nm is None:
        return AMORPHOUS_JUMP_PX, kind
    return AMORPHOUS_JUMP_NM / pixel_size_nm, kind


def _steps(tracks: pd.DataFrame) -> pd.DataFrame:
    """Consecutive detections of each track: from/to frame and corrected positions."""
    t = tracks.sort_values(["track_id", "frame"])
    same = t["track_id"].to_numpy()[1:] == t["track_id"].to_numpy()[:-1]
    a = t.iloc[:-1][same]
    b = t.iloc[1:][same]
    dy = b["y_corr_px"].to_numpy() - a["y_corr_px"].to_numpy()
    dx = b["x_corr_px"].to_numpy() - a["x_corr_px"].to_numpy()
    return pd.DataFrame(
        {
            "track_id": a["track_id"].to_numpy(),
            "frame_from": a["frame"].to_numpy(),
            "frame_to": b["frame"].to_numpy(),
            "y_from_px": a["y_corr_px"].to_numpy(),
            "x_from_px": a["x_corr_px"].to_numpy(),
            "y_to_px": b["y_corr_px"].to_numpy(),
            "x_to_px": b["x_corr_px"].to_numpy(),
            "distance_px": np.hypot(dy, dx),
        }
    )


def detect_jumps(
    tracks: pd.DataFrame, threshold_px: float, pixel_size_nm: float | None = None
) -> pd.DataFrame:
    """Steps longer than ``threshold_px`` (drift-corrected positions).

    Parameters
    ----------
    tracks
        A tracks table (``track_id, frame, y_corr_px, x_corr_px``).
    threshold_px
        Shortest step that counts as a jump, px.
    pixel_size_nm
        nm per pixel; adds ``distance_nm``.

    Returns
    -------
    pandas.DataFrame
        One row per jump: ``track_id, frame_from, frame_to, y/x_from_px, y/x_to_px,
        distance_px[, distance_nm]``.
    """
    steps = _steps(tracks)
    jumps = steps[steps["distance_px"] > threshold_px].reset_index(drop=True)
    if pixel_size_nm is not None:
        jumps["distance_nm"] = jumps["distance_px"] * pixel_size_nm
    return jumps


def msd(tracks: pd.DataFrame, max_lag: int = 20, per_track: bool = False) -> pd.DataFrame:
    """Mean-squared displacement (px^2) against lag (frames), from corrected positions.

    Gaps in a track are honoured: a lag is a difference of frame numbers.

    Parameters
    ----------
    tracks
        A tracks table (``track_id, frame, y_corr_px, x_corr_px``).
    max_lag
        Longest lag, frames (>= 1).
    per_track
        One MSD curve per track instead of one over all tracks.

    Returns
    -------
    pandas.DataFrame
        ``lag_frames, msd_px2, n_pairs`` (with ``track_id`` first when ``per_track``).
    """
    if max_lag < 1:
        raise InputError(f"max_lag: {max_lag} must be >= 1")
    columns = ["track_id", "lag_frames", "msd_px2", "n_pairs"]
    if len(tracks) == 0:
        return pd.DataFrame(columns=columns if per_track else columns[1:])
    tid = tracks["track_id"].to_numpy(np.int64)
    frame = tracks["frame"].to_numpy(np.int64)
    yx = tracks[["y_corr_px", "x_corr_px"]].to_numpy(np.float64)
    span = int(frame.max() - frame.min()) + max_lag + 1
    key = tid * span + (frame - frame.min())
    order = np.argsort(key, kind="stable")
    key, tid, yx = key[order], tid[order], yx[order]
    n_tracks = int(tid.max()) + 1
    parts = []
    for lag in range(1, max_lag + 1):
        pos = np.searchsorted(key, key + lag)
        ok = pos < len(key)
        ok[ok] = key[pos[ok]] == key[ok] + lag
        if not ok.any():
            continue
        d2 = ((yx[pos[ok]] - yx[ok]) ** 2).sum(axis=1)
        sums = np.bincount(tid[ok], d2, minlength=n_tracks)
        counts = np.bincount(tid[ok], minlength=n_tracks)
        has = np.flatnonzero(counts)
        parts.append(
            pd.DataFrame(
                {"track_id": has, "lag_frames": lag, "sum": sums[has], "n_pairs": counts[has]}
            )
        )
    if not parts:
        return pd.DataFrame(columns=columns if per_track else columns[1:])
    table = pd.concat(parts, ignore_index=True)
    keys = ["track_id", "lag_frames"] if per_track else ["lag_frames"]
    out = table.groupby(keys, as_index=False)[["sum", "n_pairs"]].sum()
    out["msd_px2"] = out["sum"] / out["n_pairs"]
    return out[[*keys, "msd_px2", "n_pairs"]]


def diffusion_px2_per_frame(msd_table: pd.DataFrame, fit_lags: int = MSD_FIT_LAGS) -> float:
    """``D`` from a least-squares line through the MSD's first ``fit_lags`` lags: MSD =
    4 D lag + offset (the offset absorbs the position noise). NaN with fewer than 2 lags."""
    m = msd_table[msd_table["lag_frames"] <= fit_lags]
    if len(m) < 2:
        return float("nan")
    slope = np.polyfit(m["lag_frames"].to_numpy(float), m["msd_px2"].to_numpy(float), 1)[0]
    return float(max(slope, 0.0) / 4.0)


def residence_times(tracks: pd.DataFrame, jumps: pd.DataFrame) -> pd.DataFrame:
    """Stays between jumps: ``track_id, start_frame, end_frame, frames, censored``.

    A track with k jumps has k + 1 stays; the first and last end where the track is
    first / last seen, which may be the movie's ends or a detection gap: ``censored``.

    Parameters
    ----------
    tracks
        A tracks table (``track_id, frame``).
    jumps
        Its jumps (:func:`detect_jumps`).

    Returns
    -------
    pandas.DataFrame
        One row per stay, sorted by track and start frame; ``frames`` counts both ends.
    """
    columns = ["track_id", "start_frame", "end_frame", "frames", "censored"]
    span = tracks.groupby("track_id")["frame"].agg(["min", "max"])
    rows = []
    jumped = set(jumps["track_id"].tolist()) if len(jumps) else set()
    for tid, j in jumps.groupby("track_id") if len(jumps) else ():
        start, last = int(span.at[tid, "min"]), int(span.at[tid, "max"])
        for k, (a, b) in enumerate(sorted(zip(j["frame_from"], j["frame_to"]))):
            rows.append((tid, start, int(a), int(a) - start + 1, k == 0))
            start = int(b)
        rows.append((tid, start, last, last - start + 1, True))
    still = span[~span.index.isin(list(jumped))]
    whole = pd.DataFrame(
        {
            "track_id": still.index.to_numpy(),
            "start_frame": still["min"].to_numpy(),
            "end_frame": still["max"].to_numpy(),
            "frames": (still["max"] - still["min"] + 1).to_numpy(),
            "censored": True,
        }
    )
    out = pd.concat([whole, pd.DataFrame(rows, columns=columns)], ignore_index=True)
    return out.sort_values(["track_id", "start_frame"], ignore_index=True)[columns]


def _slopes(per_track: pd.DataFrame | None, index: pd.Index) -> np.ndarray:
    """Least-squares slope of MSD against lag per track (NaN under 2 lags), >= 0."""
    if per_track is None or len(per_track) == 0:
        return np.full(len(index), np.nan)
    g = per_track.assign(
        xy=per_track["lag_frames"] * per_track["msd_px2"],
        xx=per_track["lag_frames"] ** 2,
    ).groupby("track_id")
    n = g.size()
    sx, sy = g["lag_frames"].sum(), g["msd_px2"].sum()
    sxy, sxx = g["xy"].sum(), g["xx"].sum()
    denom = n * sxx - sx**2
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where((n >= 2) & (denom > 0), (n * sxy - sx * sy) / denom, np.nan)
    slope = pd.Series(np.maximum(slope, 0.0), index=n.index)
    return slope.reindex(index).to_numpy(np.float64)


def track_features(
    tracks: pd.DataFrame,
    jumps: pd.DataFrame,
    pixel_size_nm: float | None = None,
    frame_time_s: float | None = None,
) -> pd.DataFrame:
    """One row per track: lifetime, mean position (corrected), confidence, jumps, stays, D.

    Parameters
    ----------
    tracks
        A tracks table (``track_id, frame, y_corr_px, x_corr_px, confidence``).
    jumps
        Its jumps (:func:`detect_jumps`).
    pixel_size_nm
        nm per pixel; adds the nm versions of the lengths.
    frame_time_s
        Seconds per frame; adds the s versions of the times.

    Returns
    -------
    pandas.DataFrame
        ``track_id, first_frame, last_frame, lifetime_frames, n_detections, mean_y_px,
        mean_x_px, mean_confidence, n_jumps, mean_residence_frames,
        diffusion_px2_per_frame`` (+ ``_nm`` / ``_s`` versions when calibrated).
    """
    stays = residence_times(tracks, jumps)
    n_jumps = jumps.groupby("track_id").size() if len(jumps) else pd.Series(dtype=int)
    per_track = msd(tracks, max_lag=MSD_FIT_LAGS, per_track=True) if len(tracks) else None
    g = tracks.groupby("track_id")
    out = pd.DataFrame(
        {
            "first_frame": g["frame"].min(),
            "last_frame": g["frame"].max(),
            "n_detections": g.size(),
            "mean_y_px": g["y_corr_px"].mean(),
            "mean_x_px": g["x_corr_px"].mean(),
            "mean_confidence": g["confidence"].mean(),
        }
    )
    out.insert(2, "lifetime_frames", out["last_frame"] - out["first_frame"] + 1)
    out["n_jumps"] = n_jumps.reindex(out.index).fillna(0).astype(np.int64)
    full = stays[~stays["censored"]].groupby("track_id")["frames"].mean()
    out["mean_residence_frames"] = full.reindex(out.index)
    out["diffusion_px2_per_frame"] = _slopes(per_track, out.index) / 4.0
    if pixel_size_nm is not None:
        out["mean_y_nm"] = out["mean_y_px"] * pixel_size_nm
        out["mean_x_nm"] = out["mean_x_px"] * pixel_size_nm
    if frame_time_s is not None:
        out["lifetime_s"] = out["lifetime_frames"] * frame_time_s
        out["mean_residence_s"] = out["mean_residence_frames"] * frame_time_s
        if pixel_size_nm is not None:
            out["diffusion_nm2_per_s"] = (
                out["diffusion_px2_per_frame"] * pixel_size_nm**2 / frame_time_s
            )
    return out.reset_index()
