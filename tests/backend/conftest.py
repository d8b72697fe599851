"""Fixtures for the backend tests: tiny models written to a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from napari_atomseg.backend import registry
from napari_atomseg.backend.cards import ModelCard
from tests._models import export_tiny_model, tiny_card_dict

# Keep the shared 2-core machine usable for the other engineers.
torch.set_num_threads(min(2, torch.get_num_threads()))
os.environ.setdefault("NAPARI_ATOMSEG_THREADS", "2")


@pytest.fixture
def make_model(tmp_path: Path) -> Iterator[Callable[..., ModelCard]]:
    """Write a randomly initialised 2-level model (card + safetensors, batch-norm
    statistics random too) and return its card; ``over`` replaces top-level card keys."""

    def _make(name: str = "tiny", seed: int = 0, **over: object) -> ModelCard:
        return export_tiny_model(
            tmp_path / name, tiny_card_dict(name, **over), seed=seed, random_batchnorm=True
        )

    yield _make
    registry.clear_cache()
