"""Tiny untrained models exported through the backend, for plumbing tests.

They test that images flow through the model machinery (cards, registry, tiling, export),
not accuracy; tests of the shipped weights live next to each task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def export_tiny_atoms_model(out_dir: Path, name: str, **card_overrides: Any) -> Any:
    """An untrained 1-level atoms U-Net (4 channels) exported to ``out_dir``; its card."""
    import torch

    from napari_atomseg.backend.cards import card_from_dict
    from napari_atomseg.backend.registry import build_from_card, export_model

    card = card_from_dict(
        {
            "name": name,
            "task": "atoms",
            "architecture": {"type": "unet", "base_channels": 4, "depth": 1},
            "outputs": [{"name": "heatmap", "activation": "sigmoid"}],
            "input": {
                "normalisation": "robust_zscore",
                "working_pixel_size_nm": 0.025,
                "pixel_size_range_nm": [0.002, 0.1],
                "tile_px": 64,
                "overlap_px": 16,
            },
            **card_overrides,
        }
    )
    torch.manual_seed(0)
    return export_model(build_from_card(card), card, out_dir)
