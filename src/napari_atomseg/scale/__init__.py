"""One physical pixel-size estimate per image, shared by every tool.

Public API (imported lazily; no torch)::

    from napari_atomseg.scale import estimate_image_scale
    scale = estimate_image_scale(image)              # or material="graphene"
    scale.pixel_size_nm, scale.source, scale.confidence, scale.describe()

Modules: :mod:`.spectrum` (spots and rings of the power spectrum), :mod:`.reflections`
(the spacings each catalogue material shows along its zone axes), :mod:`.estimate` (the
match, the fall-backs, :class:`~.estimate.ImageScale`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# The lazy names for type checkers and IDEs (``name as name``: a re-export).
if TYPE_CHECKING:
    from .estimate import SCALE_METADATA_KEY as SCALE_METADATA_KEY
    from .estimate import ImageScale as ImageScale
    from .estimate import estimate_image_scale as estimate_image_scale
    from .estimate import scale_from_metadata as scale_from_metadata
    from .reflections import material_names as material_names

_LAZY = {
    "estimate_image_scale": ".estimate",
    "ImageScale": ".estimate",
    "SCALE_METADATA_KEY": ".estimate",
    "scale_from_metadata": ".estimate",
    "material_names": ".reflections",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
