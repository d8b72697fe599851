"""Lazy stacks: TIFF / MRC / HSPY opened without reading the frames, absolute frame ranges."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import tifffile

from napari_atomseg.errors import FileReadError, InputError
from napari_atomseg.io.stack import as_stack, open_stack, parse_frame_range
from tests._data import shared_path


@pytest.fixture
def frames():
    return np.random.default_rng(0).integers(0, 1000, (7, 32, 40)).astype(np.uint16)


def test_imagej_tiff_is_lazy_with_time_and_pixel_size(tmp_path, frames):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(
        path,
        frames,
        imagej=True,
        resolution=(50, 50),
        metadata={"unit": "nm", "finterval": 0.5, "axes": "TYX"},
    )
    stack = open_stack(path)
    assert hasattr(stack.data, "dask")  # a dask array: nothing read yet
    assert stack.shape == (7, 32, 40) and stack.data.chunks[0] == (1,) * 7
    assert stack.pixel_size_nm == pytest.approx(0.02)
    assert stack.frame_time_s == pytest.approx(0.5)
    np.testing.assert_array_equal(stack.frame(3), frames[3])


def test_tiff_of_pages_written_one_frame_at_a_time(tmp_path, frames):
    # Each frame written as a (1, rows, cols) array: tifffile reports (7, 1, 32, 40).
    path = tmp_path / "movie.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for frame in frames:
            tif.write(frame[None], contiguous=True)
    stack = open_stack(path)
    assert stack.shape == (7, 32, 40) and stack.data.chunks[0] == (1,) * 7
    np.testing.assert_array_equal(stack.frame(5), frames[5])


def test_contiguous_files_are_read_one_frame_at_a_time(tmp_path, frames, monkeypatch):
    # dask.array.from_array on a memory map copied the whole file when the stack was opened
    # (a 2 GB movie took 4 GB); frames are now read with file reads when used.
    from napari_atomseg.io import stack as stack_module

    read = []
    original = stack_module._FileFrames._read

    def counting_read(self, frames):
        if len(frames):  # dask asks for an empty slice to learn the dtype
            read.append(list(frames))
        return original(self, frames)

    monkeypatch.setattr(stack_module._FileFrames, "_read", counting_read)
    tif, mrc = tmp_path / "movie.tif", tmp_path / "movie.mrcs"
    tifffile.imwrite(tif, frames)
    with mrcfile.new(mrc) as m:
        m.set_data(frames.astype(np.float32))
    for path in (tif, mrc):
        read.clear()
        stack = open_stack(path)
        assert read == []
        np.testing.assert_array_equal(stack.frame(4), frames[4])
        assert read == [[4]]
    read.clear()
    stack = as_stack(np.memmap(tmp_path / "raw.dat", frames.dtype, "w+", shape=frames.shape))
    assert read == [] and stack.frame(2).shape == frames.shape[1:] and read == [[2]]


def test_truncated_contiguous_tiff_names_the_frame(tmp_path, frames):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, frames)
    with tifffile.TiffFile(path) as tif:
        start = tif.series[0].dataoffset
    stack = open_stack(path)
    with open(path, "r+b") as f:
        f.truncate(start + int(6.5 * frames[0].nbytes))
    with pytest.raises(FileReadError, match="frame 6 is cut short"):
        stack.frame(6)


def test_frame_range_keeps_absolute_numbers(tmp_path, frames):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, frames)
    stack = open_stack(path, "2:6")
    assert list(stack.frame_indices) == [2, 3, 4, 5]
    np.testing.assert_array_equal(stack.frame(0), frames[2])
    again = stack.select("3:5")  # absolute numbers again, not relative ones
    assert list(again.frame_indices) == [3, 4]
    np.testing.assert_array_equal(again.frame(1), frames[4])
    strided = open_stack(path).select("1:7:3")
    assert list(strided.frame_indices) == [1, 4]
    np.testing.assert_array_equal(strided.frame(1), frames[4])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2:5", range(2, 5)),
        (":3", range(0, 3)),
        ("4", range(4, 5)),
        ("-2:", range(8, 10)),
        ("0:10:4", range(0, 10, 4)),
    ],
)
def test_parse_frame_range(text, expected):
    assert parse_frame_range(text, 0, 10) == expected


@pytest.mark.parametrize("text", ["5:2", "a:b", "0:11", "1:2:0", "1:2:3:4", ""])
def test_bad_frame_ranges_are_input_errors(text):
    with pytest.raises(InputError, match="frames"):
        parse_frame_range(text, 0, 10)


def test_mrc_stack_is_lazy_with_pixel_size(tmp_path, frames):
    path = tmp_path / "movie.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(frames.astype(np.float32))
        mrc.voxel_size = 1.5  # Angstrom
    stack = open_stack(path)
    assert stack.pixel_size_nm == pytest.approx(0.15)
    np.testing.assert_array_equal(stack.frame(6), frames[6].astype(np.float32))


def test_arrays_and_errors(tmp_path, frames):
    stack = as_stack(frames, pixel_size_nm=0.05)
    assert stack.pixel_size_nm == 0.05 and len(stack) == 7
    with pytest.raises(InputError, match="3-D"):
        as_stack(frames[0])
    with pytest.raises(FileReadError, match="no such file"):
        open_stack(tmp_path / "missing.tif")
    (tmp_path / "x.png").write_bytes(b"png")
    with pytest.raises(FileReadError, match="unsupported"):
        open_stack(tmp_path / "x.png")


@pytest.mark.shared_data
def test_real_hyperspy_series_opens_lazily():
    path = shared_path("real_panel", "06_sto_abf_5frame_series.hspy")
    stack = open_stack(path, "1:4")
    assert stack.shape == (3, 512, 512)
    assert stack.pixel_size_nm == pytest.approx(0.0092024, rel=1e-4)
    assert list(stack.frame_indices) == [1, 2, 3]
    assert stack.frame(0).dtype == np.uint16
