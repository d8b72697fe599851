"""The atom finder's options: one typed, frozen declaration shared by the API, CLI and widget.

:class:`FinderOptions` holds every option of :func:`~napari_atomseg.atoms.find.find_atoms`
with its default and its check, so a bad value is refused before the network runs and
IDEs show each option in one place. Options left as None take the model card's
``postprocess`` value (:func:`card_postprocess`) where it has one, else the module
defaults below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validate import check_range
from ..errors import AtomsegError, InputError

#: Default confidence threshold ("filter lower bound") on the heatmap (0-1).
DEFAULT_THRESHOLD = 0.5
#: Default minimum separation of two columns ("window size"), nm. Closer columns are not
#: resolved by the training targets either (AtomsTask.min_separation_nm).
DEFAULT_MIN_SEPARATION_NM = 0.07
#: Default minimum separation when no pixel size is known, px.
DEFAULT_MIN_SEPARATION_PX = 2.0
#: Default sub-pixel refinement when neither the caller nor the model card names one.
DEFAULT_REFINE = "gaussian"
#: Drop heatmap peaks that are not a local extremum of the image (see image_check).
DEFAULT_CONTRAST_CHECK = True
#: Fraction of the local spacing used as suppression radius.
DEFAULT_NMS_FRACTION = 0.5

REFINE_METHODS = ("gaussian", "com", "heatmap", "none")
PEAK_METHODS = ("heatmap", "hough")
CONTRASTS = ("auto", "bright", "dark")
#: Allowed ``views`` (test-time augmentation; measured in docs/atoms.md).
VIEWS_CHOICES = (1, 2, 4, 8)
#: What the image is, when the caller knows it (``imaging=``; None: not known). HAADF,
#: ADF, ABF and BF-STEM are "stem"; phase-contrast (HR)TEM is "hrtem".
IMAGING_MODES = ("stem", "hrtem")

#: Card ``postprocess`` keys that are options of :class:`FinderOptions`.
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
#: Card ``postprocess`` keys that are defaults of defaults, not options.
CARD_ONLY_POSTPROCESS = (
    "min_prominence_hrtem",
    "threshold_noisy",
    "noise_ramp",
    "noise_ramp_max_spacing_nm",
    "rescorer",
)


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class FinderOptions:
    """Every option of the atom finder, checked on construction.

    Build one with keywords, or :meth:`from_kwargs` (which names unknown keys); derive
    variants with :meth:`replace`. Fields left as None take the model card's value.
    """

    threshold: float | None = field(
        default=None,
        metadata=_doc(
            "confidence lower bound on the heatmap, 0-1 (default: the model card's "
            "recommended value, else 0.5; on noisy lattices raised, or each peak judged by "
            "the card's rescorer, where the card says so; attrs['threshold'] and "
            "attrs['threshold_from'] say what was used)"
        ),
    )
    min_separation_nm: float | None = field(
        default=None,
        metadata=_doc(
            "minimum distance between two columns, nm (default 0.07 nm; 2 px uncalibrated)"
        ),
    )
    min_separation_px: float | None = field(
        default=None,
        metadata=_doc("minimum distance between two columns, px (without a pixel size: 2 px)"),
    )
    nms_fraction: float | None = field(
        default=None,
        metadata=_doc("suppression radius as a fraction of a spacing head's local spacing"),
    )
    refine: str | None = field(
        default=None,
        metadata=_doc(
            "sub-pixel position: 2-D Gaussian fit (gaussian) or centre of mass (com) on the "
            "image, centre of mass of the network's heatmap (heatmap), or its peak (none) "
            "(default: the model card's recommendation, else gaussian)"
        ),
    )
    method: str = field(
        default="heatmap", metadata=_doc("peaks: heatmap (peaks + NMS) or hough (circles)")
    )
    contrast: str = field(
        default="auto",
        metadata=_doc(
            "the columns' contrast: bright (HAADF, white atoms), dark (black-atom HRTEM: the "
            "network sees the inverted image, then the image as it is, the refinement the "
            "inverted image) or auto (default)"
        ),
    )
    exclude_border_px: int = field(
        default=0, metadata=_doc("drop columns closer than this to the edge, px")
    )
    hough_score: float = field(
        default=0.5, metadata=_doc("hough only: minimum fraction of a circle on disc edges")
    )
    contrast_check: bool | None = field(
        default=None,
        metadata=_doc(
            "keep only heatmap peaks that are a local maximum of the image (minimum for dark "
            "columns); default: the model card's setting, else on"
        ),
    )
    min_prominence: float | None = field(
        default=None,
        metadata=_doc(
            "stricter image check: drop columns standing out of their surroundings by less "
            "than this fraction of the image's median column (0-1; default: the card's, else "
            "0 = off; 0.3-0.4 for white-atom HRTEM, see docs/atoms.md)"
        ),
    )
    imaging: str | None = field(
        default=None,
        metadata=_doc(
            "what the image is: stem (HAADF/ADF/ABF/BF-STEM), hrtem (phase-contrast TEM: "
            "white-atom columns then get min_prominence 0.4 unless given) or None (unknown)"
        ),
    )
    views: int = field(
        default=1,
        metadata=_doc(
            "test-time augmentation: the network sees each image in this many orientations "
            "and averages its answers (default 1; 2 costs ~1.6x the time, 4 ~3x, 8 ~5.5x; "
            "measured gains in docs/atoms.md)"
        ),
    )
    device: Any = field(
        default=None, metadata=_doc("torch device (default: cuda, then mps, then cpu)")
    )
    tile_px: int | None = field(default=None, metadata=_doc("network tile size, px"))
    overlap_px: int | None = field(default=None, metadata=_doc("tile overlap, px"))
    batch_size: int | None = field(default=None, metadata=_doc("tiles per network batch"))
    threads: int | None = field(default=None, metadata=_doc("CPU threads for torch"))
    second_look: bool = field(
        default=True,
        metadata=_doc(
            "with the contrast given, run the network a second time on the image the other "
            "way round where that can find more columns (always for dark columns); default on"
        ),
    )

    def __post_init__(self) -> None:
        if self.threshold is not None:
            check_range(self.threshold, 0.0, 1.0, "threshold")
        if self.min_separation_nm is not None and self.min_separation_px is not None:
            raise InputError("give min_separation_nm or min_separation_px, not both")
        if self.min_separation_nm is not None:
            check_range(self.min_separation_nm, 0.0, 100.0, "min_separation_nm")
        if self.min_separation_px is not None:
            check_range(self.min_separation_px, 0.0, 1e4, "min_separation_px")
        if self.nms_fraction is not None:
            check_range(self.nms_fraction, 0.0, 1.0, "nms_fraction")
        if self.min_prominence is not None:
            check_range(self.min_prominence, 0.0, 1.0, "min_prominence")
        _check_choice("refine", self.refine, REFINE_METHODS, allow_none=True)
        _check_choice("method", self.method, PEAK_METHODS)
        _check_choice("contrast", self.contrast, CONTRASTS)
        check_imaging(self.imaging)
        _check_views(self.views)
        if not isinstance(self.second_look, bool):
            raise InputError(f"second_look: expected True or False, got {self.second_look!r}")

    @classmethod
    def from_kwargs(cls, options: FinderOptions | None = None, **kwargs: Any) -> FinderOptions:
        """``options`` (default: all defaults) with ``kwargs`` replaced; unknown keys are
        an :class:`InputError` that lists the known ones."""
        unknown = sorted(set(kwargs) - set(option_names()))
        if unknown:
            raise InputError(
                f"find_atoms: unknown option(s) {unknown}; options: {list(option_names())}"
            )
        base = options if options is not None else cls()
        return dataclasses.replace(base, **kwargs) if kwargs else base

    def replace(self, **kwargs: Any) -> FinderOptions:
        """A copy with ``kwargs`` changed (checked like the constructor)."""
        return FinderOptions.from_kwargs(self, **kwargs)

    def predict_kwargs(self) -> dict[str, Any]:
        """The network's settings, as :func:`~napari_atomseg.atoms.heatmap.iter_predict_heatmap`
        takes them."""
        return {
            "device": self.device,
            "tile_px": self.tile_px,
            "overlap_px": self.overlap_px,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "views": self.views,
        }


def option_names() -> tuple[str, ...]:
    """The names of every :class:`FinderOptions` field, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(FinderOptions))


