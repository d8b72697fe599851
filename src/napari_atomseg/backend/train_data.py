"""Training data for the generic loop: examples by index, augmentation, libraries, real pairs.

Every training example is a pure function of ``(seed, stream, index)``: the dataset seeds a
fresh ``numpy.random.Generator`` from those three numbers, asks the task (or a zarr
library, or the fixed list of real pairs) for a pair, and augments it with the same
generator. So the data do not depend on how many DataLoader workers run or in which order
they finish; a resumed run continues with exactly the examples an uninterrupted run would
have seen.

Shapes: ``image`` float32 ``(1, H, W)`` (normalised, at the working pixel size);
``target`` float32 ``(C, H, W)`` or int64 ``(H, W)`` class map.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

#: Stream numbers mixed into the seed, so training and validation never share examples.
TRAIN_STREAM = 0
VAL_STREAM = 1


@dataclass(frozen=True)
class AugmentConfig:
    """Generic augmentations applied to every training pair (never to validation).

    ``rot90``/``flip``: random multiples of 90 degrees and mirror (both targets and image).
    ``gain``: the image is multiplied by ``exp(U(-gain, gain))``; ``offset``: ``U(-offset,
    offset)`` is added; ``noise``: Gaussian noise of standard deviation ``U(0, noise)`` is
    added (all in normalised units). ``scale_jitter``: image and target are rescaled by
    ``exp(U(-s, s))`` about the centre (bilinear for images and float targets, nearest for
    class maps) so the model tolerates pixel-size errors.
    """

    rot90: bool = True
    flip: bool = True
    gain: float = 0.2
    offset: float = 0.2
    noise: float = 0.05
    scale_jitter: float = 0.0

    @classmethod
    def from_value(cls, value: Any) -> AugmentConfig:
        """From a config's ``augment`` value: None/True (defaults), False (none), a
        mapping of fields, or an AugmentConfig. Unknown keys raise :class:`InputError`."""
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(rot90=False, flip=False, gain=0.0, offset=0.0, noise=0.0, scale_jitter=0.0)
        if isinstance(value, AugmentConfig):
            return value
        if not isinstance(value, Mapping):
            raise InputError(f"augment: expected true/false or a mapping, got {value!r}")
        bad = set(value) - set(cls.__dataclass_fields__)
        if bad:
            raise InputError(
                f"augment: unknown key(s) {sorted(bad)}; allowed: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**value)


def _rescale(arr: np.ndarray, factor: float, order: int) -> np.ndarray:
    """Zoom ``arr`` (..., H, W) by ``factor`` about its centre, keeping its shape."""
    from scipy import ndimage as ndi

    h, w = arr.shape[-2:]
    c = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    # output pixel o samples input at c + (o - c) / factor
    inv = 1.0 / factor
    offset = c - inv * c
    if arr.ndim == 2:
        return ndi.affine_transform(arr, [inv, inv], offset=offset, order=order, mode="reflect")
    return np.stack(
        [
            ndi.affine_transform(a, [inv, inv], offset=offset, order=order, mode="reflect")
            for a in arr
        ]
    )


def augment_pair(
    image: np.ndarray, target: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the generic augmentations (returns new arrays; inputs untouched)."""
    img, tgt = image, target
    if cfg.scale_jitter > 0:
        f = float(np.exp(rng.uniform(-cfg.scale_jitter, cfg.scale_jitter)))
        img = _rescale(img, f, 1).astype(np.float32)
        tgt = _rescale(tgt, f, 0 if tgt.dtype.kind in "iu" else 1).astype(tgt.dtype)
    if cfg.rot90:
        k = int(rng.integers(4))
        if k:
            img = np.rot90(img, k, axes=(-2, -1))
            tgt = np.rot90(tgt, k, axes=(-2, -1))
    if cfg.flip and rng.random() < 0.5:
        img = img[..., ::-1]
        tgt = tgt[..., ::-1]
    img = np.ascontiguousarray(img, dtype=np.float32)
    tgt = np.ascontiguousarray(tgt)
    if img is image:
        img = img.copy()
    if cfg.gain > 0:
        img *= np.float32(np.exp(rng.uniform(-cfg.gain, cfg.gain)))
    if cfg.offset > 0:
        img += np.float32(rng.uniform(-cfg.offset, cfg.offset))
    if cfg.noise > 0:
        sd = rng.uniform(0.0, cfg.noise)
        img += rng.normal(0.0, sd, img.shape).astype(np.float32)
    return img, tgt


