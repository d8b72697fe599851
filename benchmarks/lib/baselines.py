"""Classical column finders the atom finder is measured against, and their honest tuning.

Each baseline is what a careful user would run without deep learning, with its parameters
in physical units (nm) so that one setting applies to images of any pixel size:

- ``blob_log`` -- ``skimage.feature.blob_log`` (Laplacian of Gaussian scale space);
- ``blob_dog`` -- ``skimage.feature.blob_dog`` (difference of Gaussians);
- ``peak_local_max`` -- ``skimage.feature.peak_local_max`` on a Gaussian-smoothed image;
- ``atomap_like`` -- Atomap's pipeline: ``peak_local_max`` with a minimum separation on the
  image, then centre-of-mass refinement in a window of 0.25 x the nearest-neighbour
  distance, then a 2-D Gaussian fit in a window of 0.4 x that distance (Atomap's
  ``get_atom_positions`` + ``refine_atom_positions_using_center_of_mass`` +
  ``refine_atom_positions_using_2d_gaussian`` defaults).

Every baseline first maps the image to [0, 1] (0.1 / 99.9 percentiles), inverted when the
columns are dark (``bright_atoms=False``), so thresholds mean the same on every detector.
:func:`tune` picks one parameter set by grid search on a *tuning* set of images with known
columns, maximising the pooled F1; the benchmark then applies it unchanged to test images.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage import feature

from napari_atomseg._validate import as_image2d, check_pixel_size_nm
from napari_atomseg.atoms.metrics import point_metrics
from napari_atomseg.atoms.refine import refine_center_of_mass, refine_gaussian
from napari_atomseg.atoms.spacing import nearest_neighbour_distances_px
from napari_atomseg.errors import InputError


def normalise_01(image: np.ndarray, bright_atoms: bool = True) -> np.ndarray:
    """Float32 copy of ``image`` mapped to [0, 1] by its 0.1 and 99.9 percentiles (clipped).

    With ``bright_atoms=False`` (dark-atom HRTEM contrast) the result is inverted so the
    columns are the maxima every baseline looks for.
    """
    img = as_image2d(image)
    lo, hi = np.percentile(img, [0.1, 99.9])
    if hi <= lo:
        lo, hi = float(img.min()), float(img.max())
    out = np.clip((img - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    return out if bright_atoms else 1.0 - out


def _px(value_nm: float, pixel_size_nm: float) -> float:
    return float(value_nm) / pixel_size_nm


def run_blob_log(
    img01: np.ndarray, pixel_size_nm: float, sigma_nm: float, threshold: float
) -> np.ndarray:
    """``blob_log`` over sigmas 0.7-1.4 x ``sigma_nm`` (4 scales); blob centres (integer px)."""
    s = _px(sigma_nm, pixel_size_nm)
    blobs = feature.blob_log(
        img01, min_sigma=0.7 * s, max_sigma=1.4 * s, num_sigma=4, threshold=threshold, overlap=0.5
    )
    return blobs[:, :2].astype(np.float64)


def run_blob_dog(
    img01: np.ndarray, pixel_size_nm: float, sigma_nm: float, threshold: float
) -> np.ndarray:
    """``blob_dog`` over sigmas 0.7-1.4 x ``sigma_nm`` (ratio 1.25); blob centres (integer px)."""
    s = _px(sigma_nm, pixel_size_nm)
    blobs = feature.blob_dog(
        img01,
        min_sigma=0.7 * s,
        max_sigma=1.4 * s,
        sigma_ratio=1.25,
        threshold=threshold,
        overlap=0.5,
    )
    return blobs[:, :2].astype(np.float64)


def run_peak_local_max(
    img01: np.ndarray,
    pixel_size_nm: float,
    smooth_sigma_nm: float,
    min_distance_nm: float,
    threshold_rel: float,
) -> np.ndarray:
    """``peak_local_max`` on the image smoothed by a Gaussian of ``smooth_sigma_nm``."""
    smooth = ndi.gaussian_filter(img01, _px(smooth_sigma_nm, pixel_size_nm))
    min_d = max(1, round(_px(min_distance_nm, pixel_size_nm)))
    peaks = feature.peak_local_max(
        smooth, min_distance=min_d, threshold_rel=threshold_rel, exclude_border=False
    )
    return peaks.astype(np.float64)


def run_atomap_like(
    img01: np.ndarray, pixel_size_nm: float, separation_nm: float, threshold_rel: float
) -> np.ndarray:
    """Atomap's recipe: peaks with a minimum separation, then CoM (0.25 nn), then Gaussian (0.4 nn)."""
    sep = max(1, round(_px(separation_nm, pixel_size_nm)))
    pos = feature.peak_local_max(
        img01, min_distance=sep, threshold_rel=threshold_rel, exclude_border=False
    ).astype(np.float64)
    if len(pos) < 2:
        return pos
    nn = nearest_neighbour_distances_px(pos)
    pos = refine_center_of_mass(img01, pos, np.maximum(0.25 * nn, 1.0)).positions_px
    nn = nearest_neighbour_distances_px(pos)
    fit = refine_gaussian(img01, pos, np.maximum(0.4 * nn, 1.5))
    return fit.positions_px


