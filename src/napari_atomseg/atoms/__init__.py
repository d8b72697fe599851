"""Atomic columns: network heatmap -> peaks -> refined positions; point metrics.

Public API (imported lazily; ``import napari_atomseg.atoms`` does not import torch)::

    find_atoms(image, pixel_size_nm=None, model="default", **options) -> pandas.DataFrame
    iter_find_atoms(...)                      # generator form (yields Progress)
    predict_heatmap(image, pixel_size_nm=None, model="default") -> HeatmapResult
    heatmap_to_atoms(result, options=None, **overrides) -> DataFrame   # post-processing only
    FinderOptions(threshold=..., refine=..., ...)   # every option, typed and checked
    labels_for(result, atoms) -> int32 column instance labels
    point_metrics(predicted_px, true_px, radius_px= | radius_nm= | radius_fraction_of_spacing=)

Modules, in pipeline order: ``options`` (FinderOptions, card defaults), ``heatmap`` (the
network), ``evidence`` (what the image shows at the column scale), ``candidates`` (heatmap
peaks the image confirms), ``positions`` (sub-pixel refinement on the image), ``table``
(the output), ``find`` (the chain and the choice of polarity); helpers ``peaks``,
``refine``, ``labels``, ``spacing``, ``imaging``; ``metrics``, ``training`` (AtomsTask).
The classical baselines the benchmarks compare against live in ``benchmarks/lib``. See
docs/atoms.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# The lazy names for type checkers and IDEs (``name as name``: a re-export).
if TYPE_CHECKING:
    from .find import find_atoms as find_atoms
    from .find import heatmap_to_atoms as heatmap_to_atoms
    from .find import iter_find_atoms as iter_find_atoms
    from .find import labels_for as labels_for
    from .heatmap import HeatmapResult as HeatmapResult
    from .heatmap import iter_predict_heatmap as iter_predict_heatmap
    from .heatmap import predict_heatmap as predict_heatmap
    from .metrics import PointMetrics as PointMetrics
    from .metrics import match_points as match_points
    from .metrics import point_metrics as point_metrics
    from .options import FinderOptions as FinderOptions
    from .training import AtomsTask as AtomsTask

_LAZY = {
    "find_atoms": ".find",
    "iter_find_atoms": ".find",
    "heatmap_to_atoms": ".find",
    "labels_for": ".find",
    "predict_heatmap": ".heatmap",
    "iter_predict_heatmap": ".heatmap",
    "HeatmapResult": ".heatmap",
    "FinderOptions": ".options",
    "point_metrics": ".metrics",
    "match_points": ".metrics",
    "PointMetrics": ".metrics",
    "AtomsTask": ".training",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
