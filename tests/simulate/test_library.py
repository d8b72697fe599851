"""The zarr library generator: layout, reproducibility, resume, dask LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg.errors import FileWriteError, InputError
from napari_atomseg.simulate import MixConfig, generate_library, open_library, simulate
from napari_atomseg.simulate.library import image_parameters

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
