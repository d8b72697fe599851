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

from .._lazy import lazy_exports

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
