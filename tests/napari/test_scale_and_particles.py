"""One pixel-size estimate per layer, shared by Find atoms and Segment regions; the
particle instances layer and its size histogram; warnings shown in the widget."""

from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel

from napari_atomseg._napari.scale_panel import layer_scale, stored_scale
from napari_atomseg._napari.widgets.atoms import FindAtomsWidget
from napari_atomseg._napari.widgets.segment import SegmentWidget
from napari_atomseg.scale import SCALE_METADATA_KEY
from napari_atomseg.simulation import SimulationParameters, simulate

TRUE_PX = 0.03


def _wait(qtbot, panel, timeout=120_000):
    qtbot.waitUntil(lambda: not panel.busy, timeout=timeout)


@pytest.fixture(scope="module")
def graphene_png():
    """Simulated graphene HRTEM at 0.03 nm/px, as an uncalibrated picture would arrive."""
    sim = simulate(
        SimulationParameters(
            material="graphene", mode="hrtem", shape_px=(192, 192), pixel_size_nm=TRUE_PX,
            defocus_nm=-6, cs_um=-15, dose_e_per_A2=2e4, seed=11,
        )
    )  # fmt: skip
    return sim.image


def test_both_widgets_use_the_one_estimate(qtbot, graphene_png, tiny_atoms_card):
    viewer = ViewerModel()
    layer = viewer.add_image(graphene_png, name="png")  # in pixels: no calibration
    atoms = FindAtomsWidget(viewer)
    atoms.model_card.value = str(tiny_atoms_card)
    atoms.live_preview.value = False
    seg = SegmentWidget(viewer)
    seg.method.value = "bragg"  # no segmentation model needed for the plumbing
    atoms.run()
    _wait(qtbot, atoms.panel)
    estimate = stored_scale(layer)
    assert estimate is not None and estimate.source == "lattice"
    assert estimate.pixel_size_nm == pytest.approx(TRUE_PX, rel=0.03)
    np.testing.assert_allclose(layer.scale, (1.0, 1.0))  # never mistaken for a calibration
    seg.run()
    _wait(qtbot, seg.panel)
    used_atoms = viewer.layers["png columns"].metadata["pixel_size_used_nm"]
    used_seg = viewer.layers["png contamination"].metadata["pixel_size_used_nm"]
    assert used_atoms == used_seg == pytest.approx(estimate.pixel_size_nm)
    assert viewer.layers["png columns"].metadata["pixel_size_estimated"]
    # Both panels show it, with its source and confidence.
    for panel in (atoms.scale, seg.scale):
        panel.refresh()
        assert panel.value.value == pytest.approx(estimate.pixel_size_nm, rel=1e-3)
        assert "graphene" in panel.info.value and "confidence" in panel.info.value


def test_typed_value_and_material_replace_the_estimate(qtbot, graphene_png):
    viewer = ViewerModel()
    layer = viewer.add_image(graphene_png, name="png")
    seg = SegmentWidget(viewer)
    seg.method.value = "bragg"
    seg.scale.estimate()
    assert layer.metadata[SCALE_METADATA_KEY]["source"] == "lattice"
    seg.scale.value.value = 0.0321
    stored = stored_scale(layer)
    assert stored.source == "user" and stored.pixel_size_nm == pytest.approx(0.0321)
    seg.run()
    _wait(qtbot, seg.panel)
    assert viewer.layers["png contamination"].metadata["pixel_size_used_nm"] == pytest.approx(
        0.0321
    )
    seg.scale.material.value = "MoS2"  # pins MoS2's spacings: a larger pixel size
    pinned = stored_scale(layer)
    assert pinned.source == "material" and pinned.material == "MoS2"
    assert pinned.pixel_size_nm == pytest.approx(TRUE_PX * 0.2737 / 0.2134, rel=0.03)
    assert layer_scale(layer) is not None


def test_calibrated_layer_shows_its_calibration(graphene_png):
    viewer = ViewerModel()
    viewer.add_image(graphene_png, name="cal", scale=(0.05, 0.05), units="nm")
    seg = SegmentWidget(viewer)
    assert "calibrated" in seg.scale.info.value and not seg.scale.value.enabled
    assert seg.scale.estimate() is None


def test_particles_get_an_instance_layer_and_a_histogram(qtbot):
    # the widget's plumbing, on particles the shipped model was trained for (HAADF at a
    # known sampling); how well bright-field survey images segment is the benchmark's
    # question (benchmarks/segmentation_realworld.py --sections particles)
    sim = simulate(
        SimulationParameters(scene="particles", material="Au", mode="haadf",
                             shape_px=(192, 192), pixel_size_nm=0.08, seed=4)
    )  # fmt: skip
    viewer = ViewerModel()
    viewer.add_image(sim.image, name="bf", scale=(0.08, 0.08), units="nm")
    seg = SegmentWidget(viewer)
    seg.task.value = "particles"
    seg.run()
    _wait(qtbot, seg.panel)
    particles = viewer.layers["bf particles"]
    assert particles.data.dtype == np.int32 and particles.data.max() >= 1
    assert len(particles.features) == particles.data.max()
    assert "equivalent_diameter_px" in particles.features
    # shown (isHidden: the widget itself is not on screen in a test, so `visible` is False)
    assert not seg.histogram.native.isHidden() and "particles" in seg.histogram.summary.value


def test_no_lattice_warning_is_shown(qtbot):
    sim = simulate(
        SimulationParameters(scene="amorphous", mode="haadf", shape_px=(160, 160),
                             pixel_size_nm=0.03, support_thickness_nm=6, seed=2)
    )  # fmt: skip
    viewer = ViewerModel()
    viewer.add_image(sim.image, name="carbon", scale=(0.03, 0.03), units="nm")
    seg = SegmentWidget(viewer)
    seg.run()  # the default method
    _wait(qtbot, seg.panel)
    layer = viewer.layers["carbon contamination"]
    assert layer.metadata["has_lattice"] is False
    assert layer.metadata["class_fractions"]["crystal"] == 0.0
    assert "no lattice" in seg.warnings.value
