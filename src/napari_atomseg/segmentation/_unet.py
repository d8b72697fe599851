"""The U-Net path of :func:`napari_atomseg.segmentation.segment`: model choice and class mapping.

Everything torch-related (devices, weights, resampling, tiling) is the shared backend's;
this module only picks the model for a task and turns its output channels into class
probabilities in the task's label order. Imported lazily (it pulls in torch).
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._progress import Progress
from ..errors import ModelError
from .classes import TASK_CLASSES


@dataclass(frozen=True)
class UnetRun:
    """What one U-Net prediction gave, in the task's class order."""

    probabilities: np.ndarray
    pixel_size_nm: float | None
    pixel_size_estimated: bool
    working_pixel_size_nm: float | None
    model_name: str
    warnings: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


def _task_classes(task: str) -> tuple[str, ...]:
    return TASK_CLASSES[task]


def card_fits_task(card: Any, task: str) -> bool:
    """True if a segmentation card's outputs can be mapped onto the task's classes."""
    if getattr(card, "task", None) != "segmentation":
        return False
    wanted = set(_task_classes(task))
    channels = set(getattr(card, "channels", ()))
    if wanted <= channels:
        return True
    # A particle model may have one sigmoid channel "particle" (background = 1 - p).
    return task == "particles" and "particle" in channels


#: Coarsest sampling (nm/px) at which an image goes to a calibrated particle model: the
#: coarsest its training saw (configs/segment_particles.yaml, 0.045-0.15 nm/px). Coarser
#: images, and images whose pixel size is neither given nor measured on a lattice, go to
#: the scale-free model (survey bright field: particles a few pixels across).
LATTICE_RESOLVING_MAX_NM = 0.15
#: Estimate sources that measured a lattice (:class:`napari_atomseg.scale.ImageScale`).
LATTICE_SOURCES = ("lattice", "material")


def _fitting_cards(task: str) -> list[Any]:
    from ..backend import list_models

    fitting = [c for c in list_models("segmentation") if card_fits_task(c, task)]
    if not fitting:
        raise ModelError(
            f"no segmentation model for task {task!r} is installed; train one "
            "(napari-atomseg train CONFIG.yaml) and pass model=PATH, or use method='bragg'"
        )
    return fitting


def _default_of(fitting: list[Any]) -> Any:
    defaults = [c for c in fitting if getattr(c, "default", False)]
    return (defaults or fitting)[0]


def default_model(task: str) -> Any:
    """The shipped card for ``task`` (the one marked ``default``, else the first fitting)."""
    return _default_of(_fitting_cards(task))


def model_for_image(
    task: str, pixel_size_nm: float | None, scale_source: str | None
) -> tuple[Any, str]:
    """The shipped card for this image, and why.

    Contamination: the task's default. Particles: the calibrated default where the image
    is known to resolve a lattice (a pixel size given, or measured on a lattice, at most
    :data:`LATTICE_RESOLVING_MAX_NM`); otherwise the scale-free model, which needs no
    pixel size (bright-field survey images, particles a few pixels across).
    ``scale_source``: ``"user"`` for a given pixel size, else the estimate's source.
    """
    fitting = _fitting_cards(task)
    card = _default_of(fitting)
    if task != "particles":
        return card, "the task's default model"
    scale_free = [c for c in fitting if c.input.working_pixel_size_nm is None]
    if card.input.working_pixel_size_nm is None or not scale_free:
        return card, "the task's default model"
    measured = pixel_size_nm is not None and (
        scale_source == "user" or scale_source in LATTICE_SOURCES
    )
    if measured and pixel_size_nm <= LATTICE_RESOLVING_MAX_NM:
        return card, f"lattice-resolving sampling ({pixel_size_nm:.3g} nm/px)"
    why = (
        f"{pixel_size_nm:.3g} nm/px is coarser than {LATTICE_RESOLVING_MAX_NM} nm/px"
        if measured
        else "no pixel size given and no lattice measured"
    )
    return scale_free[0], f"scale-free model: {why}"


def class_probabilities(outputs: np.ndarray, channels: Sequence[str], task: str) -> np.ndarray:
    """``(C_task, H, W)`` probabilities in the task's class order from model outputs.

    Channels are matched by name; a lone ``particle`` sigmoid gives the background as
    ``1 - p``. Raises :class:`ModelError` if a class is missing.
    """
    names = _task_classes(task)
    index = {name: i for i, name in enumerate(channels)}
    if all(n in index for n in names):
        return np.stack([outputs[index[n]] for n in names]).astype(np.float32, copy=False)
    if task == "particles" and "particle" in index:
        p = outputs[index["particle"]].astype(np.float32, copy=False)
        return np.stack([1.0 - p, p])
    raise ModelError(
        f"the model's output channels {list(channels)} do not include the classes of task "
        f"{task!r}: {list(names)}"
    )


