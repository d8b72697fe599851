"""napari-atomseg: atomic columns, contamination and nanoparticles in electron micrographs.

The public Python API is small and imported lazily, so ``import napari_atomseg`` pulls in
neither torch nor Qt:

- :func:`read_image` -- any supported file -> ``(array, Calibration)``
- :func:`simulate` / :class:`SimulationParameters` -- synthetic micrographs with ground truth
- :func:`find_atoms` -- atomic columns as a pandas DataFrame
- :func:`segment` -- contamination / nanoparticle label masks
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "read_image": "napari_atomseg.io",
    "Calibration": "napari_atomseg.io",
    "simulate": "napari_atomseg.simulate",
    "SimulationParameters": "napari_atomseg.simulate",
    "find_atoms": "napari_atomseg.atoms",
    "segment": "napari_atomseg.segment",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_atomseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
