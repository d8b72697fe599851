"""The real labelled graphene-contamination images, and k-fold splits for honest scores.

The set (31 of the 131 images of Sadre, Ophus et al., Microsc. Microanal. 27, 2021) lives
outside the package, in ``shared/data/graphene_contamination`` beside the checkout::

    images/NAME.png     256 x 256 8-bit phase-contrast HRTEM of monolayer graphene
    labels/NAME.png     255 = amorphous contamination, 0 = clean graphene (or vacuum)
    estimated_pixel_size_nm.csv   pixel size estimated from the graphene FFT ring

Several images are frames of one acquisition series (``..._layer_0035`` and
``..._layer_0039`` of the same ``FS_001``): :func:`kfold_splits` keeps a series in one
fold, so no image is scored by a model (or a parameter choice) that saw its twin.

:func:`final_split` sets a date-grouped third of the set aside as a *final* set: the
shipped models are trained without it, nothing is chosen on it, and it is scored once
per shipped model (docs/segmentation.md). Everything else (fine-tuning, cross-validated
choices) uses the remaining *selection* set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FileReadError, InputError

#: Class names of the graphene labels, in label order.
GRAPHENE_CLASSES: tuple[str, str] = ("clean", "contamination")
_SERIES_SUFFIX = re.compile(r"_layer_\d+$")
_DATE = re.compile(r"^(\d{4}_\d{4})")
#: Seed of the final-set draw (fixed once, before any model was scored on the split).
FINAL_SPLIT_SEED = 0


@dataclass(frozen=True)
class LabelledImage:
    """One labelled micrograph. Unpacks as ``image, mask, pixel_size_nm``.

    Attributes
    ----------
    name
        File stem, e.g. ``"2013_1213_Gr_129"``.
    image
        float32 (H, W), the raw 8-bit grey values.
    mask
        bool (H, W), True = contamination.
    pixel_size_nm
        Estimated pixel size in nm (``None`` if the table has no entry).
    pixel_size_confidence
        ``"high"``, ``"medium"``, ``"low"`` or ``""`` (from the estimate's table).
    series
        Acquisition series (the name without ``_layer_NNNN``), used to group folds.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    pixel_size_nm: float | None
    pixel_size_confidence: str = ""
    series: str = ""

    def __iter__(self) -> Iterator[object]:
        return iter((self.image, self.mask, self.pixel_size_nm))


def default_graphene_folder() -> Path:
    """``$NAPARI_ATOMSEG_SHARED_DATA/graphene_contamination`` or ``<repo>/../shared/data/...``."""
    env = os.environ.get("NAPARI_ATOMSEG_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return base / "graphene_contamination"


def date_of(name: str) -> str:
    """The acquisition date of an image name (``"2014_0601"``), or its series if none."""
    m = _DATE.match(Path(name).stem)
    return m.group(1) if m else series_of(name)


def final_split(
    names: Sequence[str], fraction: float = 1 / 3, seed: int = FINAL_SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """``(selection_indices, final_indices)``: a date-grouped ``fraction`` set aside.

    Acquisition dates are shuffled with ``seed`` and whole dates are dealt to the final
    set until it holds at least ``round(fraction * n)`` images, so no session of the
    microscope is on both sides. With the 31 graphene images and the default seed the
    final set is the 11 images of 2013-11-14, 2013-12-15, 2014-06-01 and 2015-01-10.
    """
    if not 0 < fraction < 1:
        raise InputError(f"final_split: fraction must be in (0, 1), got {fraction}")
    dates: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        dates.setdefault(date_of(name), []).append(i)
    keys = list(dates)
    np.random.default_rng(seed).shuffle(keys)
    want = round(fraction * len(names))
    final: list[int] = []
    for key in keys:
        if len(final) >= want:
            break
        final.extend(dates[key])
    final_idx = np.sort(np.asarray(final, dtype=np.int64))
    return np.setdiff1d(np.arange(len(names)), final_idx), final_idx


def series_of(name: str) -> str:
    """The acquisition series of an image name (frames of one series share it)."""
    return _SERIES_SUFFIX.sub("", Path(name).stem)


def _read_grey_png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    try:
        arr = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for corrupt files
        raise FileReadError(f"{path}: cannot be read as an image ({exc})") from exc
    if arr.ndim == 3:  # grey saved as RGB(A): identical channels
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise FileReadError(f"{path}: expected a 2-D grey image, got shape {arr.shape}")
    return arr


def load_graphene_contamination(
    folder: str | os.PathLike[str] | None = None,
) -> list[LabelledImage]:
    """Load every image of the set with its mask and estimated pixel size, sorted by name.

    Raises :class:`FileReadError` naming the folder if it (or an image's label) is missing.
    """
    root = Path(folder) if folder is not None else default_graphene_folder()
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise FileReadError(
            f"{root}: not a graphene_contamination folder (needs images/ and labels/); "
            "set NAPARI_ATOMSEG_SHARED_DATA to the shared data folder"
        )
    sizes: dict[str, tuple[float, str]] = {}
    table = root / "estimated_pixel_size_nm.csv"
    if table.exists():
        df = pd.read_csv(table)
        for row in df.itertuples(index=False):
            sizes[Path(str(row.image)).stem] = (
                float(row.est_pixel_size_nm),
                str(getattr(row, "confidence", "")),
            )
    out = []
    for path in sorted(images_dir.glob("*.png")):
        label_path = labels_dir / path.name
        if not label_path.exists():
            raise FileReadError(f"{path}: has no label file {label_path}")
        image = _read_grey_png(path).astype(np.float32)
        mask = _read_grey_png(label_path) > 127
        if mask.shape != image.shape:
            raise FileReadError(f"{label_path}: shape {mask.shape} differs from {image.shape}")
        size, confidence = sizes.get(path.stem, (None, ""))
        out.append(LabelledImage(path.stem, image, mask, size, confidence, series_of(path.stem)))
    if not out:
        raise FileReadError(f"{images_dir}: contains no .png image")
    return out


def kfold_splits(
    groups: Sequence[str], k: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train_indices, test_indices) pairs; every item is tested exactly once.

    Items sharing a group (e.g. frames of one series) always fall in the same fold. Groups
    are shuffled with ``seed`` and dealt to the folds largest first, each to the fold
    with the fewest items, so fold sizes differ by at most the largest group.
    """
    n = len(groups)
    if not 2 <= k <= n:
        raise InputError(f"k-fold: need 2 <= k <= number of items ({n}), got k={k}")
    names = sorted(set(groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(names)
    members = {g: [i for i, gi in enumerate(groups) if gi == g] for g in names}
    if len(names) < k:
        raise InputError(f"k-fold: only {len(names)} groups for k={k} folds")
    # Stable sort by size keeps the shuffled order among equal-sized groups.
    ordered = sorted(names, key=lambda g: -len(members[g]))
    folds: list[list[int]] = [[] for _ in range(k)]
    for g in ordered:
        smallest = min(range(k), key=lambda f: len(folds[f]))
        folds[smallest].extend(members[g])
    everything = np.arange(n)
    return [
        (np.setdiff1d(everything, np.sort(f)), np.sort(np.asarray(f, dtype=np.int64)))
        for f in folds
    ]
