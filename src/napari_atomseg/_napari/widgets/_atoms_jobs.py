"""The Find atoms widget's computations, as generators for its worker (no Qt here).

- :func:`find_atoms_steps` -- network + post-processing (+ column labels) per frame;
- :func:`refresh_steps` -- post-processing only on stored network outputs (live preview);
- :func:`labels_steps` -- column labels for the points as they are now (after a preview
  that skipped them, or after hand corrections).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from napari_atomseg._progress import Progress, as_part
from napari_atomseg.atoms import heatmap as atoms_heatmap
from napari_atomseg.atoms.find import heatmap_to_atoms, labels_for
from napari_atomseg.atoms.heatmap import HeatmapResult
from napari_atomseg.atoms.options import FinderOptions
from napari_atomseg.atoms.second_look import iter_second_look

from ..image_source import Frame

Stored = Sequence[tuple[int | None, HeatmapResult]]


@dataclass
class FrameAtoms:
    """One frame's result: where it is in the stack, the network output, the columns."""

    index: int | None
    heatmap: HeatmapResult
    atoms: pd.DataFrame
    labels: np.ndarray | None


def for_result(options: FinderOptions, heat: HeatmapResult) -> FinderOptions:
    """The widget's options for one frame: its separation in nm needs a pixel size."""
    if heat.pixel_size_nm is None and options.min_separation_nm is not None:
        return options.replace(min_separation_nm=None)
    return options


def postprocess(
    heat: HeatmapResult, index: int | None, options: FinderOptions, with_labels: bool = True
) -> FrameAtoms:
    """Columns (and column labels) of one frame from its (stored) network output."""
    atoms = heatmap_to_atoms(heat, for_result(options, heat))
    return _frame_result(heat, atoms, index, with_labels)


def _frame_result(
    heat: HeatmapResult, atoms: pd.DataFrame, index: int | None, with_labels: bool = True
) -> FrameAtoms:
    if index is not None:
        atoms.insert(0, "frame", index)
    labels = labels_for(heat, atoms) if with_labels else None
    return FrameAtoms(index, heat, atoms, labels)


def find_atoms_steps(
    frames: Sequence[Frame], pixel_size_nm: float | None, model: Any, options: FinderOptions
) -> Generator[Progress, None, list[FrameAtoms]]:
    """Network + post-processing for every frame (generator yielding Progress)."""
    out = []
    for k, frame in enumerate(frames):
        steps = atoms_heatmap.iter_predict_heatmap(
            frame.data, pixel_size_nm, model, contrast=options.contrast, views=options.views
        )
        heat = yield from as_part(steps, k, len(frames), "frame")
        frame_options = for_result(options, heat)
        first = heatmap_to_atoms(heat, frame_options)
        # The network's columns disagree with the contrast the user gave: look again with
        # the image the other way round (iter_second_look; no-op otherwise).
        again = iter_second_look(heat, first, model, frame_options)
        heat, atoms = yield from as_part(again, k, len(frames), "frame")
        out.append(_frame_result(heat, atoms, frame.index))
    yield Progress(len(frames), len(frames), "done")
    return out


def result_warnings(results: Sequence[FrameAtoms]) -> list[str]:
    """The distinct warnings of the frames' results (``attrs["warnings"]``), frame named."""
    seen: dict[str, list[int | None]] = {}
    for r in results:
        for message in r.atoms.attrs.get("warnings", []):
            seen.setdefault(message, []).append(r.index)
    out = []
    for message, frames in seen.items():
        where = "" if frames == [None] else f"frame(s) {', '.join(str(f) for f in frames)}: "
        out.append(where + message)
    return out


def refresh_steps(
    stored: Stored, options: FinderOptions, with_labels: bool = True
) -> Generator[Progress, None, list[FrameAtoms]]:
    """Post-processing only, on stored network outputs (the live preview).

    The column labels (a watershed, ~1 s for 1,500 columns) are skipped when
    ``with_labels`` is false; :func:`labels_steps` makes them later.
    """
    out = []
    for k, (index, heat) in enumerate(stored):
        yield Progress(k, len(stored), "post-processing")
        out.append(postprocess(heat, index, options, with_labels))
    return out


def labels_steps(
    stored: Stored, points_px: np.ndarray, shape: tuple[int, ...]
) -> Generator[Progress, None, np.ndarray]:
    """Column labels for points at ``points_px`` ((N, 2), or (N, 3) with the frame first)."""
    points_px = np.asarray(points_px, dtype=np.float64)
    labels = np.zeros(shape, dtype=np.int32)
    for k, (index, heat) in enumerate(stored):
        yield Progress(k, len(stored), "column labels")
        mine = points_px if index is None else points_px[np.rint(points_px[:, 0]) == index]
        atoms = pd.DataFrame({"y_px": mine[:, -2], "x_px": mine[:, -1]})
        if index is None:
            labels = labels_for(heat, atoms)
        else:
            labels[index] = labels_for(heat, atoms)
    return labels


def combine(results: Sequence[FrameAtoms], shape: tuple[int, ...]) -> tuple[pd.DataFrame, Any]:
    """All frames' columns in one table and their labels in one array of ``shape``.

    The labels are None when the results were made without them.
    """
    atoms = pd.concat([r.atoms for r in results], ignore_index=True)
    if any(r.labels is None for r in results):
        return atoms, None
    if len(shape) == 2:
        return atoms, results[0].labels
    labels = np.zeros(shape, dtype=np.int32)
    for r in results:
        labels[r.index] = r.labels
    return atoms, labels
