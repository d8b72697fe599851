"""Writers: atomic-column tables to CSV, label masks to calibrated TIFF.

Both writers

- write atomically: to a temporary file in the destination folder, then ``os.replace``,
  so a crash or a full disk never leaves a half-written result under the final name;
- never overwrite silently: an existing file is replaced only with ``overwrite=True``, and
  a file that is an *input* (the calibration's ``source_path`` or anything in ``inputs``)
  only with ``overwrite_input=True`` as well;
- raise :class:`napari_atomseg.errors.FileWriteError` / :class:`InputError` with a message
  naming the file and the problem.

Images can be written as calibrated ImageJ TIFFs too (:func:`write_image_tiff`, e.g. to
convert a DM4 for Fiji).

CSV columns: ``y_px, x_px`` (row, col in pixels of the image), then ``y_nm, x_nm`` when the
calibration is in real space (``ky_per_nm, kx_per_nm`` in reciprocal space), preceded by
stack-axis columns for 3-D points, then every feature column. Label TIFFs are ImageJ
hyperstacks (uint8/uint16, or float32 above 65535 labels) with the pixel size as resolution
+ unit, so Fiji and :func:`napari_atomseg.io.read_images` read the calibration back, and the
class names in the description (``atomseg_classes``, JSON) and in ImageJ's "Info".
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileWriteError, InputError
from .calibration import ACQUISITION_FACTS, Calibration
from .units import NM, PER_NM, PX

_UNIT_SLUG = {NM: "nm", PER_NM: "per_nm", "s": "s", "eV": "eV", "deg": "deg", "rad": "rad"}

#: Largest label value a float32 TIFF stores exactly.
MAX_LABEL = 2**24


def write_points_csv(
    path: str | os.PathLike[str],
    points_px: Any,
    calibration: Calibration | None = None,
    features: Any = None,
    *,
    overwrite: bool = False,
    overwrite_input: bool = False,
    inputs: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write points (N, D) in pixel coordinates, (row, col) last, to a CSV table.

    Parameters
    ----------
    path
        Destination ``.csv`` file; its folder must exist.
    points_px
        (N, 2) ``(row, col)`` or (N, 3) ``(frame/z, row, col)`` positions in pixels.
    calibration
        The image's calibration; adds physical columns (``y_nm, x_nm`` ...) when calibrated.
        ``None`` writes pixel columns only.
    features
        A pandas DataFrame or a mapping of column name -> N values (confidence, intensity,
        class...). Written after the coordinate columns, in order. A feature named like a
        coordinate column must hold the same values (it is then not repeated).
    overwrite, overwrite_input, inputs
        See the module docstring.

    Returns
    -------
    Path
        The written file.
    """
    import pandas as pd

    coords = np.asarray(points_px, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise InputError(f"points: expected an (N, 2) or (N, 3) array, got shape {coords.shape}")
    if not np.isfinite(coords).all():
        raise InputError("points: coordinates contain NaN or inf")
    n, ndim = coords.shape
    if calibration is not None and calibration.ndim != ndim:
        raise InputError(
            f"points have {ndim} coordinates but the calibration has {calibration.ndim} axes "
            f"({', '.join(calibration.axis_names)})"
        )
    columns = _coordinate_columns(coords, calibration)
    table = pd.DataFrame(columns)
    for name, values in _feature_columns(features, n).items():
        if name in table.columns:
            if not _same(table[name].to_numpy(), values):
                raise InputError(
                    f"feature column {name!r} clashes with the coordinate column of that name "
                    "and holds different values; rename the feature"
                )
            continue
        table[name] = values
    target = _check_target(path, calibration, overwrite, overwrite_input, inputs, ".csv")
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False, float_format="%.10g")
    return target


def read_points_csv(path: str | os.PathLike[str]) -> tuple[np.ndarray, Any]:
    """Read a table written by :func:`write_points_csv`.

    Parameters
    ----------
    path
        A CSV with ``y_px, x_px`` columns (stack columns before them).

    Returns
    -------
    points_px : numpy.ndarray
        (N, D) float64 pixel coordinates: stack axis first, then ``y_px, x_px``.
    table : pandas.DataFrame
        The whole table.
    """
    import pandas as pd

    from ..errors import FileReadError

    p = Path(path)
    try:
        table = pd.read_csv(p)
    except (OSError, ValueError) as exc:
        raise FileReadError(f"{p}: cannot read the points table ({exc})") from exc
    if "y_px" not in table.columns or "x_px" not in table.columns:
        raise FileReadError(f"{p}: no y_px / x_px columns; not a napari-atomseg points table")
    lead = [c for c in table.columns[: list(table.columns).index("y_px")]]
    coords = table[[*lead, "y_px", "x_px"]].to_numpy(dtype=np.float64)
    return coords, table


