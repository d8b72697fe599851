"""A file the plugin cannot read: its reason is the notification the user sees, not napari's
"try associating a different plugin" wrapper; nothing is raised into napari."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_atomseg._napari.reader import NOTHING, get_reader, read_layers
from napari_atomseg.errors import FileReadError
from tests._synth import cosine_pattern
from tests.io._make import write_imagej_tiff, write_mrc


@pytest.fixture(autouse=True)
def _discovered():
    npe2 = pytest.importorskip("npe2")
    npe2.PluginManager.instance().discover()


def _truncated_dm4(folder: Path) -> Path:
    """A DM4 header announcing 26,652 bytes, cut at half (as an interrupted copy)."""
    path = folder / "scan.dm4"
    header = (4).to_bytes(4, "big") + (26_628).to_bytes(8, "big") + (1).to_bytes(4, "big")
    path.write_bytes((header + bytes(26_652))[:13_326])
    return path


def _random_mrc(folder: Path) -> Path:
    path = folder / "random.mrc"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _errors_since(n: int) -> list[str]:
    return [r.message for r in notification_manager.records[n:] if r.severity == "error"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_truncated_dm4, "the DM4 file is truncated"),
        (_random_mrc, "is not an MRC file (its first bytes do not match"),
    ],
)
def test_reason_is_the_notification(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path)
    assert get_reader(str(path)) is read_layers
    before = len(notification_manager.records)
    assert read_layers(str(path)) == NOTHING  # napari's "nothing to add": no wrapper error
    (message,) = _errors_since(before)
    assert message.startswith(f"{path.name}: {reason}"[:30])  # the toast shows ~40 chars
    assert reason in message


@pytest.mark.qt
def test_viewer_open_shows_the_reason_first(make_napari_viewer, tmp_path: Path) -> None:
    """As File > Open does it (no plugin named): no layer, no exception, our message."""
    viewer = make_napari_viewer()
    for path, reason in (
        (_truncated_dm4(tmp_path), "truncated: its header announces 26,652 bytes"),
        (_random_mrc(tmp_path), "is not an MRC file"),
    ):
        before = len(notification_manager.records)
        assert viewer.open(str(path), plugin=None) == []
        (message,) = _errors_since(before)
        assert message.startswith(f"{path.name}: ") and reason in message
    assert len(viewer.layers) == 0


def test_good_files_open_beside_a_bad_one(tmp_path: Path) -> None:
    good = write_imagej_tiff(tmp_path / "good.tif", cosine_pattern(), 0.1, "nm")
    also = write_mrc(tmp_path / "also.mrc", cosine_pattern(), 1.0)
    bad = _truncated_dm4(tmp_path)
    before = len(notification_manager.records)
    layers = read_layers([str(good), str(bad), str(also)])
    assert [kw["name"] for _, kw, _ in layers] == ["good", "also"]
    (message,) = _errors_since(before)
    assert "scan.dm4" in message


def test_layer_data_still_raises_for_scripts(tmp_path: Path) -> None:
    from napari_atomseg._napari.reader import layer_data

    with pytest.raises(FileReadError, match="truncated"):
        layer_data(_truncated_dm4(tmp_path))
