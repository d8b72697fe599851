"""Movies: drift registration, atoms tracked across frames, and their dynamics.

Public API (imported lazily; ``import napari_atomseg.track`` imports neither torch nor
laptrack)::

    track_atoms(frames, pixel_size_nm=None, **options) -> pandas.DataFrame
    iter_track_stack(...)            # generator form, returns a TrackingResult
    register_stack(frames) -> (drift_px, aligned)
    register / iter_register(stack)  # the Registration (drift table, reliability)
    registered_average(stack, registration) -> (average, count)
    link(positions, max_distance_px, gap_frames, linker="laptrack")
    detect_jumps, msd, residence_times, track_features
    score_links(tracks, truth, radius_px)   # against known trajectories

Modules: ``register`` (phase correlation), ``nonrigid`` (tile-wise residual drift),
``detect`` (the atom finder on every frame), ``link`` (laptrack / trackpy),
``dynamics``, ``metrics``, ``api``. See docs/tracking.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# The lazy names for type checkers and IDEs (``name as name``: a re-export).
if TYPE_CHECKING:
    from .api import TrackingResult as TrackingResult
    from .api import iter_track_stack as iter_track_stack
    from .api import register_stack as register_stack
    from .api import track_atoms as track_atoms
    from .dynamics import detect_jumps as detect_jumps
    from .dynamics import msd as msd
    from .dynamics import residence_times as residence_times
    from .dynamics import track_features as track_features
    from .linking import link as link
    from .metrics import score_links as score_links
    from .registration import Registration as Registration
    from .registration import aligned_stack as aligned_stack
    from .registration import iter_register as iter_register
    from .registration import iter_registered_average as iter_registered_average
    from .registration import register as register
    from .registration import registered_average as registered_average

_LAZY = {
    "track_atoms": ".api",
    "iter_track_stack": ".api",
    "register_stack": ".api",
    "TrackingResult": ".api",
    "register": ".registration",
    "iter_register": ".registration",
    "Registration": ".registration",
    "registered_average": ".registration",
    "iter_registered_average": ".registration",
    "aligned_stack": ".registration",
    "link": ".linking",
    "detect_jumps": ".dynamics",
    "msd": ".dynamics",
    "residence_times": ".dynamics",
    "track_features": ".dynamics",
    "score_links": ".metrics",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