def write_labels_tiff(
    path: str | os.PathLike[str],
    labels: Any,
    calibration: Calibration | None = None,
    class_names: Mapping[int, str] | None = None,
    *,
    overwrite: bool = False,
    overwrite_input: bool = False,
    inputs: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write a 2-D or 3-D label array to an ImageJ TIFF carrying the calibration.

    Parameters
    ----------
    path
        Destination ``.tif``/``.tiff`` file; its folder must exist.
    labels
        Non-negative integer (or bool) labels, (row, col) or (frame/z, row, col).
    calibration
        The image's calibration (pixel size written as ImageJ resolution + unit);
        ``None`` or uncalibrated writes pixels.
    class_names
        Label value -> class name, e.g. ``{0: "background", 1: "contamination"}``.
    overwrite, overwrite_input, inputs
        See the module docstring.

    Returns
    -------
    Path
        The written file.
    """
    import tifffile

    arr = np.asarray(labels)
    if arr.ndim not in (2, 3):
        raise InputError(f"labels: expected a 2-D or 3-D array, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise InputError(f"labels: expected integer labels, got dtype {arr.dtype}")
    low, high = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if low < 0:
        raise InputError(f"labels: negative label {low}; labels must be >= 0")
    if high > MAX_LABEL:
        raise InputError(f"labels: {high} exceeds the largest storable label {MAX_LABEL}")
    dtype = np.uint8 if high < 2**8 else np.uint16 if high < 2**16 else np.float32
    out = arr.astype(dtype)
    metadata, resolution = _imagej_calibration(arr.ndim, calibration)
    if class_names:
        names = {int(k): str(v) for k, v in class_names.items()}
        metadata["atomseg_classes"] = json.dumps({str(k): v for k, v in sorted(names.items())})
        metadata["Info"] = "napari-atomseg label classes:\n" + "\n".join(
            f"{k} = {v}" for k, v in sorted(names.items())
        )
    if calibration is not None and calibration.metadata.get("source_path"):
        metadata["atomseg_source"] = Path(str(calibration.metadata["source_path"])).name
    target = _check_target(path, calibration, overwrite, overwrite_input, inputs, ".tif")
    with atomic_path(target) as tmp:
        tifffile.imwrite(
            tmp,
            out,
            imagej=True,
            resolution=resolution,
            metadata=metadata,
            photometric="minisblack",
        )
    return target


def write_image_tiff(
    path: str | os.PathLike[str],
    image: Any,
    calibration: Calibration | None = None,
    *,
    overwrite: bool = False,
    overwrite_input: bool = False,
    inputs: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write a 2-D or 3-D grey-scale image to an ImageJ TIFF carrying the calibration.

    uint8, uint16 and float32 pixels are written as they are; other types become float32
    (ImageJ's types). Fiji and :func:`napari_atomseg.io.read_images` read the pixel size
    back. The acquisition facts in ``calibration.metadata`` go into ImageJ's "Info".

    Parameters
    ----------
    path
        Destination ``.tif``/``.tiff`` file; its folder must exist.
    image
        Real grey-scale pixels, (row, col) or (frame/z, row, col).
    calibration
        The image's calibration (pixel size written as ImageJ resolution + unit); None or
        uncalibrated writes pixels.
    overwrite, overwrite_input, inputs
        See the module docstring.

    Returns
    -------
    Path
        The written file.
    """
    import tifffile

    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise InputError(f"image: expected a 2-D or 3-D grey-scale array, got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise InputError("image: complex data; write the magnitude or the phase")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        arr = arr.astype(np.float32)
    metadata, resolution = _imagej_calibration(arr.ndim, calibration)
    if calibration is not None:
        facts = {
            k: v
            for k, v in calibration.metadata.items()
            if k in _INFO_KEYS and isinstance(v, str | int | float)
        }
        if facts:
            metadata["Info"] = "\n".join(f"{k} = {v}" for k, v in facts.items())
    target = _check_target(path, calibration, overwrite, overwrite_input, inputs, ".tif")
    with atomic_path(target) as tmp:
        tifffile.imwrite(
            tmp,
            arr,
            imagej=True,
            resolution=resolution,
            metadata=metadata,
            photometric="minisblack",
        )
    return target


_INFO_KEYS = ("source_path", "format", *ACQUISITION_FACTS, "date", "time")


def _imagej_calibration(
    ndim: int, calibration: Calibration | None
) -> tuple[dict[str, Any], tuple[float, float] | None]:
    """ImageJ metadata (axes, unit, spacing) and resolution for ``calibration``."""
    if calibration is not None and calibration.ndim != ndim:
        raise InputError(f"the array is {ndim}-D but the calibration has {calibration.ndim} axes")
    metadata: dict[str, Any] = {"axes": "YX" if ndim == 2 else "ZYX"}
    resolution = None
    if calibration is not None and calibration.calibrated:
        sy, sx = calibration.scale[-2:]
        resolution = (1.0 / sx, 1.0 / sy)
        metadata["unit"] = calibration.units[-1]
        if ndim == 3 and calibration.units[0] == calibration.units[-1]:
            metadata["spacing"] = calibration.scale[0]
    return metadata, resolution


# --------------------------------------------------------------------------- helpers
def _coordinate_columns(coords: np.ndarray, cal: Calibration | None) -> dict[str, np.ndarray]:
    n_lead = coords.shape[1] - 2
    columns: dict[str, np.ndarray] = {}
    lead_names = (
        list(cal.axis_names[:n_lead])
        if cal is not None
        else (["frame"] if n_lead == 1 else [f"frame{i}" for i in range(n_lead)])
    )
    for i, name in enumerate(lead_names):
        unit = cal.units[i] if cal is not None else PX
        columns[name if unit == PX else f"{name}_px"] = coords[:, i]
    columns["y_px"] = coords[:, -2]
    columns["x_px"] = coords[:, -1]
    if cal is None:
        return columns
    for i, name in enumerate(lead_names):
        unit = cal.units[i]
        if unit != PX:
            columns[f"{name}_{_UNIT_SLUG.get(unit, 'value')}"] = coords[:, i] * cal.scale[i]
    if cal.calibrated:
        sy, sx = cal.scale[-2:]
        if cal.is_reciprocal:
            columns["ky_per_nm"] = coords[:, -2] * sy
            columns["kx_per_nm"] = coords[:, -1] * sx
        else:
            columns["y_nm"] = coords[:, -2] * sy
            columns["x_nm"] = coords[:, -1] * sx
    return columns


def _feature_columns(features: Any, n: int) -> dict[str, np.ndarray]:
    if features is None:
        return {}
    if hasattr(features, "columns") and hasattr(features, "__getitem__"):  # DataFrame
        items = [(str(c), features[c].to_numpy()) for c in features.columns]
    elif isinstance(features, Mapping):
        items = [(str(k), np.asarray(v)) for k, v in features.items()]
    else:
        raise InputError(
            f"features: expected a pandas DataFrame or a dict of columns, got {type(features)}"
        )
    out: dict[str, np.ndarray] = {}
    for name, values in items:
        values = np.asarray(values)
        if values.ndim != 1 or len(values) != n:
            raise InputError(
                f"feature {name!r}: expected {n} values (one per point), got shape {values.shape}"
            )
        out[name] = values
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    try:
        return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-9))
    except (TypeError, ValueError):
        return False


