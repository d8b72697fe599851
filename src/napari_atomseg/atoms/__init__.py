"""Atomic columns: network heatmap -> peaks -> refined positions; point metrics; baselines.

Public API (imported lazily; ``import napari_atomseg.atoms`` does not import torch)::

    find_atoms(image, pixel_size_nm=None, model="default", **options) -> pandas.DataFrame
    iter_find_atoms(...)                      # generator form (yields Progress)
    predict_heatmap(image, pixel_size_nm=None, model="default") -> HeatmapResult
    heatmap_to_atoms(result, threshold=..., min_separation_nm=..., refine=...) -> DataFrame
    labels_for(result, atoms) -> int32 column instance labels
    point_metrics(predicted_px, true_px, radius_px= | radius_nm= | radius_fraction_of_spacing=)

Modules: ``peaks`` (NMS), ``refine`` (centre of mass, 2-D Gaussian), ``hough``, ``labels``,
``spacing``, ``metrics``, ``baselines``, ``training`` (AtomsTask), ``detect``. See
docs/atoms.md.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    "find_atoms": ".detect",
    "iter_find_atoms": ".detect",
    "predict_heatmap": ".detect",
    "iter_predict_heatmap": ".detect",
    "heatmap_to_atoms": ".detect",
    "labels_for": ".detect",
    "HeatmapResult": ".detect",
    "point_metrics": ".metrics",
    "match_points": ".metrics",
    "PointMetrics": ".metrics",
    "BASELINES": ".baselines",
    "AtomsTask": ".training",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
