"""Structural check of FEI/Thermo TIA ``.ser`` files before rosettasciio reads them.

rosettasciio reads the pixels of a truncated SER file into a short buffer and fails with an
unhelpful NumPy message; walking the SER header and its offset table first lets us say
"truncated" with the numbers. Layout: FEI's "SER file format" note (TIA 4.x).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from ..errors import FileReadError

_SERIES_ID = 0x0197
_DATA_2D, _DATA_1D = 0x4122, 0x4120
#: SER pixel type code -> bytes per pixel
_TYPE_BYTES = {1: 1, 2: 2, 3: 4, 4: 1, 5: 2, 6: 4, 7: 4, 8: 8, 9: 8, 10: 16}


def ser_files_for(path: Path) -> list[Path]:
    """The SER file itself, or the ``<stem>_N.ser`` files an EMI file describes."""
    if path.suffix.lower() == ".ser":
        return [path]
    return sorted(path.parent.glob(f"{path.stem}_*.ser"))


def check_ser(path: Path) -> None:
    """Raise :class:`FileReadError` if ``path`` is not a complete TIA SER file."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(42)
        if len(head) < 30:
            raise FileReadError(f"{path}: {size} bytes is too short for a TIA SER file")
        order, series_id, version = struct.unpack("<HHH", head[:6])
        if order != 0x4949 or series_id != _SERIES_ID:
            raise FileReadError(f"{path}: not a TIA SER file (bad series identifier)")
        data_type, _tag_type, total, valid = struct.unpack("<IIII", head[6:22])
        wide = version >= 0x0220
        offset_size = 8 if wide else 4
        table_at = struct.unpack("<Q" if wide else "<I", head[22 : 22 + offset_size])[0]
        if valid > total or table_at + total * offset_size > size:
            raise FileReadError(
                f"{path}: the TIA SER file is truncated or corrupt: its offset table "
                f"(at byte {table_at:,}, {total} entries) lies beyond the end of the file "
                f"({size:,} bytes)"
            )
        fh.seek(table_at)
        table = fh.read(valid * offset_size)
        offsets = struct.unpack(f"<{valid}{'Q' if wide else 'I'}", table)
        for index, offset in enumerate(offsets):
            end = _element_end(fh, offset, data_type, size)
            if end > size:
                raise FileReadError(
                    f"{path}: the TIA SER file is truncated: image {index} needs bytes up "
                    f"to {end:,} but the file has {size:,}"
                )


def _element_end(fh, offset: int, data_type: int, size: int) -> int:
    """Byte just past data element at ``offset`` (or a value > size if unreadable)."""
    if data_type == _DATA_2D:
        header_len, fmt = 50, "<ddiddihii"
    elif data_type == _DATA_1D:
        header_len, fmt = 26, "<ddihi"
    else:
        return offset  # unknown element type: leave it to rosettasciio
    if offset + header_len > size:
        return offset + header_len
    fh.seek(offset)
    fields = struct.unpack(fmt, fh.read(header_len))
    if data_type == _DATA_2D:
        pixel_type, nx, ny = fields[6], fields[7], fields[8]
        n_pixels = nx * ny
    else:
        pixel_type, n_pixels = fields[3], fields[4]
    return offset + header_len + n_pixels * _TYPE_BYTES.get(pixel_type, 0)
