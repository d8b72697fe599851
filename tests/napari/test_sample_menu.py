"""File > Open Sample: the manifest's sample-data contributions work through npe2."""

from __future__ import annotations

import npe2
import numpy as np
from napari.components import ViewerModel
from napari.layers import Layer


def test_sample_data_opens_from_the_manifest():
    pm = npe2.PluginManager.instance()
    pm.discover()
    samples = {
        c.key: c for plugin, contribs in pm.iter_sample_data() if plugin == "napari-atomseg"
        for c in contribs
    }  # fmt: skip
    assert {k: c.display_name for k, c in samples.items()} == {
        "haadf_mos2": "HAADF MoS2",
        "hrtem_graphene_contamination": "HRTEM graphene with contamination",
        "au_particle_on_carbon": "Au particle on carbon",
    }
    viewer = ViewerModel()
    for layer_data in samples["haadf_mos2"].open():
        viewer.add_layer(Layer.create(*layer_data))
    image = viewer.layers["HAADF MoS2 (simulated)"]
    np.testing.assert_allclose(image.scale, (0.02, 0.02))
    assert len(viewer.layers["HAADF MoS2 (simulated) ground truth"].data) > 100