def _check_target(
    path: str | os.PathLike[str],
    calibration: Calibration | None,
    overwrite: bool,
    overwrite_input: bool,
    inputs: Sequence[str | os.PathLike[str]],
    default_suffix: str,
) -> Path:
    target = Path(path).expanduser()
    if target.suffix == "":
        target = target.with_suffix(default_suffix)
    if not target.parent.is_dir():
        raise FileWriteError(f"{target}: the folder {target.parent} does not exist")
    if target.is_dir():
        raise FileWriteError(f"{target}: is a folder; give a file name")
    protected = [Path(p) for p in inputs]
    if calibration is not None and calibration.metadata.get("source_path"):
        protected.append(Path(str(calibration.metadata["source_path"])))
    if target.exists():
        if any(_same_file(target, p) for p in protected):
            if not overwrite_input:
                raise FileWriteError(
                    f"{target}: is an input file (the image these results come from); refusing "
                    "to overwrite it. Choose another name (or pass overwrite_input=True)."
                )
        elif not overwrite:
            raise FileWriteError(
                f"{target}: already exists; choose another name or pass overwrite=True"
            )
    return target


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[str]:
    """Yield a temporary path beside ``target``; move it over ``target`` on success, with
    the usual (umask) permissions. Used by every writer here and by model export."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the usual permissions (umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        _remove_quietly(tmp)
        raise FileWriteError(f"{target}: could not be written ({exc})") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(tmp: str) -> None:
    try:
        os.remove(tmp)
    except FileNotFoundError:
        pass
    except OSError as exc:  # the original error matters more; still say what was left
        warnings.warn(f"could not remove temporary file {tmp}: {exc}", stacklevel=3)
