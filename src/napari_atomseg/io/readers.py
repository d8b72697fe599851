"""``read_image`` / ``read_images``: any supported file -> arrays with their calibration.

Formats (by extension, confirmed by the file's first bytes):

============================  ===========================  ==========================
extension                     format                       library
============================  ===========================  ==========================
.dm3 .dm4                     Gatan DigitalMicrograph      rosettasciio
.mrc .mrcs .st .ali           MRC-2014 (and older MRC)     mrcfile
.tif .tiff                    TIFF (ImageJ, DM, vendors)   tifffile / rosettasciio
.ser .emi                     FEI/Thermo TIA               rosettasciio
.emd                          Velox or Berkeley EMD (HDF5) rosettasciio + h5py
.hspy .zspy                   HyperSpy (HDF5 / zarr)       rosettasciio
.png .jpg .jpeg .bmp          pictures (uncalibrated grey) Pillow
============================  ===========================  ==========================

Every failure a user can cause (missing, empty, truncated, corrupt, unsupported file, or a
file without any image) raises :class:`napari_atomseg.errors.FileReadError` whose message
names the file and the problem; the library's own exception is chained as ``__cause__``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..errors import FileReadError
from ._picture import picture_magic_ok, read_picture
from .calibration import Calibration, ImageData

#: extension (lower case) -> format key
FORMATS: dict[str, str] = {
    ".dm3": "dm",
    ".dm4": "dm",
    ".mrc": "mrc",
    ".mrcs": "mrc",
    ".st": "mrc",
    ".ali": "mrc",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".ser": "tia",
    ".emi": "tia",
    ".emd": "emd",
    ".hspy": "hspy",
    ".zspy": "zspy",
    ".png": "picture",
    ".jpg": "picture",
    ".jpeg": "picture",
    ".bmp": "picture",
}

#: Extensions read by :func:`read_images` (lower case, with the dot).
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(FORMATS)

_FORMAT_NAMES = {
    "dm": "a Gatan DigitalMicrograph",
    "mrc": "an MRC",
    "tiff": "a TIFF",
    "tia": "a TIA SER/EMI",
    "emd": "an EMD (HDF5)",
    "hspy": "a HyperSpy HSPY (HDF5)",
    "zspy": "a HyperSpy ZSPY (zarr)",
    "picture": "a PNG/JPEG/BMP picture",
}
#: Plain picture extensions (uncalibrated grey images, :mod:`._picture`).
PICTURE_EXTENSIONS: tuple[str, ...] = tuple(k for k, v in FORMATS.items() if v == "picture")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def sniff_format(path: str | os.PathLike[str]) -> str | None:
    """The format key of ``path`` if its extension is supported and its first bytes match.

    Cheap (reads at most 1 kB) and never raises: returns None for anything else, including
    missing, unreadable or empty files and files whose content is another format. A
    ``.zspy`` may be a folder (zarr's directory store) or a zip file.

    Parameters
    ----------
    path
        A file (or a ``.zspy`` folder).

    Returns
    -------
    str or None
        The format key (``"dm"``, ``"tiff"``, ``"mrc"``, ``"tia"``, ``"emd"``, ...), or
        None.
    """
    try:
        p = Path(path)
        fmt = FORMATS.get(p.suffix.lower())
        if fmt == "zspy" and p.is_dir():
            return fmt if _zarr_folder(p) else None
        if fmt is None or not p.is_file():
            return None
        with open(p, "rb") as fh:
            head = fh.read(1024)
    except (OSError, TypeError, ValueError):
        return None
    return fmt if _magic_ok(fmt, p.suffix.lower(), head) else None


def _magic_ok(fmt: str, suffix: str, head: bytes) -> bool:
    if fmt == "dm":
        return len(head) >= 16 and struct.unpack(">i", head[:4])[0] in (3, 4)
    if fmt == "tiff":
        return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    if fmt in ("emd", "hspy"):
        return head[:8] == _HDF5_SIGNATURE
    if fmt == "zspy":
        return head[:4] == b"PK\x03\x04"  # a zarr ZipStore (a folder is checked apart)
    if fmt == "picture":
        return picture_magic_ok(suffix, head)
    if fmt == "tia":
        if suffix == ".ser":
            return head[:4] == b"II\x97\x01"
        return len(head) > 0  # EMI has no documented signature
    if fmt == "mrc":
        if len(head) < 1024:
            return False
        for order in ("<", ">"):
            nx, ny, nz, mode = struct.unpack(order + "4i", head[:16])
            if nx > 0 and ny > 0 and nz > 0 and mode in (0, 1, 2, 3, 4, 6, 12, 101):
                return True
        return False
    return False


def read_images(path: str | os.PathLike[str]) -> list[ImageData]:
    """Every image signal in ``path``, each with its :class:`Calibration`.

    A multi-signal DM file or a Velox EMD with several detectors gives several images;
    non-image signals (spectra, line plots, 4-D data) are skipped and listed in each image's
    ``calibration.metadata["skipped_signals"]``. Complex data gives a magnitude and a phase
    image. Stacks and volumes are 3-D with the stack axis scaled (nm, s, or frames).

    Parameters
    ----------
    path
        A file in a supported format (:data:`SUPPORTED_EXTENSIONS`).

    Returns
    -------
    list of ImageData
        One per image signal, in file order: data, calibration, name, whether it is RGB,
        and the file's original metadata.

    Raises
    ------
    FileReadError
        The file is missing, empty, not in a supported format, truncated or corrupt, or
        holds no image. The message names the file and the problem.
    """
    p = Path(path)
    fmt = _check_path(p)
    try:
        images, skipped = _dispatch(p, fmt)
    except FileReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # the libraries raise anything from struct.error to KeyError
        raise FileReadError(_explain(p, fmt, exc)) from exc
    if not images:
        detail = "; ".join(skipped) if skipped else "no image data found"
        raise FileReadError(f"{p}: contains no image ({detail})")
    if skipped:
        images = [
            ImageData(
                im.data,
                im.calibration.with_metadata(skipped_signals=list(skipped)),
                im.name,
                im.rgb,
                im.original_metadata,
            )
            for im in images
        ]
    return images


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, Calibration]:
    """The first image signal of ``path`` and its calibration.

    See :func:`read_images` for files with several images and for the errors raised.

    Parameters
    ----------
    path
        A file in a supported format.

    Returns
    -------
    data : numpy.ndarray
        The image as stored (2-D, or 3-D for a stack or volume).
    calibration : Calibration
        ``calibration.pixel_size_nm`` is the in-plane pixel size in nm (None when the
        file is uncalibrated, in reciprocal space or has non-square pixels).
    """
    first = read_images(path)[0]
    return first.data, first.calibration


def _check_path(p: Path) -> str:
    if not p.exists():
        raise FileReadError(f"{p}: no such file")
    fmt = FORMATS.get(p.suffix.lower())
    if fmt == "zspy" and p.is_dir():
        if not _zarr_folder(p):
            raise FileReadError(f"{p}: is a folder without zarr metadata, not a ZSPY file")
        return fmt
    if p.is_dir():
        raise FileReadError(f"{p}: is a folder, not a file")
    if fmt is None:
        raise FileReadError(
            f"{p}: unsupported file type {p.suffix!r}; supported: "
            + ", ".join(SUPPORTED_EXTENSIONS)
        )
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise FileReadError(f"{p}: cannot be opened ({exc.strerror or exc})") from exc
    if size == 0:
        raise FileReadError(f"{p}: the file is empty (0 bytes)")
    if not _magic_ok(fmt, p.suffix.lower(), head):
        raise FileReadError(
            f"{p}: is not {_FORMAT_NAMES[fmt]} file (its first bytes do not match the "
            "format): corrupt, or a different format with this extension"
        )
    if fmt == "dm":
        _check_dm_length(p, head, size)
    return fmt


def _check_dm_length(p: Path, head: bytes, size: int) -> None:
    """DM headers store the tag tree's length and byte order; check both against the file."""
    version = struct.unpack(">i", head[:4])[0]
    if version == 3:
        declared, header = struct.unpack(">I", head[4:8])[0], 16
        byte_order = struct.unpack(">i", head[8:12])[0]
    else:
        declared, header = struct.unpack(">Q", head[4:12])[0], 24
        byte_order = struct.unpack(">i", head[12:16])[0]
    if byte_order not in (0, 1) or declared < 16:
        raise FileReadError(
            f"{p}: corrupt DM{version} header (tag tree length {declared}, byte order "
            f"flag {byte_order})"
        )
    if size < declared + header:
        raise FileReadError(
            f"{p}: the DM{version} file is truncated: its header announces "
            f"{declared + header:,} bytes but the file has {size:,}"
        )


def _dispatch(p: Path, fmt: str) -> tuple[list[ImageData], list[str]]:
    if fmt == "mrc":
        from ._mrc import read_mrc

        return read_mrc(p)
    if fmt == "tiff":
        from ._tiff import read_tiff

        return read_tiff(p)
    if fmt == "picture":
        return read_picture(p)
    if fmt in ("emd", "hspy"):
        _check_hdf5(p, fmt)
    if fmt == "tia":
        from ._tia import check_ser, ser_files_for

        ser_files = ser_files_for(p)
        if not ser_files:
            raise FileReadError(
                f"{p}: no data file beside this EMI file (expected {p.stem}_1.ser in the "
                "same folder; TIA keeps the pixels in the .ser files)"
            )
        for ser in ser_files:
            check_ser(ser)
    from ._rsciio import read_rsciio

    return read_rsciio(p, fmt)


def _check_hdf5(p: Path, fmt: str = "emd") -> None:
    """Open the HDF5 container first so a truncated EMD / HSPY gets a plain-language
    message."""
    import h5py

    what = _FORMAT_NAMES[fmt].split(" ", 1)[1]
    try:
        with h5py.File(p, "r"):
            pass
    except OSError as exc:
        text = str(exc)
        if "truncated" in text:
            raise FileReadError(
                f"{p}: the {what} file is truncated ({text}); incomplete copy or download?"
            ) from exc
        raise FileReadError(f"{p}: corrupt {what} file ({text})") from exc


def _zarr_folder(p: Path) -> bool:
    """A folder holding a zarr group (v2 ``.zgroup`` or v3 ``zarr.json``)."""
    return (p / ".zgroup").is_file() or (p / "zarr.json").is_file()


def _explain(p: Path, fmt: str, exc: Exception) -> str:
    """A message for a library failure: what we were doing and what the library said."""
    what = _FORMAT_NAMES[fmt]
    hint = ""
    if isinstance(exc, struct.error | EOFError | IndexError) or "buffer" in str(exc):
        hint = " The file looks truncated or corrupt (its structure ends early)."
    elif isinstance(exc, ModuleNotFoundError):
        hint = f" Install the missing package ({exc.name}) to read this file."
    return f"{p}: could not be read as {what} file: {type(exc).__name__}: {exc}.{hint}"
