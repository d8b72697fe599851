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
#: Default sub-pixel refinement: a 2-D Gaussian fitted to the image.
DEFAULT_REFINE = "gaussian"
#: Default image evidence a column needs: its fitted height over the height's standard
#: error, in noise levels (:mod:`.evidence`).
DEFAULT_MIN_EVIDENCE = 2.0

REFINE_METHODS = ("gaussian", "com", "none")
CONTRASTS = ("auto", "bright", "dark")
#: Allowed ``views`` (test-time augmentation; measured in docs/atoms.md).
VIEWS_CHOICES = (1, 2, 4, 8)
#: What the image is, when the caller knows it (``imaging=``; None: not known). HAADF,
#: ADF, ABF and BF-STEM are "stem"; phase-contrast (HR)TEM is "hrtem".
IMAGING_MODES = ("stem", "hrtem")

#: Card ``postprocess`` keys that are defaults of :class:`FinderOptions` fields. Keys of
#: older cards (rescorer, noise ramp, image-check settings) are ignored.
POSTPROCESS_OPTIONS = ("threshold", "min_separation_nm", "refine", "min_evidence")


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
            "confidence lower bound on the network's heatmap, 0-1 (default: the model "
            "card's recommended value, else 0.5)"
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
        metadata=_doc("minimum distance between two columns, px (without a pixel size)"),
    )
    refine: str | None = field(
        default=None,
        metadata=_doc(
            "sub-pixel position on the image: a 2-D Gaussian fit (gaussian, default; also "
            "each column's width), the centre of mass (com), or none (the network's peak: "
            "fast, but it follows the lattice the network expects)"
        ),
    )
    contrast: str = field(
        default="auto",
        metadata=_doc(
            "the columns' contrast: bright (HAADF, white atoms), dark (ABF, black-atom "
            "HRTEM: the network sees the inverted image) or auto (bright, except for "
            "HRTEM, where the network sees both ways round and the more confident wins)"
        ),
    )
    imaging: str | None = field(
        default=None,
        metadata=_doc(
            "what the image is: stem (HAADF/ADF/ABF/BF-STEM) or hrtem (phase-contrast "
            "TEM); None: unknown"
        ),
    )
    min_evidence: float | None = field(
        default=None,
        metadata=_doc(
            "image evidence a column needs: its height, fitted jointly with its "
            "neighbours and the background, over the height's noise, >= 0 (default: the "
            "model card's, else 2)"
        ),
    )
    material: str | None = field(
        default=None,
        metadata=_doc(
            "without a pixel size: the catalogue material whose lattice the image shows "
            "(e.g. MoS2), so the pixel-size estimate matches its spacings only -- a "
            "hexagonal lattice fits graphene and MoS2 alike; ignored when the pixel size "
            "is known"
        ),
    )
    exclude_border_px: int = field(
        default=0, metadata=_doc("drop columns closer than this to the edge, px")
    )
    views: int = field(
        default=1,
        metadata=_doc(
            "test-time augmentation: the network sees each image in this many orientations "
            "and averages its answers (1, 2, 4 or 8; costs as many network passes)"
        ),
    )
    device: Any = field(
        default=None, metadata=_doc("torch device (default: cuda, then mps, then cpu)")
    )
    tile_px: int | None = field(default=None, metadata=_doc("network tile size, px"))
    overlap_px: int | None = field(default=None, metadata=_doc("tile overlap, px"))
    batch_size: int | None = field(default=None, metadata=_doc("tiles per network batch"))
    threads: int | None = field(default=None, metadata=_doc("CPU threads for torch"))

    def __post_init__(self) -> None:
        if self.threshold is not None:
            check_range(self.threshold, 0.0, 1.0, "threshold")
        if self.min_separation_nm is not None and self.min_separation_px is not None:
            raise InputError("give min_separation_nm or min_separation_px, not both")
        if self.min_separation_nm is not None:
            check_range(self.min_separation_nm, 0.0, 100.0, "min_separation_nm")
        if self.min_separation_px is not None:
            check_range(self.min_separation_px, 0.0, 1e4, "min_separation_px")
        if self.min_evidence is not None:
            check_range(self.min_evidence, 0.0, 1e3, "min_evidence")
        if int(self.exclude_border_px) != self.exclude_border_px or self.exclude_border_px < 0:
            raise InputError(
                f"exclude_border_px: expected a whole number >= 0, got {self.exclude_border_px!r}"
            )
        _check_choice("refine", self.refine, REFINE_METHODS, allow_none=True)
        _check_choice("contrast", self.contrast, CONTRASTS)
        check_imaging(self.imaging)
        _check_views(self.views)
        if self.material is not None:
            from ..simulation.materials import get_material

            get_material(self.material)  # an unknown name: InputError listing the catalogue

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
            "material": self.material,
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
    """The post-processing defaults a model card recommends (the keys of
    :data:`POSTPROCESS_OPTIONS`; others, from older cards, are left out)."""
    pp = getattr(card, "postprocess", None) or {}
    return {k: v for k, v in pp.items() if k in POSTPROCESS_OPTIONS}


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

    threshold: float
    threshold_given: bool
    refine: str
    min_separation_px: float
    min_evidence: float


def resolve_post(
    options: FinderOptions, postprocess: Mapping[str, Any], pixel_size_nm: float | None
) -> ResolvedPost:
    """Fill the options left as None from the card's ``postprocess``, then the defaults.

    A card value this version does not know (an older card's ``refine: heatmap``) falls
    back to the default, so cards written by earlier fine-tuning runs keep loading.
    """
    pp = postprocess or {}
    given = options.threshold is not None
    threshold = options.threshold if given else pp.get("threshold", DEFAULT_THRESHOLD)
    refine = options.refine
    if refine is None:
        refine = pp.get("refine", DEFAULT_REFINE)
        refine = refine if refine in REFINE_METHODS else DEFAULT_REFINE
    sep_nm, sep_px = options.min_separation_nm, options.min_separation_px
    if sep_nm is None and sep_px is None:
        sep_nm = pp.get("min_separation_nm")
    evidence = options.min_evidence
    if evidence is None:
        evidence = pp.get("min_evidence", DEFAULT_MIN_EVIDENCE)
    return ResolvedPost(
        check_range(threshold, 0.0, 1.0, "threshold"),
        given,
        refine,
        min_separation_px(sep_nm, sep_px, pixel_size_nm),
        check_range(evidence, 0.0, 1e3, "min_evidence"),
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
