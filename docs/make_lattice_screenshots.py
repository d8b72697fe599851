"""Redo docs/images/lattice_*.png: the Analyse lattice widget on a real SrTiO3 file.

Usage (needs a display; on a headless machine run it under Xvfb)::

    OMP_NUM_THREADS=1 xvfb-run -a -s "-screen 0 1600x1000x24" \\
        python docs/make_lattice_screenshots.py

The real file ``../shared/data/formats/openNCEM/16_STOimage.emi`` (SrTiO3 [001], FEI TIA,
0.0100 nm/px) is opened with the plugin's reader, its columns found with the Find atoms
widget's default settings, a reference rectangle drawn over the middle half of the field (its whole height), and
Analyse lattice run with the non-linear scan correction and two-cell neighbourhoods (the
setting docs/lattice.md recommends for an unstrained crystal). Shots:

- ``lattice_sto_strain.png`` -- points coloured by sublattice over the strain_xx map;
- ``lattice_sto_vectors.png`` -- a zoom on the Ti-O displacement arrows (drawn 30x, the
  factor in the layer's name; here they are noise: the crystal is not polar) over the
  image, with the widget's summary and the intensity histogram.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "docs" / "images"
STO = DATA / "formats" / "openNCEM" / "16_STOimage.emi"


def _wait(panel: Any, timeout_s: float = 900.0) -> None:
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    start = time.perf_counter()
    while panel.busy:
        app.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - start > timeout_s:
            raise SystemExit("timed out waiting for the widget")
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)


def _save(viewer: Any, name: str) -> None:
    import io

    from PIL import Image

    pixels = viewer.screenshot(canvas_only=False, flash=False)
    buffer = io.BytesIO()
    image = Image.fromarray(pixels[..., :3]).quantize(colors=96, method=Image.Quantize.MEDIANCUT)
    image.save(buffer, "PNG", optimize=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_bytes(buffer.getvalue())
    print(f"wrote {OUT / name} ({buffer.tell():,} bytes)")


def main() -> None:
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 1000)
    _, finder = viewer.window.add_plugin_dock_widget("napari-atomseg", "Find atoms")
    (layer,) = viewer.open(str(STO), plugin="napari-atomseg")
    layer.contrast_limits = tuple(np.percentile(layer.data, [0.5, 99.5]))
    finder.image.value = layer
    finder.run()
    _wait(finder.panel)
    points = viewer.layers[f"{layer.name} columns"]
    ps = float(layer.scale[-1])
    h, w = layer.data.shape
    # The whole height (the slow scan's drift is estimated along it), the middle half of x.
    box = np.array([[0.0, 0.25 * w], [h - 1.0, 0.75 * w]]) * ps
    shapes = viewer.add_shapes(
        [box], shape_type="rectangle", name="reference", edge_color="yellow",
        face_color="transparent", edge_width=0.05, scale=(1.0, 1.0), units=("nm", "nm"),
    )  # fmt: skip
    _, widget = viewer.window.add_plugin_dock_widget("napari-atomseg", "Analyse lattice")
    widget.points.value = points
    widget.image.value = layer
    widget.reference.value = shapes
    widget.scan_correction.value = "nonlinear"
    widget.neighbour_cells.value = 2
    # Noise-level displacements (an unstrained crystal): drawn 30x so they can be seen.
    widget.vector_scale.value = 30.0
    widget.run()
    _wait(widget.panel)
    print(widget.panel.status.value)
    points.size = points.size * 0.5
    viewer.layers.selection.active = points
    viewer.reset_view()
    viewer.camera.zoom *= 1.4
    _save(viewer, "lattice_sto_strain.png")

    viewer.layers[f"{points.name} strain_xx"].visible = False
    points.visible = False
    vectors = next(ly for ly in viewer.layers if ly.name.startswith(f"{points.name} displ"))
    viewer.layers.selection.active = vectors
    viewer.camera.zoom *= 2.5
    _save(viewer, "lattice_sto_vectors.png")
    viewer.close()


if __name__ == "__main__":
    main()
