"""Running a model on an image of any size: resample, normalise, tile, blend, map back.

:func:`iter_predict` is a generator (yields :class:`~napari_atomseg._progress.Progress`
once per batch of tiles, returns a :class:`Prediction`), so napari's ``thread_worker``
shows progress and can cancel between tiles: closing the generator stops the work and
frees its memory. :func:`predict` drains it.

Steps, all at bounded memory (an 8192^2 image needs about 1.5 GB beyond the input with
a two-channel model; ``benchmarks/backend_tiling.py`` measures it):

1. the image (any real 2-D array) becomes a float32 copy (``_validate.as_image2d``);
2. its pixel size is the one given, or estimated from the image when None -- the one
   physical estimate every tool shares (:func:`napari_atomseg.scale.estimate_image_scale`:
   lattice spots matched to the material catalogue, else the feature width), clipped to
   the card's range; a featureless image runs at the working pixel size, with a warning
   in ``Prediction.scale``;
3. it is resampled to the card's working pixel size, anti-aliased (sampling.py);
4. it is prepared as the card says, on the *whole* field of view: its slowly varying
   background subtracted (only if the card has ``input.background_sigma_nm``), then
   normalised (``InputSpec.prepare``, normalisation.py);
5. it is cut into overlapping tiles (tiling.py), batched through the network under
   ``torch.inference_mode``, and the logits blended with smooth weights;
6. the blended logits are mapped back exactly onto the original pixel grid and the
   card's activations (sigmoid / softmax) applied there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import Progress, ProgressGenerator, drain
from .._validate import as_image2d, check_pixel_size_nm
from ..errors import InputError
from .cards import ModelCard
from .device import torch_threads
from .registry import LoadedModel, get_model
from .sampling import MAX_UPSAMPLE, resample, resampled_shape
from .tiling import pad_image, plan_tiles, tile_weight, weight_sums


@dataclass(frozen=True)
class Prediction:
    """A model's output on one image, on the image's own pixel grid."""

    #: float32 (C, H, W) after each head's activation, at the original image's grid.
    outputs: np.ndarray
    #: Name of each of the C channels (from the card's outputs / classes).
    channels: tuple[str, ...]
    #: Pixel size used, nm/px: the one given, or the estimate when None was given.
    pixel_size_nm: float | None
    #: True when ``pixel_size_nm`` was estimated from the image.
    pixel_size_estimated: bool
    #: The model's working pixel size the image was resampled to (None: not resampled).
    working_pixel_size_nm: float | None
    #: Name of the model that produced it.
    model_name: str = ""
    #: Wall time of each stage in seconds (resample, normalise, network, map_back, total).
    timings_s: Mapping[str, float] = field(default_factory=dict)
    #: The image's pixel-size estimate (:class:`napari_atomseg.scale.ImageScale`) when
    #: ``pixel_size_nm`` was estimated, else None.
    scale: Any = None

    def channel(self, name: str) -> np.ndarray:
        """The (H, W) map of one named channel."""
        try:
            return self.outputs[self.channels.index(name)]
        except ValueError:
            raise InputError(
                f"prediction has no channel {name!r}; channels: {self.channels}"
            ) from None


def _default_batch_size(card: ModelCard, device_type: str) -> int:
    if card.input.batch_size is not None:
        return card.input.batch_size
    # CPU: batching barely speeds convolutions up but multiplies activation memory.
    return 8 if device_type == "cuda" else 2


def _apply_activations(logits: np.ndarray, card: ModelCard, rows_per_chunk: int = 256) -> None:
    """Turn logits into probabilities in place, head by head (chunked: bounded temporaries)."""
    from scipy.special import expit

    start = 0
    for head in card.outputs:
        sl = slice(start, start + head.channels)
        start += head.channels
        if head.activation == "sigmoid":
            expit(logits[sl], out=logits[sl])
        elif head.activation == "softmax":
            for r in range(0, logits.shape[1], rows_per_chunk):
                block = logits[sl, r : r + rows_per_chunk]
                block -= block.max(axis=0, keepdims=True)
                np.exp(block, out=block)
                block /= block.sum(axis=0, keepdims=True)


def check_pixel_size_for_model(pixel_size_nm: float, card: ModelCard) -> None:
    """Raise InputError when ``pixel_size_nm`` is outside the card's supported range."""
    rng = card.input.pixel_size_range_nm
    if rng is not None and not rng[0] <= pixel_size_nm <= rng[1]:
        raise InputError(
            f"pixel size {pixel_size_nm:g} nm/px is outside the range model {card.name!r} "
            f"supports ({rng[0]:g}-{rng[1]:g} nm/px); check the calibration, or bin/crop "
            "the image, or choose another model"
        )


