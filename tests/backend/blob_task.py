"""A tiny TrainingTask for the backend's tests: find Gaussian blobs in noise.

Deliberately independent of the simulation engine: the image is a few Gaussian blobs of
known size on a noisy, tilted background (:func:`tests._synth.blob_image`); the target is
the noise-free blob map scaled to [0, 1] (a heatmap head with sigmoid) and, optionally, a
2-class mask head (blob / not).

Training configs name this class by import path (``tests.backend.blob_task:BlobTask``),
and the recorded golden runs in ``tests/backend/data/train_golden`` keep that path in
their cards, so the class stays here rather than in ``tests/_models.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from napari_atomseg.backend.normalisation import normalise
from tests._synth import blob_image


class BlobTask:
    """Heatmap of Gaussian blobs; ``with_mask`` adds a 2-class softmax head."""

    def __init__(
        self,
        patch_px: int = 48,
        with_mask: bool = False,
        working_pixel_size_nm: float = 0.02,
        sigma_px: float = 1.8,
    ):
        self.patch_px = int(patch_px)
        self.sigma_px = float(sigma_px)
        self.with_mask = bool(with_mask)
        self.working_pixel_size_nm = working_pixel_size_nm
        self.channels_out = 3 if with_mask else 1

    def card_defaults(self) -> dict:
        outputs = [{"name": "heatmap", "activation": "sigmoid"}]
        card = {
            "task": "atoms",
            "outputs": outputs,
            "input": {
                "normalisation": "robust_zscore",
                "working_pixel_size_nm": self.working_pixel_size_nm,
                "pixel_size_range_nm": [0.005, 0.1],
                "tile_px": 64,
                "overlap_px": 16,
            },
        }
        if self.with_mask:
            outputs.append({"name": "mask", "activation": "softmax", "channels": 2})
        return card

    def make_example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        img, clean = blob_image(rng, (self.patch_px, self.patch_px), sigma_px=self.sigma_px)
        x = normalise(img, "robust_zscore")[None]
        if not self.with_mask:
            return x, clean[None]
        mask = (clean > 0.5).astype(np.float32)
        return x, np.stack([clean, 1 - mask, mask])

    def example_from_library(self, record, rng):
        x = normalise(record.image.astype(np.float32), "robust_zscore")[None]
        return x, record.heatmap.astype(np.float32)[None]

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(logits[:, :1], target[:, :1])
        if self.with_mask:
            loss = loss + F.cross_entropy(logits[:, 1:], target[:, 1:].argmax(1))
        return loss

    def validation_metrics(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        pred = torch.sigmoid(logits[:, :1])
        return {"mae": float((pred - target[:, :1]).abs().mean())}
