"""npe2 sample data: three synthetic micrographs with calibrated scale and ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomseg._napari import sample_data

EXPECTED = {
    # name: (shape, pixel size nm, a column element that must be present)
    "haadf_mos2": ((384, 384), 0.02, "Mo"),
    "hrtem_graphene_contamination": ((512, 512), 0.03, "C"),
    "au_particle_on_carbon": ((384, 384), 0.025, "Au"),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def sample(request):
    return request.param, getattr(sample_data, request.param)()


def test_sample_layers_are_calibrated_with_ground_truth(sample):
    name, layers = sample
    shape, px, element = EXPECTED[name]
    assert [t for _, _, t in layers] == ["image", "points", "labels", "labels"]
    (img, img_kw, _), (pts, pts_kw, _), (classes, cls_kw, _), (inst, _, _) = layers
    assert img.shape == shape and img.dtype == np.float32
    assert np.isfinite(img).all() and img.std() > 0
    assert img_kw["scale"] == (px, px) and tuple(img_kw["units"]) == ("nm", "nm")
    assert img_kw["metadata"]["pixel_size_nm"] == pytest.approx(px)
    params = img_kw["metadata"]["simulation_parameters"]
    assert params == sample_data.sample_parameters(name).to_dict()
    # Points: pixel positions inside the image, features from the column table.
    assert pts.shape[1] == 2 and len(pts) > 50
    assert (pts >= -0.5).all() and (pts[:, 0] < shape[0]).all() and (pts[:, 1] < shape[1]).all()
    feats = pts_kw["features"]
    assert {"z_sum", "elements", "visible"} <= set(feats.columns)
    assert len(feats) == len(pts)
    assert feats.elements.str.contains(element).any()
    assert 0.3 <= feats.visible.mean() <= 1.0
    assert pts_kw["visible"] is True and pts_kw["scale"] == (px, px)
    # Labels: classes 0-3 with names; column instances numbered from 1.
    assert classes.shape == shape and set(np.unique(classes)) <= {0, 1, 2, 3}
    assert cls_kw["metadata"]["class_names"] == {
        0: "vacuum",
        1: "crystal",
        2: "support",
        3: "contamination",
    }
    assert inst.shape == shape and inst.max() >= 1


def test_samples_show_what_their_names_say():
    # Contamination covers part of the graphene; the Au particle sits on carbon support.
    g = sample_data.sample_parameters("hrtem_graphene_contamination")
    au = sample_data.sample_parameters("au_particle_on_carbon")
    assert g.mode == "hrtem" and g.contamination_coverage > 0
    assert au.scene == "particles" and au.support_thickness_nm > 0
    layers = sample_data.hrtem_graphene_contamination()
    fractions = layers[2][1]["metadata"]["class_fractions"]
    assert 0.1 < fractions["contamination"] < 0.7
    layers = sample_data.au_particle_on_carbon()
    fractions = layers[2][1]["metadata"]["class_fractions"]
    assert fractions["support"] > 0.5 and fractions["crystal"] > 0.05


def test_result_layers_build_napari_layers(sample):
    pytest.importorskip("napari")
    from napari.layers import Layer

    _, layers = sample
    made = [Layer.create(data, kwargs, layer_type) for data, kwargs, layer_type in layers]
    image, points = made[0], made[1]
    assert tuple(image.scale) == tuple(points.scale)
    assert points.features["visible"].dtype == bool


def test_open_sample_through_the_npe2_manifest():
    # File > Open Sample without Qt: the manifest's command -> layers in a ViewerModel.
    npe2 = pytest.importorskip("npe2")
    npe2.PluginManager.instance().discover()
    from napari.components import ViewerModel

    viewer = ViewerModel()
    layers = viewer.open_sample("napari-atomseg", "au_particle_on_carbon")
    assert [layer._type_string for layer in layers] == ["image", "points", "labels", "labels"]
    image, points = layers[0], layers[1]
    assert tuple(image.scale) == (0.025, 0.025) and str(image.units[0]) == "nanometer"
    assert image.metadata["pixel_size_nm"] == pytest.approx(0.025)
    assert points.visible and points.features["elements"].eq("Au").any()
