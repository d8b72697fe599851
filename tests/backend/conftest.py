"""Fixtures for the backend tests: tiny models written to a temporary folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from napari_atomseg.backend import registry
from napari_atomseg.backend.cards import ModelCard
from tests._models import export_tiny_model, tiny_card_dict


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
