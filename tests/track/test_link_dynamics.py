"""Linking (two-stage, laptrack, trackpy), jumps, MSD and residence times on exact tracks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_atomseg.errors import InputError
from napari_atomseg.track.dynamics import (
    detect_jumps,
    jump_threshold_px,
    msd,
    residence_times,
    track_features,
)
from napari_atomseg.track.linking import link


def _lattice_movie(n_frames=8, seed=0):
    """A 12 x 12 square lattice (9 px) that sits still, one bright atom hopping 16 px at
    frames 3 and 6, and one column missing in frames 4-5."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(12) * 9.0, np.arange(12) * 9.0, indexing="ij"), -1)
    grid = grid.reshape(-1, 2)
    rows = []
    for t in range(n_frames):
        for k, p in enumerate(grid):
            if k == 50 and t in (4, 5):
                continue
            q = p + rng.normal(0, 0.15, 2)
            rows.append((t, q[0], q[1], 0.8, 1.0, f"col{k}"))
        rows.append((t, 40.5 + 16.0 * ((t >= 3) + (t >= 6)), 40.5, 0.97, 4.0, "atom"))
    return pd.DataFrame(rows, columns=["frame", "y", "x", "confidence", "intensity", "truth"])


@pytest.mark.parametrize("linker", ["two-stage", "laptrack"])
def test_columns_hops_and_gaps_are_linked(linker):
    df = _lattice_movie()
    ids = link(df, 20.0, gap_frames=3, linker=linker, brightness="intensity")
    df["track_id"] = ids
    # One track per true object: the atom's hops and the missing column's gap are joined.
    per_object = df.groupby("truth")["track_id"].nunique()
    if linker == "two-stage":
        assert (per_object == 1).all()
        assert df.groupby("track_id")["truth"].nunique().max() == 1
    else:
        assert per_object["atom"] == 1


def test_trackpy_alone_with_a_short_radius_misses_hops():
    df = _lattice_movie()
    ids = link(df, 3.0, gap_frames=3, linker="trackpy")
    assert pd.Series(ids[df["truth"] == "atom"]).nunique() == 3  # three pieces
    assert pd.Series(ids[df["truth"] == "col50"]).nunique() == 1  # memory closes the gap


def test_link_errors_and_empty():
    df = _lattice_movie(2)
    with pytest.raises(InputError, match="linker"):
        link(df, 5.0, linker="nearest")
    with pytest.raises(InputError, match="max_distance_px"):
        link(df, 0.0)
    assert len(link(df.iloc[:0], 5.0)) == 0


def _tracks():
    # Track 0: still at (10, 10) for frames 0-3, jumps 8 px, stays frames 4-9.
    # Track 1: moves 1 px per frame along x (MSD = lag^2).
    rows = [(0, t, 10.0, 10.0 + (8.0 if t >= 4 else 0.0), 0.9) for t in range(10)]
    rows += [(1, t, 50.0, 20.0 + t, 0.8) for t in range(6)]
    return pd.DataFrame(rows, columns=["track_id", "frame", "y_corr_px", "x_corr_px", "confidence"])


def test_jumps_msd_residence_features():
    tracks = _tracks()
    jumps = detect_jumps(tracks, threshold_px=4.0, pixel_size_nm=0.02)
    assert len(jumps) == 1
    j = jumps.iloc[0]
    assert (j.track_id, j.frame_from, j.frame_to) == (0, 3, 4)
    assert j.distance_px == pytest.approx(8.0) and j.distance_nm == pytest.approx(0.16)
    m = msd(tracks[tracks.track_id == 1], max_lag=3)
    np.testing.assert_allclose(m["msd_px2"], [1.0, 4.0, 9.0])
    np.testing.assert_array_equal(m["n_pairs"], [5, 4, 3])
    stays = residence_times(tracks, jumps)
    t0 = stays[stays.track_id == 0]
    assert list(t0["frames"]) == [4, 6] and t0["censored"].all()
    feats = track_features(tracks, jumps, pixel_size_nm=0.02, frame_time_s=0.5).set_index(
        "track_id"
    )
    assert feats.loc[0, "n_jumps"] == 1 and feats.loc[1, "n_jumps"] == 0
    assert feats.loc[0, "lifetime_frames"] == 10 and feats.loc[0, "lifetime_s"] == 5.0
    # MSD = lag^2 over lags 1-4: slope 5 -> D = 1.25 px^2/frame.
    assert feats.loc[1, "diffusion_px2_per_frame"] == pytest.approx(1.25)
    assert feats.loc[1, "diffusion_nm2_per_s"] == pytest.approx(1.25 * 0.02**2 / 0.5)


