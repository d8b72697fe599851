"""The segmentation U-Net's training task for the shared training loop.

:class:`SegmentationTask` is a ``TrainingTask`` of :mod:`napari_atomseg.backend`: it makes
synthetic training pairs from the simulation engine's exact masks, and defines the loss
and the validation metrics. Registered in a training config as::

    task: napari_atomseg.segmentation.training:SegmentationTask
    task_options: {mode: contamination, working_pixel_size_nm: 0.04, tile_px: 256}

Classes (the label order of :data:`~napari_atomseg.segmentation.api.TASK_CLASSES`):

- ``mode="contamination"``: 0 crystal <- sim class 1 (lattice); 1 amorphous <- sim
  classes 2 (amorphous support) and 3 (contamination); 2 vacuum <- sim class 0.
- ``mode="particles"``: 1 particle <- sim ``masks["particle"]``; 0 background.

Examples are simulated at the recipe's own pixel size and resampled to the model's
working pixel size with the backend's anti-aliased resampling -- the same path an image
takes at inference -- so the model sees realistic resampling artefacts. The class
indicators are resampled the same way and the label is their arg-max (area-weighted).

Partial labels for fine-tuning on real data: the real graphene masks say "contamination"
or "not contamination" (clean graphene *or* vacuum). :data:`NOT_FLAGGED` marks such
pixels; the loss then asks only that the flagged class be improbable there
(``-log(1 - p_flagged)``). :data:`IGNORE` pixels do not count at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._validate import as_image2d, check_pixel_size_nm, check_range
from ..errors import InputError
from .classes import FLAGGED_CLASS, TASK_CLASSES

#: Target value of a pixel that is not scored.
IGNORE = -100
#: Target value of a pixel known only to be *not* the flagged class (partial label).
NOT_FLAGGED = -1
#: Sim class (masks["classes"]) -> contamination-task label.
_SIM_TO_CONTAMINATION = np.array([2, 0, 1, 1], dtype=np.int64)


def sim_classes_to_labels(masks: Mapping[str, np.ndarray], mode: str) -> np.ndarray:
    """Map a simulation's masks to the task's int64 labels (see module docstring)."""
    if mode == "contamination":
        classes = np.asarray(masks["classes"])
        if classes.size and int(classes.max()) >= _SIM_TO_CONTAMINATION.size:
            raise InputError(f"sim classes: expected values 0..3, found {int(classes.max())}")
        return _SIM_TO_CONTAMINATION[classes.astype(np.int64)]
    if mode == "particles":
        return (np.asarray(masks["particle"]) > 0).astype(np.int64)
    raise InputError(f"mode: expected one of {sorted(TASK_CLASSES)}, got {mode!r}")


def resample_labels(
    labels: np.ndarray,
    n_classes: int,
    from_pixel_size_nm: float,
    to_pixel_size_nm: float,
    output_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Resample a label map: per-class indicators through the backend, then arg-max."""
    from ..backend import resample

    onehot = np.stack([(labels == c).astype(np.float32) for c in range(n_classes)])
    res = resample(onehot, from_pixel_size_nm, to_pixel_size_nm, output_shape=output_shape)
    return np.argmax(res, axis=0).astype(np.int64)


