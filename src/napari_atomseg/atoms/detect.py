"""``find_atoms``: image -> network heatmap -> peaks -> refined columns (a DataFrame).

Split in two so the napari widget can preview post-processing live:

- :func:`predict_heatmap` / :func:`iter_predict_heatmap` -- the network (slow; run once):
  returns a :class:`HeatmapResult` holding the heatmap on the image's own grid, the
  image, the pixel size used and whether it was estimated;
- :func:`heatmap_to_atoms` -- post-processing only (fast; re-run on every slider move):
  peaks above ``threshold`` with suppression radius ``max(min_separation, nms_fraction x
  local spacing)``, then sub-pixel refinement on the *original* image (2-D Gaussian fit,
  centre of mass, or none), then features.

:func:`find_atoms` chains the two; :func:`iter_find_atoms` is its generator form
(yields :class:`~napari_atomseg._progress.Progress`, returns the DataFrame).

Output columns (one row per column, sorted by decreasing confidence):
``y_px, x_px`` (row, col, sub-pixel), ``y_nm, x_nm`` (when a pixel size is known or was
estimated), ``confidence`` (heatmap value at the peak, 0-1), ``intensity`` (integrated
column intensity above the local background in image units x px^2 -- for dark-atom
contrast, of the inverted image), ``nn_spacing_px`` / ``nn_spacing_nm`` (distance to the
nearest other column), ``sigma_px`` / ``sigma_nm`` (fitted Gaussian width, geometric mean
of the two axes; Gaussian refinement only) and ``refined`` (False where the Gaussian fit
failed and the heatmap position was kept). ``DataFrame.attrs`` records the settings.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .._progress import Progress, ProgressGenerator, as_part, drain
from .._validate import as_image2d, check_pixel_size_nm, check_range
from ..errors import AtomsegError, InputError, ResultWarning
from .peaks import find_peaks, local_prominence, suppress
from .refine import refine_center_of_mass, refine_gaussian
from .rescore import (
    CANDIDATE_THRESHOLD,
    Lattice,
    Rescorer,
    lattice_from_distances,
    lattice_of,
)
from .rescore import FEATURE_NAMES as RESCORER_FEATURES
from .rescore import features as rescore_features
from .spacing import lattice_spacing_px, nearest_neighbour_distances_px

#: Default confidence threshold ("filter lower bound") on the heatmap (0-1).
DEFAULT_THRESHOLD = 0.5
#: Default minimum separation of two columns ("window size"), nm. Closer columns are not
#: resolved by the training targets either (AtomsTask.min_separation_nm).
DEFAULT_MIN_SEPARATION_NM = 0.07
#: Default minimum separation when no pixel size is known, px.
DEFAULT_MIN_SEPARATION_PX = 2.0
#: Default sub-pixel refinement when neither the caller nor the model card names one.
DEFAULT_REFINE = "gaussian"
#: Drop heatmap peaks that are not a local extremum of the image (see heatmap_to_atoms).
DEFAULT_CONTRAST_CHECK = True
#: When the image check removes more than this share of the network's peaks (and there were
#: at least CHECK_WARN_MIN_PEAKS), the peaks disagree with the columns' contrast: the
#: result carries a warning, and find_atoms takes a second look (:func:`iter_second_look`).
#: On 100 of the benchmark's synthetic tuning/development images (20 HRTEM) the check
#: removed at most 48 % where the network was right, 80-98 % where it marked the hollows.
CHECK_WARN_FRACTION = 0.6
CHECK_WARN_MIN_PEAKS = 10
#: A second look (:func:`iter_second_look`) replaces the first answer only when more than
#: this many times as many of its columns pass the image check: where the first answer
#: was right the two counts are within a few % of each other (chosen on synthetic
#: tuning/development HRTEM images; 1.0 swapped a MoS2 image at 1208 vs 1206 columns
#: for a slightly worse answer).
SECOND_LOOK_MARGIN = 1.2
#: Fraction of the local spacing used as suppression radius.
DEFAULT_NMS_FRACTION = 0.5
#: Refinement window: this fraction of the nearest-neighbour distance (Atomap uses 0.4) ...
WINDOW_FRACTION_OF_NN = 0.4
#: ... but never wider than this (isolated atoms need a window sized to the atom, nm).
WINDOW_MAX_NM = 0.12
#: Spacing channel scale used when the card does not record one (nm).
DEFAULT_SPACING_SCALE_NM = 1.0

REFINE_METHODS = ("gaussian", "com", "heatmap", "none")
PEAK_METHODS = ("heatmap", "hough")
CONTRASTS = ("auto", "bright", "dark")
#: Test-time augmentation (``views=``): orientations of the image the network sees, each
#: with the map that turns its heatmap back; the heatmaps are averaged. The first is the
#: image as it is; 2 adds the half turn, 4 the two mirrors, 8 the transposes and the
#: quarter turns (the whole dihedral group of the pixel grid).
VIEWS = (
    (lambda a: a, lambda a: a),
    (lambda a: a[::-1, ::-1], lambda a: a[::-1, ::-1]),
    (lambda a: a[:, ::-1], lambda a: a[:, ::-1]),
    (lambda a: a[::-1, :], lambda a: a[::-1, :]),
    (lambda a: a.T, lambda a: a.T),
    (lambda a: a[::-1, ::-1].T, lambda a: a.T[::-1, ::-1]),
    (lambda a: np.rot90(a, 1), lambda a: np.rot90(a, -1)),
    (lambda a: np.rot90(a, -1), lambda a: np.rot90(a, 1)),
)
#: Allowed ``views``. Measured on synthetic tuning/development images (docs/atoms.md).
VIEWS_CHOICES = (1, 2, 4, 8)
#: What the image is, when the caller knows it (``imaging=``; None: not known). HAADF,
#: ADF, ABF and BF-STEM are "stem"; phase-contrast (HR)TEM is "hrtem".
IMAGING_MODES = ("stem", "hrtem")
#: The stricter image check (``min_prominence``) applied by default to white-atom HRTEM
#: (``imaging="hrtem"`` with bright columns). Chosen on synthetic HRTEM images apart
#: from the test images (benchmarks/atoms_min_prominence.py, docs/atoms.md): pooled F1
#: of bright-column HRTEM 0.983 -> 0.989 (tuning seeds) and 0.923 -> 0.996
#: (development seeds) from 0 to 0.4; dark columns lose at 0.4 (0.910 -> 0.905), so they
#: keep the check off. A model card may set its own (``postprocess.min_prominence_hrtem``).
HRTEM_MIN_PROMINENCE = 0.4
#: Noise levels (:func:`napari_atomseg.atoms.noise.noise_level`) between which a card's
#: ``threshold_noisy`` takes over from its ``threshold`` when its card gives no
#: ``noise_ramp`` (:func:`default_threshold`).
DEFAULT_NOISE_RAMP = (0.1, 0.2)
#: The noise ramp is for lattices: columns found at the card's threshold closer than this
#: (median nearest-neighbour distance, nm) -- atomic columns are 0.1-0.3 nm apart, isolated
#: atoms on a support 0.5 nm and more (card: ``postprocess.noise_ramp_max_spacing_nm``).
NOISE_RAMP_MAX_SPACING_NM = 0.4
POSTPROCESS_OPTIONS = (
    "threshold",
    "min_separation_nm",
    "min_separation_px",
    "nms_fraction",
    "refine",
    "method",
    "contrast",
    "exclude_border_px",
    "hough_score",
    "contrast_check",
    "min_prominence",
    "imaging",
)
PREDICT_OPTIONS = ("device", "tile_px", "overlap_px", "batch_size", "threads", "views")
#: Options of find_atoms itself: ``second_look`` (default True; see iter_second_look).
FIND_OPTIONS = ("second_look",)


@dataclass
class HeatmapResult:
    """The network's answer for one image, reusable for any post-processing settings."""

    #: float32 (H, W) column probability in [0, 1] on the image's own pixel grid.
    heatmap: np.ndarray
    #: float32 (H, W) validated copy of the input image (refinement runs on it).
    image: np.ndarray
    #: Pixel size used (given or estimated), nm/px; None when unknown.
    pixel_size_nm: float | None = None
    #: True when ``pixel_size_nm`` was estimated from the image.
    pixel_size_estimated: bool = False
    #: float32 (H, W) local column spacing in nm from a spacing head, or None.
    spacing_nm: np.ndarray | None = None
    #: Name of the model that produced the heatmap ("" for a heatmap made otherwise).
    model_name: str = ""
    #: Wall time of the prediction stages (from the backend), seconds.
    timings_s: Mapping[str, float] = field(default_factory=dict)
    #: The model card's recommended post-processing (``postprocess`` in the card): the
    #: defaults :func:`heatmap_to_atoms` uses for options the caller does not give.
    postprocess: Mapping[str, Any] = field(default_factory=dict)
    #: The columns' contrast the caller gave (auto / bright / dark).
    contrast: str = "auto"
    #: True when the network saw the inverted image: ``contrast="dark"``, unless a second
    #: look (:func:`iter_second_look`) kept the answer for the other way round.
    inverted: bool = False
    _lattice_spacing_px: float | None = field(default=None, init=False, repr=False)
    _noise_level: tuple[float | None] | None = field(default=None, init=False, repr=False)

    @property
    def network_input(self) -> str:
        """How the network saw the image: ``"inverted"`` or ``"as is"``."""
        return "inverted" if self.inverted else "as is"

    @property
    def looked_again(self) -> bool:
        """True when this is a kept second look: the network saw the image the other way
        round from what ``contrast`` implies (:func:`iter_second_look`)."""
        return self.inverted != (self.contrast == "dark")

    @classmethod
    def from_arrays(
        cls,
        image: Any,
        heatmap: Any,
        pixel_size_nm: float | None = None,
        spacing_nm: Any = None,
    ) -> HeatmapResult:
        """Wrap an image and a heatmap made elsewhere (tests, other detectors)."""
        img = as_image2d(image)
        heat = np.asarray(heatmap, dtype=np.float32)
        if heat.shape != img.shape:
            raise InputError(f"heatmap: shape {heat.shape} differs from the image's {img.shape}")
        if not np.isfinite(heat).all():
            raise InputError("heatmap: contains NaN/inf values")
        sp = None if spacing_nm is None else np.asarray(spacing_nm, dtype=np.float32)
        if sp is not None and sp.shape != img.shape:
            raise InputError(f"spacing_nm: shape {sp.shape} differs from the image's {img.shape}")
        return cls(heat, img, check_pixel_size_nm(pixel_size_nm), spacing_nm=sp)

    @property
    def lattice_spacing_px(self) -> float:
        """Nearest-neighbour spacing of the heatmap's dominant lattice (px), NaN if none.

        From the heatmap's autocorrelation; computed once and cached, so slider moves in
        the widget do not pay for it again.
        """
        if self._lattice_spacing_px is None:
            heat = self.heatmap
            flat = float(heat.max()) <= float(heat.min())
            self._lattice_spacing_px = (
                float("nan") if flat else lattice_spacing_px(heat, min_spacing_px=2.0)
            )
        return self._lattice_spacing_px

    @property
    def noise_level(self) -> float | None:
        """The image's pixel noise against its column contrast
        (:func:`napari_atomseg.atoms.noise.noise_level`; None without a pixel size).
        Computed once and cached, as the widget's previews ask again."""
        if self._noise_level is None:
            from .noise import noise_level

            self._noise_level = (noise_level(self.image, self.pixel_size_nm),)
        return self._noise_level[0]