def test_jump_threshold_crystal_and_amorphous():
    rng = np.random.default_rng(1)
    lattice = pd.DataFrame(
        {"frame": np.repeat([0, 1], 50), "nn_spacing_px": rng.normal(9.0, 0.2, 100)}
    )
    assert jump_threshold_px(lattice, 0.02) == (pytest.approx(4.5, abs=0.1), "crystal")
    scattered = lattice.assign(nn_spacing_px=rng.uniform(3, 30, 100))
    assert jump_threshold_px(scattered, 0.02) == (pytest.approx(5.0), "amorphous")
    assert jump_threshold_px(scattered, 0.02, jump_threshold_nm=0.2)[0] == pytest.approx(10.0)
    with pytest.raises(InputError, match="support"):
        jump_threshold_px(lattice, 0.02, support="liquid")


def test_peak_intensity_ranks_columns_and_holds_under_noise():
    from napari_atomseg.track.detect import peak_intensity
    from tests._synth import render_columns

    centres = np.array([[20.0, 20.0], [20.0, 44.0], [44.0, 30.0]])
    clean = render_columns((64, 64), centres, 2.0, amplitude=[4.0, 1.0, 1.0], background=1.0)
    cols = pd.DataFrame({"y_px": centres[:, 0], "x_px": centres[:, 1]})
    peak = peak_intensity(clean, cols, 0.02)
    assert (peak >= 0).all()
    assert peak[0] / peak[1] == pytest.approx(4.0, rel=0.15)  # height above the floor
    assert peak[1] == pytest.approx(peak[2], rel=1e-6)
    # Dark-contrast frames (columns dark) are inverted: the same ranking.
    dark = peak_intensity(5.0 - clean, cols, 0.02, dark=True)
    np.testing.assert_allclose(dark, peak, rtol=1e-5)
    # Shot noise moves the brightness of one column by a fraction, frame after frame.
    rng = np.random.default_rng(0)
    values = [peak_intensity(rng.poisson(clean * 20) / 20.0, cols, 0.02)[0] for _ in range(20)]
    assert np.ptp(np.log(values)) < 0.5
    assert len(peak_intensity(clean, cols.iloc[:0], None)) == 0


def test_a_hop_is_joined_when_the_fitted_integral_swings():
    """At low dose a single atom's fitted integral jumps by e^3 between frames; the peak
    brightness does not. Linked on the peak, the hopping atom stays one track."""
    df = _lattice_movie()
    atom = (df["truth"] == "atom").to_numpy()
    swing = np.where(np.arange(len(df)) % 2 == 0, np.exp(3.0), np.exp(-1.0))
    df["fitted"] = np.where(atom, 4.0 * swing, 1.0)
    df["peak"] = np.where(atom, 4.0, 1.0)
    on_peak = link(df, 20.0, gap_frames=3, brightness="peak")
    on_fit = link(df, 20.0, gap_frames=3, brightness="fitted")
    assert pd.Series(on_peak[atom]).nunique() == 1
    assert pd.Series(on_fit[atom]).nunique() > 1


def test_still_segments_make_the_links_trackpy_makes():
    """The first stage's own matching against trackpy.link with the same radius and no
    memory: a jittered lattice with drop-outs, extra detections and crowded pairs."""
    from napari_atomseg.track.linking import _trackpy, still_segments

    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.arange(15) * 6.0, np.arange(15) * 6.0, indexing="ij"), -1)
    grid = grid.reshape(-1, 2)
    rows = []
    for t in range(12):
        keep = rng.random(len(grid)) > 0.05  # columns drop out of detection
        pts = grid[keep] + rng.normal(0, 0.8, (keep.sum(), 2))
        extra = rng.uniform(0, 84, (6, 2))  # spurious detections, some crowding a column
        for y, x in np.r_[pts, extra]:
            rows.append((t, y, x))
    table = pd.DataFrame(rows, columns=["frame", "y", "x"])
    table["row"] = np.arange(len(table))

    def links(ids):
        order = np.lexsort((table["frame"].to_numpy(), ids))
        same = ids[order][1:] == ids[order][:-1]
        return set(zip(order[:-1][same].tolist(), order[1:][same].tolist()))

    ours = links(still_segments(table, 3.0))
    assert len(ours) > 2000
    assert ours == links(_trackpy(table, 3.0, 0))
