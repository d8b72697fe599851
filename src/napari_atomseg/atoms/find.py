"""``find_atoms``: image -> network heatmap -> peaks the image confirms -> refined columns.

Split in two so the napari widget can preview post-processing live: the network runs once
(:func:`iter_network_answer`: one pass, or two for HRTEM of unknown contrast, which keeps
the more confident polarity); :func:`heatmap_to_atoms` (post-processing only, fast)
re-runs on every slider move. :func:`find_atoms` chains the two; :func:`iter_find_atoms`
is its generator form.

Output columns (one row per column, sorted by decreasing confidence):
``y_px, x_px`` (row, col, sub-pixel, measured on the image), ``y_nm, x_nm`` (when a pixel
size is known or was estimated), ``confidence`` (the network's heatmap at the column, 0-1),
``evidence`` (how far the column stands out of the image's noise at the column scale),
``intensity`` (column intensity in the columns' contrast), ``nn_spacing_px`` /
``nn_spacing_nm`` (distance to the nearest other column), ``sigma_px`` / ``sigma_nm``
(fitted Gaussian width; Gaussian refinement only) and ``refined`` (False where the
Gaussian fit failed). ``DataFrame.attrs`` records the settings and ``attrs["warnings"]``
what needs the user's eye.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .._progress import Progress, ProgressGenerator, as_part, drain
from ..errors import ResultWarning
from . import heatmap as _heatmap
from .candidates import find_candidates, unsupported_warnings
from .heatmap import HeatmapResult
from .options import FinderOptions, resolve_post
from .positions import refine_positions, window_max_px
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
        :meth:`HeatmapResult.from_arrays`). Not modified (its evidence map is cached).
    options
        A :class:`~napari_atomseg.atoms.options.FinderOptions` (default: all defaults);
        the network's settings in it are ignored here.
    **overrides
        Any :class:`FinderOptions` field, replacing the one in ``options`` (e.g.
        ``threshold=0.3``). Options left as None take the card's ``postprocess`` value.

    Returns
    -------
    pandas.DataFrame
        One row per column, as :func:`find_atoms` returns it (settings in ``.attrs``;
        the warnings are in ``.attrs["warnings"]`` only, not issued).
    """
    opts = FinderOptions.from_kwargs(options, **overrides)
    ps = result.pixel_size_nm
    post = resolve_post(opts, result.postprocess, ps)
    cand = find_candidates(result, post, opts.exclude_border_px, opts.imaging == "hrtem")
    nn = nearest_neighbour_distances_px(cand.positions_px)
    window = window_max_px(ps)
    from ..backend.device import default_num_threads

    threads = opts.threads if opts.threads is not None else default_num_threads()
    refined = refine_positions(
        result.image_bright, cand.positions_px, nn, window, post.refine, threads
    )
    df = atoms_table(refined, cand.confidence, cand.evidence, cand.height, ps, post.refine)
    df.attrs.update(
        {
            "pixel_size_nm": ps,
            "pixel_size_estimated": bool(result.pixel_size_estimated),
            "model": result.model_name,
            "threshold": cand.threshold,
            "threshold_from": cand.threshold_from,
            "min_evidence": post.min_evidence,
            "unsupported_removed": cand.n_unsupported,
            "min_separation_px": float(post.min_separation_px),
            "median_nn_spacing_px": median_spacing_px(df),
            "refine": post.refine,
            "contrast": "dark" if result.inverted else "bright",
            "imaging": opts.imaging or "unknown",
            "network_input": result.network_input,
            "warnings": unsupported_warnings(cand, result.inverted),
        }
    )
    if result.polarity_choice:
        df.attrs["polarity"] = result.polarity_choice
    return df


def network_inversions(contrast: str, imaging: str | None) -> tuple[bool, ...]:
    """Which ways round the network sees the image (True: inverted).

    The network was trained on images whose columns are bright: bright columns (and
    STEM or unknown imaging with ``"auto"``) are shown as they are, dark ones inverted.
    Phase-contrast images of unknown contrast are shown both ways round, and the more
    confident answer is kept (:func:`more_confident`).
    """
    if contrast == "dark":
        return (True,)
    if contrast == "auto" and imaging == "hrtem":
        return (False, True)
    return (False,)