def _model_name(model: Any) -> Any:
    """``"default"``/None -> the default atoms model's name; anything else unchanged."""
    from ..backend import default_model_name

    return default_model_name("atoms") if model in (None, "default") else model


def _resolve_model(model: Any, device: Any) -> Any:
    from ..backend import get_model
    from ..backend.registry import LoadedModel

    if isinstance(model, LoadedModel):
        return model
    return get_model(_model_name(model), device)


def _spacing_scale_nm(card: Any) -> float:
    """The spacing head's scale, as AtomsTask wrote it into the card's training record."""
    options = (card.training or {}).get("config", {}).get("task_options", {}) or {}
    return float(options.get("spacing_scale_nm", DEFAULT_SPACING_SCALE_NM))


def iter_predict_heatmap(
    image: Any,
    pixel_size_nm: float | None = None,
    model: Any = "default",
    *,
    device: Any = None,
    tile_px: int | None = None,
    overlap_px: int | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    contrast: str = "auto",
    invert: bool | None = None,
    views: int = 1,
) -> ProgressGenerator[HeatmapResult]:
    """Run the atom model on ``image``: a generator yielding Progress, returning a HeatmapResult.

    Parameters
    ----------
    image
        Any real 2-D array (not modified).
    pixel_size_nm
        nm per pixel; None estimates it from the image (``pixel_size_estimated`` True).
    model
        ``"default"`` (the shipped default atom model), a model name, a card path, or a
        loaded model from :func:`napari_atomseg.backend.get_model`.
    device, tile_px, overlap_px, batch_size, threads
        Passed to the backend (device choice, tiling, batching, CPU threads).
    contrast
        ``"dark"``: the columns are known to be darker than their surroundings
        (black-atom HRTEM), so the network sees the inverted image -- bright columns,
        the case it is surest of -- instead of having to decide which of the bright and
        dark blobs of a phase-contrast lattice are the atoms. ``"auto"``/``"bright"``:
        the image as it is. The returned ``image`` is always the original.
    invert
        Show the network the inverted image (True) or the image as it is (False)
        whatever ``contrast`` says; None (default): inverted for ``"dark"`` only. The
        second look of :func:`iter_find_atoms` uses it.
    views
        Test-time augmentation: the network sees the image in this many orientations
        (1, 2, 4 or 8 of :data:`VIEWS`: as it is; turned 180 degrees; mirrored left-right
        and up-down; transposed both ways and turned 90 degrees both ways) and the
        heatmaps, turned back, are averaged. Costs ``views`` network passes; see
        :data:`VIEWS_CHOICES` for what it buys.
    """
    from ..backend import iter_predict

    img = as_image2d(image)
    px = check_pixel_size_nm(pixel_size_nm)
    if contrast not in CONTRASTS:
        raise InputError(f"contrast: expected one of {CONTRASTS}, got {contrast!r}")
    inverted = contrast == "dark" if invert is None else bool(invert)
    loaded = _resolve_model(model, device)
    if loaded.card.task != "atoms":
        raise InputError(
            f"model {loaded.card.name!r} is a {loaded.card.task!r} model; choose an atoms model"
        )
    if (
        isinstance(views, bool)
        or not isinstance(views, int | np.integer)
        or views not in VIEWS_CHOICES
    ):
        raise InputError(f"views: expected one of {VIEWS_CHOICES}, got {views!r}")
    views = int(views)
    seen = -img if inverted else img
    heat = spacing = None
    timings: dict[str, float] = {}
    for k in range(views):
        forward, back = VIEWS[k]
        pred = yield from as_part(
            iter_predict(
                loaded,
                np.ascontiguousarray(forward(seen)),
                px,
                tile_px=tile_px,
                overlap_px=overlap_px,
                batch_size=batch_size,
                threads=threads,
            ),
            k,
            views,
            "view",
        )
        if k == 0:
            first = pred
            # Every view at the first one's pixel size (an estimate is made once).
            px = first.pixel_size_nm
        h = back(pred.channel("heatmap") if "heatmap" in pred.channels else pred.outputs[0])
        heat = h.astype(np.float32) if heat is None else heat + h
        if "spacing" in pred.channels:
            sp = back(pred.channel("spacing")).astype(np.float32)
            spacing = sp if spacing is None else spacing + sp
        for key, value in pred.timings_s.items():
            timings[key] = timings.get(key, 0.0) + value
    heat = heat / np.float32(views)
    if spacing is not None:
        spacing = spacing * np.float32(_spacing_scale_nm(loaded.card) / views)
    return HeatmapResult(
        heatmap=np.ascontiguousarray(heat, dtype=np.float32),
        image=img,
        pixel_size_nm=first.pixel_size_nm,
        pixel_size_estimated=first.pixel_size_estimated,
        spacing_nm=spacing,
        model_name=first.model_name,
        timings_s=timings,
        postprocess=card_postprocess(loaded.card),
        contrast=contrast,
        inverted=inverted,
    )


