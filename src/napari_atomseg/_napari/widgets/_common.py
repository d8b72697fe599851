"""Small pieces the widgets share: layer pickers, model pickers, stacked progress."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox
from napari.layers import Image, Labels, Points

_TYPES = {"image": Image, "labels": Labels, "points": Points}


def layer_combo(viewer: Any, layer_type: str, label: str, optional: bool = False) -> ComboBox:
    """A ComboBox of the viewer's layers of one type, kept in sync with the layer list."""
    cls = _TYPES[layer_type]

    def choices(_widget: Any = None) -> list[Any]:
        found = [(layer.name, layer) for layer in viewer.layers if isinstance(layer, cls)]
        return ([("(none)", None)] if optional else []) + found

    combo = ComboBox(choices=choices, label=label, nullable=optional)

    def refresh(_event: Any = None) -> None:
        combo.reset_choices()

    viewer.layers.events.inserted.connect(refresh)
    viewer.layers.events.removed.connect(refresh)
    return combo


def model_names(task: str) -> list[str]:
    """Shipped models of ``task`` (default first); empty when none is installed."""
    from napari_atomseg.backend import list_models

    return [card.name for card in list_models(task)]
