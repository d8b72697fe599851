"""``find_atoms``: image -> network heatmap -> candidates -> image check -> refined columns.

Split in two so the napari widget can preview post-processing live:
:func:`~napari_atomseg.atoms.heatmap.iter_predict_heatmap` runs the network once;
:func:`heatmap_to_atoms` (post-processing only, fast) re-runs on every slider move.
:func:`find_atoms` chains the two; :func:`iter_find_atoms` is its generator form.

Output columns (one row per column, sorted by decreasing confidence):
``y_px, x_px`` (row, col, sub-pixel), ``y_nm, x_nm`` (when a pixel size is known or was
estimated), ``confidence`` (heatmap value at the peak, 0-1), ``intensity`` (column
intensity in the columns' contrast), ``nn_spacing_px`` / ``nn_spacing_nm`` (distance to
the nearest other column), ``sigma_px`` / ``sigma_nm`` (fitted Gaussian width; Gaussian
refinement only) and ``refined`` (False where the Gaussian fit failed).
``DataFrame.attrs`` records the settings and ``attrs["warnings"]`` what needs the eye.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .._progress import Progress, ProgressGenerator, drain
from ..errors import ResultWarning
from . import heatmap as _heatmap
from .candidates import find_candidates
from .heatmap import HeatmapResult
from .image_check import (
    apply_check,
    check_peaks,
    check_warnings,
    default_min_prominence,
    judge_dark,
    window_max_px,
)
from .options import FinderOptions, resolve_post
from .positions import refine_positions
from .second_look import iter_second_look
from .spacing import nearest_neighbour_distances_px
from .table import atoms_table, median_spacing_px


def heatmap_to_atoms(
    result: HeatmapResult, options: FinderOptions | None = None, **overrides: Any
) -> pd.DataFrame:
    """Columns from a :class:`HeatmapResult` (post-processing only; no network).

    Parameters
    ----------
    result
        From :func:`~napari_atomseg.atoms.heatmap.predict_heatmap` (or
        :meth:`HeatmapResult.from_arrays`). Not modified.
    options
        A :class:`~napari_atomseg.atoms.options.FinderOptions` (default: all defaults);
        the network's settings in it are ignored here.
    **overrides
        Any :class:`FinderOptions` field, replacing the one in ``options`` (e.g.
        ``threshold=0.3``). Options left as None take the card's ``postprocess`` value.
    """
    opts = FinderOptions.from_kwargs(options, **overrides)
    ps = result.pixel_size_nm
    post = resolve_post(opts, result.postprocess, ps)
    cand = find_candidates(
        result,
        post,
        opts.method,
        opts.contrast,
        opts.imaging,
        opts.exclude_border_px,
        opts.hough_score,
    )
    window = window_max_px(ps)
    dark = judge_dark(result.image, cand.positions_px, cand.nn_px, opts.contrast, window)
    img = -result.image if dark else result.image
    min_prominence = opts.min_prominence
    if min_prominence is None:
        min_prominence = default_min_prominence(opts.imaging, dark, result.postprocess)
    check = check_peaks(
        img, cand.positions_px, cand.nn_px, window, post.contrast_check, min_prominence
    )
    pos, conf, nn = apply_check(cand.positions_px, cand.confidence, cand.nn_px, check)
    refined = refine_positions(img, result.heatmap, pos, nn, window, post.refine)
    df = atoms_table(refined, conf, ps, post.refine)
    df.attrs.update(
        {
            "pixel_size_nm": ps,
            "pixel_size_estimated": bool(result.pixel_size_estimated),
            "model": result.model_name,
            "threshold": cand.threshold,
            "threshold_base": post.threshold,
            "threshold_from": cand.threshold_from,
            # The rescorer's changes against the threshold above (0 where it did not run).
            "rescorer_added": cand.rescorer_added,
            "rescorer_removed": cand.rescorer_removed,
            # Measured only where the noise ramp was considered (a lattice, not HRTEM).
            "noise_level": result._noise_level[0] if result._noise_level else None,
            "min_separation_px": float(post.min_separation_px),
            "nms_fraction": post.nms_fraction,
            "median_nn_spacing_px": median_spacing_px(df),
            "refine": post.refine,
            "method": opts.method,
            "contrast": "dark" if dark else "bright",
            "contrast_check": bool(post.contrast_check),
            "contrast_check_removed": check.removed,
            "min_prominence": min_prominence,
            "min_prominence_removed": check.faint,
            "imaging": opts.imaging or "unknown",
            "network_input": result.network_input,
            "warnings": check_warnings(check.removed, len(cand.positions_px), dark),
        }
    )
    return df


def iter_find_atoms(
    image: Any,
    pixel_size_nm: float | None = None,
    model: Any = "default",
    options: FinderOptions | None = None,
    **overrides: Any,
) -> ProgressGenerator[pd.DataFrame]:
    """Generator form of :func:`find_atoms`: yields Progress, returns the DataFrame."""
    opts = FinderOptions.from_kwargs(options, **overrides)  # checked before the network
    result = yield from _heatmap.iter_predict_heatmap(
        image, pixel_size_nm, model, contrast=opts.contrast, **opts.predict_kwargs()
    )
    yield Progress(0, 1, "finding and refining columns")
    df = heatmap_to_atoms(result, opts)
    if opts.second_look:
        result, df = yield from iter_second_look(result, df, model, opts)
    yield Progress(1, 1, f"{len(df)} columns")
    return df


def find_atoms(
    image: Any,
    pixel_size_nm: float | None = None,
    model: Any = "default",
    options: FinderOptions | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Find every atomic column in a micrograph.

    Parameters
    ----------
    image
        Any real 2-D array (HAADF-STEM or HRTEM, bright or dark atoms). Not modified.
    pixel_size_nm
        nm per pixel; None estimates it from the image (see
        ``DataFrame.attrs["pixel_size_estimated"]``) -- give it whenever you know it.
    model
        ``"default"``, a shipped model name, a card path or a loaded model.
    options
        A :class:`~napari_atomseg.atoms.options.FinderOptions` with every setting
        (default: all defaults, the model card's where it has them).
    **overrides
        Any :class:`FinderOptions` field by name, replacing the one in ``options``
        (``threshold``, ``refine``, ``contrast``, ``imaging``, ``views``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per column: ``y_px, x_px[, y_nm, x_nm], confidence, intensity,
        nn_spacing_px[, nn_spacing_nm]`` (+ ``sigma_px``, ``sigma_nm``, ``refined`` with
        Gaussian refinement); settings in ``.attrs``, and ``.attrs["warnings"]``: what
        needs the user's eye (each also issued as a :class:`ResultWarning`).
    """
    df = drain(iter_find_atoms(image, pixel_size_nm, model, options, **overrides))
    for message in df.attrs.get("warnings", []):
        warnings.warn(message, ResultWarning, stacklevel=2)
    return df


def labels_for(result: HeatmapResult, atoms: pd.DataFrame, level: float = 0.2) -> np.ndarray:
    """Column instance labels (int32; label ``i + 1`` = row ``i`` of ``atoms``).

    A watershed of the heatmap seeded at the columns, each region clipped to half its
    nearest-neighbour distance (and to the refinement window size for isolated columns).
    """
    from .labels import column_labels

    pos = atoms[["y_px", "x_px"]].to_numpy(dtype=np.float64)
    nn = nearest_neighbour_distances_px(pos)
    cap = window_max_px(result.pixel_size_nm)
    radius = np.where(np.isfinite(nn), np.minimum(0.5 * nn, cap), cap)
    return column_labels(result.heatmap, pos, level=level, max_radius_px=radius)
