"""Redo docs/images/ux_*.png: first-use fixes seen in napari, on a 1600 x 1000 window.

Usage (needs a display; on a headless machine run it under Xvfb)::

    OMP_NUM_THREADS=2 xvfb-run -a -s "-screen 0 1600x1000x24" \\
        python docs/make_ux_screenshots.py [--only docks error simulate finetune]

- ``ux_two_docks_hspy.png`` -- a real HyperSpy file (``real_panel/06_sto_abf_5frame_series
  .hspy``, 5 frames, 0.0092 nm/px from the file) opened by the plugin; Find atoms and
  Segment regions docked together on a 1000 px tall window (both fit; advanced options
  folded); after Find atoms the Points layer is the active one, its tools ready;
- ``ux_reader_error.png`` -- File > Open of a truncated DM4: the notification is the
  plugin's reason;
- ``ux_simulate_hrtem.png`` -- Simulate micrograph in HRTEM at its defaults (Cs -20 um,
  optimum defocus): the columns show;
- ``ux_finetune_estimate.png`` -- Fine-tune with a real Pt image and its ImageJ Results
  table opened by the plugin (the table takes the image's scale), after *Estimate time*.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "docs" / "images"
WINDOW = (1600, 1000)
MAX_BYTES = 600_000
PLUGIN = "napari-atomseg"


def _spin(seconds: float = 0.5) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _wait(panel: Any, timeout_s: float = 900.0) -> None:
    start = time.perf_counter()
    while panel.busy:
        _spin(0.05)
        if time.perf_counter() - start > timeout_s:
            raise SystemExit("timed out waiting for the widget")
    _spin(0.5)


def _viewer(*widgets: str) -> tuple[Any, list[Any]]:
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*WINDOW)
    docked = []
    for name in widgets:
        docked.append(viewer.window.add_plugin_dock_widget(PLUGIN, name)[1])
        _spin(0.3)
    viewer.window._qt_window.resize(*WINDOW)
    _spin(0.5)
    return viewer, docked


def _text(viewer: Any, text: str) -> None:
    overlays = viewer.canvas.overlays
    overlays.scale_bar.visible = True
    overlays.scale_bar.colored = True
    overlays.scale_bar.position = "bottom_left"
    overlays.text.visible = True
    overlays.text.text = text
    overlays.text.font_size = 11
    overlays.text.color = "white"
    overlays.text.position = "top_left"


def _save(viewer: Any, name: str) -> None:
    from PIL import Image

    _spin(0.5)
    pixels = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(pixels[..., :3])
    buffer = io.BytesIO()
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
    if buffer.tell() > MAX_BYTES:
        raise SystemExit(f"{name}: {buffer.tell():,} bytes, over {MAX_BYTES:,}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_bytes(buffer.getvalue())
    print(f"wrote {OUT / name} ({buffer.tell():,} bytes, {image.size[0]}x{image.size[1]})")
    viewer.close()


def shot_docks() -> None:
    viewer, (atoms, _segment) = _viewer("Find atoms", "Segment regions")
    path = DATA / "real_panel" / "06_sto_abf_5frame_series.hspy"
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    layer.contrast_limits = tuple(np.percentile(layer.data[0], [0.5, 99.5]))
    atoms.image.value = layer
    atoms.contrast.value = "dark"  # ABF: dark columns (in the folded advanced options)
    t0 = time.perf_counter()
    atoms.run()
    _wait(atoms.panel)
    seconds = time.perf_counter() - t0
    points = viewer.layers[f"{layer.name} columns"]
    assert viewer.layers.selection.active is points
    print(f"docks: {atoms.panel.status.value} ({seconds:.1f} s)")
    frame = int(viewer.dims.current_step[0])
    _text(
        viewer,
        f"{path.name} (HyperSpy): {layer.data.shape[0]} frames, {layer.scale[-1]:.5g} nm/px\n"
        f"{len(points.data)} columns on frame {frame} (ABF: columns dark);\n"
        "after Find atoms the Points layer is active",
    )
    viewer.reset_view()
    _save(viewer, "ux_two_docks_hspy.png")


def shot_error() -> None:
    viewer, _ = _viewer()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scan.dm4"
        header = (4).to_bytes(4, "big") + (26_628).to_bytes(8, "big") + (1).to_bytes(4, "big")
        path.write_bytes((header + bytes(26_652))[:13_326])
        viewer.window._qt_viewer._qt_open([str(path)], stack=False)  # what File > Open does
        _spin(1.0)
        _save(viewer, "ux_reader_error.png")


def shot_simulate() -> None:
    viewer, (widget,) = _viewer("Simulate micrograph")
    widget.material.value = "graphene"
    widget.mode.value = "hrtem"  # Cs -20 um at its optimum defocus
    widget.pixel_size_nm.value = 0.02
    widget.field_of_view_nm.value = 5.0
    widget.optics.toggle()  # show the optics the mode chose
    widget.run()
    _wait(widget.panel)
    viewer.layers["simulated ground truth"].visible = True
    print(f"simulate: {widget.panel.status.value}")
    _text(
        viewer,
        widget.panel.status.value.replace(": ", "\n")
        + f"\nCs {widget.cs_um.value:g} um, defocus {widget.defocus_nm.value:g} nm (optimum)",
    )
    viewer.reset_view()
    _save(viewer, "ux_simulate_hrtem.png")


def shot_finetune() -> None:
    viewer, (widget,) = _viewer("Fine-tune atom finder")
    image_path = next((DATA / "pt_single_atoms" / "images").glob("021_*"))
    (image,) = viewer.open(str(image_path), plugin=PLUGIN)
    image.contrast_limits = tuple(np.percentile(image.data, [0.5, 99.8]))
    table = DATA / "pt_single_atoms" / "coordinates" / "021_Results.csv"
    (points,) = viewer.open(str(table), plugin=PLUGIN)
    widget.image.value, widget.points.value = image, points
    widget.measure()
    _wait(widget.panel)
    print(f"finetune: {widget.estimate.value}; {points.metadata.get('calibration_note')}")
    _text(
        viewer,
        f"{table.name} (ImageJ Results, in pixels): {len(points.data)} hand-placed atoms\n"
        f"on image {image_path.name[:3]}, at its {image.scale[-1]:.4g} nm/px",
    )
    viewer.reset_view()
    _save(viewer, "ux_finetune_estimate.png")


SHOTS = {"docks": shot_docks, "error": shot_error, "simulate": shot_simulate}
SHOTS["finetune"] = shot_finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(SHOTS), choices=list(SHOTS))
    for name in parser.parse_args().only:
        SHOTS[name]()


if __name__ == "__main__":
    main()
