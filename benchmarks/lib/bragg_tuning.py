"""Choosing Bragg-filter parameters from labelled images, and scoring them honestly.

The Bragg filter has a handful of parameters (aperture size, low-pass, mask threshold,
clean-up sizes). Given labelled images -- the real graphene set, or a user's own few
hand-labelled micrographs -- :func:`bragg_grid_scores` scores every combination of a grid
on every image once (one confusion matrix each), after which

- :func:`best_candidate` picks the combination with the best pooled score on any subset
  (e.g. the training folds), and
- :func:`cross_validated` does that per fold and scores each held-out fold with the
  parameters chosen *without* it, so no image is scored by parameters tuned on it.

All candidates run exactly the :func:`~napari_atomseg.segmentation.segment` pipeline
(pre-processing, Bragg filter, class rule, clean-up); only the expensive steps are shared
between candidates that differ in later parameters.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from napari_atomseg._progress import Progress, drain
from napari_atomseg._validate import as_image2d
from napari_atomseg.errors import InputError
from napari_atomseg.segmentation import api
from napari_atomseg.segmentation.bragg import BraggParameters, bragg_filter, residual_threshold
from napari_atomseg.segmentation.bragg_labels import bragg_labels
from napari_atomseg.segmentation.cleanup import clean_labels
from napari_atomseg.segmentation.metrics import MaskScores, confusion_matrix
from napari_atomseg.segmentation.preprocess import preprocess


@dataclass(frozen=True)
class BraggGrid:
    """Values tried for each tuned parameter (all other options stay at their defaults).

    Lengths of the clean-up are in lattice periods (as :class:`~.api.CleanupOptions`
    with ``length_unit="period"``).
    """

    aperture_sigma_rel: Sequence[float] = (0.03, 0.05, 0.07, 0.1, 0.14, 0.2)
    lowpass_sigma_periods: Sequence[float] = (0.25, 0.5, 1.0)
    mask_threshold: Sequence[float] = tuple(np.round(np.arange(1.1, 2.001, 0.1), 3))
    smooth_sigma: Sequence[float] = (0.0, 1.0, 2.0, 3.0)
    min_region_size: Sequence[float] = (0.0, 6.0)
    fixed: dict[str, Any] = field(default_factory=dict)

    def candidates(self) -> list[dict[str, Any]]:
        """Every combination as a dict of :func:`segment` options (grid order)."""
        return [
            {
                **self.fixed,
                "aperture_sigma_rel": a,
                "lowpass_sigma_periods": lp,
                "mask_threshold": t,
                "smooth_sigma": s,
                "min_region_size": m,
            }
            for a, lp, t, s, m in itertools.product(
                self.aperture_sigma_rel,
                self.lowpass_sigma_periods,
                self.mask_threshold,
                self.smooth_sigma,
                self.min_region_size,
            )
        ]


@dataclass(frozen=True)
class GridScores:
    """Confusion matrices of every candidate on every image.

    Attributes
    ----------
    candidates
        The option dicts, in the order of the first axis of ``confusion``.
    confusion
        int64 ``(n_candidates, n_images, 2, 2)``: truth (0 other, 1 flagged) x predicted.
    """

    candidates: list[dict[str, Any]]
    confusion: np.ndarray

    def pooled_table(self, indices: Sequence[int] | None = None) -> pd.DataFrame:
        """One row per candidate: its options and pooled scores over ``indices``."""
        idx = np.arange(self.confusion.shape[1]) if indices is None else np.asarray(indices)
        cms = self.confusion[:, idx].sum(axis=1)
        rows = []
        for cand, cm in zip(self.candidates, cms):
            rows.append({**cand, **MaskScores(cm, ("other", "flagged")).summary(1)})
        return pd.DataFrame(rows)


def _truth_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != shape:
        raise InputError(f"mask shape {m.shape} differs from the image's {shape}")
    return m.astype(bool)


def iter_bragg_grid_scores(
    items: Sequence[tuple[np.ndarray, np.ndarray]],
    grid: BraggGrid | None = None,
    task: str = "contamination",
) -> Generator[Progress, None, GridScores]:
    """Score every grid candidate on every ``(image, mask)`` pair (generator form).

    ``mask`` is the true flagged class (contamination, or particle) as bool. Pixel sizes
    are not used (every Bragg length is lattice-relative).
    """
    g = grid or BraggGrid()
    cands = g.candidates()
    if task not in api.TASK_CLASSES:
        raise InputError(f"task: expected one of {sorted(api.TASK_CLASSES)}, got {task!r}")
    pre_opts = replace(api._DEFAULT_PREPROCESS[task], **_only(g.fixed, "pre"))
    bragg_fixed = _only(g.fixed, "bragg")
    flagged = api.FLAGGED_CLASS[task]
    # Index candidates by their (aperture, low-pass) so each filter runs once per image.
    key_of = {i: (c["aperture_sigma_rel"], c["lowpass_sigma_periods"]) for i, c in enumerate(cands)}
    confusion = np.zeros((len(cands), len(items), 2, 2), dtype=np.int64)
    for n, (image, mask) in enumerate(items):
        img = as_image2d(image)
        truth = _truth_mask(mask, img.shape)
        pre_img = preprocess(img, pre_opts)
        yield Progress(n, len(items), f"image {n + 1}/{len(items)}")
        cache: dict[tuple[float, float], Any] = {}
        for i, cand in enumerate(cands):
            key = key_of[i]
            if key not in cache:
                params = BraggParameters(
                    **bragg_fixed, aperture_sigma_rel=key[0], lowpass_sigma_periods=key[1]
                ).validated()
                cache = {key: bragg_filter(pre_img, params)}  # one key alive at a time
            res = cache[key]
            params = replace(res.parameters, mask_threshold=cand["mask_threshold"])
            thr = residual_threshold(res.residual, params)
            res_t = replace(res, mask=res.residual > thr, threshold=thr, parameters=params)
            labels = bragg_labels(res_t, task, params.vacuum_fraction, params.particle_fraction)
            cleanup = api.CleanupOptions(
                smooth_sigma=cand["smooth_sigma"],
                min_region_size=cand["min_region_size"],
                fill_holes=_only(g.fixed, "clean").get("fill_holes", True),
                length_unit="period",
            )
            sigma_px, area_px = api._cleanup_px(cleanup, None, res.lattice_period_px)
            labels = clean_labels(
                labels, smooth_sigma_px=sigma_px, min_region_px=area_px, fill=cleanup.fill_holes
            )
            confusion[i, n] = confusion_matrix(truth, labels == flagged, 2)
    yield Progress(len(items), len(items), "done")
    return GridScores(cands, confusion)


def bragg_grid_scores(
    items: Sequence[tuple[np.ndarray, np.ndarray]],
    grid: BraggGrid | None = None,
    task: str = "contamination",
) -> GridScores:
    """:func:`iter_bragg_grid_scores`, run to the end."""
    return drain(iter_bragg_grid_scores(items, grid, task))


def _only(options: dict[str, Any], group: str) -> dict[str, Any]:
    bragg, pre, clean, _ = api._split_options(options)
    return {"bragg": bragg, "pre": pre, "clean": clean}[group]


def best_candidate(
    scores: GridScores, indices: Sequence[int] | None = None, objective: str = "jaccard"
) -> int:
    """Index of the candidate with the best pooled ``objective`` over ``indices``.

    Ties go to the first candidate in grid order (deterministic).
    """
    table = scores.pooled_table(indices)
    if objective not in table.columns:
        raise InputError(f"objective {objective!r} is not one of {list(table.columns)}")
    values = table[objective].to_numpy(dtype=float)
    if np.all(np.isnan(values)):
        raise InputError("objective is undefined (nan) for every candidate on these images")
    return int(np.nanargmax(values))


@dataclass(frozen=True)
class CrossValidation:
    """Held-out scores: each image scored with parameters chosen on the other folds.

    Attributes
    ----------
    per_image
        One :class:`MaskScores` per image (classes ``other``, ``flagged``).
    chosen
        Per fold, the chosen candidate's options.
    test_folds
        Per fold, the indices of its held-out images.
    """

    per_image: list[MaskScores]
    chosen: list[dict[str, Any]]
    test_folds: list[np.ndarray]


def cross_validated(
    scores: GridScores,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    objective: str = "jaccard",
) -> CrossValidation:
    """Choose on each fold's training images, score its test images with that choice."""
    n_images = scores.confusion.shape[1]
    per_image: list[MaskScores | None] = [None] * n_images
    chosen, folds = [], []
    for train, test in splits:
        best = best_candidate(scores, train, objective)
        chosen.append(scores.candidates[best])
        folds.append(np.asarray(test))
        for t in test:
            per_image[int(t)] = MaskScores(scores.confusion[best, int(t)], ("other", "flagged"))
    missing = [i for i, s in enumerate(per_image) if s is None]
    if missing:
        raise InputError(f"the splits never test image(s) {missing}")
    return CrossValidation([s for s in per_image if s is not None], chosen, folds)
