"""``segment()``: contamination / nanoparticle label masks, by U-Net or Bragg filter.

Two tasks, each with fixed class names (label value = index)::

    task="contamination":  0 crystal (clean lattice), 1 amorphous (contamination or
                           amorphous support), 2 vacuum
    task="particles":      0 background (support, vacuum), 1 particle (crystalline)

Label 0 is the "nothing to flag" class, so a napari Labels layer shows the clean lattice
(or the support) transparent and the regions to mask in colour.

Two methods:

- ``method="unet"`` -- a shipped (or user) segmentation model run through the shared
  backend (resampled to the model's working pixel size, tiled, any device). For
  contamination its amorphous probability is, by default, averaged with a map from the
  Bragg filter (:class:`UnetOptions`; ``bragg_weight=0`` for the U-Net alone).
- ``method="bragg"`` -- the classical Bragg filter (:mod:`.bragg`); no model, no pixel
  size needed. Contamination: non-periodic residual above ``mask_threshold``; vacuum:
  neither residual nor lattice fringes. Particles: where the lattice fringes dominate.

The return value is a :class:`SegmentationResult`; it unpacks as
``labels, class_names = segment(image)`` (chosen over a bare tuple so the extra
information -- pixel size used, Bragg peaks, probabilities -- is not lost).
:func:`iter_segment` is the same computation as a generator yielding
:class:`~napari_atomseg._progress.Progress` (for the napari widget and the CLI).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from .._progress import Progress, drain
from .._validate import as_image2d, check_pixel_size_nm, check_range
from ..errors import InputError
from . import bragg as _bragg
from .cleanup import clean_labels
from .preprocess import PreprocessOptions, preprocess

Task = Literal["contamination", "particles"]
Method = Literal["unet", "bragg"]

#: Class names per task, in label order.
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "contamination": ("crystal", "amorphous", "vacuum"),
    "particles": ("background", "particle"),
}
#: Label value of the class each task flags (what the area fractions and sorting rank by).
FLAGGED_CLASS: dict[str, int] = {"contamination": 1, "particles": 1}


@dataclass(frozen=True)
class CleanupOptions:
    """Mask clean-up after either method (see :mod:`.cleanup`).

    Attributes
    ----------
    smooth_sigma:
        Boundary smoothing (Gaussian majority vote), in ``length_unit``; 0 = off.
    min_region_size:
        Regions of any class smaller than a square of this side are absorbed by their
        surroundings, in ``length_unit``; 0 = off.
    fill_holes:
        Fill holes enclosed by a flagged class (clean islands inside contamination).
    length_unit:
        ``"period"`` (lattice periods found by the Bragg filter; Bragg only), ``"nm"``
        (needs a pixel size, given or estimated) or ``"px"``.
    """

    smooth_sigma: float = 1.0
    min_region_size: float = 4.0
    fill_holes: bool = True
    length_unit: Literal["period", "nm", "px"] = "period"


#: Defaults per method; the Bragg values were chosen by 5-fold cross-validation on the
#: real graphene set (see docs/segmentation.md), the U-Net ones are physical.
_DEFAULT_CLEANUP = {
    "bragg": CleanupOptions(),
    "unet": CleanupOptions(smooth_sigma=0.1, min_region_size=1.0, length_unit="nm"),
}
_DEFAULT_PREPROCESS = {
    "contamination": PreprocessOptions(),
    # Large particles dominate a polynomial fit of the illumination: off by default.
    "particles": PreprocessOptions(flatfield_order=None),
}
_BACKEND_OPTIONS = ("model", "device", "tile_px", "overlap_px", "batch_size")


@dataclass(frozen=True)
class UnetOptions:
    """How the U-Net's class probabilities become labels.

    Attributes
    ----------
    bragg_weight:
        ``task="contamination"`` only: weight ``w`` of the Bragg filter's contamination
        map ``q`` (:func:`bragg_contamination_map`) in the average
        ``(1 - w) * p_amorphous + w * q``; a pixel is amorphous where that average exceeds
        ``flag_threshold``, else crystal or vacuum by the U-Net. 0 = the U-Net alone
        (arg-max of its probabilities). The Bragg filter's own options (e.g.
        ``mask_threshold``) shape ``q``.
    flag_threshold:
        Threshold of that average (used when ``bragg_weight`` > 0).
    """

    bragg_weight: float = 0.0
    flag_threshold: float = 0.5


#: U-Net defaults per task. Contamination: the U-Net/Bragg average with equal weights,
#: chosen per fold on the training images of the real graphene CV (all five folds chose
#: it; see docs/segmentation.md): Jaccard 0.841 -> 0.859 held out, at the cost of one
#: Bragg filter run.
_DEFAULT_UNET = {
    "contamination": UnetOptions(bragg_weight=0.5, flag_threshold=0.5),
    "particles": UnetOptions(),
}
#: Slope of the logistic that turns the Bragg residual / threshold ratio into a map.
_BRAGG_MAP_SLOPE = 6.0


@dataclass(frozen=True)
class SegmentationResult:
    """A label mask and what produced it. Unpacks as ``labels, class_names``.

    Attributes
    ----------
    labels:
        uint8 (H, W), the image's shape; value i = ``class_names[i]``.
    class_names:
        Names of the label values (see :data:`TASK_CLASSES`).
    task, method:
        What was asked.
    pixel_size_nm:
        The pixel size used (given, estimated by the backend, or ``None``).
    pixel_size_estimated:
        True when ``pixel_size_nm`` was estimated from the image.
    probabilities:
        float32 (C, H, W) class probabilities (U-Net only), else ``None``.
    details:
        Method-specific extras: Bragg ``peaks`` (DataFrame), ``lattice_period_px``,
        ``model`` name, ``working_pixel_size_nm``, the parameters used.
    """

    labels: np.ndarray
    class_names: tuple[str, ...]
    task: str
    method: str
    pixel_size_nm: float | None = None
    pixel_size_estimated: bool = False
    probabilities: np.ndarray | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.labels, self.class_names))

    def class_fractions(self) -> dict[str, float]:
        """Area fraction of each class (sums to 1)."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.class_names))
        total = float(self.labels.size)
        return {name: float(counts[i]) / total for i, name in enumerate(self.class_names)}

    @property
    def flagged_mask(self) -> np.ndarray:
        """bool (H, W): contamination/amorphous (``task="contamination"``) or particle."""
        return self.labels == FLAGGED_CLASS[self.task]


