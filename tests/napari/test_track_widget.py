"""The Track atoms widget: a movie layer in, Tracks + Points + average out, plots, errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg._napari.widgets.track import TrackAtomsWidget
from napari_atomseg.simulation import SimulationParameters
from napari_atomseg.simulation.movie import MovieParameters, simulate_movie


@pytest.fixture(scope="module")
def movie():
    # 192 px: on a 128 px field the two hopping atoms hold so much of the non-periodic
    # content that the drift locks onto a hop (docs/tracking.md, limitations).
    frame = SimulationParameters(
        material="MoS2", shape_px=(192, 192), pixel_size_nm=0.02, dose_e_per_A2=2e4, seed=2
    )
    return simulate_movie(
        MovieParameters(
            frame=frame, n_frames=5, drift_max_nm=0.08, n_hopping_atoms=2, fade_frames=(2, 3)
        )
    )


def _wait(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.panel.busy, timeout=timeout)


def test_track_widget_adds_tracks_points_and_average(make_napari_viewer, qtbot, movie):
    viewer = make_napari_viewer()
    image = viewer.add_image(
        movie.frames, name="movie", scale=(1.0, 0.02, 0.02), units=("s", "nm", "nm")
    )
    widget = TrackAtomsWidget(viewer)
    widget.image.value = image
    widget.frame_range.value = "1:5"
    widget.run()
    _wait(qtbot, widget)
    tracks = viewer.layers["movie tracks"]
    points = viewer.layers["movie atoms"]
    assert tracks.data.shape[1] == 4 and points.data.shape[1] == 3
    assert tracks.data[:, 1].min() == 1  # frame numbers of the layer
    np.testing.assert_allclose(tracks.scale, image.scale)
    assert {"confidence", "lifetime_frames", "n_jumps"} <= set(tracks.features)
    drift = tracks.metadata["drift"]
    assert list(drift["frame"]) == [1, 2, 3, 4]
    true = movie.drift_px[1:] - movie.drift_px[1]
    np.testing.assert_allclose(drift[["drift_y_px", "drift_x_px"]].to_numpy(), true, atol=0.3)
    assert "movie registered average" in viewer.layers
    assert "tracks" in widget.panel.status.value
    assert len(widget.plots.axes[0].lines) >= 2  # the drift was plotted


def test_track_widget_refuses_a_single_image(make_napari_viewer, qtbot, movie):
    viewer = make_napari_viewer()
    viewer.add_image(movie.frames[0], name="one frame")
    widget = TrackAtomsWidget(viewer)
    widget.run()
    assert "3-D stack" in widget.panel.status.value


def test_an_uncalibrated_movie_uses_the_layers_shared_estimate(make_napari_viewer, qtbot, movie):
    """No calibration: the widget takes the layer's one pixel-size estimate (made on the
    first frame and kept in its metadata, as Find atoms and Segment regions do); a value
    typed into the panel replaces it for every widget."""
    from napari_atomseg.scale import SCALE_METADATA_KEY

    viewer = make_napari_viewer()
    image = viewer.add_image(movie.frames, name="raw movie")
    widget = TrackAtomsWidget(viewer)
    widget.image.value = image
    # A hexagonal lattice fits graphene as well as MoS2: the material pins the estimate.
    widget.scale.material.value = "MoS2"
    widget.frame_range.value = "0:3"
    widget.run()
    _wait(qtbot, widget)
    stored = image.metadata[SCALE_METADATA_KEY]
    assert stored["material"] == "MoS2"
    assert stored["pixel_size_nm"] == pytest.approx(0.02, rel=0.05)
    assert "raw movie tracks" in viewer.layers
    widget.scale.value.value = 0.025  # the user's value, kept with the layer
    assert image.metadata[SCALE_METADATA_KEY]["pixel_size_nm"] == pytest.approx(0.025)
    assert image.metadata[SCALE_METADATA_KEY]["source"] == "user"
