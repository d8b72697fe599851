"""What a synthetic training image's *labels* should say where crystal lies under amorphous
material: the lattice must still be seen for a pixel to count as crystal.

The simulation engine's masks are geometric: contamination thicker than 3 A is
"contamination" wherever it lies, and a crystal covered by an amorphous support is
"crystal". For monolayers that is what a microscopist labels (a nanometre of hydrocarbon
hides graphene's lattice; the training task keeps the engine's masks for 2-D materials),
but not for a 20 nm thick SrTiO3 slab under the same nanometre, whose lattice shows
through undimmed -- nor for a thin crystal under a thick film, whose lattice vanishes. :func:`visible_lattice_labels` relabels the crystal's footprint from
the noise-free image instead: the Bragg filter's lattice-fringe amplitude over its
non-periodic residual is the lattice's local signal-to-clutter ratio; a covered pixel is
crystal where that ratio is at least :data:`MIN_VISIBILITY` of its median over the
uncovered crystal of the same image, amorphous where it is not. (In HAADF a nanometre of
hydrocarbon on a heavy crystal barely changes it; in HRTEM of graphene it drops tenfold.)
Vacuum and pure amorphous regions (no crystal beneath) keep their labels.
"""

from __future__ import annotations

import numpy as np

#: A covered crystal pixel still counts as crystal while its lattice signal-to-clutter
#: ratio is at least this fraction of the uncovered crystal's.
MIN_VISIBILITY = 0.5
#: Task labels (contamination mode): crystal, amorphous, vacuum.
CRYSTAL, AMORPHOUS, VACUUM = 0, 1, 2


def visible_lattice_labels(
    image_clean: np.ndarray,
    labels: np.ndarray,
    crystal_footprint: np.ndarray,
    min_visibility: float = MIN_VISIBILITY,
) -> np.ndarray:
    """Labels with the crystal's footprint relabelled by lattice visibility (see module).

    ``image_clean`` is the noise-free simulated image, ``labels`` the contamination-task
    labels (0 crystal, 1 amorphous, 2 vacuum) of the same shape, ``crystal_footprint``
    where a crystal lies (the engine's ``masks["particle"]``). Returns a new array; the
    labels are returned unchanged when the Bragg filter finds no lattice.
    """
    from .bragg import bragg_filter

    footprint = np.asarray(crystal_footprint) > 0
    if not footprint.any():
        return labels
    result = bragg_filter(image_clean)
    if result.peaks.empty or result.lattice_amplitude is None:
        return labels
    ratio = result.lattice_amplitude / np.maximum(result.residual, 1e-6)
    bare = footprint & (np.asarray(labels) == CRYSTAL)
    if bare.sum() < 0.02 * footprint.sum():
        return labels  # no uncovered crystal to compare with
    visible = ratio >= min_visibility * float(np.median(ratio[bare]))
    out = np.array(labels, copy=True)
    solid = footprint & (out != VACUUM)
    out[solid & visible] = CRYSTAL
    out[solid & ~visible] = AMORPHOUS
    return out