#: Card ``postprocess`` keys that are defaults of defaults, not find_atoms options.
CARD_ONLY_POSTPROCESS = (
    "min_prominence_hrtem",
    "threshold_noisy",
    "noise_ramp",
    "noise_ramp_max_spacing_nm",
    "rescorer",
)


def card_rescorer(postprocess: Mapping[str, Any] | None) -> Rescorer | None:
    """The card's per-peak rescorer for noisy lattices (``postprocess.rescorer``;
    :mod:`~napari_atomseg.atoms.rescore`), or None where it has none."""
    spec = (postprocess or {}).get("rescorer")
    return None if spec is None else Rescorer.from_card(spec)


def card_postprocess(card: Any) -> dict[str, Any]:
    """The post-processing defaults a model card recommends (known keys only: the
    options of :data:`POSTPROCESS_OPTIONS` and :data:`CARD_ONLY_POSTPROCESS`)."""
    pp = getattr(card, "postprocess", None) or {}
    known = (*POSTPROCESS_OPTIONS, *CARD_ONLY_POSTPROCESS)
    return {k: v for k, v in pp.items() if k in known}


def model_postprocess(model: Any = "default") -> dict[str, Any]:
    """``card_postprocess`` of a model given by name or card path (for GUIs); {} if none."""
    from ..backend import load_card

    try:
        return card_postprocess(load_card(_model_name(model)))
    except AtomsegError:
        return {}


def predict_heatmap(
    image: Any, pixel_size_nm: float | None = None, model: Any = "default", **kwargs: Any
) -> HeatmapResult:
    """Run :func:`iter_predict_heatmap` to completion (same arguments)."""
    return drain(iter_predict_heatmap(image, pixel_size_nm, model, **kwargs))


def _rescorer_features(
    result: HeatmapResult,
    pos: np.ndarray,
    conf: np.ndarray,
    lattice: Lattice,
    base_threshold: float,
    contrast: str,
) -> np.ndarray:
    """:func:`~napari_atomseg.atoms.rescore.features` of candidate peaks, the columns'
    contrast judged on the confident ones where ``contrast`` is "auto"."""
    ps = float(result.pixel_size_nm)
    window_max = max(WINDOW_MAX_NM / ps, 2.5)
    dark = contrast == "dark" or (
        contrast == "auto"
        and columns_are_dark(
            result.image,
            pos[conf >= base_threshold],
            min(0.5 * lattice.spacing_px, window_max),
        )
    )
    return rescore_features(
        result.image,
        pos,
        conf,
        base_threshold=base_threshold,
        noise_level=float(result.noise_level),
        pixel_size_nm=ps,
        dark=dark,
        spacing_px=lattice.spacing_px,
    )


