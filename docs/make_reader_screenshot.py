"""Redo docs/images/reader_*.png: napari showing a real file opened by this plugin's reader.

Usage (needs a display; on a headless machine run it under Xvfb)::

    xvfb-run -a python docs/make_reader_screenshot.py [FILE] [--out PNG]

FILE defaults to the openNCEM atomic-resolution HAADF-STEM image of SrTiO3
(``16_STOimage.emi`` + ``_1.ser``, FEI TIA) in ``../shared/data/formats/openNCEM``. The layer keeps the file's pixel size (nm), so the scale
bar napari draws is in nm. The PNG is palette-quantised to stay small (< 300 kB).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared" / "data" / "formats" / "openNCEM" / "16_STOimage.emi"
MAX_BYTES = 300_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or REPO / "docs" / "images" / f"reader_{args.file.stem.lower()}.png"

    import numpy as np
    from PIL import Image

    import napari

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1000, 700)
    (layer,) = viewer.open(str(args.file), plugin="napari-atomseg")
    layer.contrast_limits = tuple(np.percentile(layer.data, [0.5, 99.5]))
    overlays = viewer.canvas.overlays
    overlays.scale_bar.visible = True
    overlays.scale_bar.font_size = 14
    overlays.scale_bar.colored = True
    cal = layer.metadata["calibration"]
    overlays.text.visible = True
    overlays.text.text = (
        f"{args.file.name}: {cal['scale'][-1]:.5f} {cal['units'][-1]}/px (from the file)"
    )
    overlays.text.font_size = 11
    overlays.text.color = "white"
    overlays.text.position = "top_left"
    viewer.reset_view()
    # Zoom into the centre so the atomic columns are visible in a small picture.
    viewer.scene.camera.zoom *= 1.8
    pixels = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(pixels[..., :3])
    buffer = io.BytesIO()
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
    if buffer.tell() > MAX_BYTES:
        raise SystemExit(f"screenshot is {buffer.tell():,} bytes, more than {MAX_BYTES:,}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buffer.getvalue())
    print(f"wrote {out} ({buffer.tell():,} bytes)")
    viewer.close()


if __name__ == "__main__":
    main()
