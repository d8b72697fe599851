"""Batch CLIs on a real Dask cluster (``dask scheduler`` + ``dask worker`` on localhost):
identical results to the in-process run, resume, and the ``track`` command's outputs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import napari_atomseg
from napari_atomseg.cli import main
from napari_atomseg.io import Calibration, read_image, write_image_tiff
from napari_atomseg.simulation import SimulationParameters
from napari_atomseg.simulation.movie import MovieParameters, simulate_movie
from tests._models import export_tiny_atoms_model
from tests._synth import hex_lattice_px, render_columns

PS = 0.025


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return export_tiny_atoms_model(tmp_path_factory.mktemp("model"), "atoms_dask_test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A real scheduler and two one-thread workers in their own processes."""
    dask = Path(sys.executable).parent / "dask"
    if not dask.exists():
        pytest.skip("the dask command line is not installed beside this Python")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [
                str(Path(napari_atomseg.__file__).parents[1]),
                str(Path(__file__).parents[2]),
                os.environ.get("PYTHONPATH", ""),
            ]
        ),
    }
    procs = [
        subprocess.Popen(
            [str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    procs.append(
        subprocess.Popen(
            [str(dask), "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    try:
        from dask.distributed import Client

        deadline = time.monotonic() + 90
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _images(folder: Path) -> Path:
    folder.mkdir()
    for seed in range(4):
        rng = np.random.default_rng(seed)
        true = hex_lattice_px((96, 96), 0.25 / PS, margin_px=2, seed=seed)
        image = rng.poisson(render_columns((96, 96), true, 0.04 / PS, 200, 20)).astype(np.float32)
        write_image_tiff(folder / f"img{seed}.tif", image, Calibration.from_pixel_size_nm(PS))
    return folder


def test_atoms_on_a_cluster_equals_in_process(tmp_path, tiny_model, cluster, capsys):
    images = _images(tmp_path / "images")
    common = [str(images), "--model", str(tiny_model.path), "--threshold", "0.05"]
    assert main(["atoms", *common, "--out", str(tmp_path / "here")]) == 0
    assert main(["atoms", *common, "--out", str(tmp_path / "there"), "--scheduler", cluster]) == 0
    for k in range(4):
        here = (tmp_path / "here" / f"img{k}_atoms.csv").read_bytes()
        assert here == (tmp_path / "there" / f"img{k}_atoms.csv").read_bytes()
    # Resume: one output lost, a re-run on the cluster redoes that one only.
    (tmp_path / "there" / "img2_atoms.csv").unlink()
    capsys.readouterr()
    assert main(["atoms", *common, "--out", str(tmp_path / "there"), "--scheduler", cluster]) == 0
    assert "3 already done" in capsys.readouterr().err
    assert (tmp_path / "there" / "img2_atoms.csv").read_bytes() == (
        tmp_path / "here" / "img2_atoms.csv"
    ).read_bytes()


def test_segment_on_a_cluster_equals_in_process(tmp_path, cluster):
    images = _images(tmp_path / "images")
    common = [str(images), "--method", "bragg"]
    assert main(["segment", *common, "--out", str(tmp_path / "here")]) == 0
    assert main(["segment", *common, "--out", str(tmp_path / "there"), "--scheduler", cluster]) == 0
    for k in range(4):
        a, _ = read_image(tmp_path / "here" / f"img{k}_labels.tif")
        b, _ = read_image(tmp_path / "there" / f"img{k}_labels.tif")
        np.testing.assert_array_equal(a, b)
    here = pd.read_csv(tmp_path / "here" / "segmentation.csv").drop(columns="labels_file")
    there = pd.read_csv(tmp_path / "there" / "segmentation.csv").drop(columns="labels_file")
    pd.testing.assert_frame_equal(here, there)


@pytest.fixture(scope="module")
def movie_file(tmp_path_factory):
    frame = SimulationParameters(
        material="MoS2", shape_px=(128, 128), pixel_size_nm=0.02, dose_e_per_A2=2e4, seed=1
    )
    movie = simulate_movie(
        MovieParameters(
            frame=frame, n_frames=7, drift_max_nm=0.1, n_hopping_atoms=2, fade_frames=(2, 3)
        )
    )
    path = tmp_path_factory.mktemp("movie") / "movie.tif"
    tifffile.imwrite(
        path,
        movie.frames,
        imagej=True,
        resolution=(50, 50),
        metadata={"unit": "nm", "finterval": 0.25, "axes": "TYX"},
    )
    return path


def test_track_cli_outputs_cluster_and_resume(tmp_path, tiny_model, movie_file, cluster, capsys):
    common = [
        str(movie_file),
        "--model",
        str(tiny_model.path),
        "--threshold",
        "0.05",
        "--frames",
        "1:7",
    ]
    assert main(["track", *common, "--out", str(tmp_path / "here"), "--chunk-frames", "2"]) == 0
    out = tmp_path / "here"
    tracks = pd.read_csv(out / "movie_tracks.csv")
    assert tracks["frame"].min() == 1 and tracks["frame"].max() == 6
    assert {"track_id", "frame", "time_s", "y_px", "x_px", "y_nm", "x_nm", "confidence"} <= set(
        tracks
    )
    drift = pd.read_csv(out / "movie_drift.csv")
    assert list(drift["frame"]) == [1, 2, 3, 4, 5, 6] and drift["drift_y_px"].iloc[0] == 0
    np.testing.assert_allclose(drift["time_s"], np.arange(6) * 0.25)
    average, cal = read_image(out / "movie_average.tif")
    assert average.shape == (128, 128) and cal.pixel_size_nm == pytest.approx(0.02)
    summary = pd.read_csv(out / "track_summary.csv")
    assert summary.loc[0, "frames"] == 6 and summary.loc[0, "first_frame"] == 1
    # The same on the cluster (frame chunks as tasks): identical tracks.
    assert (
        main(
            [
                "track",
                *common,
                "--out",
                str(tmp_path / "there"),
                "--chunk-frames",
                "2",
                "--scheduler",
                cluster,
            ]
        )
        == 0
    )
    there = pd.read_csv(tmp_path / "there" / "movie_tracks.csv")
    pd.testing.assert_frame_equal(tracks, there)
    # Resume: the stack is done, a re-run skips it; --overwrite redoes it.
    capsys.readouterr()
    assert main(["track", *common, "--out", str(out), "--chunk-frames", "2"]) == 0
    assert "already done" in capsys.readouterr().err


def test_track_cli_errors(tmp_path, capsys):
    assert main(["track", str(tmp_path / "nothing.tif"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["track", str(tmp_path), "--out", str(tmp_path / "o"), "--scheduler", "moon"]) == 2
    assert main(["track", str(tmp_path), "--out", str(tmp_path / "o"), "--material", "cheese"]) == 2
    assert "--material" in capsys.readouterr().err


def test_track_cli_passes_the_material_to_the_finder():
    import argparse

    from napari_atomseg.track._cli import _options, configure

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["stack.tif", "--out", "o", "--material", "MoS2"])
    assert _options(args)["material"] == "MoS2"
    assert "material" not in _options(parser.parse_args(["stack.tif", "--out", "o"]))
