"""Fixtures for the widget tests: a tiny exported atoms model and a synthetic lattice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NAPARI_ATOMSEG_THREADS", "1")

PS_NM = 0.02


@pytest.fixture(scope="session")
def tiny_atoms_card(tmp_path_factory) -> Path:
    """An untrained atoms model exported through the backend (plumbing, not accuracy)."""
    torch = pytest.importorskip("torch")
    from napari_atomseg.backend import registry
    from napari_atomseg.backend.cards import card_from_dict

    torch.set_num_threads(1)
    card = card_from_dict(
        {
            "name": "atoms_widget_test",
            "task": "atoms",
            "architecture": {"type": "unet", "base_channels": 4, "depth": 1},
            "outputs": [{"name": "heatmap", "activation": "sigmoid"}],
            "input": {
                "normalisation": "robust_zscore",
                "working_pixel_size_nm": PS_NM,
                "pixel_size_range_nm": [0.002, 0.1],
                "tile_px": 64,
                "overlap_px": 16,
            },
        }
    )
    torch.manual_seed(0)
    module = registry.build_from_card(card)
    out = registry.export_model(module, card, tmp_path_factory.mktemp("model"))
    yield out.path
    registry.clear_cache()
