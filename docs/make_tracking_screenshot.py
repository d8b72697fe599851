"""Redo docs/images/widget_track_atoms.png: the Track atoms widget on a simulated movie.

Usage (needs a display; on a headless machine run it under Xvfb)::

    OMP_NUM_THREADS=2 xvfb-run -a -s "-screen 0 1600x1000x24" \\
        python docs/make_tracking_screenshot.py [--frames 40] [--seed 5]

A 256^2 HAADF movie of MoS2 (drift up to 1 nm, 6 Pt atoms hopping between hollow sites,
2 % of the columns fading, 1e4 e/A^2 per frame) from :mod:`napari_atomseg.simulation.movie`,
tracked with the widget's defaults; the time slider is left on the last frame so each
track's recent history shows, and the overlay text compares the tracks with the known
trajectories.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs"))

from make_widget_screenshots import _save, _text, _viewer, _wait  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    from napari_atomseg.simulation import SimulationParameters
    from napari_atomseg.simulation.movie import MovieParameters, simulate_movie
    from napari_atomseg.track.metrics import inside, score_links

    frame = SimulationParameters(
        material="MoS2", shape_px=(256, 256), pixel_size_nm=0.02, dose_e_per_A2=1e4, seed=args.seed
    )
    movie = simulate_movie(
        MovieParameters(frame=frame, n_frames=args.frames, drift_max_nm=1.0, n_hopping_atoms=6)
    )
    viewer, widget = _viewer("Track atoms")
    layer = viewer.add_image(
        movie.frames, name="MoS2 movie", scale=(1.0, 0.02, 0.02), units=("s", "nm", "nm")
    )
    widget.image.value = layer
    widget.run()
    _wait(widget.panel)
    tracks = viewer.layers["MoS2 movie tracks"]
    viewer.dims.set_point(0, args.frames - 1)
    result_tracks = viewer.layers["MoS2 movie tracks"].metadata
    frame_tracks = _tracks_table(tracks)
    s = score_links(frame_tracks, inside(movie.truth, (256, 256), 4), 3.0)
    _text(
        viewer,
        f"simulated MoS2 movie, {args.frames} frames: links {100 * s.recall:.1f} %, "
        f"hopping Pt atoms {100 * s.moving_recall:.1f} % "
        f"({len(result_tracks['jumps'])} jumps found)",
    )
    _save(viewer, "widget_track_atoms.png")


def _tracks_table(layer):
    import pandas as pd

    d = layer.data
    return pd.DataFrame(
        {
            "track_id": d[:, 0].astype(int),
            "frame": d[:, 1].astype(int),
            "y_px": d[:, 2],
            "x_px": d[:, 3],
        }
    )


if __name__ == "__main__":
    main()
