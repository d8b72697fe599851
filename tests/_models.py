"""Tiny untrained atoms models for plumbing tests: one card builder and one export.

They test that images flow through the model machinery (cards, registry, tiling, export,
fine-tuning), not accuracy; tests of the shipped weights live next to each task.

- :func:`tiny_card_dict`: a card as plain data, for tests of cards or of one option.
- :func:`export_tiny_model`: weights for a card, written with the card to a folder.
- :func:`export_tiny_atoms_model`: the small model the finder, CLI, widget and
  fine-tuning tests run (1 level deep, 0.025 nm/px unless told).
- :func:`training_recipe`: a card's ``training`` section that lets a model be fine-tuned.

torch is imported inside the functions, so collecting a test module that imports this
one does not load torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from napari_atomseg.backend.cards import ModelCard


def tiny_card_dict(
    name: str = "tiny",
    *,
    depth: int = 2,
    working_pixel_size_nm: float = 0.02,
    pixel_size_range_nm: Sequence[float] = (0.005, 0.1),
    **overrides: Any,
) -> dict[str, Any]:
    """The card of a tiny atoms U-Net (4 base channels, one sigmoid heatmap) as plain data.

    Parameters
    ----------
    name
        The model's name.
    depth
        U-Net levels; the default 2 gives a receptive field well beyond a tile's 8-px
        dead band (the tiling tests rely on it).
    working_pixel_size_nm, pixel_size_range_nm
        The card's ``input`` pixel sizes; tiles are 64 px with 16 px overlap.
    **overrides
        Top-level card keys that replace the defaults (``task``, ``outputs``, ``input``,
        ``postprocess``, ``training``, ...).
    """
    data: dict[str, Any] = {
        "name": name,
        "task": "atoms",
        "architecture": {"type": "unet", "base_channels": 4, "depth": depth},
        "outputs": [{"name": "heatmap", "activation": "sigmoid"}],
        "input": {
            "normalisation": "robust_zscore",
            "working_pixel_size_nm": working_pixel_size_nm,
            "pixel_size_range_nm": list(pixel_size_range_nm),
            "tile_px": 64,
            "overlap_px": 16,
        },
    }
    data.update(overrides)
    return data


def randomise_batchnorm(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics (so folding is really tested)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def export_tiny_model(
    out_dir: Path, card_data: dict[str, Any], *, seed: int = 0, random_batchnorm: bool = False
) -> ModelCard:
    """Build the model ``card_data`` describes with weights drawn from ``seed``, export it
    (card + safetensors) to ``out_dir`` and return the written card.

    ``random_batchnorm``: also give the BatchNorm layers random statistics
    (:func:`randomise_batchnorm`), for tests of folding and of exact outputs.
    """
    import torch

    from napari_atomseg.backend.cards import card_from_dict
    from napari_atomseg.backend.registry import build_from_card, export_model

    card = card_from_dict(card_data)
    torch.manual_seed(seed)
    module = build_from_card(card)
    if random_batchnorm:
        randomise_batchnorm(module, seed)
    return export_model(module, card, out_dir)


def export_tiny_atoms_model(
    out_dir: Path, name: str, *, working_pixel_size_nm: float = 0.025, **card_overrides: Any
) -> ModelCard:
    """An untrained 1-level atoms U-Net exported to ``out_dir``; its card.

    It accepts pixel sizes from 0.002 to 0.1 nm; ``card_overrides`` replace top-level
    card keys (e.g. ``postprocess``, ``training=training_recipe(...)``).
    """
    card_data = tiny_card_dict(
        name,
        depth=1,
        working_pixel_size_nm=working_pixel_size_nm,
        pixel_size_range_nm=(0.002, 0.1),
        **card_overrides,
    )
    return export_tiny_model(out_dir, card_data)


def training_recipe(working_pixel_size_nm: float) -> dict[str, Any]:
    """A card's ``training`` section naming the atoms task and its options (64-px
    patches, so fine-tuning from the card is fast)."""
    return {
        "config": {
            "task": "napari_atomseg.atoms.training:AtomsTask",
            "task_options": {"working_pixel_size_nm": working_pixel_size_nm, "patch_px": 64},
        }
    }
