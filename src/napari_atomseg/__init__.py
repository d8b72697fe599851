"""napari-atomseg: atomic columns, contamination and nanoparticles in electron micrographs.

The public Python API is small and imported lazily, so ``import napari_atomseg`` pulls in
neither torch nor Qt:

- :func:`read_image` -- any supported file -> ``(array, Calibration)``
- :func:`simulate` / :class:`SimulationParameters` -- synthetic micrographs with ground truth
- :func:`find_atoms` -- atomic columns as a pandas DataFrame
- :func:`segment` -- contamination / nanoparticle label masks
- :func:`track_atoms` / :func:`register_stack` -- movies: atoms tracked across frames, drift
- :func:`analyse_lattice` -- sublattices, strain, polarisation, intensities of the columns
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

# The lazy names for type checkers and IDEs (``name as name``: a re-export).
if TYPE_CHECKING:
    from .atoms import find_atoms as find_atoms
    from .io import Calibration as Calibration
    from .io import read_image as read_image
    from .lattice import analyse_lattice as analyse_lattice
    from .segmentation import segment as segment
    from .simulation import SimulationParameters as SimulationParameters
    from .simulation import simulate as simulate
    from .track import register_stack as register_stack
    from .track import track_atoms as track_atoms

__version__ = "0.1.0"

_LAZY = {
    "read_image": "napari_atomseg.io",
    "Calibration": "napari_atomseg.io",
    "simulate": "napari_atomseg.simulation",
    "SimulationParameters": "napari_atomseg.simulation",
    "find_atoms": "napari_atomseg.atoms",
    "segment": "napari_atomseg.segmentation",
    "track_atoms": "napari_atomseg.track",
    "register_stack": "napari_atomseg.track",
    "analyse_lattice": "napari_atomseg.lattice",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY, extra=("__version__",))
