"""MRC / MRCS / ST / ALI through mrcfile.

Pixel size: ``voxel_size`` (cell length / sampling) in Å, converted to nm. Zero or negative
sizes (Direct Electron writes -1 nm; many tools leave 0) mean "not calibrated": the image is
read in pixels with a :class:`CalibrationWarning`. A stack axis is a z axis in nm only for
volumes (space group 1); image stacks (space group 0, ``.mrcs``, tilt series ``.st`` /
``.ali``) get a frame axis. Files without the ``MAP`` identifier (pre-2000 MRC) are read in
mrcfile's permissive mode, after checking that the header is sane and the data complete.
Thermo/FEI extended headers (FEI1/FEI2) give voltage, magnification and instrument.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileReadError
from ._assemble import assemble_images
from .calibration import ImageData, RawAxis

#: MRC mode -> bytes per voxel (101 is 4-bit packed).
_MODE_BYTES = {0: 1.0, 1: 2.0, 2: 4.0, 3: 4.0, 4: 8.0, 6: 2.0, 12: 2.0, 101: 0.5}
_STACK_SUFFIXES = {".mrcs", ".st", ".ali"}

# FEI extended-header field -> (our key, factor to our unit)
_FEI_FIELDS = {
    "Microscope type": ("instrument", None),
    "HT": ("voltage_kV", 1e-3),
    "Magnification": ("magnification", 1.0),
    "Camera length": ("camera_length_mm", 1e3),
    "Dwell time": ("dwell_time_s", 1.0),
    "STEM Detector name": ("detector", None),
    "Camera name": ("camera", None),
    "Application": ("software", None),
    "Pixel size X": ("extended_header_pixel_size_x_nm", 1e9),
    "Pixel size Y": ("extended_header_pixel_size_y_nm", 1e9),
}


def check_mrc_header(path: Path) -> dict[str, int]:
    """Sanity-check the 1024-byte header and the file length; return nx, ny, nz, mode, nsymbt.

    Raises :class:`FileReadError` for a header that is not MRC or a truncated file.
    """
    size = os.path.getsize(path)
    if size < 1024:
        raise FileReadError(f"{path}: {size} bytes is too short for an MRC file (header: 1024)")
    with open(path, "rb") as fh:
        head = fh.read(1024)
    fields = None
    for order in ("<", ">"):
        nx, ny, nz, mode = struct.unpack(order + "4i", head[:16])
        nsymbt = struct.unpack(order + "i", head[92:96])[0]
        if nx > 0 and ny > 0 and nz > 0 and mode in _MODE_BYTES and nsymbt >= 0:
            fields = {"nx": nx, "ny": ny, "nz": nz, "mode": mode, "nsymbt": nsymbt}
            break
    if fields is None:
        raise FileReadError(
            f"{path}: not an MRC file (the header's dimensions/mode are not valid: "
            "corrupt or a different format)"
        )
    n_bytes = fields["nx"] * fields["ny"] * fields["nz"] * _MODE_BYTES[fields["mode"]]
    expected = 1024 + fields["nsymbt"] + int(np.ceil(n_bytes))
    if size < expected:
        raise FileReadError(
            f"{path}: the MRC file is truncated: its header announces "
            f"{fields['nz']}x{fields['ny']}x{fields['nx']} mode-{fields['mode']} data "
            f"({expected:,} bytes in all) but the file has {size:,} bytes"
        )
    return fields


def read_mrc(path: Path) -> tuple[list[ImageData], list[str]]:
    """The image (or stack / volume) of an MRC-family file."""
    import mrcfile

    check_mrc_header(path)
    notes: list[str] = []
    try:
        mrc = mrcfile.mmap(path, mode="r", permissive=False)
    except ValueError as strict_error:
        # Old files lack the "MAP " identifier; mrcfile refuses them unless permissive.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
        notes.append(f"read leniently: {strict_error}")
        notes.extend(str(w.message) for w in caught if str(w.message) != str(strict_error))
        if mrc.data is None:
            mrc.close()
            raise FileReadError(f"{path}: MRC data block unreadable ({strict_error})") from None
    with mrc:
        header = mrc.header
        data = np.array(mrc.data)  # copy: the file closes below
        voxel = mrc.voxel_size
        is_volume = bool(mrc.is_volume()) and path.suffix.lower() not in _STACK_SUFFIXES
        metadata: dict[str, Any] = {
            "format": f"MRC ({path.suffix.lower().lstrip('.')})",
            "reader": f"mrcfile {mrcfile.__version__}",
            "source_path": str(path),
            "mrc_mode": int(header.mode),
            "mrc_space_group": int(header.ispg),
            "voxel_size_A": [float(voxel.x), float(voxel.y), float(voxel.z)],
        }
        labels = [
            bytes(label).decode("latin-1").strip() for label in header.label[: int(header.nlabl)]
        ]
        if labels:
            metadata["labels"] = labels
        exttyp = bytes(header.exttyp).decode("latin-1").strip("\x00 ")
        if exttyp:
            metadata["extended_header_type"] = exttyp
            metadata.update(_fei_summary(mrc))
        if notes:
            metadata["read_notes"] = notes
        original = {"mrc_header": {name: _plain(header[name]) for name in header.dtype.names}}

    raw = [RawAxis(float(voxel.y), "A", "y"), RawAxis(float(voxel.x), "A", "x")]
    lead_names = None
    if data.ndim == 3:
        if is_volume:
            raw.insert(0, RawAxis(float(voxel.z), "A", "z"))
            lead_names = ["z"]
        else:
            raw.insert(0, RawAxis(1.0, "", "frame"))
            lead_names = ["frame"]
    elif data.ndim == 4:  # volume stack
        raw[:0] = [RawAxis(1.0, "", "volume"), RawAxis(float(voxel.z), "A", "z")]
        lead_names = ["volume", "z"]
    return (
        assemble_images(
            data,
            raw,
            name=path.stem,
            metadata=metadata,
            original_metadata=original,
            where=str(path),
            lead_names=lead_names,
        ),
        [],
    )


def _fei_summary(mrc: Any) -> dict[str, Any]:
    """Acquisition facts from a Thermo/FEI extended header (first frame's record)."""
    try:
        ext = mrc.indexed_extended_header
    except (ValueError, TypeError, AttributeError) as exc:
        return {"extended_header_error": f"{type(exc).__name__}: {exc}"}
    if ext is None or not getattr(ext, "dtype", None) or not ext.dtype.names or len(ext) == 0:
        return {}
    record = ext[0]
    out: dict[str, Any] = {}
    for field_name, (ours, factor) in _FEI_FIELDS.items():
        if field_name not in ext.dtype.names:
            continue
        value = record[field_name]
        if isinstance(value, bytes | np.bytes_):
            text = bytes(value).decode("latin-1").strip("\x00 ")
            if text:
                out[ours] = text
        elif factor is not None:
            number = float(value)
            if number != 0.0:  # FEI writes 0 for "not recorded"
                out[ours] = number * factor
    return out


def _plain(value: Any) -> Any:
    value = np.asarray(value)
    if value.dtype.kind == "S":
        return bytes(value.tobytes()).decode("latin-1").strip("\x00 ")
    if value.dtype.names:
        return {n: _plain(value[n]) for n in value.dtype.names}
    return value.tolist()
