"""Atoms on every frame of a stack, through the one atom finder.

Only the public calls of :mod:`napari_atomseg.atoms` are used (``iter_find_atoms`` with
the caller's options passed through), so however the finder evolves, tracking sees what
Find atoms sees. Frames are read one at a time; on an uncalibrated stack the pixel size
estimated on the first frame serves every frame (a movie does not change its
magnification). :func:`detect_chunk` is the unit of work a Dask worker runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._progress import Progress, ProgressGenerator, drain
from ..errors import InputError

#: Columns of each frame's table kept for tracking (the finder's and ``peak_intensity``;
#: missing ones are NaN).
KEPT_COLUMNS = ("y_px", "x_px", "confidence", "intensity", "nn_spacing_px", "peak_intensity")
#: Width of the smoothing behind each detection's ``peak_intensity``, nm (about a column's
#: own width), and without a pixel size, px.
PEAK_SMOOTHING_NM = 0.04
PEAK_SMOOTHING_PX = 2.0
#: The first frame's finder settings reported in the table's ``attrs``.
FIRST_FRAME_ATTRS = ("threshold", "threshold_from", "imaging")


def _resolve(model: Any, device: Any = None) -> Any:
    """A loaded model from a name / card path (cached by the backend), as find_atoms would."""
    from ..backend import default_model_name, get_model
    from ..backend.registry import LoadedModel

    if isinstance(model, LoadedModel):
        return model
    name = default_model_name("atoms") if model in (None, "default") else model
    return get_model(name, device)


def iter_detect_frames(
    stack: Any,
    pixel_size_nm: float | None = None,
    model: Any = "default",
    frame_workers: int = 1,
    **find_options: Any,
) -> ProgressGenerator[pd.DataFrame]:
    """Columns of every frame of ``stack``: ``frame`` (absolute), ``y_px, x_px``,
    ``confidence``, ``intensity``, ``nn_spacing_px`` (raw frame coordinates) and
    ``peak_intensity`` (:func:`peak_intensity`).

    ``frame_workers`` > 1 finds that many frames at once, in threads of this process,
    each with one torch thread (``threads`` is then 1): about half of the finder's time
    is single-threaded NumPy, which one frame at a time leaves a second core idle for.
    The results are those of one torch thread per frame, as on Dask. At most twice
    ``frame_workers`` frames are read ahead.

    ``attrs``: ``pixel_size_nm`` used, ``pixel_size_estimated``, ``warnings`` (each
    prefixed by its frame) and the first frame's ``threshold`` / ``threshold_from``.
    Yields Progress once per frame.
    """
    loaded = _resolve(model, find_options.get("device"))
    workers = int(frame_workers)
    if workers < 1:
        raise InputError(f"frame_workers: {frame_workers} must be >= 1")
    if workers > 1:
        find_options = {**find_options, "threads": 1}
    n = len(stack)
    frames = stack.frame_indices
    tables: list[pd.DataFrame] = []
    warnings: list[str] = []
    first_attrs: dict[str, Any] = {}
    px, estimated = pixel_size_nm, False
    found = _found_frames(stack, px, loaded, find_options, workers)
    try:
        for i in range(n):
            yield Progress(i, n, f"finding atoms: frame {int(frames[i])} ({i + 1}/{n})")
            df = next(found)
            if i == 0:
                px = df.attrs.get("pixel_size_nm") if px is None else px
                estimated = bool(df.attrs.get("pixel_size_estimated"))
                first_attrs = {k: df.attrs.get(k) for k in FIRST_FRAME_ATTRS}
            warnings += [f"frame {int(frames[i])}: {w}" for w in df.attrs.get("warnings", [])]
            tables.append(_keep(df, int(frames[i])))
    finally:
        found.close()  # also when the job is cancelled: frames not started are dropped
    yield Progress(n, n, "atoms found on every frame")
    out = pd.concat(tables, ignore_index=True) if tables else _keep(pd.DataFrame(), 0)
    out.attrs.update(
        {
            "pixel_size_nm": px,
            "pixel_size_estimated": estimated,
            "warnings": warnings,
            "model": loaded.name,
            **first_attrs,
        }
    )
    return out


def _find_frame(
    frame: np.ndarray, px: float | None, loaded: Any, options: dict[str, Any]
) -> pd.DataFrame:
    """The finder's table of one frame with its ``peak_intensity``."""
    from ..atoms import iter_find_atoms

    df = drain(iter_find_atoms(frame, px, loaded, **options))
    used = df.attrs.get("pixel_size_nm") if px is None else px
    df["peak_intensity"] = peak_intensity(frame, df, used, dark=df.attrs.get("contrast") == "dark")
    return df


