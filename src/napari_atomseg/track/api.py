"""``track_atoms`` and ``register_stack``: a stack in, tracks and drift out.

The job (:func:`iter_track_stack`): open the stack lazily, register it (drift,
:mod:`.registration`), find the atoms on every frame (:mod:`.detect`, in this process or as
Dask tasks over frame chunks), subtract each frame's drift, link the positions
(:mod:`.linking`), then measure jumps and residence times (:mod:`.dynamics`). The result
(:class:`TrackingResult`) holds the tracks table, the registration, the per-track
features and the jumps; :func:`track_atoms` returns just the tracks table with the
drift and warnings in its ``attrs``.

Conventions: ``drift_px[t]`` is the (row, col) shift of frame ``t``'s content relative to
the first frame tracked (drift-corrected = raw - drift); ``y_px, x_px`` are raw
coordinates in their frame (Points overlay the stack); ``frame`` is the absolute frame
number in the file, also with a frame range.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._progress import Progress, ProgressGenerator, drain
from .._validate import check_pixel_size_nm
from ..errors import InputError, ResultWarning
from .dynamics import detect_jumps, jump_threshold_px, track_features
from .linking import DEFAULT_LINKER, link
from .registration import Registration, aligned_stack, iter_register

#: Longest step a track may make between two frames, nm (a hop to a neighbouring site
#: of most lattices; a column sitting still moves a few pm).
DEFAULT_MAX_JUMP_NM = 0.4
#: The same without a pixel size, px.
DEFAULT_MAX_JUMP_PX = 20.0
#: Frames a track may miss (a column fading under the beam) and go on.
DEFAULT_GAP_FRAMES = 5
#: Frames per Dask task.
DEFAULT_CHUNK_FRAMES = 10
#: In this process, frames found at once (threads, one torch thread each): at most this
#: many, and no more than the CPUs this process may use (:func:`default_frame_workers`).
MAX_DEFAULT_FRAME_WORKERS = 2


def default_frame_workers() -> int:
    """Frames found at once in this process by default: the CPUs it may use (or
    ``NAPARI_ATOMSEG_THREADS``), at most :data:`MAX_DEFAULT_FRAME_WORKERS` (each frame in
    flight holds its working arrays)."""
    from ..backend.device import default_num_threads

    return max(1, min(default_num_threads(), MAX_DEFAULT_FRAME_WORKERS))


#: Options of this module; everything else goes to the atom finder.
TRACK_OPTIONS = (
    "frame_range",
    "register",
    "tiles",
    "max_jump_nm",
    "max_jump_px",
    "gap_frames",
    "linker",
    "support",
    "jump_threshold_nm",
    "scheduler",
    "workers",
    "chunk_frames",
    "threads_per_task",
    "frame_workers",
    "model",
)

TRACK_COLUMNS = ("track_id", "frame", "y_px", "x_px", "confidence", "intensity")


@dataclass
class TrackingResult:
    """Everything a tracking run produced (see the module docstring)."""

    tracks: pd.DataFrame
    registration: Registration
    features: pd.DataFrame
    jumps: pd.DataFrame
    pixel_size_nm: float | None
    frame_time_s: float | None
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = {k: v for k, v in options.items() if k in TRACK_OPTIONS}
    find = {k: v for k, v in options.items() if k not in TRACK_OPTIONS}
    return ours, find


def _stack_of(frames: Any, pixel_size_nm: float | None) -> Any:
    from ..io.stack import Stack, as_stack, open_stack

    if isinstance(frames, str) or hasattr(frames, "__fspath__"):
        stack = open_stack(frames)
    elif isinstance(frames, Stack):
        stack = frames
    else:
        stack = as_stack(frames)
    if pixel_size_nm is not None:
        stack = as_stack(stack, pixel_size_nm=check_pixel_size_nm(pixel_size_nm))
    return stack


def iter_track_stack(
    frames: Any, pixel_size_nm: float | None = None, **options: Any
) -> ProgressGenerator[TrackingResult]:
    """Generator form of the whole job (yields Progress per frame and stage).

    Parameters
    ----------
    frames
        A 3-D array (t, y, x), a dask array, a :class:`~napari_atomseg.io.stack.Stack` or
        a stack file path.
    pixel_size_nm, **options
        As for :func:`track_atoms`.

    Yields
    ------
    Progress
        Per frame of the registration and the detection, then the linking.

    Returns
    -------
    TrackingResult
        The tracks table (as :func:`track_atoms` returns it), the registration, the
        per-track features, the jumps, the pixel size, the frame time, the settings and
        the warnings (not issued).
    """
    ours, find_options = _split(options)
    stack = _stack_of(frames, pixel_size_nm).select(ours.get("frame_range"))
    px = stack.pixel_size_nm
    n = len(stack)
    if n < 2:
        raise InputError(f"{stack.name}: tracking needs at least 2 frames, got {n}")
    gap = int(ours.get("gap_frames", DEFAULT_GAP_FRAMES))
    linker = ours.get("linker", DEFAULT_LINKER)
    total = 3 * n + 2
    if ours.get("register", True):
        reg_gen = iter_register(stack, tiles=int(ours.get("tiles", 0)))
        registration = yield from _scaled(reg_gen, 0, n, total)
    else:
        registration = Registration(
            np.zeros((n, 2)), np.full(n, np.inf), np.ones(n, bool), stack.frame_indices
        )
    detections = yield from _scaled(_detections(stack, px, ours, find_options), n, 3 * n, total)
    if px is None:
        px = detections.attrs.get("pixel_size_nm")
    yield Progress(3 * n, total, "linking positions into tracks")
    tracks = _corrected(detections, registration, stack.frame_indices)
    max_px = _max_jump_px(ours, px)
    rel = np.searchsorted(stack.frame_indices, tracks["frame"].to_numpy())
    ids = link(
        tracks.assign(frame=rel),
        max_px,
        gap,
        linker=linker,
        coordinates=("y_corr_px", "x_corr_px"),
        brightness="peak_intensity",
    )
    tracks.insert(0, "track_id", ids)
    threshold, support = jump_threshold_px(
        detections, px, ours.get("support", "auto"), ours.get("jump_threshold_nm")
    )
    tracks = _finish(tracks.sort_values(["track_id", "frame"], kind="stable"), px, stack)
    jumps = detect_jumps(tracks, threshold, px)
    features = track_features(tracks, jumps, px, stack.frame_time_s)
    yield Progress(total, total, f"{tracks['track_id'].nunique()} tracks over {n} frames")
    notes = list(registration.warnings) + list(detections.attrs.get("warnings", []))
    settings = {
        "linker": linker,
        "max_jump_px": max_px,
        "gap_frames": gap,
        "support": support,
        "jump_threshold_px": threshold,
        "pixel_size_estimated": bool(detections.attrs.get("pixel_size_estimated")),
        "model": detections.attrs.get("model"),
        "threshold": detections.attrs.get("threshold"),
        "threshold_from": detections.attrs.get("threshold_from"),
        "tiles": int(ours.get("tiles", 0)),
    }
    tracks.attrs.update(
        {
            "drift_px": registration.drift_px.copy(),
            "frames": stack.frame_indices.copy(),
            "warnings": notes,
            "pixel_size_nm": px,
            "frame_time_s": stack.frame_time_s,
            **settings,
        }
    )
    return TrackingResult(
        tracks, registration, features, jumps, px, stack.frame_time_s, settings, notes
    )


def _scaled(gen, start: int, stop: int, total: int):
    """Re-emit a stage's Progress within [start, stop] of ``total``; return its value."""
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            return done.value
        yield Progress(start + int((stop - start) * step.fraction), total, step.message)


