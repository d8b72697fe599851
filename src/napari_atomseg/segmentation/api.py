"""``segment()``: contamination / nanoparticle label masks, by U-Net or Bragg filter.

Two tasks, each with fixed class names (label value = index)::

    task="contamination":  0 crystal (clean lattice), 1 amorphous (contamination or
                           amorphous support), 2 vacuum
    task="particles":      0 background (support, vacuum), 1 particle (crystalline)

Label 0 is the "nothing to flag" class, so a napari Labels layer shows the clean lattice
(or the support) transparent and the regions to mask in colour.

Three methods:

- ``method="auto"`` (the default of the API, the CLI, the widgets and the main job) --
  the U-Net below, checked by :mod:`.guard`: no lattice in view means nothing is crystal;
  a gross U-Net/Bragg disagreement on a lattice falls back to the Bragg filter; inputs
  outside the training range are warned about (``SegmentationResult.warnings``).
- ``method="unet"`` -- a shipped (or user) segmentation model run through the shared
  backend (resampled to the model's working pixel size, tiled, any device). For
  contamination its amorphous probability is, by default, averaged with a map from the
  Bragg filter (:class:`UnetOptions`; ``bragg_weight=0`` for the U-Net alone); the
  guard's checks only warn.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._progress import Progress, drain
from .._validate import as_image2d, check_pixel_size_nm, check_range
from ..errors import InputError
from . import _unet
from . import bragg as _bragg
from .bragg_labels import (
    bragg_contamination_map,
    bragg_labels,
    unet_bragg_labels,
    vacuum_needs_no_lattice,
)
from .classes import FLAGGED_CLASS, TASK_CLASSES
from .cleanup import clean_labels
from .guard import contamination_decision, input_warnings, lattice_in_view
from .preprocess import PreprocessOptions, preprocess

Task = Literal["contamination", "particles"]
Method = Literal["auto", "unet", "bragg"]
#: Every method, and the one segment(), the CLI, the widgets and the main job default to.
METHODS: tuple[str, ...] = ("auto", "unet", "bragg")
DEFAULT_METHOD = "auto"


@dataclass(frozen=True)
class CleanupOptions:
    """Mask clean-up after either method (see :mod:`.cleanup`).

    Attributes
    ----------
    smooth_sigma
        Boundary smoothing (Gaussian majority vote), in ``length_unit``; 0 = off.
    min_region_size
        Regions of any class smaller than a square of this side are absorbed by their
        surroundings, in ``length_unit``; 0 = off.
    fill_holes
        Fill holes enclosed by a flagged class (clean islands inside contamination).
    length_unit
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
#: Particles by the U-Net: scale-free like the model (a pixel size may be unknown), so in
#: pixels; tiny specks go (and the instance table drops regions under 4 px).
_PARTICLE_UNET_CLEANUP = CleanupOptions(smooth_sigma=0.0, min_region_size=2.0, length_unit="px")
_DEFAULT_PREPROCESS = {
    "contamination": PreprocessOptions(),
    # Large particles dominate a polynomial fit of the illumination: off by default.
    "particles": PreprocessOptions(flatfield_order=None),
}
#: Upper bounds of the clean-up in pixels (what clean_labels accepts).
#: Threads that run the Bragg filter beside the U-Net (one per segment() running at once;
#: created when first needed).
_BESIDE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="atomseg-bragg")
MAX_MIN_REGION_PX = 16384
MAX_SMOOTH_PX = 100.0
_BACKEND_OPTIONS = ("model", "device", "tile_px", "overlap_px", "batch_size")


