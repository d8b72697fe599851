"""The zarr library generator: layout, reproducibility, resume, dask LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.errors import FileWriteError, InputError
from napari_atomseg.simulation import MixConfig, generate_library, open_library, simulate
from napari_atomseg.simulation.library import image_parameters

MIX = MixConfig(shape_px=(48, 48), pixel_size_nm_log=(0.02, 0.04))


def test_library_layout_and_contents(tmp_path):
    out = tmp_path / "lib.zarr"
    summary = generate_library(out, 5, MIX, seed=3, scheduler="synchronous", chunk_images=2)
    assert summary.written == 5 and summary.skipped == 0
    lib = open_library(out)
    assert len(lib) == 5 and lib.done.all()
    g = lib.group
    for name, dtype in [
        ("image", "float32"),
        ("image_clean", "float32"),
        ("heatmap", "float32"),
        ("classes", "uint8"),
        ("particle", "uint8"),
        ("column_labels", "int32"),
    ]:
        assert g[name].shape == (5, 48, 48)
        assert str(g[name].dtype) == dtype
        assert g[name].chunks == (2, 48, 48)
    assert lib.attrs["seed"] == 3 and lib.attrs["mix"]["shape_px"] == [48, 48]
    # Image 4 is exactly what simulate() gives for its recipe (depends on seed and i only).
    p = image_parameters(3, 4, MIX)
    assert lib.parameters(4) == p
    direct = simulate(p)
    stored = lib.result(4)
    np.testing.assert_array_equal(stored.image, direct.image)
    np.testing.assert_array_equal(stored.masks["column_labels"], direct.masks["column_labels"])
    assert list(stored.columns.columns) == list(direct.columns.columns)
    assert len(stored.columns) == len(direct.columns)
    np.testing.assert_allclose(stored.columns.x_px, direct.columns.x_px, atol=1e-4)
    assert stored.columns.visible.tolist() == direct.columns.visible.tolist()
    assert stored.pixel_size_nm == pytest.approx(direct.pixel_size_nm)


def test_library_resumes_and_grows(tmp_path):
    out = tmp_path / "lib.zarr"
    generate_library(out, 4, MIX, seed=1, scheduler="synchronous", chunk_images=2)
    lib = open_library(out)
    first = np.asarray(lib.group["image"][1])
    # Pretend chunk 2-3 was interrupted: it is redone, chunk 0-1 is not.
    lib2 = __import__("zarr").open_group(str(out), mode="r+")
    lib2["done"][2:4] = np.zeros(2, bool)
    again = generate_library(out, 6, MIX, seed=1, scheduler="synchronous", chunk_images=2)
    assert again.skipped == 2 and again.written == 4 and again.n_images == 6
    lib = open_library(out)
    assert lib.done.all() and len(lib) == 6
    np.testing.assert_array_equal(np.asarray(lib.group["image"][1]), first)


def test_library_refuses_different_settings(tmp_path):
    out = tmp_path / "lib.zarr"
    generate_library(out, 2, MIX, seed=1, scheduler="synchronous", chunk_images=2)
    with pytest.raises(FileWriteError, match="different seed"):
        generate_library(out, 2, MIX, seed=2, scheduler="synchronous", chunk_images=2)
    with pytest.raises(InputError, match="scheduler"):
        generate_library(tmp_path / "x.zarr", 2, MIX, scheduler="fast")
    with pytest.raises(InputError, match="positive integer"):
        generate_library(tmp_path / "y.zarr", 0, MIX)


@pytest.mark.slow
def test_local_cluster_matches_synchronous(tmp_path):
    pytest.importorskip("distributed")
    a = tmp_path / "sync.zarr"
    b = tmp_path / "cluster.zarr"
    generate_library(a, 4, MIX, seed=9, scheduler="synchronous", chunk_images=1)
    summary = generate_library(b, 4, MIX, seed=9, scheduler="local", workers=2, chunk_images=1)
    assert summary.written == 4
    la, lb = open_library(a), open_library(b)
    for name in ("image", "heatmap", "classes", "column_labels"):
        np.testing.assert_array_equal(np.asarray(la.group[name][:]), np.asarray(lb.group[name][:]))
    assert [str(s) for s in la.group["columns"][:]] == [str(s) for s in lb.group["columns"][:]]


def _arrays(path):
    lib = open_library(path)
    out = {name: np.asarray(lib.group[name][:]) for name in ("image", "heatmap", "classes")}
    out["columns"] = [str(s) for s in lib.group["columns"][:]]
    return out


def test_cli_on_a_dask_local_cluster_is_reproducible_and_resumes(tmp_path, capsys):
    # scheduler "threads": a dask.distributed LocalCluster inside this process (cheap to
    # start); the multi-process cluster is the slow test above.
    pytest.importorskip("distributed")
    from napari_atomseg.cli import main

    args = ["simulate", "--n", "3", "--shape", "32", "32", "--chunk-images", "1", "--seed", "5"]
    ref = tmp_path / "sync.zarr"
    lib = tmp_path / "cluster.zarr"
    assert main([*args, "--out", str(ref), "--scheduler", "synchronous"]) == 0
    assert main([*args, "--out", str(lib), "--scheduler", "threads", "--workers", "2"]) == 0
    assert "3 images (3 written, 0 already done)" in capsys.readouterr().out
    a, b = _arrays(ref), _arrays(lib)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    # Running it again resumes: nothing left to do, no cluster started.
    assert main([*args, "--out", str(lib), "--scheduler", "threads"]) == 0
    assert "(0 written, 3 already done)" in capsys.readouterr().out
    # A bad scheduler is a clear error (exit status 1), not a traceback.
    assert main([*args, "--out", str(tmp_path / "x.zarr"), "--scheduler", "ftp://x"]) == 1
    assert "scheduler: 'ftp://x' is not" in capsys.readouterr().err


def test_library_on_an_existing_scheduler_address(tmp_path):
    # --scheduler tcp://host:port: connect to a running dask.distributed scheduler.
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith(("tcp://", "inproc://"))
        summary = generate_library(tmp_path / "lib.zarr", 2, MIX, seed=4, scheduler=address)
        assert summary.written == 2
    direct = simulate(image_parameters(4, 1, MIX))
    np.testing.assert_array_equal(open_library(tmp_path / "lib.zarr").result(1).image, direct.image)