@dataclass(frozen=True)
class PeakCandidates:
    """What the rescorer sees of one image (:func:`peak_candidates`), for fitting it."""

    positions_px: np.ndarray  # (N, 2) peaks down to the candidate threshold
    confidence: np.ndarray  # (N,)
    lattice: Lattice  # spacing statistics of the confident peaks
    kept_lattice: Lattice  # ... of the peaks the noise ramp keeps
    noise_level: float | None
    features: np.ndarray  # (N, len(rescore.FEATURE_NAMES)); empty when not computable
    threshold: float  # the card's threshold with its noise ramp, for comparison


def peak_candidates(
    result: HeatmapResult,
    contrast: str = "auto",
    imaging: str | None = None,
    candidate_threshold: float = CANDIDATE_THRESHOLD,
) -> PeakCandidates:
    """The candidate peaks of :func:`heatmap_to_atoms` with the card's defaults, their
    rescorer features and the threshold the noise ramp would use (what
    ``benchmarks/atoms_rescorer.py`` fits the rescorer on). Needs a pixel size."""
    if result.pixel_size_nm is None:
        raise InputError("peak_candidates needs the pixel size")
    pp = result.postprocess or {}
    ps = float(result.pixel_size_nm)
    base = check_range(pp.get("threshold", DEFAULT_THRESHOLD), 0.0, 1.0, "postprocess.threshold")
    spacing_map = None if result.spacing_nm is None else result.spacing_nm / np.float32(ps)
    pos, conf = find_peaks(
        result.heatmap,
        threshold=min(base, candidate_threshold),
        min_separation_px=_min_separation_px(pp.get("min_separation_nm"), None, ps),
        spacing_px=spacing_map,
        nms_fraction=pp.get("nms_fraction", DEFAULT_NMS_FRACTION),
    )
    lattice = lattice_of(pos, conf, base)
    if lattice.n_confident > 1:
        threshold = default_threshold(result, imaging, lattice.spacing_px * ps)
        feats = _rescorer_features(result, pos, conf, lattice, base, contrast)
    else:
        threshold = base
        feats = np.zeros((0, len(RESCORER_FEATURES)))
    kept = lattice_of(pos, conf, threshold)
    return PeakCandidates(pos, conf, lattice, kept, result.noise_level, feats, threshold)


def _min_separation_px(
    min_separation_nm: float | None, min_separation_px: float | None, pixel_size_nm: float | None
) -> float:
    if min_separation_nm is not None and min_separation_px is not None:
        raise InputError("give min_separation_nm or min_separation_px, not both")
    if min_separation_px is not None:
        return check_range(min_separation_px, 0.0, 1e4, "min_separation_px")
    if min_separation_nm is not None:
        nm = check_range(min_separation_nm, 0.0, 100.0, "min_separation_nm")
        if pixel_size_nm is None:
            raise InputError(
                "min_separation_nm needs the pixel size; give pixel_size_nm or use "
                "min_separation_px"
            )
        return nm / pixel_size_nm
    if pixel_size_nm is None:
        return DEFAULT_MIN_SEPARATION_PX
    return max(1.0, DEFAULT_MIN_SEPARATION_NM / pixel_size_nm)


def columns_are_dark(
    image: np.ndarray, positions_px: np.ndarray, radius_px: float, max_columns: int = 2000
) -> bool:
    """True when the columns are darker than their surroundings (black-atom HRTEM contrast).

    For (up to ``max_columns`` evenly chosen) columns, the mean of the 3x3 pixels at the
    column is compared with the mean of a disc of ``radius_px`` around it; the sign of the
    median difference decides. Only pixels near the columns are read.
    """
    from .refine import gather_patches

    n = len(positions_px)
    if n == 0:
        return False
    pick = np.linspace(0, n - 1, min(n, max_columns)).astype(int)
    pos = np.asarray(positions_px, dtype=np.float64)[pick]
    radius = max(2.0, float(radius_px))
    pt = gather_patches(image, pos, np.full(len(pos), radius), radius)
    values = pt.values * pt.weight
    core = pt.weight * ((np.abs(pt.dy) <= 1.5) & (np.abs(pt.dx) <= 1.5))
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (values * core).sum(1) / core.sum(1)
        around = values.sum(1) / pt.weight.sum(1)
    diff = centre - around
    diff = diff[np.isfinite(diff)]
    return bool(diff.size and np.median(diff) < 0)