@dataclass(frozen=True)
class UnetOptions:
    """How the U-Net's class probabilities become labels.

    Attributes
    ----------
    bragg_weight
        ``task="contamination"`` only: weight ``w`` of the Bragg filter's contamination
        map ``q`` (:func:`bragg_contamination_map`) in the average
        ``(1 - w) * p_amorphous + w * q``; a pixel is amorphous where that average exceeds
        ``flag_threshold``, else crystal or vacuum by the U-Net. 0 = the U-Net alone
        (arg-max of its probabilities). The Bragg filter's own options (e.g.
        ``mask_threshold``) shape ``q``.
    flag_threshold
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


@dataclass(frozen=True)
class SegmentationResult:
    """A label mask and what produced it. Unpacks as ``labels, class_names``.

    Attributes
    ----------
    labels
        uint8 (H, W), the image's shape; value i = ``class_names[i]``.
    class_names
        Names of the label values (see :data:`TASK_CLASSES`).
    task, method
        What was asked.
    pixel_size_nm
        The pixel size used (given, estimated by the backend, or ``None``).
    pixel_size_estimated
        True when ``pixel_size_nm`` was estimated from the image.
    probabilities
        float32 (C, H, W) class probabilities (U-Net only), else ``None``.
    details
        Method-specific extras: Bragg ``peaks`` (DataFrame), ``lattice_period_px``,
        ``model`` name, ``working_pixel_size_nm``, the parameters used,
        ``method_used`` (``"bragg (fallback)"`` when the default switched).
    instances
        ``task="particles"``: int32 (H, W), one label per particle (0 = background).
    particles
        ``task="particles"``: one row per particle (:mod:`.instances`: area, equivalent
        diameter, centroid, in px and -- with a pixel size -- nm).
    warnings
        What to check: fall-backs, inputs outside the training range, an uncertain
        pixel-size estimate.
    scale
        The pixel-size estimate (:class:`~napari_atomseg.scale.ImageScale`) when one was
        made or passed in, else ``None``.
    has_lattice
        Contamination, U-Net methods: whether a lattice is in view. ``False`` means the
        amorphous class is a support or film, not contamination on a crystal.
    """

    labels: np.ndarray
    class_names: tuple[str, ...]
    task: str
    method: str
    pixel_size_nm: float | None = None
    pixel_size_estimated: bool = False
    probabilities: np.ndarray | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    instances: np.ndarray | None = None
    particles: pd.DataFrame | None = None
    warnings: tuple[str, ...] = ()
    scale: Any = None
    has_lattice: bool | None = None

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


def _resolve_pixel_size(
    img: np.ndarray, pixel_size_nm: Any, material: str | None, estimate: bool
) -> tuple[float | None, bool, Any]:
    """``(pixel size, estimated?, ImageScale or None)`` from what the caller gave.

    ``pixel_size_nm`` may be a number, ``None`` or an
    :class:`~napari_atomseg.scale.ImageScale` (e.g. the estimate a widget keeps with its
    layer). ``None`` is estimated here, once, when ``estimate`` (the method needs one).
    """
    from ..scale import ImageScale, estimate_image_scale

    if isinstance(pixel_size_nm, ImageScale):
        return pixel_size_nm.pixel_size_nm, pixel_size_nm.source != "user", pixel_size_nm
    px = check_pixel_size_nm(pixel_size_nm)
    if px is not None or not estimate:
        return px, False, None
    scale = estimate_image_scale(img, material)
    return scale.pixel_size_nm, scale.pixel_size_nm is not None, scale


def _check_method_options(
    task: str, method: str, bragg_opts: dict, backend_opts: dict
) -> UnetOptions:
    """The U-Net's options (defaults + given); raises for options the method cannot use."""
    if method == "bragg" and backend_opts:
        raise InputError(
            f"segment: {sorted(backend_opts)} only apply to method='unet'/'auto', not 'bragg'"
        )
    unet_names = {f.name for f in fields(UnetOptions)}
    unet_opts = replace(
        _DEFAULT_UNET[task], **{k: v for k, v in backend_opts.items() if k in unet_names}
    )
    for name in unet_names:
        backend_opts.pop(name, None)
    if method != "bragg":
        check_range(unet_opts.bragg_weight, 0.0, 1.0, "bragg_weight")
        check_range(unet_opts.flag_threshold, 0.0, 1.0, "flag_threshold")
        if unet_opts.bragg_weight > 0 and task != "contamination":
            raise InputError(
                f"segment: bragg_weight applies to task='contamination' only, not {task!r}"
            )
        if bragg_opts and unet_opts.bragg_weight == 0 and task == "particles":
            raise InputError(
                f"segment: {sorted(bragg_opts)} only apply to method='bragg' or to the "
                "U-Net with bragg_weight > 0"
            )
    return unet_opts


def _contamination_image_checks(
    pre_img: np.ndarray, bragg_opts: dict[str, Any]
) -> tuple[Any, Any, bool]:
    """What the U-Net/Bragg average needs of the image besides the U-Net: the Bragg
    filter's answer (with its parameters) and whether a lattice is in view."""
    # As in the cross-validation that chose it: no pixel size (lattice-relative).
    params = _bragg.with_options(None, **bragg_opts)
    return params, _bragg.bragg_filter(pre_img, params), lattice_in_view(pre_img)


