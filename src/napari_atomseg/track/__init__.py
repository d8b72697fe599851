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

from .._lazy import lazy_exports

_LAZY = {
    "track_atoms": ".api",
    "iter_track_stack": ".api",
    "register_stack": ".api",
    "TrackingResult": ".api",
    "register": ".register",
    "iter_register": ".register",
    "Registration": ".register",
    "registered_average": ".register",
    "iter_registered_average": ".register",
    "aligned_stack": ".register",
    "link": ".link",
    "detect_jumps": ".dynamics",
    "msd": ".dynamics",
    "residence_times": ".dynamics",
    "track_features": ".dynamics",
    "score_links": ".metrics",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