def heatmap_to_atoms(
    result: HeatmapResult,
    threshold: float | None = None,
    min_separation_nm: float | None = None,
    min_separation_px: float | None = None,
    nms_fraction: float | None = None,
    refine: str | None = None,
    method: str = "heatmap",
    contrast: str = "auto",
    exclude_border_px: int = 0,
    hough_score: float = 0.5,
    contrast_check: bool | None = None,
    min_prominence: float | None = None,
    imaging: str | None = None,
) -> pd.DataFrame:
    """Columns from a :class:`HeatmapResult` (post-processing only; no network).

    Parameters
    ----------
    result
        From :func:`predict_heatmap` (or :meth:`HeatmapResult.from_arrays`). Not modified.
    threshold
        Confidence lower bound on the heatmap (0-1); for ``method="hough"`` the level that
        segments the column discs. Default: the model card's recommended value
        (``postprocess.threshold``, chosen on held-out synthetic data), else 0.5; with
        ``method="heatmap"`` raised on noisy lattices (not HRTEM) where the card says so
        (:func:`default_threshold`). The value used is ``attrs["threshold"]``, and
        ``attrs["threshold_from"]`` says why ("given", "model card" or "noise").
    min_separation_nm, min_separation_px
        Minimum distance between two columns (one of them; default 0.07 nm, or 2 px
        without a pixel size).
    nms_fraction
        Suppression radius as a fraction of the local column spacing from the model's
        spacing head (models without one use ``min_separation`` alone).
    refine
        On the image: ``"gaussian"`` (2-D Gaussian fit; also gives column widths),
        ``"com"`` (centre of mass, faster); on the network's heatmap: ``"heatmap"`` (its
        centre of mass in the same disc), ``"none"`` (the peak, parabolic sub-pixel).
        Default: the card's ``postprocess.refine``, else ``"gaussian"``.

    Options left as None take the model card's ``postprocess`` value where it has one
    (:attr:`HeatmapResult.postprocess`), else the module defaults.
    method
        ``"heatmap"`` (peaks + NMS) or ``"hough"`` (circular Hough on the segmented heatmap).
    contrast
        Column contrast for refinement: ``"bright"`` (HAADF, white atoms), ``"dark"``
        (black-atom HRTEM: the image is inverted for refinement) or ``"auto"``. Given to
        :func:`find_atoms`, ``"dark"`` also shows the network the inverted image (see
        :func:`iter_predict_heatmap`); say it when you know it.
    exclude_border_px
        Drop columns whose heatmap peak is closer than this to the edge.
    hough_score
        Hough only: minimum fraction of a circle's perimeter on disc edges (0-1).
    contrast_check
        Drop heatmap peaks that are not a local extremum of the image in the columns'
        contrast (a maximum for bright columns, a minimum for dark ones; see
        :func:`~napari_atomseg.atoms.peaks.local_prominence`): the network's lattice prior
        otherwise marks hollows, tunnels and the midpoints of dumbbells in some HRTEM
        images. Default: the card's ``postprocess.contrast_check``, else True.
    min_prominence
        A stricter image check (0-1): drop columns that stand out of their surroundings
        by less than this fraction of the median of the image's columns (the prominence
        of :func:`~napari_atomseg.atoms.peaks.local_prominence`, in the columns'
        contrast). 0 (off) is the default (or the card's ``postprocess.min_prominence``).
        For white-atom HRTEM, 0.3-0.4 removes hollows that are weak image maxima
        (docs/atoms.md); not for HAADF lattices whose light columns (O beside Sr) are
        legitimately faint. Left as None with ``imaging="hrtem"`` and bright columns, it
        is :data:`HRTEM_MIN_PROMINENCE` (or the card's ``postprocess.min_prominence_hrtem``).
    imaging
        What the image is, where known: ``"stem"`` (HAADF/ADF/ABF/BF-STEM) or ``"hrtem"``
        (phase-contrast TEM); None (default): not known. :func:`imaging_from_metadata`
        reads it from a file's metadata. Changes two defaults: ``min_prominence`` for
        white-atom HRTEM, and HRTEM never gets the noise-raised threshold
        (:func:`default_threshold`); recorded in ``attrs["imaging"]``.
    """
    pp = result.postprocess or {}
    threshold_given = threshold is not None
    if threshold is None:
        threshold = pp.get("threshold", DEFAULT_THRESHOLD)
    if nms_fraction is None:
        nms_fraction = pp.get("nms_fraction", DEFAULT_NMS_FRACTION)
    if refine is None:
        refine = pp.get("refine", DEFAULT_REFINE)
    if min_separation_nm is None and min_separation_px is None:
        min_separation_nm = pp.get("min_separation_nm")
    if contrast_check is None:
        contrast_check = bool(pp.get("contrast_check", DEFAULT_CONTRAST_CHECK))
    check_imaging(imaging)
    prominence_given = min_prominence is not None
    if prominence_given:
        min_prominence = check_range(min_prominence, 0.0, 1.0, "min_prominence")
    threshold = check_range(threshold, 0.0, 1.0, "threshold")
    base_threshold = threshold
    nms_fraction = check_range(nms_fraction, 0.0, 1.0, "nms_fraction")
    if refine not in REFINE_METHODS:
        raise InputError(f"refine: expected one of {REFINE_METHODS}, got {refine!r}")
    if method not in PEAK_METHODS:
        raise InputError(f"method: expected one of {PEAK_METHODS}, got {method!r}")
    if contrast not in CONTRASTS:
        raise InputError(f"contrast: expected one of {CONTRASTS}, got {contrast!r}")
    ps = result.pixel_size_nm
    heat = result.heatmap
    min_sep = _min_separation_px(min_separation_nm, min_separation_px, ps)

    # --- spacing for the suppression radius ------------------------------------------
    spacing_map = None
    if result.spacing_nm is not None and ps is not None:
        spacing_map = result.spacing_nm / np.float32(ps)
    # (The heatmap's lattice period, HeatmapResult.lattice_spacing_px, is not needed here:
    # an autocorrelation of the whole heatmap cost 0.35 s on 1024^2 for a metadata entry.)

    # --- candidate columns --------------------------------------------------------------
    rescorer = (
        card_rescorer(pp)
        if method == "heatmap" and not threshold_given and ps is not None and imaging != "hrtem"
        else None
    )
    n_rescued = n_rejected = 0
    rescored = False
    if method == "heatmap":

        def peaks_above(level: float) -> tuple[np.ndarray, np.ndarray]:
            return find_peaks(
                heat,
                threshold=level,
                min_separation_px=min_sep,
                # Only a spacing head's local column spacing widens the suppression radius:
                # the heatmap's lattice period is a multiple of the column spacing in
                # structures with a basis (dumbbells in Si/Ge/GaN, SrTiO3's O columns) and
                # suppressed real columns (Ge [110]: recall 0.52 -> 0.92 on the
                # benchmark's tuning images).
                spacing_px=spacing_map,
                nms_fraction=nms_fraction,
                exclude_border_px=exclude_border_px,
            )

        pos, conf = peaks_above(threshold)
        nn = nearest_neighbour_distances_px(pos)
        if not threshold_given and ps is not None and len(pos) > 1:
            # A noisy lattice gets a higher threshold (default_threshold): the peaks above
            # it are those found at the card's, as suppression only ever removes a peak
            # in favour of a higher one ...
            lattice = lattice_from_distances(nn)
            threshold = default_threshold(result, imaging, lattice.spacing_px * ps)
            keep = conf >= threshold
            # ... or, where the card has a rescorer and the image is one it was fitted
            # for, a decision per peak down to the rescorer's candidate threshold
            # (rescore.py; the peaks are found again only then).
            if rescorer is not None and rescorer.gate(
                lattice,
                ps,
                lambda: result.noise_level,
                imaging,
                kept=lattice if keep.all() else lattice_of(pos[keep], conf[keep], threshold),
            ):
                pos, conf = peaks_above(min(base_threshold, rescorer.candidate_threshold))
                feats = _rescorer_features(result, pos, conf, lattice, base_threshold, contrast)
                keep = rescorer.keep(feats)
                by_ramp = conf >= threshold
                n_rescued = int((keep & ~by_ramp).sum())
                n_rejected = int((by_ramp & ~keep).sum())
                rescored = True
            if not keep.all():
                pos, conf = pos[keep], conf[keep]
                nn = nearest_neighbour_distances_px(pos)
    else:
        from .hough import hough_columns

        found = hough_columns(
            heat, level=threshold, score_threshold=hough_score, min_separation_px=max(min_sep, 1.0)
        )
        pos = found.positions_px
        idx = np.clip(np.rint(pos).astype(int), 0, np.array(heat.shape) - 1)
        conf = heat[idx[:, 0], idx[:, 1]].astype(np.float32)
        keep = suppress(pos, conf, min_sep)
        pos, conf = pos[keep], conf[keep]
        if exclude_border_px > 0 and len(pos):
            b = exclude_border_px
            inside = (pos >= b).all(axis=1) & (pos < np.array(heat.shape) - b).all(axis=1)
            pos, conf = pos[inside], conf[inside]
        order = np.argsort(-conf, kind="stable")
        pos, conf = pos[order], conf[order]
        nn = nearest_neighbour_distances_px(pos)

    # --- the columns' contrast, and the image check of each peak ---------------------
    window_max = WINDOW_MAX_NM / ps if ps is not None else 6.0
    window_max = max(window_max, 2.5)
    typical = float(np.median(nn[np.isfinite(nn)])) if np.isfinite(nn).any() else 4.0 * window_max
    dark = contrast == "dark" or (
        contrast == "auto" and columns_are_dark(result.image, pos, min(0.5 * typical, window_max))
    )
    img = -result.image if dark else result.image
    if not prominence_given:
        min_prominence = default_min_prominence(imaging, dark, pp)
    n_checked_out = n_faint = 0
    n_candidates = len(pos)
    if (contrast_check or min_prominence > 0) and len(pos):
        # An isolated peak is judged against a ring at its refinement window's scale.
        prominence = local_prominence(img, pos, np.where(np.isfinite(nn), nn, 2.0 * window_max))
        keep = prominence > 0 if contrast_check else np.ones(len(pos), dtype=bool)
        n_checked_out = int((~keep).sum())
        if min_prominence > 0 and keep.any():
            faint = keep & (prominence < min_prominence * np.median(prominence[keep]))
            n_faint = int(faint.sum())
            keep &= ~faint
        if not keep.all():
            pos, conf = pos[keep], conf[keep]
            nn = nearest_neighbour_distances_px(pos)

    # --- sub-pixel position: on the heatmap or on the image ---------------------------
    radius = np.clip(
        np.where(np.isfinite(nn), WINDOW_FRACTION_OF_NN * nn, window_max), 1.5, window_max
    )
    n = len(pos)
    refined_ok = np.ones(n, dtype=bool)
    sigma_px = np.full(n, np.nan)
    if refine in ("none", "heatmap") or n == 0:
        final = pos.copy()
        if refine == "heatmap" and n:
            # Centre of mass of the heatmap in the same disc: more of the network's answer
            # than the 3-sample parabola of the peak. One pass: the peak is already close,
            # and on the benchmark's tuning images re-centring cost time and precision
            # (pooled RMS 12.30 pm with one pass, 12.38 with two).
            final = refine_center_of_mass(heat, pos, radius, n_iter=1).positions_px
        intensity = (
            ndi.map_coordinates(img, final.T, order=1, mode="nearest").astype(np.float64)
            if n
            else np.zeros(0)
        )
    elif refine == "com":
        com = refine_center_of_mass(img, pos, radius, n_iter=2)
        final, intensity = com.positions_px, com.intensity
    else:
        fit = refine_gaussian(img, pos, radius, sigma_px=radius / 2.5)
        refined_ok = fit.ok
        # A failed fit keeps the heatmap position; its intensity is the window's sum.
        final = fit.positions_px
        intensity = fit.intensity.copy()
        failed = np.flatnonzero(~fit.ok)
        if len(failed):
            intensity[failed] = refine_center_of_mass(
                img, pos[failed], radius[failed], n_iter=1
            ).intensity
        sigma_px = np.sqrt(fit.sigma_major_px * fit.sigma_minor_px)

    # --- features ---------------------------------------------------------------------
    df = pd.DataFrame({"y_px": final[:, 0], "x_px": final[:, 1]})
    if ps is not None:
        df["y_nm"] = final[:, 0] * ps
        df["x_nm"] = final[:, 1] * ps
    df["confidence"] = conf.astype(np.float32)
    df["intensity"] = intensity
    nn_final = nearest_neighbour_distances_px(final)
    df["nn_spacing_px"] = nn_final
    if ps is not None:
        df["nn_spacing_nm"] = nn_final * ps
    if refine == "gaussian":
        df["sigma_px"] = sigma_px
        if ps is not None:
            df["sigma_nm"] = sigma_px * ps
        df["refined"] = refined_ok
    df.attrs.update(
        {
            "pixel_size_nm": ps,
            "pixel_size_estimated": bool(result.pixel_size_estimated),
            "model": result.model_name,
            "threshold": threshold,
            "threshold_base": base_threshold,
            "threshold_from": (
                "given"
                if threshold_given
                else "rescorer"
                if rescored
                else "noise"
                if threshold != base_threshold
                else "model card"
            ),
            # The rescorer's changes against the threshold above (0 where it did not run).
            "rescorer_added": n_rescued,
            "rescorer_removed": n_rejected,
            # Measured only where the noise ramp was considered (a lattice, not HRTEM).
            "noise_level": result._noise_level[0] if result._noise_level else None,
            "min_separation_px": float(min_sep),
            "nms_fraction": nms_fraction,
            "median_nn_spacing_px": (
                float(np.median(nn_final[np.isfinite(nn_final)]))
                if np.isfinite(nn_final).any()
                else None
            ),
            "refine": refine,
            "method": method,
            "contrast": "dark" if dark else "bright",
            "contrast_check": bool(contrast_check),
            "contrast_check_removed": n_checked_out,
            "min_prominence": min_prominence,
            "min_prominence_removed": n_faint,
            "imaging": imaging or "unknown",
            "network_input": result.network_input,
            "warnings": _check_warnings(n_checked_out, n_candidates, dark),
        }
    )
    return df