def _max_jump_px(ours: dict[str, Any], px: float | None) -> float:
    if "max_jump_px" in ours:
        return float(ours["max_jump_px"])
    nm = float(ours.get("max_jump_nm", DEFAULT_MAX_JUMP_NM))
    if not nm > 0:
        raise InputError(f"max_jump_nm: {nm} must be > 0")
    return nm / px if px is not None else DEFAULT_MAX_JUMP_PX


def _detections(stack: Any, px: float | None, ours: dict[str, Any], find: dict[str, Any]):
    """Per-frame atoms, in this process or as Dask tasks over frame chunks."""
    from .detect import detect_chunk, iter_detect_frames

    model = ours.get("model", "default")
    scheduler = ours.get("scheduler")
    if scheduler in (None, "synchronous") and ours.get("threads_per_task") is None:
        workers = ours.get("frame_workers", default_frame_workers())
        return (yield from iter_detect_frames(stack, px, model, workers, **find))
    from .. import _batch

    chunk = int(ours.get("chunk_frames", DEFAULT_CHUNK_FRAMES))
    if chunk < 1:
        raise InputError(f"chunk_frames: {chunk} must be >= 1")
    if px is None:
        # Every chunk must use one pixel size: estimate it on the first frame here.
        first = yield from iter_detect_frames(_first(stack), None, model, **find)
        px = first.attrs.get("pixel_size_nm")
    source = str(stack.path) if stack.path is not None and stack.first_frame == 0 else stack
    starts = range(0, len(stack), chunk)
    offset = _offset(stack, source)
    tasks = [
        _batch.Task(
            f"frames_{a}",
            detect_chunk,
            (source, offset + a, offset + min(a + chunk, len(stack)), px, model, find, None),
        )
        for a in starts
    ]
    yield Progress(0, 1, f"finding atoms in {len(tasks)} frame chunk(s) on {scheduler}")
    outcomes = _batch.run_tasks(
        tasks,
        None,
        scheduler or "synchronous",
        ours.get("workers"),
        int(ours.get("threads_per_task") or 1),
        desc="frames",
        unit="chunk",
    )
    failed = [o.error for o in outcomes if o.error]
    if failed:
        raise InputError(f"{stack.name}: finding atoms failed: {failed[0]}")
    tables = [o.row for o in outcomes]
    out = pd.concat(tables, ignore_index=True)
    out.attrs.update(tables[0].attrs)
    out.attrs["pixel_size_nm"] = px
    out.attrs["warnings"] = [w for t in tables for w in t.attrs.get("warnings", [])]
    return out