class SegmentationTask:
    """Synthetic training pairs, loss and metrics of the segmentation U-Net.

    Parameters
    ----------
    mode
        ``"contamination"`` (3 classes) or ``"particles"`` (2 classes).
    working_pixel_size_nm
        The model's working sampling (the card's ``input.working_pixel_size_nm``).
    tile_px
        Side of the square training example at the working sampling.
    mix
        Recipe mixture for :func:`napari_atomseg.simulation.random_parameters` (a MixConfig,
        a dict of its fields, or ``None`` for the engine's default).
    normalisation
        The card's input normalisation (name or mapping).
    dice_weight
        Weight of the soft Dice term added to the cross-entropy (0 = cross-entropy only).
    class_weights
        Optional per-class cross-entropy weights (task label order).
    scale_jitter
        Each example is resampled to ``working_pixel_size_nm * exp(U(-s, s))`` but shown
        as if at the working pixel size, so the model meets features up to ``e^s`` times
        too large or small -- a wrong pixel-size estimate then degrades the answer
        gently. Simulated over the whole field (no padding at the borders, unlike the
        training loop's ``augment.scale_jitter``).
    lattice_visibility
        ``mode="contamination"``: relabel a *bulk* crystal's footprint by whether its
        lattice is still seen through what covers it (:mod:`.synthetic_labels`); 2-D
        materials keep the engine's masks.
    invert_haadf
        Probability of inverting a HAADF example's contrast (dark columns on a bright
        background, as annular bright-field shows them).
    particle_diameter_px
        ``mode="particles"``, scale-free model (``working_pixel_size_nm=None``): each
        engine example is simulated at the pixel size that makes its particles this many
        pixels across (log-uniform in ``[low, high]``), so one model covers survey images
        (particles 5-10 px) to lattice-resolving ones; ``segment()`` zooms an image so
        its particles fall in that range (:mod:`.particle_scale`).
    bf_fraction, bf_options
        ``mode="particles"``: the share of examples that are bright-field TEM images of
        particles on carbon (:mod:`napari_atomseg.simulation.bf_particles`), and keyword
        arguments for its random recipe.
    simulate_fn, parameters_fn
        Injection points (tests, other engines): ``simulate_fn(params) -> result with
        .image, .masks, .pixel_size_nm``; ``parameters_fn(rng) -> params``.
    """

    def __init__(
        self,
        mode: str = "contamination",
        working_pixel_size_nm: float = 0.04,
        tile_px: int = 256,
        mix: Any = None,
        normalisation: str | Mapping[str, Any] = "robust_zscore",
        dice_weight: float = 0.5,
        class_weights: tuple[float, ...] | None = None,
        simulate_fn: Callable[[Any], Any] | None = None,
        parameters_fn: Callable[[np.random.Generator], Any] | None = None,
        scale_jitter: float = 0.0,
        lattice_visibility: bool = False,
        invert_haadf: float = 0.0,
        particle_diameter_px: tuple[float, float] | None = None,
        bf_fraction: float = 0.0,
        bf_options: Mapping[str, Any] | None = None,
    ) -> None:
        if mode not in TASK_CLASSES:
            raise InputError(f"mode: expected one of {sorted(TASK_CLASSES)}, got {mode!r}")
        self.mode = mode
        self.class_names = TASK_CLASSES[mode]
        self.channels_out = len(self.class_names)
        self.flagged = FLAGGED_CLASS[mode]
        self.working_pixel_size_nm = check_pixel_size_nm(working_pixel_size_nm)
        self.tile_px = int(check_range(tile_px, 32, 4096, "tile_px"))
        self.normalisation = normalisation
        self.dice_weight = check_range(dice_weight, 0.0, 10.0, "dice_weight")
        if class_weights is not None and len(class_weights) != self.channels_out:
            raise InputError(
                f"class_weights: need {self.channels_out} values ({self.class_names}), "
                f"got {len(class_weights)}"
            )
        self.class_weights = None if class_weights is None else tuple(map(float, class_weights))
        self.mix = mix
        self._simulate_fn = simulate_fn
        self._parameters_fn = parameters_fn
        self.scale_jitter = check_range(scale_jitter, 0.0, 1.5, "scale_jitter")
        self.lattice_visibility = bool(lattice_visibility)
        if self.lattice_visibility and mode != "contamination":
            raise InputError("lattice_visibility applies to mode='contamination' only")
        self.invert_haadf = check_range(invert_haadf, 0.0, 1.0, "invert_haadf")
        self.particle_diameter_px = _range_or_none(particle_diameter_px, "particle_diameter_px")
        self.bf_fraction = check_range(bf_fraction, 0.0, 1.0, "bf_fraction")
        self.bf_options = dict(bf_options or {})
        if (self.particle_diameter_px or self.bf_fraction) and mode != "particles":
            raise InputError("particle_diameter_px and bf_fraction apply to mode='particles'")
        if (self.particle_diameter_px is None) != (self.working_pixel_size_nm is not None):
            raise InputError(
                "a scale-free particle model (particle_diameter_px) has no working pixel "
                "size (working_pixel_size_nm: null), and a physical one needs one"
            )

    def card_defaults(self) -> dict[str, Any]:
        """The card entries this task implies (the training config's ``card`` overrides).

        One softmax head named ``classes`` whose channels are the task's class names, so
        :func:`napari_atomseg.segmentation.segment` maps them by name.
        """
        return {
            "task": "segmentation",
            "outputs": [
                {"name": "classes", "activation": "softmax", "channels": self.channels_out}
            ],
            "classes": list(self.class_names),
            "input": {
                "normalisation": self.normalisation,
                "working_pixel_size_nm": self.working_pixel_size_nm,
            },
        }

    # ------------------------------------------------------------------ examples
    def _draw_parameters(self, rng: np.random.Generator) -> Any:
        if self._parameters_fn is not None:
            return self._parameters_fn(rng)
        from ..simulation import MixConfig, random_parameters

        mix = self.mix
        if isinstance(mix, Mapping):
            mix = MixConfig(**mix)
        return random_parameters(rng, mix=mix) if mix is not None else random_parameters(rng)

    def make_example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One pair at the working sampling: image float32 (1, T, T), labels int64 (T, T)."""
        from ..backend import resample
        from ..backend.normalisation import normalise

        if self.bf_fraction > 0 and rng.random() < self.bf_fraction:
            return self._bf_example(rng)
        params = self._draw_parameters(rng)
        if self.particle_diameter_px is not None:
            # Scale-free: simulate where this example's particles are d_px across.
            low, high = self.particle_diameter_px
            d_px = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            d_nm = float(getattr(params, "particle_diameter_nm", 3.0))
            to_nm = float(np.clip(d_nm / d_px, 0.008, 0.5))
            params = dataclasses.replace(params, pixel_size_nm=to_nm)
        pixel_nm = float(params.pixel_size_nm)
        # Resampled to this, presented as the working pixel size (scale jitter).
        to_nm = self.working_pixel_size_nm or pixel_nm
        if self.scale_jitter > 0:
            to_nm *= float(np.exp(rng.uniform(-self.scale_jitter, self.scale_jitter)))
        # Simulate just enough pixels to cover the tile after resampling.
        side = math.ceil(self.tile_px * to_nm / pixel_nm) + 2
        if hasattr(params, "shape_px") and dataclasses.is_dataclass(params):
            params = dataclasses.replace(params, shape_px=(side, side))
        simulate = self._simulate_fn
        if simulate is None:
            from ..simulation import simulate
        result = simulate(params)
        labels = sim_classes_to_labels(result.masks, self.mode)
        if self.lattice_visibility and _is_bulk_lattice(params):
            from .synthetic_labels import visible_lattice_labels

            labels = visible_lattice_labels(result.image_clean, labels, result.masks["particle"])
        shape = (self.tile_px, self.tile_px)
        from_nm = float(result.pixel_size_nm)
        image = resample(result.image, from_nm, to_nm)
        target = resample_labels(labels, self.channels_out, from_nm, to_nm, image.shape)
        image, target = _crop_or_pad(image, target, shape)
        if (
            str(getattr(params, "mode", "")).startswith("haadf")
            and rng.random() < self.invert_haadf
        ):
            image = -image
        return normalise(image, self.normalisation)[None].astype(np.float32), target

    def _bf_example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A bright-field particles-on-carbon example (rendered at the tile size)."""
        from ..backend.normalisation import normalise
        from ..simulation.bf_particles import random_bf_parameters, render_bf_particles

        options = {"shape_px": (self.tile_px, self.tile_px), **self.bf_options}
        if self.particle_diameter_px is not None:
            options.setdefault("diameter_px", self.particle_diameter_px)
        # Every particle, seen or not: the shipped model's recipe (training on the visible
        # ones only scored Dice 0.840 against 0.851 on the survey set, docs/segmentation.md).
        params = random_bf_parameters(rng, **options)
        result = render_bf_particles(params, visible_truth=False)
        target = result.mask.astype(np.int64)
        return normalise(result.image, self.normalisation)[None].astype(np.float32), target

    def real_pair_scales(self) -> tuple[float, ...]:
        """Scale factors at which each real image becomes a fine-tuning pair: 1 and, with
        ``scale_jitter`` s, ``exp(-s)`` and ``exp(s)`` (the whole image at each, so the
        model meets real images at wrong scales without padded borders)."""
        s = self.scale_jitter
        return (1.0,) if s <= 0 else (float(np.exp(-s)), 1.0, float(np.exp(s)))

    def real_example(
        self,
        image: np.ndarray,
        flagged_mask: np.ndarray,
        pixel_size_nm: float,
        scale: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A real image with a binary (flagged / not) mask as a fine-tuning pair.

        The image is resampled to the working sampling (times ``scale``: presented as the
        working sampling, as :attr:`scale_jitter` does for simulated examples) and
        normalised; unflagged pixels become :data:`NOT_FLAGGED` (partial labels: clean
        crystal or vacuum). Returns the whole resampled image (the training loop crops
        and augments).
        """
        from ..backend import resample
        from ..backend.normalisation import normalise

        img = as_image2d(image)
        mask = np.asarray(flagged_mask).astype(bool)
        if mask.shape != img.shape:
            raise InputError(f"mask shape {mask.shape} differs from the image's {img.shape}")
        px = check_pixel_size_nm(pixel_size_nm)
        if self.working_pixel_size_nm is None:
            raise InputError("real_example needs a model with a working pixel size")
        to_nm = self.working_pixel_size_nm * check_range(scale, 0.2, 5.0, "scale")
        res_img = resample(img, px, to_nm)
        frac = resample(mask.astype(np.float32), px, to_nm, output_shape=res_img.shape)
        target = np.where(frac > 0.5, self.flagged, NOT_FLAGGED).astype(np.int64)
        return normalise(res_img, self.normalisation)[None].astype(np.float32), target

    # ------------------------------------------------------------------ loss
    def loss(self, logits: Any, target: Any) -> Any:
        """Cross-entropy (+ ``dice_weight`` x soft Dice), with partial/ignored labels.

        ``logits`` (B, C, H, W); ``target`` (B, H, W) int64 with class indices,
        :data:`NOT_FLAGGED` or :data:`IGNORE`.
        """
        import torch
        import torch.nn.functional as F

        logp = F.log_softmax(logits.float(), dim=1)
        full = target >= 0
        partial = target == NOT_FLAGGED
        n_scored = (full | partial).sum().clamp(min=1)
        safe = torch.where(full, target, torch.zeros_like(target))
        nll = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
        if self.class_weights is not None:
            w = torch.tensor(self.class_weights, device=logits.device, dtype=logp.dtype)
            nll = nll * w[safe]
        ce_full = (nll * full).sum()
        others = [c for c in range(self.channels_out) if c != self.flagged]
        nll_partial = -torch.logsumexp(logp[:, others], dim=1)
        loss = (ce_full + (nll_partial * partial).sum()) / n_scored
        if self.dice_weight > 0:
            loss = loss + self.dice_weight * self._soft_dice_loss(logp.exp(), target)
        return loss

    def _soft_dice_loss(self, probs: Any, target: Any) -> Any:
        """1 - mean soft Dice over classes present in the fully labelled pixels.

        Partial pixels enter the flagged class's Dice as negatives (they are known not to
        be flagged); they are left out of the other classes'.
        """
        import torch

        full = target >= 0
        partial = target == NOT_FLAGGED
        dices = []
        for c in range(self.channels_out):
            valid = full | partial if c == self.flagged else full
            t = ((target == c) & full).float()
            p = probs[:, c] * valid
            denom = p.sum() + t.sum()
            if t.sum() == 0:
                continue
            dices.append(2 * (p * t).sum() / denom.clamp(min=1e-6))
        if not dices:
            return probs.sum() * 0.0
        return 1.0 - torch.stack(dices).mean()

    # ------------------------------------------------------------------ metrics
    def validation_metrics(self, logits: Any, target: Any) -> dict[str, float]:
        """Pixel accuracy, mean IoU, and Jaccard / Dice of the flagged class.

        Computed on the pixels with full labels; partial labels count for the flagged
        class's binary scores (flagged vs not).
        """
        pred = logits.argmax(dim=1)
        full = target >= 0
        scored_bin = full | (target == NOT_FLAGGED)
        out: dict[str, float] = {}
        n_full = int(full.sum())
        if n_full:
            out["pixel_accuracy"] = float(((pred == target) & full).sum()) / n_full
            ious = []
            for c in range(self.channels_out):
                inter = int(((pred == c) & (target == c) & full).sum())
                union = int((((pred == c) | (target == c)) & full).sum())
                if union:
                    ious.append(inter / union)
                    out[f"jaccard_{self.class_names[c]}"] = inter / union
            out["mean_jaccard"] = float(np.mean(ious)) if ious else math.nan
        p = (pred == self.flagged) & scored_bin
        t = (target == self.flagged) & scored_bin
        tp = int((p & t).sum())
        fp = int((p & ~t).sum())
        fn = int((~p & t & scored_bin).sum())
        name = self.class_names[self.flagged]
        out[f"dice_{name}"] = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else math.nan
        out[f"jaccard_{name}_binary"] = tp / (tp + fp + fn) if (tp + fp + fn) else math.nan
        return out


def _is_bulk_lattice(params: Any) -> bool:
    """A lattice scene of a bulk crystal (the visibility rule's domain; monolayers keep the
    engine's masks, as a microscopist labels them: any hydrocarbon on graphene counts)."""
    if getattr(params, "scene", "") != "lattice":
        return False
    from ..simulation.materials import MATERIALS

    material = MATERIALS.get(str(getattr(params, "material", "")))
    return material is not None and material.kind == "bulk"


def _range_or_none(value: Any, name: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected [low, high], got {value!r}") from exc
    if not 0 < low <= high:
        raise InputError(f"{name}: expected 0 < low <= high, got {value!r}")
    return low, high


def _crop_or_pad(
    image: np.ndarray, target: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop (or reflect-pad, target IGNORE) image and target to ``shape``."""
    out_i, out_t = image, target
    for axis, want in enumerate(shape):
        have = out_i.shape[axis]
        if have > want:
            start = (have - want) // 2
            sl = [slice(None)] * 2
            sl[axis] = slice(start, start + want)
            out_i, out_t = out_i[tuple(sl)], out_t[tuple(sl)]
        elif have < want:
            before = (want - have) // 2
            pad = [(0, 0), (0, 0)]
            pad[axis] = (before, want - have - before)
            out_i = np.pad(out_i, pad, mode="reflect")
            out_t = np.pad(out_t, pad, constant_values=IGNORE)
    return np.ascontiguousarray(out_i, dtype=np.float32), np.ascontiguousarray(out_t)