def _found_frames(stack: Any, px: float | None, loaded: Any, options: dict[str, Any], workers: int):
    """Frame tables in order: the first found alone (an uncalibrated stack's pixel size
    comes from it and serves every later frame), the rest ``workers`` at a time. Frames
    are read here, in the calling thread (a file handle is not shared between threads).
    Closing the generator cancels the frames not started."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    first = _find_frame(stack.frame(0), px, loaded, options)
    yield first
    px = first.attrs.get("pixel_size_nm") if px is None else px
    n = len(stack)
    if workers == 1:
        for i in range(1, n):
            yield _find_frame(stack.frame(i), px, loaded, options)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="atomseg-frames")
    pending: deque = deque()
    submitted = 1
    try:
        for _ in range(1, n):
            while len(pending) < 2 * workers and submitted < n:
                frame = stack.frame(submitted)
                pending.append(pool.submit(_find_frame, frame, px, loaded, options))
                submitted += 1
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def peak_intensity(
    frame: np.ndarray, columns: pd.DataFrame, pixel_size_nm: float | None, dark: bool = False
) -> np.ndarray:
    """Each column's brightness: the frame smoothed at the column scale
    (:data:`PEAK_SMOOTHING_NM`), sampled at the column, above the smoothed frame's 1st
    percentile (a dark-contrast frame is inverted first), so always >= 0.

    The linker compares the brightness of a track's end with the next start's. The
    Gaussian fit's integrated ``intensity`` swings by orders of magnitude between frames
    at low dose (the width is poorly determined: a single Pt atom's went 21 -> 474 in
    one frame), which barred true hops from being joined; this measure moves by a
    fraction (docs/tracking.md).
    """
    from scipy import ndimage as ndi

    if len(columns) == 0:
        return np.zeros(0)
    img = np.asarray(frame, dtype=np.float32)
    sigma_px = PEAK_SMOOTHING_PX if pixel_size_nm is None else PEAK_SMOOTHING_NM / pixel_size_nm
    smooth = ndi.gaussian_filter(-img if dark else img, max(sigma_px, 0.5))
    floor = float(np.percentile(smooth, 1.0))
    rc = columns[["y_px", "x_px"]].to_numpy(np.float64).T
    value = ndi.map_coordinates(smooth, rc, order=1, mode="nearest").astype(np.float64)
    return np.maximum(value - floor, 0.0)


def _keep(df: pd.DataFrame, frame: int) -> pd.DataFrame:
    out = pd.DataFrame({"frame": np.full(len(df), frame, dtype=np.int64)})
    for name in KEPT_COLUMNS:
        values = df[name].to_numpy(np.float64) if name in df else np.full(len(df), np.nan)
        out[name] = values
    return out


def detect_chunk(
    source: Any,
    start: int,
    stop: int,
    pixel_size_nm: float | None,
    model: Any,
    find_options: dict[str, Any],
    threads: int | None = 1,
) -> pd.DataFrame:
    """Detections on frames ``start..stop-1`` (indices into ``source``'s frames).

    ``source`` is a stack file path (each worker opens it itself, lazily) or an array /
    :class:`~napari_atomseg.io.stack.Stack`. ``threads`` torch threads (and FFT threads) per
    task: one per worker keeps the workers from competing for cores.
    """
    from ..io.stack import Stack, as_stack, open_stack

    if isinstance(source, str):
        stack = open_stack(source)
    elif isinstance(source, Stack):
        stack = source
    else:
        stack = as_stack(source)
    if not 0 <= start < stop <= len(stack):
        raise InputError(f"frames {start}:{stop} are outside the stack's {len(stack)} frames")
    part = _slice(stack, start, stop)
    options = dict(find_options)
    if threads is not None:
        options["threads"] = int(threads)
    return drain(iter_detect_frames(part, pixel_size_nm, model, frame_workers=1, **options))


def _slice(stack: Any, start: int, stop: int) -> Any:
    import dataclasses

    first = int(stack.frame_indices[start])
    return dataclasses.replace(stack, data=stack.data[start:stop], first_frame=first)
