"""Image stacks (movies, series) opened lazily: frames are read when they are used.

:func:`open_stack` gives a :class:`Stack`: a dask array ``(frames, rows, cols)`` over the
file, its :class:`~.calibration.Calibration` (the frame axis in seconds where the file
records a frame time) and the absolute index of its first frame, so a frame range
(:meth:`Stack.select`, ``--frames A:B``) keeps the file's frame numbers. Nothing but the
header is read when a stack is opened; a long movie costs memory only for the frames in
use.

==========================  ==============================================================
format                      how it is read lazily
==========================  ==============================================================
TIFF (ImageJ, plain, DM)    file reads of one frame at a time where the pixels are
                            contiguous and uncompressed, else tifffile's zarr store
                            (chunks = pages)
MRC / MRCS / ST / ALI       file reads of one frame at a time at mrcfile's data offset
DM3/DM4, EMD, SER, HSPY     rosettasciio ``lazy=True`` (dask arrays over the file)
in-memory arrays            :func:`as_stack` wraps numpy, dask or zarr arrays
==========================  ==============================================================

Calibration follows the rules of :func:`~.calibration.build_calibration` (a frame axis in
seconds becomes ``"time"``); the time between frames is ``Stack.frame_time_s``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileReadError, InputError
from .calibration import Calibration, RawAxis, build_calibration

#: Extensions :func:`open_stack` accepts (those of :func:`read_image` plus HyperSpy's).
STACK_EXTENSIONS = (".tif", ".tiff", ".mrc", ".mrcs", ".st", ".ali", ".dm3", ".dm4", ".emd")
STACK_EXTENSIONS += (".ser", ".emi", ".hspy")


@dataclass(frozen=True)
class Stack:
    """A lazily read stack of 2-D frames.

    Attributes
    ----------
    data
        dask array ``(frames, rows, cols)``, one chunk per frame; numbers as stored.
    calibration
        3-D :class:`Calibration`: the frame axis first (``"s"`` where the file says how
        long a frame is), then the image plane.
    name
        A short name (the file's stem).
    path
        The file, or None for an in-memory stack.
    first_frame, frame_step
        Absolute index (in the file) of ``data[0]`` and the step between frames;
        ``frame_indices`` lists them all.
    """

    data: Any
    calibration: Calibration
    name: str = "stack"
    path: Path | None = None
    first_frame: int = 0
    frame_step: int = 1
    _keep: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise InputError(
                f"{self.name}: a stack is 3-D (frames, rows, cols), got {self.data.shape}"
            )
        if self.calibration.ndim != 3:
            raise InputError(f"{self.name}: the calibration must have 3 axes")

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames, rows, cols)."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(rows, cols) of one frame."""
        return self.shape[1], self.shape[2]

    @property
    def nbytes(self) -> int:
        """Size of the whole stack in memory, bytes (as stored; nothing is read)."""
        return int(np.prod(self.shape)) * np.dtype(self.data.dtype).itemsize

    @property
    def pixel_size_nm(self) -> float | None:
        """In-plane pixel size in nm, or None (see :attr:`Calibration.pixel_size_nm`)."""
        return self.calibration.pixel_size_nm

    @property
    def frame_time_s(self) -> float | None:
        """Seconds between frames when the file records it, else None."""
        return self.calibration.scale[0] if self.calibration.units[0] == "s" else None

    @property
    def frame_indices(self) -> np.ndarray:
        """Absolute frame numbers (in the file) of the frames of this stack (int64)."""
        n = len(self)
        return self.first_frame + self.frame_step * np.arange(n, dtype=np.int64)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (relative to this stack) read into memory, as stored."""
        if not -len(self) <= index < len(self):
            raise InputError(f"{self.name}: frame {index} is outside its {len(self)} frames")
        return np.asarray(self.data[index].compute())

    def select(self, frames: str | slice | range | None) -> Stack:
        """The frames ``frames`` (``"A:B"`` / ``"A:B:S"``, a slice or a range in *absolute*
        frame numbers) as a new lazy stack; None keeps every frame."""
        if frames is None:
            return self
        last = int(self.frame_indices[-1]) + 1 if len(self) else self.first_frame
        wanted = parse_frame_range(frames, self.first_frame, last)
        absolute = self.frame_indices
        rel = np.flatnonzero(np.isin(absolute, np.arange(wanted.start, wanted.stop, wanted.step)))
        if len(rel) == 0:
            raise InputError(f"frames: {frames!r} selects no frame of {self.name}")
        steps = np.diff(absolute[rel])
        if len(steps) and not (steps == steps[0]).all():
            raise InputError(f"frames: {frames!r} does not give evenly spaced frames")
        step = int(steps[0]) if len(steps) else self.frame_step
        data = self.data[int(rel[0]) : int(rel[-1]) + 1 : max(1, step // self.frame_step)]
        cal = self.calibration
        if cal.units[0] == "s" and step != self.frame_step:
            factor = step / self.frame_step
            cal = dataclasses.replace(cal, scale=(cal.scale[0] * factor, *cal.scale[1:]))
        return dataclasses.replace(
            self, data=data, calibration=cal, first_frame=int(absolute[rel[0]]), frame_step=step
        )


def parse_frame_range(frames: str | slice | range, first: int, stop: int) -> range:
    """``"A:B"``, ``"A:B:S"``, ``"A:"``, ``":B"``, ``"A"`` (one frame), a slice or a range
    of absolute frame numbers -> a non-empty ``range`` within ``[first, stop)``.

    Negative numbers count from the end, as in Python. Raises InputError otherwise.
    """
    if isinstance(frames, range):
        frames = slice(frames.start, frames.stop, frames.step)
    if isinstance(frames, str):
        text = frames.strip()
        parts = text.split(":")
        try:
            values = [int(p) if p.strip() else None for p in parts]
        except ValueError:
            raise InputError(f"frames: {frames!r} is not A:B, A:B:S or A (integers)") from None
        if len(values) == 1:
            if values[0] is None:
                raise InputError("frames: empty frame range")
            values = [values[0], values[0] + 1 if values[0] != -1 else None]
        if len(values) > 3:
            raise InputError(f"frames: {frames!r} is not A:B, A:B:S or A")
        frames = slice(*values)
    if not isinstance(frames, slice):
        raise InputError(f"frames: expected 'A:B', a slice or a range, got {frames!r}")
    n = stop - first

    def absolute(v: int | None, default: int) -> int:
        """An absolute frame number: ``default`` for None, negatives from ``stop``."""
        if v is None:
            return default
        return v + stop if v < 0 else v

    step = 1 if frames.step is None else int(frames.step)
    if step < 1:
        raise InputError(f"frames: the step must be a positive integer, got {step}")
    start = absolute(frames.start, first)
    end = absolute(frames.stop, stop)
    if start < first or end > stop or start >= end:
        raise InputError(
            f"frames: {_show(frames)} selects no frame of a stack with frames "
            f"{first}-{stop - 1} ({n} frames)"
        )
    return range(start, end, step)


def _show(s: slice) -> str:
    parts = ["" if v is None else str(v) for v in (s.start, s.stop)]
    return ":".join(parts) + (f":{s.step}" if s.step not in (None, 1) else "")


# --- opening ---------------------------------------------------------------------------------
def as_stack(
    frames: Any,
    calibration: Calibration | None = None,
    pixel_size_nm: float | None = None,
    name: str = "stack",
) -> Stack:
    """Wrap a 3-D numpy / dask / zarr array (or a :class:`Stack`) as a :class:`Stack`.

    ``pixel_size_nm`` (when given) sets the in-plane calibration; the array is not copied.
    """
    if isinstance(frames, Stack):
        stack = frames
    else:
        if not hasattr(frames, "shape"):
            frames = np.asarray(frames)
        if frames.ndim != 3:
            raise InputError(
                f"{name}: expected a 3-D stack (frames, rows, cols), got shape {frames.shape}"
            )
        if np.dtype(frames.dtype).kind not in "biuf":
            raise InputError(f"{name}: expected real numbers, got dtype {frames.dtype}")
        arr = _as_frames(frames, name)
        cal = calibration if calibration is not None else Calibration.uncalibrated(3)
        stack = Stack(arr, cal, name)
    if pixel_size_nm is not None:
        cal = Calibration.from_pixel_size_nm(float(pixel_size_nm), ndim=3)
        old = stack.calibration
        cal = dataclasses.replace(
            cal,
            scale=(old.scale[0], *cal.scale[1:]),
            units=(old.units[0], *cal.units[1:]),
            axis_names=(old.axis_names[0], *cal.axis_names[1:]),
            metadata=old.metadata,
        )
        stack = dataclasses.replace(stack, calibration=cal)
    return stack


def open_stack(path: str | os.PathLike[str], frames: str | slice | range | None = None) -> Stack:
    """Open a stack file lazily (see the module docstring); ``frames`` selects a range.

    Raises FileReadError for a missing, unreadable or non-stack file (a single 2-D
    image is a one-frame stack).
    """
    p = Path(path)
    if not p.is_file():
        raise FileReadError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix not in STACK_EXTENSIONS:
        raise FileReadError(
            f"{p}: unsupported stack type {p.suffix!r}; supported: {', '.join(STACK_EXTENSIONS)}"
        )
    try:
        if suffix in (".tif", ".tiff"):
            stack = _open_tiff(p)
        elif suffix in (".mrc", ".mrcs", ".st", ".ali"):
            stack = _open_mrc(p)
        else:
            stack = _open_rsciio(p)
    except (FileReadError, InputError):
        raise
    except MemoryError:
        raise
    except Exception as exc:  # the libraries raise anything from struct.error to KeyError
        raise FileReadError(
            f"{p}: could not be opened as a stack: {type(exc).__name__}: {exc}"
        ) from exc
    return stack.select(frames)


class _FileFrames:
    """Frames stored contiguously in a file, read with plain file reads one chunk at a time.

    An array-like for :func:`dask.array.from_array`: given a numpy memory map, dask copies
    the whole file into memory when the graph is built, and a memory map keeps every page
    it has read resident; file reads keep only the frames in use (measured:
    docs/tracking.md).
    """

    def __init__(self, path: Path, offset: int, dtype: Any, shape: tuple[int, ...]) -> None:
        self.path, self.offset = Path(path), int(offset)
        self.dtype, self.shape = np.dtype(dtype), tuple(int(n) for n in shape)
        self.ndim = len(self.shape)
        self._frame_items = int(np.prod(self.shape[1:]))

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        first, rest = (key[0] if key else slice(None)), key[1:]
        if isinstance(first, slice):
            return self._read(range(*first.indices(self.shape[0])))[(slice(None), *rest)]
        return self._read([int(first) % self.shape[0]])[0][rest]  # an integer drops the axis

    def _read(self, frames: Any) -> np.ndarray:
        out = np.empty((len(frames), *self.shape[1:]), dtype=self.dtype)
        with open(self.path, "rb") as f:
            for k, i in enumerate(frames):
                f.seek(self.offset + i * self._frame_items * self.dtype.itemsize)
                flat = np.fromfile(f, self.dtype, self._frame_items)
                if flat.size != self._frame_items:
                    raise FileReadError(f"{self.path}: frame {i} is cut short (truncated file)")
                out[k] = flat.reshape(self.shape[1:])
        return out


def _memmap_frames(data: np.memmap) -> Any:
    """A :class:`_FileFrames` over a whole, C-ordered memory map of 2-D frames (else ``data``)."""
    if (
        getattr(data, "filename", None) is None
        or not data.flags.c_contiguous
        or data.ndim not in (2, 3)
    ):
        return data
    shape = data.shape if data.ndim == 3 else (1, *data.shape)
    return _FileFrames(Path(data.filename), data.offset, data.dtype, shape)


def _as_frames(data: Any, name: str) -> Any:
    """A dask array (frames, rows, cols) with one chunk per frame; a 2-D image -> 1 frame."""
    import dask.array as da

    if isinstance(data, np.memmap):
        data = _memmap_frames(data)
    arr = data if hasattr(data, "compute") else da.from_array(data, chunks=(1, *data.shape[1:]))
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise FileReadError(
            f"{name}: {arr.ndim}-D data of shape {arr.shape} is not a stack of images"
        )
    return arr.rechunk((1, *arr.shape[1:]))


def _open_tiff(p: Path) -> Stack:
    import dask.array as da
    import tifffile

    from ._tiff import _plain_calibration, is_vendor_tiff

    with tifffile.TiffFile(p) as tif:
        if not tif.series:
            raise FileReadError(f"{p}: the TIFF holds no readable image")
        if is_vendor_tiff(tif):
            return _open_rsciio(p)
        series = tif.series[0]
        axes = series.axes
        shape = series.shape
        if axes.endswith("S") or len(shape) - shape.count(1) > 3:
            raise FileReadError(f"{p}: TIFF axes {axes!r} {shape} are not a grey-scale stack")
        page = series.keyframe
        tags = {tag.code: tag.value for tag in page.tags.values()}
        ij = tif.imagej_metadata or {}
        scales, units, _ = _plain_calibration(tags, ij, axes)
        contiguous = series.dataoffset is not None
    keep: tuple[Any, ...] = ()
    # Singleton axes (pages written as (1, rows, cols) arrays) fold into the frame axis.
    frames_shape = (int(np.prod(shape[:-2])), *shape[-2:])
    if contiguous:
        data = _FileFrames(p, series.dataoffset, series.dtype, frames_shape)
        arr = da.from_array(data, chunks=(1, *frames_shape[1:]))
    else:
        store = tifffile.imread(p, aszarr=True)
        keep = (store,)
        arr = da.from_zarr(store).reshape(frames_shape)
    lead = [(s, u) for s, u, n in zip(scales, units, shape) if n > 1][:-2] if len(shape) > 2 else []
    lead_axis = RawAxis(*lead[0], "frame") if len(lead) == 1 else RawAxis(1.0, "", "frame")
    raw = [lead_axis, RawAxis(scales[-2], units[-2], "y"), RawAxis(scales[-1], units[-1], "x")]
    cal = _calibration(raw, p, "TIFF (lazy, tifffile)")
    return Stack(_as_frames(arr, str(p)), cal, p.stem, p, _keep=keep)


def _open_mrc(p: Path) -> Stack:
    import warnings

    import mrcfile

    from ._mrc import check_mrc_header

    check_mrc_header(p)
    with warnings.catch_warnings():
        # Old files without the "MAP " identifier: the header was checked above.
        warnings.simplefilter("ignore", RuntimeWarning)
        mrc = mrcfile.mmap(p, mode="r", permissive=True)
    voxel = mrc.voxel_size
    raw = [
        RawAxis(1.0, "", "frame"),
        RawAxis(float(voxel.y), "A", "y"),
        RawAxis(float(voxel.x), "A", "x"),
    ]
    cal = _calibration(raw, p, f"MRC (lazy, mrcfile {mrcfile.__version__})")
    return Stack(_as_frames(mrc.data, str(p)), cal, p.stem, p, _keep=(mrc,))


def _open_rsciio(p: Path) -> Stack:
    import importlib

    from ._assemble import summarize_hyperspy_metadata
    from ._rsciio import _not_an_image, apply_mapping

    module = {
        ".dm3": "rsciio.digitalmicrograph",
        ".dm4": "rsciio.digitalmicrograph",
        ".emd": "rsciio.emd",
        ".ser": "rsciio.tia",
        ".emi": "rsciio.tia",
        ".hspy": "rsciio.hspy",
        ".tif": "rsciio.tiff",
        ".tiff": "rsciio.tiff",
    }[p.suffix.lower()]
    kwargs = {"select_type": "images"} if module == "rsciio.emd" else {}
    signals = importlib.import_module(module).file_reader(str(p), lazy=True, **kwargs)
    for signal in signals:
        if _not_an_image(signal):
            continue
        axes = signal["axes"]
        nav = [a for a in axes if a.get("navigate", False) and int(a["size"]) > 1]
        plane = [a for a in axes if not a.get("navigate", False)]
        if len(plane) != 2 or len(nav) > 1:
            continue
        lead = nav[0] if nav else {"scale": 1.0, "units": "", "name": "frame"}
        raw = [
            RawAxis(float(a.get("scale") or 0.0), a.get("units"), str(a.get("name") or ""))
            for a in (lead, *plane)
        ]
        metadata = summarize_hyperspy_metadata(apply_mapping(signal))
        cal = _calibration(raw, p, f"{module} (lazy)", metadata)
        data = signal["data"]
        return Stack(_as_frames(data.reshape((-1, *data.shape[-2:])), str(p)), cal, p.stem, p)
    raise FileReadError(f"{p}: holds no image or image stack")


def _calibration(
    raw: list[RawAxis], p: Path, fmt: str, metadata: dict[str, Any] | None = None
) -> Calibration:
    import warnings

    from .calibration import CalibrationWarning

    md = {"format": fmt, "source_path": str(p), **(metadata or {})}
    with warnings.catch_warnings():
        # The stack's own frame axis is not a defect of the file; in-plane problems
        # are recorded in the calibration's note and surface where the image is read.
        warnings.simplefilter("ignore", CalibrationWarning)
        cal = build_calibration(raw, md, where=str(p))
    if cal.units[0] not in ("s", "px"):
        # A lead axis in nm or eV is not a time series; frames are frames.
        cal = dataclasses.replace(
            cal,
            scale=(1.0, *cal.scale[1:]),
            units=("px", *cal.units[1:]),
            axis_names=("frame", *cal.axis_names[1:]),
        )
    return cal
