"""Lattice analysis of found columns: sublattices, strain, polarisation, intensities.

Public API (imported lazily; nothing here imports Qt)::

    analyse_lattice(atoms, image=None, pixel_size_nm=None, reference=None, **options)
    iter_analyse_lattice(...)          # generator form (yields Progress)
    LatticeOptions                     # the options, declared once
    lattice_maps(table, shape_px)      # per-column values -> interpolated maps
    region_means(table, region)        # means per sublattice in a region

Modules, one job each: ``cell`` (cell vectors from the neighbour-vector histogram),
``indexing`` ((h, k) by unwrapping from a seed), ``sublattices``, ``strain`` (F = R U,
errors), ``displacement``, ``intensity``, ``distortion`` (scan distortion), ``maps``,
``regions``, ``api``, ``_cli``. See docs/lattice.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# The lazy names for type checkers and IDEs (``name as name``: a re-export).
if TYPE_CHECKING:
    from .api import RESULT_COLUMNS as RESULT_COLUMNS
    from .api import analyse_lattice as analyse_lattice
    from .api import iter_analyse_lattice as iter_analyse_lattice
    from .maps import LatticeMaps as LatticeMaps
    from .maps import lattice_maps as lattice_maps
    from .options import LatticeOptions as LatticeOptions
    from .regions import region_means as region_means

_LAZY = {
    "analyse_lattice": ".api",
    "iter_analyse_lattice": ".api",
    "RESULT_COLUMNS": ".api",
    "LatticeOptions": ".options",
    "lattice_maps": ".maps",
    "LatticeMaps": ".maps",
    "region_means": ".regions",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
