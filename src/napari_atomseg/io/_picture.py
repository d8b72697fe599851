"""PNG, JPEG and BMP pictures -> uncalibrated grey images.

Pictures are how micrographs travel in papers, data sets and e-mails (the published
graphene contamination set is PNG). They store no pixel size (a DPI tag is a print
resolution, ignored as for TIFF), so the image is uncalibrated: type the pixel size in
Find atoms, or let the model estimate it.

Colour is not what a micrograph is, so every picture becomes one grey channel:

- grey (8 or 16 bit) stays as it is;
- colour whose three channels are identical (grey saved as RGB, as many exports do) gives
  one of them, unchanged;
- true colour (a false-colour LUT, annotations) gives its luminance with the Rec. 709
  weights ``0.2125 R + 0.7154 G + 0.0721 B`` (float32), and
  ``metadata["colour_note"]`` says so;
- an alpha channel is dropped (noted when it is not fully opaque).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileReadError
from .calibration import Calibration, ImageData

#: extension (lower case) -> picture format name
PICTURE_FORMATS: dict[str, str] = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}
#: Rec. 709 luma weights (what scikit-image's rgb2gray uses).
LUMINANCE_WEIGHTS = (0.2125, 0.7154, 0.0721)
NOTE_UNCALIBRATED = (
    "pictures (PNG/JPEG/BMP) store no pixel size; give it (Find atoms 'pixel size', "
    "--pixel-size-nm) or let the model estimate it"
)


def picture_magic_ok(suffix: str, head: bytes) -> bool:
    """True when the first bytes are those of the picture format the extension names."""
    kind = PICTURE_FORMATS.get(suffix)
    if kind == "PNG":
        return head[:8] == b"\x89PNG\r\n\x1a\n"
    if kind == "JPEG":
        return head[:3] == b"\xff\xd8\xff"
    if kind == "BMP":
        return head[:2] == b"BM"
    return False


def read_picture(path: Path) -> tuple[list[ImageData], list[str]]:
    """The picture at ``path`` as one grey, uncalibrated :class:`ImageData`."""
    from PIL import Image, UnidentifiedImageError

    kind = PICTURE_FORMATS[path.suffix.lower()]
    try:
        with Image.open(path) as im:
            im.load()
            mode, info, frames = im.mode, dict(im.info), getattr(im, "n_frames", 1)
            pixels = _pixels(im)
    except UnidentifiedImageError as exc:
        raise FileReadError(f"{path}: not a readable {kind} picture ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's truncated / corrupt files
        hint = " (the file is truncated)" if "truncated" in str(exc) else ""
        raise FileReadError(f"{path}: corrupt {kind} picture{hint}: {exc}") from exc
    grey, notes = to_grey(pixels)
    metadata: dict[str, Any] = {
        "format": f"{kind} picture",
        "reader": f"Pillow {_pillow_version()}",
        "source_path": str(path),
        "picture_mode": mode,
        "calibration_note": NOTE_UNCALIBRATED,
    }
    if notes:
        metadata["colour_note"] = "; ".join(notes)
    skipped = [f"frames 1-{frames - 1} of an animated picture"] if frames > 1 else []
    original = {"mode": mode, "info": {k: _plain(v) for k, v in info.items()}}
    cal = Calibration.uncalibrated(2, **metadata)
    return [ImageData(grey, cal, path.stem, False, original)], skipped


def _pixels(im: Any) -> np.ndarray:
    """The picture's pixels with colour (palette, CMYK...) expanded to RGB(A) channels."""
    mode = im.mode
    if mode in ("L", "F") or mode.startswith("I;16"):
        return np.asarray(im)
    if mode == "I":  # 16-bit PNGs can come as 32-bit int: keep uint16 where it fits
        arr = np.asarray(im)
        if arr.size and arr.min() >= 0 and arr.max() < 2**16:
            return arr.astype(np.uint16)
        return arr.astype(np.float32)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("LA", "La"):
        return np.asarray(im.convert("LA"))
    has_alpha = "A" in mode or (mode == "P" and "transparency" in im.info)
    return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))


def to_grey(pixels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """One grey channel from (H, W), (H, W, 2) grey+alpha or (H, W, 3|4) colour pixels.

    Returns the grey image and notes on what was done (empty when nothing was lost).
    """
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        return arr.copy(), []
    if arr.ndim != 3 or arr.shape[-1] not in (2, 3, 4):
        raise ValueError(f"unexpected picture shape {arr.shape}")
    notes = []
    n_channels = arr.shape[-1]
    colour = arr[..., : 1 if n_channels == 2 else 3]
    alpha = arr[..., -1] if n_channels in (2, 4) else None
    if alpha is not None and (alpha != np.iinfo(alpha.dtype).max).any():
        notes.append("transparency (alpha channel) ignored")
    if colour.shape[-1] == 1:
        return np.ascontiguousarray(colour[..., 0]), notes
    if (colour[..., 0] == colour[..., 1]).all() and (colour[..., 0] == colour[..., 2]).all():
        return np.ascontiguousarray(colour[..., 0]), notes
    weights = np.asarray(LUMINANCE_WEIGHTS, dtype=np.float32)
    grey = (colour.astype(np.float32) * weights).sum(axis=-1, dtype=np.float32)
    notes.append(
        "true-colour picture converted to grey luminance (0.2125 R + 0.7154 G + 0.0721 B, Rec. 709)"
    )
    return grey, notes


def _plain(value: Any) -> Any:
    """Picture info values as JSON-friendly plain values (bytes summarised)."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return str(value)


def _pillow_version() -> str:
    import PIL

    return str(getattr(PIL, "__version__", "?"))
