"""``info`` and ``convert`` sub-commands and the image TIFF writer they use."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from napari_atomseg.errors import FileWriteError, InputError
from napari_atomseg.io import Calibration, _cli_convert, _cli_info, read_image, write_image_tiff
from tests._synth import cosine_pattern
from tests.io._make import write_mrc


def _run(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.configure(parser)
    return module.run(parser.parse_args(argv))


def test_write_image_tiff_round_trip(tmp_path: Path) -> None:
    cal = Calibration.from_pixel_size_nm((0.02, 0.03), voltage_kV=300.0, instrument="Titan")
    for dtype, stored in [(np.uint16, np.uint16), (np.float64, np.float32), (np.int32, np.float32)]:
        out = write_image_tiff(
            tmp_path / f"{np.dtype(dtype).name}.tif", cosine_pattern(dtype=dtype), cal
        )
        image, back = read_image(out)
        assert image.dtype == stored
        np.testing.assert_allclose(image, cosine_pattern(dtype=dtype))
        assert back.pixel_size_yx_nm == pytest.approx((0.02, 0.03), rel=1e-7)
    with pytest.raises(InputError, match="complex"):
        write_image_tiff(tmp_path / "c.tif", np.ones((4, 4), np.complex64))
    with pytest.raises(FileWriteError, match="already exists"):
        write_image_tiff(tmp_path / "uint16.tif", cosine_pattern())


def test_info_prints_the_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_mrc(tmp_path / "good.mrc", cosine_pattern(), 1.5)
    bad = tmp_path / "bad.dm4"
    # a DM4 header announcing a 1000-byte tag tree, but only 100 bytes follow
    bad.write_bytes(
        b"\x00\x00\x00\x04" + (1000).to_bytes(8, "big") + b"\x00\x00\x00\x01" + b"\x00" * 84
    )
    assert _run(_cli_info, [str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "good: 48x64 uint16, 0.15 nm/px" in out
    assert "bad.dm4" in err and "truncated" in err
    assert _run(_cli_info, ["--json", str(good)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["scale"] == pytest.approx([0.15, 0.15])
    assert record["units"] == ["nm", "nm"]


def test_convert_writes_calibrated_tiffs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_mrc(tmp_path / "scan.mrc", cosine_pattern(), 0.8)
    out_dir = tmp_path / "out"
    assert _run(_cli_convert, [str(src), "--out-dir", str(out_dir)]) == 0
    image, cal = read_image(out_dir / "scan.tif")
    np.testing.assert_array_equal(image, cosine_pattern())
    assert cal.pixel_size_nm == pytest.approx(0.08, rel=1e-7)
    # a second run refuses to replace the output unless asked
    assert _run(_cli_convert, [str(src), "--out-dir", str(out_dir)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert _run(_cli_convert, [str(src), "--out-dir", str(out_dir), "--overwrite"]) == 0