def iter_unet(
    image: np.ndarray,
    pixel_size_nm: float | None,
    task: str,
    model: str | os.PathLike[str] | None = None,
    device: str | None = None,
    tile_px: int | None = None,
    overlap_px: int | None = None,
    batch_size: int | None = None,
    scale_source: str | None = None,
) -> Generator[Progress, None, UnetRun]:
    """Run the task's model (or ``model``, a name or card path) through the backend.

    ``scale_source``: where ``pixel_size_nm`` came from -- ``"user"`` (given) or the
    estimate's source. An estimate outside the model's range is clipped to it (with a
    warning) rather than refused; with ``model=None`` the source also picks the particle
    model (:func:`model_for_image`).
    """
    from ..backend import get_model

    estimated = scale_source not in (None, "user")
    card, why = model_for_image(task, pixel_size_nm, scale_source) if model is None else (None, "")
    loaded = get_model(card.name if card is not None else os.fspath(model), device=device)
    if not card_fits_task(loaded.card, task):
        raise ModelError(
            f"model {loaded.card.name!r} (task {loaded.card.task!r}, outputs "
            f"{list(loaded.card.channels)}) cannot segment task {task!r}"
        )
    if loaded.card.input.working_pixel_size_nm is None and task == "particles":
        run = yield from _iter_relative(
            loaded, image, pixel_size_nm, task, tile_px, overlap_px, batch_size
        )
    else:
        run = yield from _iter_calibrated(
            loaded, image, pixel_size_nm, task, estimated, tile_px, overlap_px, batch_size
        )
    if why:
        run = replace(run, details={**run.details, "model_choice": why})
    return run


def _iter_calibrated(
    loaded: Any,
    image: np.ndarray,
    pixel_size_nm: float | None,
    task: str,
    estimated: bool,
    tile_px: int | None,
    overlap_px: int | None,
    batch_size: int | None,
) -> Generator[Progress, None, UnetRun]:
    """A model with a working pixel size: the backend resamples the image to it."""
    from ..backend import iter_predict

    warnings: tuple[str, ...] = ()
    limits = loaded.card.input.pixel_size_range_nm
    if estimated and pixel_size_nm is not None and limits is not None:
        clipped = min(max(pixel_size_nm, limits[0]), limits[1])
        if clipped != pixel_size_nm:
            warnings = (
                f"the estimate {pixel_size_nm:.4g} nm/px lies outside {loaded.card.name}'s "
                f"range ({limits[0]:g}-{limits[1]:g} nm/px); {clipped:.4g} nm/px is used",
            )
            pixel_size_nm = clipped
    pred = yield from iter_predict(
        loaded,
        image,
        pixel_size_nm,
        tile_px=tile_px,
        overlap_px=overlap_px,
        batch_size=batch_size,
    )
    probs = class_probabilities(pred.outputs, pred.channels, task)
    return UnetRun(
        probabilities=probs,
        pixel_size_nm=pred.pixel_size_nm,
        pixel_size_estimated=bool(pred.pixel_size_estimated),
        working_pixel_size_nm=pred.working_pixel_size_nm,
        model_name=loaded.card.name,
        warnings=warnings + tuple(getattr(getattr(pred, "scale", None), "warnings", ()) or ()),
    )


def _iter_relative(
    loaded: Any,
    image: np.ndarray,
    pixel_size_nm: float | None,
    task: str,
    tile_px: int | None,
    overlap_px: int | None,
    batch_size: int | None,
) -> Generator[Progress, None, UnetRun]:
    """A scale-free particle model: the image is zoomed so its particles are about
    :data:`~.particle_scale.TARGET_DIAMETER_PX` across (never up-sampled more than
    :data:`~.particle_scale.MAX_ZOOM`), run, and the probabilities mapped back. The pixel
    size, known or not, plays no part (it only labels the particle table in nm)."""
    from ..backend import iter_predict, resample
    from .particle_scale import particle_zoom

    zoom, diameter_px = particle_zoom(image)
    work = image if zoom == 1.0 else resample(image, 1.0, 1.0 / zoom, max_upsample=math.inf)
    pred = yield from iter_predict(
        loaded, work, None, tile_px=tile_px, overlap_px=overlap_px, batch_size=batch_size
    )
    outputs = pred.outputs
    if zoom != 1.0:
        outputs = resample(
            outputs, 1.0 / zoom, 1.0, output_shape=image.shape, max_upsample=math.inf
        )
    probs = class_probabilities(outputs, pred.channels, task)
    probs /= np.maximum(probs.sum(axis=0, keepdims=True), 1e-6)
    warnings: tuple[str, ...] = ()
    if diameter_px is None:
        warnings = ("no particle-sized blobs measured: the image is segmented at its own sampling",)
    working = None if pixel_size_nm is None else pixel_size_nm / zoom
    return UnetRun(
        probabilities=probs,
        pixel_size_nm=pixel_size_nm,
        pixel_size_estimated=False,
        working_pixel_size_nm=working,
        model_name=loaded.card.name,
        warnings=warnings,
        details={"zoom": zoom, "particle_diameter_px": diameter_px},
    )