def check_imaging(imaging: Any) -> str | None:
    """``imaging`` if it is one of :data:`IMAGING_MODES` or None, else InputError."""
    if imaging is not None and imaging not in IMAGING_MODES:
        raise InputError(f"imaging: expected one of {IMAGING_MODES} or None, got {imaging!r}")
    return imaging


def default_threshold(
    result: HeatmapResult, imaging: str | None = None, spacing_nm: float | None = None
) -> float:
    """The detection threshold when the caller gives none.

    The card's ``postprocess.threshold`` (else :data:`DEFAULT_THRESHOLD`), raised on noisy
    images where the card says how (``threshold_noisy``, ``noise_ramp``): linearly from
    the threshold at noise level ``noise_ramp[0]`` to ``threshold_noisy`` at
    ``noise_ramp[1]`` (:func:`~napari_atomseg.atoms.noise.noise_adapted_threshold`, the
    level from :attr:`HeatmapResult.noise_level`). Only for a lattice -- ``spacing_nm``,
    the median distance between the columns found at the card's threshold, below
    ``postprocess.noise_ramp_max_spacing_nm`` (:data:`NOISE_RAMP_MAX_SPACING_NM`) -- and
    not for HRTEM: at low dose the network fills the empty hollows of a lattice with
    columns of confidence 0.5-0.6, while faint single atoms on a support (the real Pt
    images) sit at 0.4-0.6 and need the card's threshold (docs/atoms.md, "Noise-adapted
    threshold").
    """
    pp = result.postprocess or {}
    base = check_range(pp.get("threshold", DEFAULT_THRESHOLD), 0.0, 1.0, "postprocess.threshold")
    if "threshold_noisy" not in pp:
        return base
    from .noise import check_noise_ramp, noise_adapted_threshold

    noisy = check_range(pp["threshold_noisy"], 0.0, 1.0, "postprocess.threshold_noisy")
    try:
        ramp = check_noise_ramp(pp.get("noise_ramp", DEFAULT_NOISE_RAMP))
    except InputError as exc:
        raise InputError(f"postprocess.noise_ramp: {exc}") from None
    max_spacing = pp.get("noise_ramp_max_spacing_nm", NOISE_RAMP_MAX_SPACING_NM)
    max_spacing = check_range(max_spacing, 0.0, 100.0, "postprocess.noise_ramp_max_spacing_nm")
    if imaging == "hrtem" or spacing_nm is None or not spacing_nm < max_spacing:
        return base
    return noise_adapted_threshold(base, noisy, ramp, result.noise_level)