@dataclass(frozen=True)
class Baseline:
    """A classical column finder with its default parameters and tuning grid (nm units)."""

    name: str
    description: str
    function: Callable[..., np.ndarray]
    defaults: Mapping[str, float]
    grid: Mapping[str, Sequence[float]] = field(default_factory=dict)

    def __call__(
        self,
        image: np.ndarray,
        pixel_size_nm: float,
        bright_atoms: bool = True,
        **params: float,
    ) -> np.ndarray:
        """Column positions ``(N, 2)`` (row, col, px) found in ``image``."""
        ps = check_pixel_size_nm(pixel_size_nm)
        if ps is None:
            raise InputError(f"{self.name}: needs the pixel size (nm/px) to scale its parameters")
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise InputError(
                f"{self.name}: unknown parameter(s) {sorted(unknown)}; "
                f"expected {sorted(self.defaults)}"
            )
        merged = {**self.defaults, **params}
        return self.function(normalise_01(image, bright_atoms), ps, **merged)


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline(
            "blob_log",
            "skimage blob_log (Laplacian of Gaussian), 4 scales around sigma_nm",
            run_blob_log,
            {"sigma_nm": 0.05, "threshold": 0.05},
            {
                "sigma_nm": [0.03, 0.05, 0.08, 0.12],
                "threshold": [0.01, 0.02, 0.04, 0.07, 0.1, 0.15],
            },
        ),
        Baseline(
            "blob_dog",
            "skimage blob_dog (difference of Gaussians), sigmas around sigma_nm",
            run_blob_dog,
            {"sigma_nm": 0.05, "threshold": 0.05},
            {
                "sigma_nm": [0.03, 0.05, 0.08, 0.12],
                "threshold": [0.01, 0.02, 0.04, 0.07, 0.1, 0.15],
            },
        ),
        Baseline(
            "peak_local_max",
            "skimage peak_local_max on a Gaussian-smoothed image",
            run_peak_local_max,
            {"smooth_sigma_nm": 0.03, "min_distance_nm": 0.1, "threshold_rel": 0.3},
            {
                "smooth_sigma_nm": [0.02, 0.04, 0.07],
                "min_distance_nm": [0.08, 0.15],
                "threshold_rel": [0.1, 0.2, 0.3, 0.45, 0.6],
            },
        ),
        Baseline(
            "atomap_like",
            "Atomap recipe: peak_local_max(min separation) + CoM (0.25 nn) + 2-D Gaussian (0.4 nn)",
            run_atomap_like,
            {"separation_nm": 0.1, "threshold_rel": 0.2},
            {
                "separation_nm": [0.08, 0.15, 0.25],
                "threshold_rel": [0.1, 0.2, 0.3, 0.45, 0.6, 0.75],
            },
        ),
    )
}


@dataclass(frozen=True)
class TuningResult:
    """Outcome of :func:`tune`: the chosen parameters and every grid point's pooled score."""

    baseline: str
    params: dict[str, float]
    f1: float
    table: list[dict[str, float]]