def _first(stack: Any) -> Any:
    import dataclasses

    return dataclasses.replace(stack, data=stack.data[:1])


def _offset(stack: Any, source: Any) -> int:
    return 0 if not isinstance(source, str) else int(stack.first_frame)


def _corrected(detections: pd.DataFrame, reg: Registration, frames: np.ndarray) -> pd.DataFrame:
    index = np.searchsorted(frames, detections["frame"].to_numpy())
    out = detections.copy()
    out["y_corr_px"] = out["y_px"] - reg.drift_px[index, 0]
    out["x_corr_px"] = out["x_px"] - reg.drift_px[index, 1]
    return out


def _finish(tracks: pd.DataFrame, px: float | None, stack: Any) -> pd.DataFrame:
    cols = ["track_id", "frame", "y_px", "x_px", "confidence", "intensity", "peak_intensity"]
    cols += ["y_corr_px", "x_corr_px", "nn_spacing_px"]
    out = tracks[cols].reset_index(drop=True)
    if px is not None:
        out.insert(4, "y_nm", out["y_px"] * px)
        out.insert(5, "x_nm", out["x_px"] * px)
    if stack.frame_time_s is not None:
        out.insert(
            2, "time_s", (out["frame"] - stack.first_frame) / stack.frame_step * stack.frame_time_s
        )
    return out


def track_atoms(frames: Any, pixel_size_nm: float | None = None, **options: Any) -> pd.DataFrame:
    """Find the atoms on every frame of a stack and link them into tracks.

    Parameters
    ----------
    frames
        A 3-D array (t, y, x), a dask array, a lazy :class:`~napari_atomseg.io.stack.Stack`
        (:func:`napari_atomseg.io.stack.open_stack`) or a stack file path. Not modified.
    pixel_size_nm
        nm per pixel; None uses the stack's calibration, else estimates it on frame 0.
    **options
        ``frame_range`` ("A:B" absolute frame numbers), ``register`` (default True), ``tiles``
        (non-rigid registration, 0 = rigid), ``max_jump_nm`` (longest step between two
        frames, default 0.4) or ``max_jump_px``, ``gap_frames`` (default 5), ``linker``
        ("laptrack" or "trackpy"), ``support`` ("auto", "crystal", "amorphous") and
        ``jump_threshold_nm`` (jump detection), ``scheduler`` / ``workers`` /
        ``chunk_frames`` / ``threads_per_task`` (find atoms as Dask tasks), ``model``;
        anything else is passed to :func:`napari_atomseg.find_atoms` (``threshold``,
        ``refine``, ``contrast``...).

    Returns
    -------
    pandas.DataFrame
        One row per detection: ``track_id, frame[, time_s], y_px, x_px[, y_nm, x_nm],
        confidence, intensity, y_corr_px, x_corr_px`` (drift-corrected),
        ``nn_spacing_px``. ``attrs``: ``drift_px`` (frames x 2), ``frames``,
        ``warnings`` (also issued as :class:`ResultWarning`), ``pixel_size_nm``,
        ``frame_time_s`` and the settings used.
    """
    result = drain(iter_track_stack(frames, pixel_size_nm, **options))
    for message in result.warnings:
        _warnings.warn(message, ResultWarning, stacklevel=2)
    return result.tracks


def register_stack(frames: Any, **options: Any) -> tuple[np.ndarray, Any]:
    """Drift of every frame and the aligned stack: ``(drift_px, aligned)``.

    Parameters
    ----------
    frames
        A 3-D array (t, y, x), a dask array, a :class:`~napari_atomseg.io.stack.Stack` or
        a stack file path. Not modified.
    **options
        ``frame_range`` ("A:B" absolute frame numbers), ``tiles`` (non-rigid),
        ``upsample``, ``lowpass_cycles_per_px`` (see
        :func:`~napari_atomseg.track.registration.iter_register`).

    Returns
    -------
    drift_px : numpy.ndarray
        (frames, 2) each frame's content shift relative to the first frame, (row, col) px.
    aligned : dask.array.Array
        Lazy float32 frames moved back by their drift.
    """
    stack = _stack_of(frames, None).select(options.pop("frame_range", None))
    registration = drain(iter_register(stack, **options))
    for message in registration.warnings:
        _warnings.warn(message, ResultWarning, stacklevel=2)
    return registration.drift_px, aligned_stack(stack, registration)
