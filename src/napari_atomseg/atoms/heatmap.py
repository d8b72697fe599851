"""The network's answer for one image: :class:`HeatmapResult` and its prediction.

:func:`iter_predict_heatmap` runs the atom model once (tiled, in the image's own pixel
grid); post-processing (:func:`~napari_atomseg.atoms.find.heatmap_to_atoms`) can then run
any number of times on the result, as the widget's live preview does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._progress import ProgressGenerator, as_part, drain
from .._validate import as_image2d, check_pixel_size_nm
from ..errors import InputError
from .options import CONTRASTS, _check_views, card_postprocess, model_name

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
    #: Name of the model that produced the heatmap ("" for a heatmap made otherwise).
    model_name: str = ""
    #: Wall time of the prediction stages (from the backend), seconds.
    timings_s: Mapping[str, float] = field(default_factory=dict)
    #: The model card's recommended post-processing (``postprocess`` in the card): the
    #: defaults post-processing uses for options the caller does not give.
    postprocess: Mapping[str, Any] = field(default_factory=dict)
    #: The columns' contrast the caller gave (auto / bright / dark).
    contrast: str = "auto"
    #: True when the network saw the inverted image (the columns are dark in the image).
    inverted: bool = False
    #: When the network saw the image both ways round: which answer was kept and why
    #: (set by :func:`~napari_atomseg.atoms.find.iter_network_answer`; "" otherwise).
    polarity_choice: str = ""
    #: Post-processing results that do not depend on the sliders, by their settings.
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def network_input(self) -> str:
        """How the network saw the image: ``"inverted"`` or ``"as is"``."""
        return "inverted" if self.inverted else "as is"

    @property
    def image_bright(self) -> np.ndarray:
        """The image with the columns bright: inverted where the network saw it so."""
        return -self.image if self.inverted else self.image

    @classmethod
    def from_arrays(
        cls,
        image: Any,
        heatmap: Any,
        pixel_size_nm: float | None = None,
        inverted: bool = False,
    ) -> HeatmapResult:
        """Wrap an image and a heatmap made elsewhere (tests, other detectors)."""
        img = as_image2d(image)
        heat = np.asarray(heatmap, dtype=np.float32)
        if heat.shape != img.shape:
            raise InputError(f"heatmap: shape {heat.shape} differs from the image's {img.shape}")
        if not np.isfinite(heat).all():
            raise InputError("heatmap: contains NaN/inf values")
        return cls(heat, img, check_pixel_size_nm(pixel_size_nm), inverted=bool(inverted))


def resolve_model(model: Any, device: Any) -> Any:
    """A loaded atoms model from a name, card path, ``"default"`` or a loaded model."""
    from ..backend import get_model
    from ..backend.registry import LoadedModel

    if isinstance(model, LoadedModel):
        return model
    return get_model(model_name(model), device)


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
    material: str | None = None,
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
        ``"dark"``: the columns are darker than their surroundings (ABF, black-atom
        HRTEM), so the network sees the inverted image: it was trained on images whose
        columns are bright. ``"auto"``/``"bright"``: the image as it is. The returned
        ``image`` is always the original.
    invert
        Show the network the inverted image (True) or the image as it is (False)
        whatever ``contrast`` says; None (default): inverted for ``"dark"`` only.
    views
        Test-time augmentation: the network sees the image in this many orientations
        (1, 2, 4 or 8 of :data:`VIEWS`) and the heatmaps, turned back, are averaged.
        Costs ``views`` network passes.
    material
        Without a pixel size: the catalogue material whose lattice the image shows, so
        that the estimate matches its spacings only (a hexagonal lattice is otherwise
        as much graphene as MoS2). Ignored when ``pixel_size_nm`` is given.

    Yields
    ------
    Progress
        The backend's progress, per view when ``views > 1``.

    Returns
    -------
    HeatmapResult
        The heatmap on the image's pixel grid, the validated image and the pixel size used.
    """
    img = as_image2d(image)
    px = check_pixel_size_nm(pixel_size_nm)
    if contrast not in CONTRASTS:
        raise InputError(f"contrast: expected one of {CONTRASTS}, got {contrast!r}")
    inverted = contrast == "dark" if invert is None else bool(invert)
    loaded = resolve_model(model, device)
    if loaded.card.task != "atoms":
        raise InputError(
            f"model {loaded.card.name!r} is a {loaded.card.task!r} model; choose an atoms model"
        )
    _check_views(views)
    views = int(views)
    backend = {
        "tile_px": tile_px,
        "overlap_px": overlap_px,
        "batch_size": batch_size,
        "threads": threads,
        "material": material,
    }
    first, heat, timings = yield from _predict_views(
        loaded, -img if inverted else img, px, views, backend
    )
    heat = heat / np.float32(views)
    return HeatmapResult(
        heatmap=np.ascontiguousarray(heat, dtype=np.float32),
        image=img,
        pixel_size_nm=first.pixel_size_nm,
        pixel_size_estimated=first.pixel_size_estimated,
        model_name=first.model_name,
        timings_s=timings,
        postprocess=card_postprocess(loaded.card),
        contrast=contrast,
        inverted=inverted,
    )


def _predict_views(
    loaded: Any,
    seen: np.ndarray,
    px: float | None,
    views: int,
    backend: dict[str, Any],
) -> ProgressGenerator[tuple[Any, np.ndarray, dict[str, float]]]:
    """The first view's prediction and the summed heatmaps of all views (``backend``: the
    keyword arguments of :func:`napari_atomseg.backend.iter_predict`)."""
    from ..backend import iter_predict

    heat = None
    timings: dict[str, float] = {}
    for k in range(views):
        forward, back = VIEWS[k]
        pred = yield from as_part(
            iter_predict(loaded, np.ascontiguousarray(forward(seen)), px, **backend),
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
        for key, value in pred.timings_s.items():
            timings[key] = timings.get(key, 0.0) + value
    return first, heat, timings


def predict_heatmap(
    image: Any, pixel_size_nm: float | None = None, model: Any = "default", **kwargs: Any
) -> HeatmapResult:
    """Run :func:`iter_predict_heatmap` to completion (same arguments).

    Parameters
    ----------
    image
        Any real 2-D array (not modified).
    pixel_size_nm
        nm per pixel; None estimates it from the image.
    model
        ``"default"``, a model name, a card path or a loaded model.
    **kwargs
        The keyword-only arguments of :func:`iter_predict_heatmap` (``device``,
        ``tile_px``, ``contrast``, ``invert``, ``views``, ...).

    Returns
    -------
    HeatmapResult
        The network's answer, ready for :func:`~napari_atomseg.atoms.find.heatmap_to_atoms`.
    """
    return drain(iter_predict_heatmap(image, pixel_size_nm, model, **kwargs))
