"""Small instrument-like files written on the fly, so the reader tests mean something on a
fresh clone without ../shared/data: MRC (mrcfile), ImageJ / DM-tag / HyperSpy TIFFs, HSPY
and ZSPY. The pixels usually come from :func:`tests._synth.cosine_pattern`."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mrc(
    path: Path,
    data: np.ndarray,
    voxel_size_A: float | tuple[float, float, float],
    *,
    volume: bool = False,
) -> Path:
    import mrcfile

    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if data.ndim == 3:
            if volume:
                mrc.set_volume()
            else:
                mrc.set_image_stack()
        mrc.voxel_size = voxel_size_A
    return path


def write_imagej_tiff(
    path: Path,
    data: np.ndarray,
    pixel_size: float | tuple[float, float],
    unit: str,
    compression: str | None = None,
    **extra: object,
) -> Path:
    import tifffile

    py, px = (pixel_size, pixel_size) if np.isscalar(pixel_size) else pixel_size
    axes = "YX" if data.ndim == 2 else "ZYX"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1.0 / px, 1.0 / py),
        metadata={"unit": unit, "axes": axes, **extra},
        compression=compression,
    )
    return path


def write_dm_tag_tiff(path: Path, data: np.ndarray, scale: float, unit: str) -> Path:
    """A TIFF with DigitalMicrograph's private calibration tags, as DM's export writes."""
    import tifffile

    raw_unit = unit.encode("latin-1")  # DM writes latin-1 (b"\xb5m" for µm)
    tags = [
        (65003, "s", 0, raw_unit, False),  # x unit
        (65004, "s", 0, raw_unit, False),  # y unit
        (65009, "d", 1, scale, False),  # x scale
        (65010, "d", 1, scale, False),  # y scale
    ]
    tifffile.imwrite(path, data, extratags=tags)
    return path


def write_hyperspy_tiff(path: Path, data: np.ndarray, scale: float, unit: str) -> Path:
    """A TIFF written by rosettasciio's TIFF writer (what HyperSpy's ``s.save`` produces)."""
    from rsciio.tiff import file_writer

    axes = [
        {"name": n, "size": s, "scale": scale, "offset": 0.0, "units": unit, "navigate": False}
        for n, s in zip(("y", "x"), data.shape)
    ]
    signal = {
        "data": data,
        "axes": axes,
        "metadata": {"General": {"title": "hs"}, "Signal": {"signal_type": ""}},
        "original_metadata": {},
    }
    file_writer(str(path), signal)
    return path


def write_hspy(
    path: Path, data: np.ndarray, scale: float, unit: str, *, frame_axis: bool = False
) -> Path:
    """A HyperSpy ``.hspy`` (HDF5) file as ``s.save("x.hspy")`` writes it (rosettasciio)."""
    from rsciio.hspy import file_writer

    names = ("y", "x") if data.ndim == 2 else ("z", "y", "x")
    axes = []
    for k, (name, size) in enumerate(zip(names, data.shape)):
        stack = data.ndim == 3 and k == 0
        axes.append(
            {
                "name": name,
                "size": size,
                "scale": 1.0 if stack else scale,
                "offset": 0.0,
                "units": "" if stack else unit,
                "navigate": stack and frame_axis,
            }
        )
    signal = {
        "data": data,
        "axes": axes,
        "metadata": {
            "General": {"title": "hs", "original_filename": "scan.dm4"},
            "Signal": {"signal_type": "", "record_by": "image"},
            "Acquisition_instrument": {"TEM": {"beam_energy": 300.0}},
        },
        "original_metadata": {},
        "tmp_parameters": {},
        "attributes": {"_lazy": False},
        "package_info": {"package": "hyperspy", "package_version": "2.3.0"},
        "learning_results": {},
        "models": {},
    }
    file_writer(str(path), signal, show_progressbar=False)
    return path


def hspy_to_zspy(hspy: Path, zspy: Path) -> Path:
    """The same HyperSpy tree as a zarr (format 2) folder, which is what a ``.zspy`` is.

    rosettasciio 0.15's ZSPY *writer* needs zarr 2; its reader works with zarr 3, so the
    test copies the HSPY tree group by group (HyperSpy's two formats share one layout).
    """
    import h5py
    import zarr

    def plain(value: object) -> object:
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        return value

    def copy(group: h5py.Group, target: zarr.Group) -> None:
        for key, value in group.attrs.items():
            target.attrs[key] = plain(value)
        for name, item in group.items():
            if isinstance(item, h5py.Group):
                copy(item, target.require_group(name))
                continue
            values = item[()]
            if values.dtype.kind in "OS":
                continue  # (string arrays: not needed to read an image)
            array = target.create_array(name, shape=values.shape, dtype=values.dtype)
            array[...] = values
            for key, value in item.attrs.items():
                array.attrs[key] = plain(value)

    with h5py.File(hspy, "r") as source:
        root = zarr.open_group(str(zspy), mode="w", zarr_format=2)
        copy(source, root)
        root.attrs["file_format"] = "ZSpy"
    return zspy
