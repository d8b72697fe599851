"""Contamination and nanoparticle segmentation: U-Net and Bragg-filter masks.

Public API (imported lazily, so ``napari-atomseg --help`` stays fast)::

    from napari_atomseg.segmentation import segment
    labels, class_names = segment(image, pixel_size_nm=None, task="contamination",
                                  method="bragg")
    # napari_atomseg.segment(image, ...) is the same function.

Modules: :mod:`.api` (``segment`` / ``iter_segment``), :mod:`.preprocess` (flat-field,
spikes, standardisation), :mod:`.bragg` (the classical Bragg filter), :mod:`.cleanup`
(smoothing, small regions, holes), :mod:`.metrics` (accuracy, Jaccard, F1 ...),
:mod:`.sorting` (rank images by clean-lattice fraction), :mod:`.data` (the real graphene
set and k-fold splits), :mod:`.training` (the U-Net's training task).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# The lazy names for type checkers and IDEs (``name as name``: a re-export).
if TYPE_CHECKING:
    from .api import CleanupOptions as CleanupOptions
    from .api import SegmentationResult as SegmentationResult
    from .api import iter_segment as iter_segment
    from .api import segment as segment
    from .bragg import BraggParameters as BraggParameters
    from .bragg import BraggResult as BraggResult
    from .bragg import bragg_filter as bragg_filter
    from .classes import TASK_CLASSES as TASK_CLASSES
    from .metrics import MaskScores as MaskScores
    from .metrics import pooled as pooled
    from .metrics import summarise as summarise
    from .preprocess import PreprocessOptions as PreprocessOptions
    from .sorting import rank_images as rank_images

_LAZY = {
    "segment": ".api",
    "iter_segment": ".api",
    "SegmentationResult": ".api",
    "CleanupOptions": ".api",
    "TASK_CLASSES": ".classes",
    "BraggParameters": ".bragg",
    "BraggResult": ".bragg",
    "bragg_filter": ".bragg",
    "MaskScores": ".metrics",
    "pooled": ".metrics",
    "summarise": ".metrics",
    "PreprocessOptions": ".preprocess",
    "rank_images": ".sorting",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