def option_help(name: str) -> str:
    """The one-line help of option ``name`` (for the CLI and widget tooltips)."""
    for f in dataclasses.fields(FinderOptions):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    raise KeyError(name)


def _check_choice(name: str, value: Any, allowed: tuple, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value not in allowed:
        raise InputError(f"{name}: expected one of {allowed}, got {value!r}")


def _check_views(views: Any) -> None:
    if (
        isinstance(views, bool)
        or not isinstance(views, int | np.integer)
        or views not in VIEWS_CHOICES
    ):
        raise InputError(f"views: expected one of {VIEWS_CHOICES}, got {views!r}")


def check_imaging(imaging: Any) -> str | None:
    """``imaging`` if it is one of :data:`IMAGING_MODES` or None, else InputError."""
    if imaging is not None and imaging not in IMAGING_MODES:
        raise InputError(f"imaging: expected one of {IMAGING_MODES} or None, got {imaging!r}")
    return imaging


def card_postprocess(card: Any) -> dict[str, Any]:
    """The post-processing defaults a model card recommends (known keys only: the
    options of :data:`POSTPROCESS_OPTIONS` and :data:`CARD_ONLY_POSTPROCESS`)."""
    pp = getattr(card, "postprocess", None) or {}
    known = (*POSTPROCESS_OPTIONS, *CARD_ONLY_POSTPROCESS)
    return {k: v for k, v in pp.items() if k in known}


def model_name(model: Any) -> Any:
    """``"default"``/None -> the default atoms model's name; anything else unchanged."""
    from ..backend import default_model_name

    return default_model_name("atoms") if model in (None, "default") else model


def model_postprocess(model: Any = "default") -> dict[str, Any]:
    """``card_postprocess`` of a model given by name or card path (for GUIs); {} if none."""
    from ..backend import load_card

    try:
        return card_postprocess(load_card(model_name(model)))
    except AtomsegError:
        return {}


@dataclass(frozen=True)
class ResolvedPost:
    """Post-processing settings after the card's defaults filled the gaps."""

    threshold: float  # the card's (or given) base threshold
    threshold_given: bool
    nms_fraction: float
    refine: str
    min_separation_px: float
    contrast_check: bool


def resolve_post(
    options: FinderOptions, postprocess: Mapping[str, Any], pixel_size_nm: float | None
) -> ResolvedPost:
    """Fill the options left as None from the card's ``postprocess``, then the defaults."""
    pp = postprocess or {}
    threshold = options.threshold
    given = threshold is not None
    if threshold is None:
        threshold = pp.get("threshold", DEFAULT_THRESHOLD)
    nms = options.nms_fraction
    if nms is None:
        nms = pp.get("nms_fraction", DEFAULT_NMS_FRACTION)
    refine = options.refine if options.refine is not None else pp.get("refine", DEFAULT_REFINE)
    sep_nm, sep_px = options.min_separation_nm, options.min_separation_px
    if sep_nm is None and sep_px is None:
        sep_nm = pp.get("min_separation_nm")
    check = options.contrast_check
    if check is None:
        check = bool(pp.get("contrast_check", DEFAULT_CONTRAST_CHECK))
    threshold = check_range(threshold, 0.0, 1.0, "threshold")
    nms = check_range(nms, 0.0, 1.0, "nms_fraction")
    _check_choice("refine", refine, REFINE_METHODS)
    return ResolvedPost(
        threshold, given, nms, refine, min_separation_px(sep_nm, sep_px, pixel_size_nm), check
    )


def min_separation_px(
    min_separation_nm: float | None, min_separation_px: float | None, pixel_size_nm: float | None
) -> float:
    """The minimum separation in pixels, from whichever of nm / px is given."""
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