def more_confident(answers: list[tuple[HeatmapResult, pd.DataFrame]]) -> int:
    """Index of the answer whose columns the network is surer of: the larger mean
    confidence over each answer's ``k`` most confident columns, ``k`` the smaller count
    (an answer with no column loses)."""
    counts = [len(df) for _, df in answers]
    k = min(counts)
    if k == 0:
        return int(np.argmax(counts))
    means = [float(np.sort(df["confidence"].to_numpy())[-k:].mean()) for _, df in answers]
    return int(np.argmax(means))


def iter_network_answer(
    image: Any, pixel_size_nm: float | None, model: Any, options: FinderOptions
) -> ProgressGenerator[tuple[HeatmapResult, pd.DataFrame]]:
    """The network's answer and its columns, for the polarity :func:`network_inversions`
    picks (generator yielding Progress; the widget keeps the HeatmapResult for previews)."""
    flips = network_inversions(options.contrast, options.imaging)
    answers = []
    for k, invert in enumerate(flips):
        steps = _heatmap.iter_predict_heatmap(
            image,
            pixel_size_nm,
            model,
            contrast=options.contrast,
            invert=invert,
            **options.predict_kwargs(),
        )
        result = yield from as_part(steps, k, len(flips), "polarity")
        # Later passes use the first one's pixel size (an estimate is made once).
        pixel_size_nm = result.pixel_size_nm if pixel_size_nm is None else pixel_size_nm
        answers.append((result, heatmap_to_atoms(result, options)))
    best = more_confident(answers)
    result, df = answers[best]
    if len(answers) > 1:
        counts = ", ".join(
            f"{r.network_input}: {len(d)} columns, mean confidence "
            f"{float(d['confidence'].mean()) if len(d) else 0:.2f}"
            for r, d in answers
        )
        # Kept with the answer, so every later post-processing of it says so too.
        result.polarity_choice = f"columns {df.attrs['contrast']} (chosen; {counts})"
        df.attrs["polarity"] = result.polarity_choice
    return result, df


def iter_find_atoms(
    image: Any,
    pixel_size_nm: float | None = None,
    model: Any = "default",
    options: FinderOptions | None = None,
    **overrides: Any,
) -> ProgressGenerator[pd.DataFrame]:
    """Generator form of :func:`find_atoms`: yields Progress, returns the DataFrame.

    Parameters
    ----------
    image, pixel_size_nm, model, options, **overrides
        As for :func:`find_atoms`; the options are checked before the network runs.

    Yields
    ------
    Progress
        The network's progress (per polarity, when the image is seen both ways round).

    Returns
    -------
    pandas.DataFrame
        The table :func:`find_atoms` returns; its warnings are in ``.attrs["warnings"]``
        only, not issued.
    """
    opts = FinderOptions.from_kwargs(options, **overrides)  # checked before the network
    _, df = yield from iter_network_answer(image, pixel_size_nm, model, opts)
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
        Any real 2-D array (HAADF/ABF-STEM or HRTEM, bright or dark atoms). Not modified.
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
        One row per column: ``y_px, x_px[, y_nm, x_nm], confidence, evidence, intensity,
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

    Parameters
    ----------
    result
        The :class:`HeatmapResult` the columns were found in (its heatmap is flooded).
    atoms
        The columns, with ``y_px`` and ``x_px`` (e.g. from :func:`heatmap_to_atoms`).
    level
        Heatmap value below which pixels belong to no column.

    Returns
    -------
    numpy.ndarray
        int32 labels of the heatmap's shape; 0 is background.
    """
    from .labels import column_labels

    pos = atoms[["y_px", "x_px"]].to_numpy(dtype=np.float64)
    nn = nearest_neighbour_distances_px(pos)
    cap = window_max_px(result.pixel_size_nm)
    radius = np.where(np.isfinite(nn), np.minimum(0.5 * nn, cap), cap)
    return column_labels(result.heatmap, pos, level=level, max_radius_px=radius)