def check_example(
    image: Any, target: Any, channels_out: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (image, target) pair from a task; returns contiguous arrays."""
    image = np.asarray(image)
    target = np.asarray(target)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] != 1 or image.dtype != np.float32:
        raise InputError(
            f"{where}: image must be float32 (1, H, W), got {image.dtype} {image.shape}"
        )
    if not np.isfinite(image).all():
        raise InputError(f"{where}: image contains NaN/inf")
    if target.dtype.kind in "iu":
        if target.shape != image.shape[1:]:
            raise InputError(
                f"{where}: class-map target must be (H, W) = {image.shape[1:]}, got {target.shape}"
            )
        target = target.astype(np.int64, copy=False)
    elif target.dtype == np.float32:
        if target.ndim == 2:
            target = target[None]
        if target.shape[1:] != image.shape[1:]:
            raise InputError(
                f"{where}: target (C, H, W) must match the image's H, W {image.shape[1:]}, got {target.shape}"
            )
    else:
        raise InputError(
            f"{where}: target must be float32 (C, H, W) or an integer (H, W) class map, got {target.dtype}"
        )
    return np.ascontiguousarray(image), np.ascontiguousarray(target)


# --------------------------------------------------------------------------- libraries


@dataclass
class LibraryRecord:
    """One image of a simulated zarr library (arrays present in the library, else None)."""

    index: int
    image: np.ndarray
    pixel_size_nm: float | None
    heatmap: np.ndarray | None = None
    classes: np.ndarray | None = None
    particle: np.ndarray | None = None
    column_labels: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


LIBRARY_ARRAYS = ("image", "heatmap", "classes", "particle", "column_labels")


class ZarrLibrary:
    """Read-only access to a library written by ``napari-atomseg simulate``.

    Expected layout: a zarr group with arrays ``image`` (N, H, W) and optionally
    ``heatmap``, ``classes``, ``particle``, ``column_labels`` of the same leading shape;
    per-image metadata either as a JSON string array ``parameters`` (N,) or a list
    ``attrs["images"]`` / ``attrs["parameters"]`` of mappings, from which ``pixel_size_nm``
    is taken. Images that are not finished (e.g. a ``done`` bool array is False) are
    skipped. The store is opened lazily in each process, so the object can be sent to
    DataLoader worker processes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"library not found: {self.path}")
        self._pid: int | None = None
        self._group: Any = None
        g = self._open()
        if "image" not in g:
            raise InputError(
                f"library {self.path}: has no 'image' array (found {sorted(g.array_keys())})"
            )
        self.n_images = int(g["image"].shape[0])
        self.indices = self._finished_indices(g)
        if len(self.indices) == 0:
            raise InputError(f"library {self.path}: contains no finished images")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_group"] = None
        state["_pid"] = None
        return state

    def _open(self) -> Any:
        import zarr

        if self._group is None or self._pid != os.getpid():
            self._group = zarr.open_group(str(self.path), mode="r")
            self._pid = os.getpid()
        return self._group

    def _finished_indices(self, g: Any) -> np.ndarray:
        if "done" in g:
            return np.flatnonzero(np.asarray(g["done"][:], dtype=bool))
        return np.arange(self.n_images)

    def __len__(self) -> int:
        return len(self.indices)

    def _metadata(self, g: Any, i: int) -> dict[str, Any]:
        if "parameters" in g:
            raw = g["parameters"][i]
            raw = raw.item() if hasattr(raw, "item") else raw
            if isinstance(raw, bytes):
                raw = raw.decode()
            try:
                return dict(json.loads(raw)) if raw else {}
            except (TypeError, ValueError):
                return {}
        for key in ("images", "parameters"):
            meta = g.attrs.get(key)
            if isinstance(meta, Sequence) and len(meta) > i and isinstance(meta[i], Mapping):
                return dict(meta[i])
        return {}

    def record(self, k: int) -> LibraryRecord:
        """The k-th finished image (k in [0, len(self)))."""
        g = self._open()
        i = int(self.indices[k % len(self.indices)])
        arrays = {name: np.asarray(g[name][i]) for name in LIBRARY_ARRAYS if name in g}
        meta = self._metadata(g, i)
        px = meta.get("pixel_size_nm")
        if px is None and isinstance(meta.get("parameters"), Mapping):
            px = meta["parameters"].get("pixel_size_nm")
        if px is None and "pixel_size_nm" in g:
            px = float(g["pixel_size_nm"][i])
        return LibraryRecord(
            index=i,
            image=arrays.pop("image"),
            pixel_size_nm=None if px is None else float(px),
            attrs=meta,
            **arrays,
        )


# --------------------------------------------------------------------------- fixed pairs


def save_pairs(path: str | Path, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> Path:
    """Save (image, target) pairs as an ``.npz`` (keys ``image_000``, ``target_000``...)."""
    path = Path(path)
    arrays = {}
    for i, (img, tgt) in enumerate(pairs):
        arrays[f"image_{i:03d}"] = np.asarray(img)
        arrays[f"target_{i:03d}"] = np.asarray(tgt)
    np.savez_compressed(path, **arrays)
    return path


def load_pairs(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Load pairs written by :func:`save_pairs` (no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pairs file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        keys = sorted(k for k in data.files if k.startswith("image_"))
        if not keys:
            raise InputError(f"pairs file {path}: no 'image_NNN' arrays")
        out = []
        for k in keys:
            t = "target_" + k[len("image_") :]
            if t not in data.files:
                raise InputError(f"pairs file {path}: {k} has no matching {t}")
            out.append((data[k], data[t]))
    return out


def random_crop(
    image: np.ndarray, target: np.ndarray, crop_px: int, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """A ``crop_px`` square crop (random, or centred when ``rng`` is None); reflect-pads small pairs."""
    h, w = image.shape[-2:]
    ph, pw = max(0, crop_px - h), max(0, crop_px - w)
    if ph or pw:
        image = np.pad(image, [(0, 0)] * (image.ndim - 2) + [(0, ph), (0, pw)], mode="reflect")
        target = np.pad(target, [(0, 0)] * (target.ndim - 2) + [(0, ph), (0, pw)], mode="reflect")
        h, w = image.shape[-2:]
    if rng is None:
        r, c = (h - crop_px) // 2, (w - crop_px) // 2
    else:
        r = int(rng.integers(h - crop_px + 1))
        c = int(rng.integers(w - crop_px + 1))
    return image[..., r : r + crop_px, c : c + crop_px], target[
        ..., r : r + crop_px, c : c + crop_px
    ]