def _unet_contamination(
    probabilities: np.ndarray,
    unet_opts: UnetOptions,
    checks: tuple[Any, Any, bool],
    fallback: bool,
) -> tuple[np.ndarray, dict[str, Any], Any]:
    """Labels of the U-Net/Bragg average, checked by the guard (see :mod:`.guard`);
    ``checks`` from :func:`_contamination_image_checks`."""
    params, bres, lattice = checks
    if unet_opts.bragg_weight > 0:
        labels = unet_bragg_labels(
            probabilities, bragg_contamination_map(bres), unet_opts, FLAGGED_CLASS["contamination"]
        )
    else:
        labels = np.argmax(probabilities, axis=0).astype(np.uint8)
    labels = vacuum_needs_no_lattice(labels, bres, params.vacuum_fraction)
    own = bragg_labels(bres, "contamination", params.vacuum_fraction, params.particle_fraction)
    labels, report = contamination_decision(labels, own, lattice, fallback)
    details = {
        "bragg_parameters": params,
        "lattice_period_px": bres.lattice_period_px,
        "peaks": bres.peaks,
    }
    return labels, details, report


def iter_segment(
    image: np.ndarray,
    pixel_size_nm: Any = None,
    task: Task = "contamination",
    method: Method = DEFAULT_METHOD,
    material: str | None = None,
    **options: Any,
) -> Generator[Progress, None, SegmentationResult]:
    """Generator form of :func:`segment`: yields Progress, returns the result.

    Parameters
    ----------
    image, pixel_size_nm, task, method, material, **options
        As for :func:`segment`.

    Yields
    ------
    Progress
        Per stage: pixel size, pre-processing, the method (the U-Net's own progress as it
        runs), clean-up.

    Returns
    -------
    SegmentationResult
        What :func:`segment` returns.
    """
    if task not in TASK_CLASSES:
        raise InputError(f"task: expected one of {sorted(TASK_CLASSES)}, got {task!r}")
    if method not in METHODS:
        raise InputError(f"method: expected one of {list(METHODS)}, got {method!r}")
    img = as_image2d(image)
    bragg_opts, pre_opts, clean_opts, backend_opts = _split_options(options)
    pre = replace(_DEFAULT_PREPROCESS[task], **pre_opts)
    kind = "bragg" if method == "bragg" else "unet"
    base = (
        _PARTICLE_UNET_CLEANUP if (task, kind) == ("particles", "unet") else _DEFAULT_CLEANUP[kind]
    )
    cleanup = replace(base, **clean_opts)
    unet_opts = _check_method_options(task, method, bragg_opts, backend_opts)
    total = 5
    yield Progress(0, total, "pixel size")
    px, estimated, scale = _resolve_pixel_size(img, pixel_size_nm, material, kind == "unet")
    warnings: list[str] = list(scale.warnings) if scale is not None else []
    yield Progress(1, total, "pre-processing")
    instances = table = None
    has_lattice: bool | None = None
    probabilities = None
    method_used = method
    # Clean-up lengths in nm need a pixel size: without one (nothing in the image carries a
    # length scale), the one the U-Net was run at (its working sampling; its warning says so).
    cleanup_px_nm = px
    if kind == "bragg":
        params = _bragg.with_options(None, **bragg_opts)
        pre_img = preprocess(img, pre)
        yield Progress(2, total, "Bragg filter")
        bres = _bragg.bragg_filter(pre_img, params, px)
        labels = bragg_labels(bres, task, params.vacuum_fraction, params.particle_fraction)
        period_px = bres.lattice_period_px
        details: dict[str, Any] = {
            "peaks": bres.peaks,
            "lattice_period_px": period_px,
            "bragg_parameters": params,
        }
    else:
        pre_img = preprocess(img, replace(pre, standardise=False))
        yield Progress(2, total, "U-Net")
        source = scale.source if scale is not None else ("user" if px is not None else None)
        # The Bragg filter and the lattice check need only the image: they run in a thread
        # beside the network (NumPy and scipy.fft release the GIL; the network's own
        # resampling and stitching leave a core free), with the same results.
        checks = (
            _BESIDE.submit(_contamination_image_checks, pre_img, bragg_opts)
            if task == "contamination"
            else None
        )
        run = yield from _unet.iter_unet(pre_img, px, task, scale_source=source, **backend_opts)
        probabilities = run.probabilities
        warnings += [w for w in run.warnings if w not in warnings]
        if cleanup_px_nm is None:
            cleanup_px_nm = run.pixel_size_nm
        period_px = math.nan
        details = {
            "model": run.model_name,
            "working_pixel_size_nm": run.working_pixel_size_nm,
            "unet_options": unet_opts,
            **run.details,
        }
        if task == "contamination":
            yield Progress(3, total, "Bragg filter and checks")
            image_checks = checks.result()
            has_lattice = image_checks[2]
            labels, extra, report = _unet_contamination(
                probabilities, unet_opts, image_checks, method == "auto"
            )
            details.update(extra)
            warnings += report.warnings
            warnings += input_warnings(
                img, px, run.working_pixel_size_nm, extra["lattice_period_px"]
            )
            method_used = method if report.method_used == "unet" else report.method_used
            if report.method_used != "unet":
                period_px = extra["lattice_period_px"]
                cleanup = replace(_DEFAULT_CLEANUP["bragg"], **clean_opts)
        else:
            labels = np.argmax(probabilities, axis=0).astype(np.uint8)
    yield Progress(4, total, "clean-up")
    sigma_px, min_area_px = _cleanup_px(cleanup, cleanup_px_nm, period_px)
    # A lattice-relative size on an image whose "period" is spurious (no real lattice)
    # can exceed the image: never absorb more than a sixteenth of it.
    min_area_px = min(min_area_px, MAX_MIN_REGION_PX, labels.size // 16)
    sigma_px = min(sigma_px, MAX_SMOOTH_PX)
    labels = clean_labels(
        labels, smooth_sigma_px=sigma_px, min_region_px=min_area_px, fill=cleanup.fill_holes
    )
    if task == "particles":
        from .instances import particle_instances

        instances, table = particle_instances(labels == FLAGGED_CLASS[task], px)
    details["cleanup"] = cleanup
    details["preprocess"] = pre
    details["method_used"] = method_used
    yield Progress(total, total, "done")
    return SegmentationResult(
        labels=labels.astype(np.uint8, copy=False),
        class_names=TASK_CLASSES[task],
        task=task,
        method=method,
        pixel_size_nm=px,
        pixel_size_estimated=estimated,
        probabilities=probabilities,
        details=details,
        instances=instances,
        particles=table,
        warnings=tuple(dict.fromkeys(warnings)),
        scale=scale,
        has_lattice=has_lattice,
    )


def segment(
    image: np.ndarray,
    pixel_size_nm: Any = None,
    task: Task = "contamination",
    method: Method = DEFAULT_METHOD,
    material: str | None = None,
    **options: Any,
) -> SegmentationResult:
    """Segment contamination (or nanoparticles) in a micrograph.

    Parameters
    ----------
    image
        2-D grey-scale micrograph (any real dtype; not modified).
    pixel_size_nm
        Pixel size in nm, an :class:`~napari_atomseg.scale.ImageScale` (an estimate kept
        with the image), or ``None``: the image's one physical estimate
        (:func:`~napari_atomseg.scale.estimate_image_scale`) is made here (the Bragg
        filter needs none).
    task
        ``"contamination"`` (classes crystal / amorphous / vacuum) or ``"particles"``
        (background / particle; the result then has ``instances`` and ``particles``).
    method
        ``"auto"`` (the default everywhere: the U-Net, for contamination averaged with
        the Bragg filter and checked against it -- see :mod:`.guard`), ``"unet"`` (the
        same without the fall-back; ``model=`` picks a model by name or card path) or
        ``"bragg"`` (classical Bragg filter, no model).
    material
        A catalogue material (e.g. ``"graphene"``) pinning the lattice spacing for the
        pixel-size estimate; only used when ``pixel_size_nm`` is None.
    **options
        Any field of :class:`~.bragg.BraggParameters` (Bragg, or the Bragg map of the
        U-Net/Bragg average), :class:`~.preprocess.PreprocessOptions`,
        :class:`CleanupOptions`, :class:`UnetOptions` (``bragg_weight``,
        ``flag_threshold``; U-Net only), or the U-Net's ``model``, ``device``,
        ``tile_px``, ``overlap_px``, ``batch_size``.

    Returns
    -------
    SegmentationResult
        Unpacks as ``labels, class_names``; ``labels`` is uint8 of the image's shape;
        ``warnings`` says what to check.

    Examples
    --------
    >>> labels, names = segment(image)                             # doctest: +SKIP
    >>> result = segment(image, 0.02, task="particles")           # doctest: +SKIP
    >>> result.particles["equivalent_diameter_nm"].median()       # doctest: +SKIP
    """
    return drain(iter_segment(image, pixel_size_nm, task, method, material, **options))
