"""Fixtures for the backend tests: tiny models written to a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from napari_atomseg.backend import registry
from napari_atomseg.backend.cards import ModelCard, card_from_dict
from napari_atomseg.backend.registry import build_from_card, export_model

# Keep the shared 2-core machine usable for the other engineers.
torch.set_num_threads(min(2, torch.get_num_threads()))
os.environ.setdefault("NAPARI_ATOMSEG_THREADS", "2")


def card_dict(name: str = "tiny", **over: object) -> dict:
    data = {
        "name": name,
        "task": "atoms",
        "version": "1",
        "description": "test model",
        "architecture": {"type": "unet", "base_channels": 4, "depth": 2, "norm": "batch"},
        "outputs": [{"name": "heatmap", "activation": "sigmoid"}],
        "input": {
            "normalisation": "robust_zscore",
            "working_pixel_size_nm": 0.02,
            "pixel_size_range_nm": [0.005, 0.1],
            "tile_px": 64,
            "overlap_px": 16,
        },
    }
    data.update(over)
    return data


def randomise_batchnorm(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics (so folding is really tested)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., ModelCard]:
    """Write a randomly initialised model (card + safetensors) and return its card."""

    def _make(name: str = "tiny", seed: int = 0, **over: object) -> ModelCard:
        card = card_from_dict(card_dict(name, **over))
        torch.manual_seed(seed)
        module = build_from_card(card)
        randomise_batchnorm(module, seed)
        return export_model(module, card, tmp_path / name)

    yield _make
    registry.clear_cache()
