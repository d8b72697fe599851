"""The Segment regions widget: Bragg masks as named Labels, points clean-up, sorting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from napari.components import ViewerModel

from napari_atomseg._napari.widgets.segment import SegmentWidget
from napari_atomseg.io import Calibration, write_image_tiff
from tests._synth import contaminated_lattice, disc

PS_NM = 0.04


def _wait(qtbot, panel, timeout=60_000):
    qtbot.waitUntil(lambda: not panel.busy, timeout=timeout)


@pytest.fixture(scope="module")
def contaminated():
    shape = (192, 192)
    mask = disc(shape, (96, 96), 40)
    image, truth = contaminated_lattice(shape, mask=mask, seed=1)
    return image, truth


def test_bragg_segmentation_gives_named_labels_and_fractions(qtbot, contaminated):
    image, truth = contaminated
    viewer = ViewerModel()
    viewer.add_image(image, name="gr", scale=(PS_NM, PS_NM), units="nm")
    w = SegmentWidget(viewer)
    assert w.method.value == "auto"  # the one default of segment(), the CLI and the demo
    w.method.value = "bragg"
    w.run()
    _wait(qtbot, w.panel)
    labels = viewer.layers["gr contamination"]
    np.testing.assert_allclose(labels.scale, (PS_NM, PS_NM))
    assert list(labels.features["class"]) == ["crystal", "amorphous", "vacuum"]
    amorphous = labels.data == 1
    # The mask matches the painted disc (Jaccard).
    jaccard = (amorphous & truth).sum() / (amorphous | truth).sum()
    assert jaccard > 0.8
    frac = labels.metadata["class_fractions"]["amorphous"]
    assert frac == pytest.approx(truth.mean(), abs=0.05)
    assert "amorphous" in w.fractions.value and "%" in w.fractions.value

    # Points on the disc are flagged, then dropped.
    pts = np.array([[96.0, 96.0], [100.0, 90.0], [10.0, 10.0], [180.0, 20.0]])
    points = viewer.add_points(pts, name="cols", scale=(PS_NM, PS_NM))
    points.features = pd.DataFrame({"confidence": [0.9, 0.8, 0.7, 0.6]})
    w.points.reset_choices()
    w.points.value = points
    w.points_action.value = "flag"
    assert w.apply_to_points() == 2
    assert list(points.features["in_contamination"]) == [True, True, False, False]
    w.points_action.value = "drop"
    assert w.apply_to_points() == 2
    np.testing.assert_allclose(points.data, pts[2:])
    np.testing.assert_allclose(points.features["confidence"], [0.7, 0.6])


def test_unet_without_model_is_a_notification(qtbot, contaminated, tmp_path):
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        viewer = ViewerModel()
        viewer.add_image(contaminated[0], name="gr")
        w = SegmentWidget(viewer)
        w.method.value = "unet"
        w.model_card.value = str(tmp_path / "nope.yaml")
        w.run()
        _wait(qtbot, w.panel)
        qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert any("nope.yaml" in str(n.message) for n in seen)
    assert "gr contamination" not in viewer.layers


def test_folder_sorting_writes_a_ranked_csv(qtbot, tmp_path):
    shape = (128, 128)
    for name, radius in (("clean", 0), ("half", 45), ("little", 20)):
        mask = disc(shape, (64, 64), radius) if radius else np.zeros(shape, bool)
        image, _ = contaminated_lattice(shape, mask=mask, seed=2)
        write_image_tiff(
            tmp_path / f"{name}.tif",
            image.astype(np.float32),
            Calibration.from_pixel_size_nm(PS_NM),
        )
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    w = SegmentWidget(ViewerModel())
    w.method.value = "bragg"
    w.sorting.folder.value = str(tmp_path)
    w.sorting.run()
    _wait(qtbot, w.sorting.panel)
    table = pd.read_csv(tmp_path / "ranking.csv")
    ranked = table.dropna(subset=["rank"])
    assert [p.split("/")[-1] for p in ranked["file"]] == ["clean.tif", "little.tif", "half.tif"]
    assert table["error"].fillna("").str.contains("broken").any()
    shown = w.sorting.table.to_dataframe()
    assert list(shown["file"][:3]) == ["clean.tif", "little.tif", "half.tif"]
    assert "ranked 3 image(s), 1 failed" in w.sorting.panel.status.value


def test_live_preview_resegments_on_parameter_change(qtbot, contaminated):
    image, _ = contaminated
    viewer = ViewerModel()
    viewer.add_image(image, name="gr", scale=(PS_NM, PS_NM), units="nm")
    w = SegmentWidget(viewer)
    w.method.value = "bragg"
    w.run()
    _wait(qtbot, w.panel)
    layer = viewer.layers["gr contamination"]
    before = layer.metadata["class_fractions"]["amorphous"]
    w.live_preview.value = True
    w.mask_threshold.value = 6.0  # a much higher residual threshold flags less
    qtbot.waitUntil(
        lambda: layer.metadata["class_fractions"]["amorphous"] < before - 0.02, timeout=30_000
    )
    _wait(qtbot, w.panel)
    assert len(viewer.layers) == 2  # updated in place, not added again


def test_min_region_follows_the_method_defaults():
    from napari_atomseg.segmentation import api

    w = SegmentWidget(ViewerModel())
    for method in ("auto", "unet", "bragg"):
        w.method.value = method
        expected = api._DEFAULT_CLEANUP["bragg" if method == "bragg" else "unet"]
        assert w.options()["min_region_size"] == expected.min_region_size
        unit = {"period": "lattice periods", "nm": "nm"}[expected.length_unit]
        assert unit in w.min_region.label
