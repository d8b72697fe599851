"""Synthetic micrographs with exact ground truth (structures with ase, optics as abTEM).

Public API (imported lazily, so ``import napari_atomseg.simulation`` stays light)::

    from napari_atomseg.simulation import (SimulationParameters, SimulationResult, simulate,
                                           simulate_steps, random_parameters, MixConfig,
                                           list_materials)

- :class:`SimulationParameters` -- one image, units in field names, validated.
- :func:`simulate` / :func:`simulate_steps` -- the image, its noise-free version, the
  column table, heatmap, masks and mean column spacing (generator variant yields Progress).
- :func:`random_parameters` / :class:`MixConfig` -- random recipes from a mixture (YAML).
- :func:`list_materials` -- the structure catalogue and its zone axes.
- :func:`generate_library` -- a chunked zarr training library (dask, resumable).

See ``docs/simulation.md`` for the physics and the validation against abTEM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# The lazy names for type checkers and IDEs (``name as name``: a re-export).
if TYPE_CHECKING:
    from .deformation import Deformation as Deformation
    from .engine import SimulationResult as SimulationResult
    from .engine import simulate as simulate
    from .engine import simulate_steps as simulate_steps
    from .library import generate_library as generate_library
    from .library import generate_library_steps as generate_library_steps
    from .library import open_library as open_library
    from .materials import list_materials as list_materials
    from .mix import MixConfig as MixConfig
    from .mix import load_mix as load_mix
    from .mix import random_parameters as random_parameters
    from .parameters import SimulationParameters as SimulationParameters
    from .parameters import estimate_memory_bytes as estimate_memory_bytes

_LAZY = {
    "SimulationParameters": ".parameters",
    "estimate_memory_bytes": ".parameters",
    "SimulationResult": ".engine",
    "simulate": ".engine",
    "simulate_steps": ".engine",
    "random_parameters": ".mix",
    "MixConfig": ".mix",
    "load_mix": ".mix",
    "list_materials": ".materials",
    "generate_library": ".library",
    "generate_library_steps": ".library",
    "open_library": ".library",
    "Deformation": ".deformation",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