def _max_upsample(card: ModelCard) -> float:
    """The up-sampling the card's pixel-size range implies (at least :data:`MAX_UPSAMPLE`)."""
    rng, work = card.input.pixel_size_range_nm, card.input.working_pixel_size_nm
    if rng is None or not work:
        return MAX_UPSAMPLE
    return max(MAX_UPSAMPLE, float(rng[1]) / float(work) * (1.0 + 1e-9))


def iter_predict(
    model: LoadedModel | str | Path,
    image: Any,
    pixel_size_nm: float | None = None,
    *,
    tile_px: int | None = None,
    overlap_px: int | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    material: str | None = None,
) -> ProgressGenerator[Prediction]:
    """Run ``model`` on ``image``; a generator yielding Progress and returning a Prediction.

    Parameters
    ----------
    model
        A :class:`LoadedModel` or a model name / card path (loaded via the cache).
    image
        Any real 2-D array (not modified).
    pixel_size_nm
        Pixel size of ``image`` in nm/px; None estimates it from the image when the
        model has a working pixel size (``Prediction.pixel_size_estimated`` is then True).
    tile_px, overlap_px
        Tile side and overlap in *working* pixels; default from the card. A ``tile_px``
        larger than the image runs it untiled.
    batch_size
        Tiles per network call; default from the card, else 2 on CPU / 8 on CUDA.
    threads
        CPU threads torch may use while this runs (default
        :func:`~napari_atomseg.backend.device.default_num_threads`), set in the thread
        that runs the generator and restored afterwards.
    material
        When the pixel size is estimated: a catalogue material whose lattice spacings the
        image shows (:func:`napari_atomseg.scale.estimate_image_scale`), which resolves
        the ambiguity of lattices of one symmetry (any hexagonal lattice matches graphene
        and MoS2 alike); ignored when ``pixel_size_nm`` is given.

    Yields
    ------
    Progress
        Once per batch of tiles (and for the estimate, resampling and mapping back).

    Returns
    -------
    Prediction
        The activated outputs on the image's own pixel grid and the pixel size used.
    """
    import torch

    loaded = model if isinstance(model, LoadedModel) else get_model(model)
    card = loaded.card
    img = as_image2d(image)
    px = check_pixel_size_nm(pixel_size_nm)
    tile = int(tile_px if tile_px is not None else card.input.tile_px)
    overlap = int(overlap_px if overlap_px is not None else card.input.overlap_px)
    if tile < 16:
        raise InputError(f"tile_px must be >= 16, got {tile}")
    bs = (
        int(batch_size) if batch_size is not None else _default_batch_size(card, loaded.device.type)
    )
    if bs < 1:
        raise InputError(f"batch_size must be >= 1, got {bs}")
    work = card.input.working_pixel_size_nm
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    with torch_threads(threads):
        estimated = False
        scale = None
        if work is not None and px is None:
            from .scale import estimate_pixel_size_details

            yield Progress(0, 1, "estimating the pixel size")
            t = time.perf_counter()
            px, scale = estimate_pixel_size_details(img, card, material)
            timings["estimate_s"] = time.perf_counter() - t
            estimated = True
        orig_shape = img.shape
        resampled = work is not None and abs(px / work - 1.0) > 1e-6
        if work is not None:
            check_pixel_size_for_model(px, card)
        work_shape = resampled_shape(orig_shape, px, work) if resampled else orig_shape
        plan = plan_tiles(work_shape, tile, overlap, loaded.stride_multiple)
        total = len(plan)

        t = time.perf_counter()
        if resampled:
            yield Progress(0, total, f"resampling {px:.4g} -> {work:.4g} nm/px")
            # The card's range is the contract: a model that supports pixel sizes up to
            # k x its working one is up-sampled up to k x (never less than MAX_UPSAMPLE).
            img = resample(img, px, work, max_upsample=_max_upsample(card))
        timings["resample_s"] = time.perf_counter() - t
        t = time.perf_counter()
        # ``img`` is this function's own float32 array: prepare it in place.
        x_all = pad_image(
            card.input.prepare(img, work if work is not None else px, out=img), plan.padded_shape
        )
        del img
        timings["normalise_s"] = time.perf_counter() - t

        n_out = card.n_channels_out
        acc = np.zeros((n_out, *plan.padded_shape), dtype=np.float32)
        wsum_rows, wsum_cols = weight_sums(plan)
        th, tw = plan.tile_shape
        weights: dict[tuple[bool, bool, bool, bool], np.ndarray] = {}
        device = loaded.device
        memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format

        yield Progress(0, total, f"running {card.name} on {total} tile(s)")
        t = time.perf_counter()
        done = 0
        for batch in plan.batches(bs):
            x = np.stack([x_all[b.row : b.row + th, b.col : b.col + tw] for b in batch])[:, None]
            xt = torch.from_numpy(x).to(device).contiguous(memory_format=memory_format)
            with torch.inference_mode():
                logits = loaded.module(xt).float().cpu().numpy()
            for b, lg in zip(batch, logits):
                k = (b.interior_top, b.interior_bottom, b.interior_left, b.interior_right)
                if k not in weights:
                    weights[k] = tile_weight(plan, b)
                lg *= weights[k]
                acc[:, b.row : b.row + th, b.col : b.col + tw] += lg
            done += len(batch)
            yield Progress(done, total, f"tile {done}/{total}")
        timings["network_s"] = time.perf_counter() - t
        del x_all

        t = time.perf_counter()
        h, w = work_shape
        view = acc[:, :h, :w]
        inv_rows = (1.0 / wsum_rows[:h]).astype(np.float32)
        inv_cols = (1.0 / wsum_cols[:w]).astype(np.float32)
        for r in range(0, h, 512):
            view[:, r : r + 512] *= inv_rows[r : r + 512, None] * inv_cols[None, :]
        if resampled:
            yield Progress(total, total, "mapping back to the image grid")
            # Mapping the smooth logits back onto a much finer original grid is harmless
            # (the up-sampling cap guards the *input*, not the output).
            out = resample(view, work, px, output_shape=orig_shape, max_upsample=math.inf)
        elif (h, w) != plan.padded_shape:
            out = np.ascontiguousarray(view)  # drop the padding
        else:
            out = acc
        del view, acc
        _apply_activations(out, card)
        timings["map_back_s"] = time.perf_counter() - t
        timings["total_s"] = time.perf_counter() - t_start

    return Prediction(
        outputs=out,
        channels=card.channels,
        pixel_size_nm=px,
        pixel_size_estimated=estimated,
        working_pixel_size_nm=work,
        model_name=card.name,
        timings_s=timings,
        scale=scale,
    )


def predict(
    model: LoadedModel | str | Path,
    image: Any,
    pixel_size_nm: float | None = None,
    **kwargs: Any,
) -> Prediction:
    """Run :func:`iter_predict` to completion and return its :class:`Prediction`.

    Parameters
    ----------
    model
        A :class:`LoadedModel` or a model name / card path.
    image
        Any real 2-D array (not modified).
    pixel_size_nm
        nm per pixel; None estimates it when the model has a working pixel size.
    **kwargs
        ``tile_px``, ``overlap_px``, ``batch_size``, ``threads``, ``material`` (see
        :func:`iter_predict`).

    Returns
    -------
    Prediction
        The model's outputs on the image's own pixel grid.
    """
    return drain(iter_predict(model, image, pixel_size_nm, **kwargs))
