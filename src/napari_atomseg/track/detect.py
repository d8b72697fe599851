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

#: Columns of the finder's table kept for tracking (those present).
KEPT_COLUMNS = ("y_px", "x_px", "confidence", "intensity", "nn_spacing_px")


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
    **find_options: Any,
) -> ProgressGenerator[pd.DataFrame]:
    """Columns of every frame of ``stack``: ``frame`` (absolute), ``y_px, x_px``,
    ``confidence``, ``intensity``, ``nn_spacing_px`` (raw frame coordinates).

    ``attrs``: ``pixel_size_nm`` used, ``pixel_size_estimated``, ``warnings`` (each
    prefixed by its frame) and the first frame's ``threshold`` / ``threshold_from``.
    Yields Progress once per frame.
    """
    from ..atoms import iter_find_atoms

    loaded = _resolve(model, find_options.get("device"))
    n = len(stack)
    tables: list[pd.DataFrame] = []
    warnings: list[str] = []
    px, estimated, first_attrs = pixel_size_nm, False, {}
    frames = stack.frame_indices
    for i in range(n):
        yield Progress(i, n, f"finding atoms: frame {int(frames[i])} ({i + 1}/{n})")
        df = drain(iter_find_atoms(stack.frame(i), px, loaded, **find_options))
        if px is None:
            px = df.attrs.get("pixel_size_nm")
            estimated = bool(df.attrs.get("pixel_size_estimated"))
        if i == 0:
            first_attrs = {k: df.attrs.get(k) for k in ("threshold", "threshold_from", "imaging")}
        warnings += [f"frame {int(frames[i])}: {w}" for w in df.attrs.get("warnings", [])]
        tables.append(_keep(df, int(frames[i])))
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
    return drain(iter_detect_frames(part, pixel_size_nm, model, **options))


def _slice(stack: Any, start: int, stop: int) -> Any:
    import dataclasses

    first = int(stack.frame_indices[start])
    return dataclasses.replace(stack, data=stack.data[start:stop], first_frame=first)