def default_min_prominence(
    imaging: str | None, dark: bool, postprocess: Mapping[str, Any] | None = None
) -> float:
    """``min_prominence`` when the caller leaves it out: :data:`HRTEM_MIN_PROMINENCE` (or
    the card's ``postprocess.min_prominence_hrtem``) for white-atom HRTEM, else the
    card's ``postprocess.min_prominence``, else 0 (off)."""
    pp = postprocess or {}
    if imaging == "hrtem" and not dark:
        value = pp.get("min_prominence_hrtem", HRTEM_MIN_PROMINENCE)
        return check_range(value, 0.0, 1.0, "postprocess.min_prominence_hrtem")
    return check_range(pp.get("min_prominence", 0.0), 0.0, 1.0, "postprocess.min_prominence")


#: Words of a file's acquisition mode (``Calibration.metadata["acquisition_mode"]``: DM's
#: "Illumination Mode", TIA's "Mode", ...) and simulation modes, by imaging mode.
_STEM_WORDS = ("STEM", "HAADF", "ADF", "ABF")
_TEM_WORDS = ("TEM", "HRTEM", "IMAGING", "EFTEM", "CTEM")


def imaging_from_metadata(metadata: Mapping[str, Any] | None) -> str | None:
    """``"stem"``, ``"hrtem"`` or None (not said) from a file's or layer's metadata.

    Reads ``acquisition_mode`` (what the readers take from DM/TIA/EMD metadata) from
    ``metadata`` itself, its ``"calibration"`` entry (napari layers opened by this
    plugin) or the simulator's ``"simulation_parameters"`` (``mode``: haadf / hrtem). Anything
    else -- a diffraction mode, an unknown word, nothing -- gives None.
    """
    if not metadata:
        return None
    candidates: list[Any] = [metadata.get("acquisition_mode")]
    cal = metadata.get("calibration")
    if isinstance(cal, Mapping):
        inner = cal.get("metadata")
        if isinstance(inner, Mapping):
            candidates.append(inner.get("acquisition_mode"))
    params = metadata.get("simulation_parameters")
    if isinstance(params, Mapping):
        candidates.append(params.get("mode"))  # "haadf" / "hrtem": words of the lists
    for value in candidates:
        if not isinstance(value, str) or not value.strip():
            continue
        words = value.upper().replace("-", " ").replace("_", " ").split()
        if any(w in _STEM_WORDS for w in words):
            return "stem"
        if any(w in _TEM_WORDS for w in words):
            return "hrtem"
    return None


def check_disagrees(n_removed: int, n_candidates: int) -> bool:
    """Whether the image check removed so many peaks that the network's answer and the
    columns' contrast disagree (see :data:`CHECK_WARN_FRACTION`)."""
    return n_candidates >= CHECK_WARN_MIN_PEAKS and n_removed > CHECK_WARN_FRACTION * n_candidates


def _check_warnings(n_removed: int, n_candidates: int, dark: bool) -> list[str]:
    if not check_disagrees(n_removed, n_candidates):
        return []
    kind, other = ("dark", "bright") if dark else ("bright", "dark")
    return [
        f"the image check removed {n_removed} of the network's {n_candidates} peaks "
        f"({100 * n_removed / n_candidates:.0f} %): they are not {kind}er than their "
        f"surroundings. Either the columns are {other}, not {kind} (set the contrast to "
        f"{other!r}), or the network marked the hollows of a phase-contrast lattice "
        "(HRTEM at this defocus is ambiguous: check the points; contrast_check=False keeps "
        "every peak)"
    ]


def _split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    unknown = set(options) - set(POSTPROCESS_OPTIONS) - set(PREDICT_OPTIONS) - set(FIND_OPTIONS)
    if unknown:
        raise InputError(
            f"find_atoms: unknown option(s) {sorted(unknown)}; post-processing options: "
            f"{list(POSTPROCESS_OPTIONS)}; prediction options: {list(PREDICT_OPTIONS)}; "
            f"and {list(FIND_OPTIONS)}"
        )
    predict = {k: v for k, v in options.items() if k in PREDICT_OPTIONS}
    post = {k: v for k, v in options.items() if k in POSTPROCESS_OPTIONS}
    return predict, post