def bragg_contamination_map(result: _bragg.BraggResult) -> np.ndarray:
    """float32 map in (0, 1) from a Bragg filter result: 0.5 where the residual equals the
    filter's threshold, towards 1 above it (a logistic of ``residual / threshold``)."""
    thr = float(result.threshold)
    if not (math.isfinite(thr) and thr > 0):
        return np.zeros(result.residual.shape, dtype=np.float32)
    ratio = result.residual.astype(np.float32, copy=False) / np.float32(thr)
    return (1.0 / (1.0 + np.exp(-_BRAGG_MAP_SLOPE * (ratio - 1.0)))).astype(np.float32)


def _unet_bragg_labels(
    probabilities: np.ndarray, bragg_map: np.ndarray, options: UnetOptions, flagged: int
) -> np.ndarray:
    """Labels from the U-Net/Bragg average (see :class:`UnetOptions`); 3-class task."""
    w = options.bragg_weight
    score = (1.0 - w) * probabilities[flagged] + w * bragg_map
    # Not flagged: crystal or vacuum, whichever the U-Net finds more probable.
    other = np.where(probabilities[2] > probabilities[0], 2, 0).astype(np.uint8)
    return np.where(score > options.flag_threshold, np.uint8(flagged), other).astype(np.uint8)


def _split_options(
    options: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Route ``**options`` to Bragg / pre-processing / clean-up / backend; unknown -> error.

    The U-Net's own options (:class:`UnetOptions`) travel with the backend's.
    """
    groups: dict[str, dict[str, Any]] = {"bragg": {}, "pre": {}, "clean": {}, "backend": {}}
    names = {
        "bragg": {f.name for f in fields(_bragg.BraggParameters)},
        "pre": {f.name for f in fields(PreprocessOptions)},
        "clean": {f.name for f in fields(CleanupOptions)},
        "backend": set(_BACKEND_OPTIONS) | {f.name for f in fields(UnetOptions)},
    }
    for key, value in options.items():
        for group, valid in names.items():
            if key in valid:
                groups[group][key] = value
                break
        else:
            valid_all = sorted(set().union(*names.values()))
            raise InputError(f"segment: unknown option {key!r}; valid options: {valid_all}")
    return groups["bragg"], groups["pre"], groups["clean"], groups["backend"]


def _cleanup_px(
    opts: CleanupOptions, pixel_size_nm: float | None, period_px: float
) -> tuple[float, int]:
    """(smooth sigma px, min region area px) from the options' unit."""
    if opts.length_unit == "px":
        scale = 1.0
    elif opts.length_unit == "period":
        if not math.isfinite(period_px):
            # No lattice found: no length scale to clean at; skip size-based clean-up.
            return 0.0, 0
        scale = period_px
    elif opts.length_unit == "nm":
        if pixel_size_nm is None:
            raise InputError(
                "segment: clean-up lengths are in nm but the pixel size is unknown; pass "
                "pixel_size_nm or length_unit='px'"
            )
        scale = 1.0 / pixel_size_nm
    else:
        raise InputError(f"length_unit: expected 'period', 'nm' or 'px', got {opts.length_unit!r}")
    check_range(opts.smooth_sigma, 0.0, 1e4, "smooth_sigma")
    check_range(opts.min_region_size, 0.0, 1e4, "min_region_size")
    return opts.smooth_sigma * scale, round((opts.min_region_size * scale) ** 2)


def _fringes(result: _bragg.BraggResult, clean: np.ndarray, vacuum_fraction: float) -> np.ndarray:
    """Where the Bragg filter sees lattice fringes: fringe strength >= ``vacuum_fraction`` x
    the "full lattice" level (its 90th percentile over the ``clean`` pixels). Vacuum is
    what lies below it (and has no residual either)."""
    lattice = result.lattice_amplitude
    reference = float(np.percentile(lattice[clean], 90))
    return lattice >= vacuum_fraction * reference


def _vacuum_needs_no_lattice(
    labels: np.ndarray, result: _bragg.BraggResult, vacuum_fraction: float | None
) -> np.ndarray:
    """Unflagged pixels the U-Net calls vacuum where the Bragg filter sees lattice fringes
    (:func:`_fringes`, the Bragg method's own vacuum rule) are crystal: vacuum has no
    lattice. The contaminated (flagged) pixels are not touched."""
    if vacuum_fraction is None or result.lattice_amplitude is None or result.peaks.empty:
        return labels
    clean = labels != 1
    if not clean.any():
        return labels
    out = labels.copy()
    out[(labels == 2) & _fringes(result, clean, vacuum_fraction)] = 0
    return out


def _bragg_labels(
    result: _bragg.BraggResult, task: str, vacuum_fraction: float | None, particle_fraction: float
) -> np.ndarray:
    """Class labels from the Bragg maps (see the module docstring)."""
    labels = np.zeros(result.mask.shape, dtype=np.uint8)
    if task == "particles":
        total = result.lattice_amplitude + result.residual
        fraction = np.divide(
            result.lattice_amplitude, total, out=np.zeros_like(total), where=total > 0
        )
        labels[fraction > particle_fraction] = 1
        return labels
    labels[result.mask] = 1
    if vacuum_fraction is not None and not result.peaks.empty:
        clean = ~result.mask
        if clean.any():
            labels[clean & ~_fringes(result, clean, vacuum_fraction)] = 2
    return labels


def iter_segment(
    image: np.ndarray,
    pixel_size_nm: float | None = None,
    task: Task = "contamination",
    method: Method = "unet",
    **options: Any,
) -> Generator[Progress, None, SegmentationResult]:
    """Generator form of :func:`segment`: yields Progress, returns the result."""
    if task not in TASK_CLASSES:
        raise InputError(f"task: expected one of {sorted(TASK_CLASSES)}, got {task!r}")
    if method not in ("unet", "bragg"):
        raise InputError(f"method: expected 'unet' or 'bragg', got {method!r}")
    img = as_image2d(image)
    pixel_size_nm = check_pixel_size_nm(pixel_size_nm)
    bragg_opts, pre_opts, clean_opts, backend_opts = _split_options(options)
    pre = replace(_DEFAULT_PREPROCESS[task], **pre_opts)
    cleanup = replace(_DEFAULT_CLEANUP[method], **clean_opts)
    if method == "bragg" and backend_opts:
        raise InputError(
            f"segment: {sorted(backend_opts)} only apply to method='unet', not 'bragg'"
        )
    unet_names = {f.name for f in fields(UnetOptions)}
    unet_opts = replace(
        _DEFAULT_UNET[task], **{k: v for k, v in backend_opts.items() if k in unet_names}
    )
    backend_opts = {k: v for k, v in backend_opts.items() if k not in unet_names}
    if method == "unet":
        check_range(unet_opts.bragg_weight, 0.0, 1.0, "bragg_weight")
        check_range(unet_opts.flag_threshold, 0.0, 1.0, "flag_threshold")
        if unet_opts.bragg_weight > 0 and task != "contamination":
            raise InputError(
                f"segment: bragg_weight applies to task='contamination' only, not {task!r}"
            )
        if bragg_opts and unet_opts.bragg_weight == 0:
            raise InputError(
                f"segment: {sorted(bragg_opts)} only apply to method='bragg' or to the "
                "U-Net with bragg_weight > 0"
            )
    total = 4
    yield Progress(0, total, "pre-processing")
    if method == "bragg":
        params = _bragg.with_options(None, **bragg_opts)
        pre_img = preprocess(img, pre)
        yield Progress(1, total, "Bragg filter")
        bres = _bragg.bragg_filter(pre_img, params, pixel_size_nm)
        labels = _bragg_labels(bres, task, params.vacuum_fraction, params.particle_fraction)
        period_px = bres.lattice_period_px
        used_pixel_size, estimated, probabilities = pixel_size_nm, False, None
        details: dict[str, Any] = {
            "peaks": bres.peaks,
            "lattice_period_px": period_px,
            "bragg_parameters": params,
        }
    else:
        from . import _unet

        pre_img = preprocess(img, replace(pre, standardise=False))
        yield Progress(1, total, "U-Net")
        run = yield from _unet.iter_unet(pre_img, pixel_size_nm, task, **backend_opts)
        probabilities = run.probabilities
        used_pixel_size, estimated = run.pixel_size_nm, run.pixel_size_estimated
        period_px = math.nan
        details = {
            "model": run.model_name,
            "working_pixel_size_nm": run.working_pixel_size_nm,
            "unet_options": unet_opts,
        }
        if unet_opts.bragg_weight > 0:
            yield Progress(2, total, "Bragg filter")
            # As in the cross-validation that chose it: no pixel size (lattice-relative).
            params = _bragg.with_options(None, **bragg_opts)
            bres = _bragg.bragg_filter(pre_img, params)
            labels = _unet_bragg_labels(
                probabilities, bragg_contamination_map(bres), unet_opts, FLAGGED_CLASS[task]
            )
            labels = _vacuum_needs_no_lattice(labels, bres, params.vacuum_fraction)
            details["bragg_parameters"] = params
            details["lattice_period_px"] = bres.lattice_period_px
        else:
            labels = np.argmax(probabilities, axis=0).astype(np.uint8)
    yield Progress(3, total, "clean-up")
    sigma_px, min_area_px = _cleanup_px(cleanup, used_pixel_size, period_px)
    labels = clean_labels(
        labels, smooth_sigma_px=sigma_px, min_region_px=min_area_px, fill=cleanup.fill_holes
    )
    details["cleanup"] = cleanup
    details["preprocess"] = pre
    yield Progress(total, total, "done")
    return SegmentationResult(
        labels=labels.astype(np.uint8, copy=False),
        class_names=TASK_CLASSES[task],
        task=task,
        method=method,
        pixel_size_nm=used_pixel_size,
        pixel_size_estimated=estimated,
        probabilities=probabilities,
        details=details,
    )


def segment(
    image: np.ndarray,
    pixel_size_nm: float | None = None,
    task: Task = "contamination",
    method: Method = "unet",
    **options: Any,
) -> SegmentationResult:
    """Segment contamination (or nanoparticles) in a micrograph.

    Parameters
    ----------
    image:
        2-D grey-scale micrograph (any real dtype; not modified).
    pixel_size_nm:
        Pixel size in nm, or ``None`` (the U-Net then estimates it; the Bragg filter
        needs none).
    task:
        ``"contamination"`` (classes crystal / amorphous / vacuum) or ``"particles"``
        (background / particle).
    method:
        ``"unet"`` (a trained model; ``model=`` picks one by name or card path) or
        ``"bragg"`` (classical Bragg filter, no model).
    **options:
        Any field of :class:`~.bragg.BraggParameters` (Bragg, or the Bragg map of the
        U-Net/Bragg average), :class:`~.preprocess.PreprocessOptions`,
        :class:`CleanupOptions`, :class:`UnetOptions` (``bragg_weight``,
        ``flag_threshold``; U-Net only), or the U-Net's ``model``, ``device``,
        ``tile_px``, ``overlap_px``, ``batch_size``.

    Returns
    -------
    SegmentationResult
        Unpacks as ``labels, class_names``; ``labels`` is uint8 of the image's shape.

    Examples
    --------
    >>> labels, names = segment(image, method="bragg")            # doctest: +SKIP
    >>> result = segment(image, 0.02, task="particles")           # doctest: +SKIP
    >>> result.class_fractions()["particle"]                      # doctest: +SKIP
    """
    return drain(iter_segment(image, pixel_size_nm, task, method, **options))
