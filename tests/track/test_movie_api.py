"""Simulated movies (known trajectories) and track_atoms / register_stack end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import napari_atomseg
from napari_atomseg.errors import InputError
from napari_atomseg.simulation import SimulationParameters
from napari_atomseg.simulation.movie import (
    MovieParameters,
    hollow_sites,
    noise_free_frame,
    plan_movie,
    simulate_movie,
)
from napari_atomseg.track.metrics import inside, score_links

FRAME = SimulationParameters(
    material="MoS2", shape_px=(160, 160), pixel_size_nm=0.02, dose_e_per_A2=2e4, seed=4
)


@pytest.fixture(scope="module")
def movie():
    return simulate_movie(
        MovieParameters(
            frame=FRAME,
            n_frames=8,
            drift_max_nm=0.15,
            n_hopping_atoms=3,
            hop_probability=0.2,
            fade_frames=(2, 3),
        )
    )


def test_movie_truth(movie):
    t = movie.truth
    assert movie.frames.shape == (8, 160, 160) and movie.frames.dtype == np.float32
    assert np.allclose(movie.drift_px[0], 0) and np.hypot(*movie.drift_px.T).max() == pytest.approx(
        7.5
    )
    atoms = t[t.kind == "single_atom"]
    assert atoms.object_id.nunique() == 3 and (atoms.site >= 0).all()
    # The same column moves exactly with the drift.
    col = t[t.kind == "column"].object_id.iloc[0]
    c = t[t.object_id == col].set_index("frame")
    np.testing.assert_allclose(
        c[["y_px", "x_px"]].to_numpy() - c[["y_px", "x_px"]].to_numpy()[0],
        movie.drift_px[c.index],
        atol=1e-9,
    )
    # Visible columns that fade are invisible for 2-3 frames (S2 columns, too faint at
    # this dose, are never visible).
    cols = t[t.kind == "column"]
    seen = cols.groupby("object_id")["visible"].any()
    hidden = cols[~cols.visible & cols.object_id.isin(seen[seen].index)].groupby("object_id").size()
    assert len(hidden) and hidden.max() <= 3


def test_noise_free_frames_are_shifted_copies():
    """The drift is an exact shift of the content: registration of noise-free frames
    recovers it to 0.02 px (steps below half the lattice period: a perfect lattice has
    nothing else to tell its periods apart)."""
    from napari_atomseg.io.stack import as_stack
    from napari_atomseg.track.registration import register

    plan = plan_movie(
        MovieParameters(
            frame=FRAME, n_frames=4, drift_max_nm=0.08, n_hopping_atoms=0, fading_fraction=0
        )
    )
    frames = np.stack([noise_free_frame(plan, t) for t in range(4)]).astype(np.float32)
    reg = register(as_stack(frames))
    np.testing.assert_allclose(reg.drift_px, plan.drift_px, atol=0.02)


def test_hollow_sites_of_a_honeycomb():
    a = 10.0
    pts = [
        (i * a * 1.5, j * a * np.sqrt(3) + (i % 2) * a * np.sqrt(3) / 2)
        for i in range(8)
        for j in range(8)
    ]
    honeycomb = np.array(pts + [(y + a, x) for y, x in pts])
    sites = hollow_sites(honeycomb, 0.45 * a)
    d = np.min(np.hypot(*(sites[:, None] - honeycomb[None]).transpose(2, 0, 1)), axis=1)
    assert len(sites) and (d >= 0.45 * a).all()


def test_bad_movie_parameters():
    with pytest.raises(InputError, match="haadf"):
        MovieParameters(frame=FRAME.replace(mode="hrtem"))
    with pytest.raises(InputError, match="fade_frames"):
        MovieParameters(frame=FRAME, n_frames=3, fade_frames=(2, 5))


def test_track_atoms_on_a_movie(movie):
    frames = movie.frames
    tracks = napari_atomseg.track_atoms(frames, 0.02, frame_range="1:8", threads=1)
    for name in ("track_id", "frame", "y_px", "x_px", "confidence", "y_nm", "x_nm", "y_corr_px"):
        assert name in tracks
    assert tracks["frame"].min() == 1  # absolute frame numbers with a range
    drift = tracks.attrs["drift_px"]
    assert drift.shape == (7, 2) and np.allclose(drift[0], 0)
    true = movie.drift_px[1:] - movie.drift_px[1]
    assert np.sqrt(((drift - true) ** 2).sum(1).mean()) < 0.2
    np.testing.assert_allclose(tracks["y_nm"], tracks["y_px"] * 0.02)
    truth = inside(movie.truth[movie.truth.frame >= 1], (160, 160), 4)
    scores = score_links(tracks, truth, 3.0)
    assert scores.recall > 0.98 and scores.precision > 0.99


def test_register_stack_public(movie):
    drift, aligned = napari_atomseg.register_stack(movie.frames)
    assert drift.shape == (8, 2) and aligned.shape == movie.frames.shape
    assert np.sqrt(((drift - movie.drift_px) ** 2).sum(1).mean()) < 0.2


def test_frames_found_at_once_give_the_one_thread_tables(movie):
    """Two frames at once in threads (the default in this process) give exactly the
    tables of one frame at a time with one torch thread, in frame order."""
    from napari_atomseg._progress import drain
    from napari_atomseg.io.stack import as_stack
    from napari_atomseg.track.detect import iter_detect_frames

    stack = as_stack(movie.frames[:5])
    one = drain(iter_detect_frames(stack, 0.02, frame_workers=1, threads=1))
    two = drain(iter_detect_frames(stack, 0.02, frame_workers=2))
    assert list(two["frame"].unique()) == [0, 1, 2, 3, 4]
    pd.testing.assert_frame_equal(one, two)
    assert one.attrs["pixel_size_nm"] == two.attrs["pixel_size_nm"] == 0.02


def test_frames_in_flight_stop_when_the_job_is_cancelled(movie):
    """Closing the generator (a cancelled job) returns promptly: frames not started are
    dropped, nothing keeps running in the background."""
    import threading

    from napari_atomseg.io.stack import as_stack
    from napari_atomseg.track.detect import iter_detect_frames

    gen = iter_detect_frames(as_stack(movie.frames), 0.02, frame_workers=2)
    for progress in gen:
        if progress.done >= 2:
            break
    gen.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("atomseg-frames")]
    with pytest.raises(InputError, match="frame_workers"):
        next(iter_detect_frames(as_stack(movie.frames), 0.02, frame_workers=0))