def iter_find_atoms(
    image: Any, pixel_size_nm: float | None = None, model: Any = "default", **options: Any
) -> ProgressGenerator[pd.DataFrame]:
    """Generator form of :func:`find_atoms`: yields Progress, returns the DataFrame."""
    predict_opts, post_opts = _split_options(options)
    second_look = options.get("second_look", True)
    if not isinstance(second_look, bool):
        raise InputError(f"second_look: expected True or False, got {second_look!r}")
    # Validate post-processing options before the (slow) network runs.
    # (contrast is checked by iter_predict_heatmap, also before the network)
    for key, allowed in (("refine", REFINE_METHODS), ("method", PEAK_METHODS)):
        if key in post_opts and post_opts[key] not in allowed:
            raise InputError(f"{key}: expected one of {allowed}, got {post_opts[key]!r}")
    check_imaging(post_opts.get("imaging"))
    result = yield from iter_predict_heatmap(
        image, pixel_size_nm, model, contrast=post_opts.get("contrast", "auto"), **predict_opts
    )
    yield Progress(0, 1, "finding and refining columns")
    df = heatmap_to_atoms(result, **post_opts)
    if second_look:
        result, df = yield from iter_second_look(result, df, model, post_opts, **predict_opts)
    yield Progress(1, 1, f"{len(df)} columns")
    return df


def needs_second_look(result: HeatmapResult, atoms: pd.DataFrame, contrast: str) -> bool:
    """Whether :func:`iter_second_look` runs the network again (see there)."""
    if contrast == "auto" or result.looked_again:
        return False  # no contrast to check against, or this already is the second look
    removed = int(atoms.attrs.get("contrast_check_removed", 0))
    return contrast == "dark" or check_disagrees(removed, removed + len(atoms))


def iter_second_look(
    result: HeatmapResult,
    atoms: pd.DataFrame,
    model: Any = "default",
    post_options: Mapping[str, Any] | None = None,
    **predict_options: Any,
) -> ProgressGenerator[tuple[HeatmapResult, pd.DataFrame]]:
    """Show the network the image the other way round where that can find more columns.

    ``atoms`` is ``heatmap_to_atoms(result, **post_options)``. Runs when the columns'
    contrast was given (not ``"auto"``) and either

    - it is ``"dark"``: the network first saw the inverted image (bright columns), but
      phase-contrast images with dark columns are in its training too, and which of the
      two it reads better depends on the lattice and the defocus; or
    - the image check removed more than :data:`CHECK_WARN_FRACTION` of the network's
      peaks: they are not extrema in the given contrast (hollows of a lattice marked
      instead of columns).

    The network then sees the image the other way round (one more pass), the same
    post-processing runs, and the second answer is kept when more than
    :data:`SECOND_LOOK_MARGIN` times as many of its columns pass the image check;
    ``attrs["second_look"]`` says what happened. Otherwise ``(result, atoms)`` come back
    unchanged and no network runs (HAADF and bright columns that pass the check: the
    common case costs nothing). Measured on synthetic HRTEM images apart from the test
    images (docs/atoms.md): on 27 dark-column images it turned four whole-image failures
    (Si, MoS2, GaN; F1 0.04-0.59) into F1 0.78-0.96 and changed no other image's F1 by
    more than 0.003; a Au image whose columns are small dark dots between bright
    hollows stays unsolved both ways round, and its warning says so.
    """
    post = dict(post_options or {})
    if not needs_second_look(result, atoms, post.get("contrast", "auto")):
        return result, atoms
    yield Progress(0, 1, "second look: the network sees the image the other way round")
    other = yield from iter_predict_heatmap(
        result.image,
        result.pixel_size_nm,
        model,
        contrast=result.contrast,
        invert=not result.inverted,
        **predict_options,
    )
    other = dataclasses.replace(other, pixel_size_estimated=result.pixel_size_estimated)
    again = heatmap_to_atoms(other, **post)
    if len(again) > SECOND_LOOK_MARGIN * len(atoms):
        again.attrs["second_look"] = (
            f"kept: the network saw the image {other.network_input} ({len(again)} columns "
            f"pass the image check) instead of {result.network_input} ({len(atoms)})"
        )
        return other, again
    atoms.attrs["second_look"] = (
        f"discarded: with the image {other.network_input} {len(again)} columns passed the "
        f"image check (image {result.network_input}: {len(atoms)})"
    )
    return result, atoms


def find_atoms(
    image: Any, pixel_size_nm: float | None = None, model: Any = "default", **options: Any
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
    **options
        Post-processing (see :func:`heatmap_to_atoms`): ``threshold``,
        ``min_separation_nm`` / ``min_separation_px``, ``nms_fraction``, ``refine``,
        ``method``, ``contrast``, ``exclude_border_px``, ``hough_score``,
        ``contrast_check``, ``min_prominence``, ``imaging``; prediction:
        ``device``, ``tile_px``, ``overlap_px``, ``batch_size``, ``threads``, ``views``
        (test-time augmentation, see :func:`iter_predict_heatmap`; default 1);
        ``second_look`` (default True: with the contrast given, a second network pass
        where it can find more columns -- always for dark columns; see
        :func:`iter_second_look`. False: one pass, e.g. for speed in batch jobs on
        dark-column images).

    Returns
    -------
    pandas.DataFrame
        One row per column: ``y_px, x_px[, y_nm, x_nm], confidence, intensity,
        nn_spacing_px[, nn_spacing_nm]`` (+ ``sigma_px``, ``sigma_nm``, ``refined`` with
        Gaussian refinement); settings in ``.attrs``, and ``.attrs["warnings"]``: what
        needs the user's eye (each also issued as a :class:`ResultWarning`).
    """
    df = drain(iter_find_atoms(image, pixel_size_nm, model, **options))
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
    ps = result.pixel_size_nm
    cap = max(2.5, WINDOW_MAX_NM / ps) if ps is not None else 6.0
    radius = np.where(np.isfinite(nn), np.minimum(0.5 * nn, cap), cap)
    return column_labels(result.heatmap, pos, level=level, max_radius_px=radius)