def pooled_f1(
    baseline: Baseline,
    params: Mapping[str, float],
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    pixel_sizes_nm: Sequence[float],
    radius_nm: float,
    bright_atoms: Sequence[bool] | None = None,
) -> tuple[float, float]:
    """(F1 pooled over all images, RMS error in nm of matched pairs) for one parameter set."""
    tp = fp = fn = 0
    sq, n_sq = 0.0, 0
    for i, (img, true, ps) in enumerate(zip(images, truths, pixel_sizes_nm)):
        bright = True if bright_atoms is None else bool(bright_atoms[i])
        pred = baseline(img, ps, bright_atoms=bright, **params)
        m = point_metrics(pred, true, radius_nm=radius_nm, pixel_size_nm=ps)
        tp, fp, fn = tp + m.true_positives, fp + m.false_positives, fn + m.false_negatives
        if m.true_positives:
            sq += (m.rms_error_px * ps) ** 2 * m.true_positives
            n_sq += m.true_positives
    denom = 2 * tp + fp + fn
    f1 = 2 * tp / denom if denom else 1.0
    rms = math.sqrt(sq / n_sq) if n_sq else float("nan")
    return f1, rms


def grid_search(
    grid: Mapping[str, Sequence[float]],
    score: Callable[[dict[str, float]], tuple[float, float]],
) -> tuple[list[str], dict[tuple[float, ...], tuple[float, float]], tuple[float, ...]]:
    """The baselines' tuning rule: every point of ``grid``, then one round of geometric
    midpoints between the best value of each parameter and its grid neighbours (others
    held fixed). ``score(params)`` gives (pooled F1, RMS error); the best is the highest
    F1, ties to the smaller RMS. Returns (parameter names, every score, best values)."""
    values_of = {k: sorted(float(v) for v in vals) for k, vals in grid.items()}
    keys = sorted(values_of)
    scores: dict[tuple[float, ...], tuple[float, float]] = {}

    def evaluate(values: tuple[float, ...]) -> None:
        if values not in scores:
            scores[values] = score(dict(zip(keys, values)))

    def rank(values: tuple[float, ...]) -> tuple[float, float]:
        f1, rms = scores[values]
        return f1, -(rms if math.isfinite(rms) else 1e9)

    for values in itertools.product(*(values_of[k] for k in keys)):
        evaluate(values)
    # A grid is coarse: try the midpoints next to the best value of each parameter.
    best = max(scores, key=rank)
    for i, k in enumerate(keys):
        j = values_of[k].index(best[i])
        for nb in (j - 1, j + 1):
            if 0 <= nb < len(values_of[k]):
                mid = math.sqrt(values_of[k][j] * values_of[k][nb])
                evaluate((*best[:i], mid, *best[i + 1 :]))
    return keys, scores, max(scores, key=rank)


def tune(
    name: str,
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    pixel_sizes_nm: Sequence[float],
    radius_nm: float,
    bright_atoms: Sequence[bool] | None = None,
    grid: Mapping[str, Sequence[float]] | None = None,
) -> TuningResult:
    """Grid-search one parameter set for baseline ``name`` on a tuning set.

    ``images``/``truths`` (``(N, 2)`` row/col px)/``pixel_sizes_nm`` describe the tuning
    images, which must be disjoint from the images the result is reported on. The score is
    the F1 pooled over all tuning images (matching within ``radius_nm``); ties go to the
    smaller RMS error. Returns every grid point's score so the choice can be inspected.
    """
    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    if not (len(images) == len(truths) == len(pixel_sizes_nm)) or not images:
        raise InputError("tune: need the same, non-zero number of images, truths and pixel sizes")
    base = BASELINES[name]
    keys, scores, best = grid_search(
        base.grid if grid is None else grid,
        lambda params: pooled_f1(
            base, params, images, truths, pixel_sizes_nm, radius_nm, bright_atoms
        ),
    )
    table = [{**dict(zip(keys, v)), "f1": f, "rms_nm": r} for v, (f, r) in scores.items()]
    return TuningResult(name, dict(zip(keys, best)), scores[best][0], table)
