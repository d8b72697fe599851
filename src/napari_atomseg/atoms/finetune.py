"""Fine-tuning pairs for the atom finder from real images with hand-placed atom positions.

:func:`point_pairs` is what every fine-tuning path uses, including the users' command
``napari-atomseg finetune`` (:mod:`.finetune_user`, which also makes the shipped
``atoms_pt_carbon`` since 2026-11-29). This module also keeps the config-driven path of
the earlier dedicated Pt recipe and the Pt data helpers of the cross-validation.

With a config, two steps make a fine-tuned model::

    python -m napari_atomseg.atoms.finetune configs/atoms_pt_carbon.yaml --images all
    napari-atomseg train configs/atoms_pt_carbon.yaml

The first writes the config's ``pairs`` file (``.npz``, under ``runs/``, ignored by git:
the real data stay outside the repository) from the chosen images of
``shared/data/pt_single_atoms`` (``--images all``: the 11 labelled images; the default is
:data:`PT_FINETUNE_IMAGES`, the two images on which ``benchmarks/atoms.py`` tunes its
baselines). The second fine-tunes the config's ``init_from`` model on them, mixed with
synthetic examples (``pairs_fraction``). ``benchmarks/atoms_pt_cv.py`` runs the same
recipe in k-fold cross-validation (:func:`cv_folds`) to measure it on images the model
never saw.

Each pair goes through the path a real image takes at inference (resampled to the
working pixel size, normalised as the card says); the target is rendered from the hand
positions exactly as :class:`~.training.AtomsTask` renders simulated columns.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AtomsegError, InputError

#: Pt images on which benchmarks/atoms.py tunes its baselines (and the default image set
#: of ``python -m napari_atomseg.atoms.finetune``; ``--images all`` takes every image).
PT_FINETUNE_IMAGES = ("021", "025")


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout, or ``NAPARI_ATOMSEG_SHARED_DATA``."""
    env = os.environ.get("NAPARI_ATOMSEG_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def read_pt_image(folder: Path, key: str) -> tuple[np.ndarray, float, np.ndarray]:
    """(image, pixel size nm, hand positions (N, 2) row/col px) of Pt image ``key``."""
    import pandas as pd

    from ..io import read_image

    images = sorted((folder / "images").glob(f"{key}_*.tif"))
    if not images:
        raise InputError(f"{folder}: no image {key}_*.tif")
    image, cal = read_image(images[0])
    if cal.pixel_size_nm is None:
        raise InputError(f"{images[0]}: no pixel size")
    table = pd.read_csv(folder / "coordinates" / f"{key}_Results.csv")
    # ImageJ Results: X = column, Y = row, in pixels, origin top-left.
    return image, float(cal.pixel_size_nm), table[["Y", "X"]].to_numpy(dtype=np.float64)


def pt_image_keys(folder: Path) -> tuple[str, ...]:
    """Sorted keys (``"021"``...) of the labelled images in a ``pt_single_atoms`` folder."""
    keys = sorted(
        f.name.split("_", 1)[0]
        for f in (folder / "images").glob("*_*.tif")
        if (folder / "coordinates" / f"{f.name.split('_', 1)[0]}_Results.csv").is_file()
    )
    if not keys:
        raise InputError(f"{folder}: no labelled images (images/NNN_*.tif + coordinates/)")
    return tuple(keys)


def cv_folds(keys: Sequence[str], n_folds: int) -> list[tuple[str, ...]]:
    """Split ``keys`` into ``n_folds`` disjoint held-out groups (round robin over the sorted keys).

    Every key is in exactly one group, so each image is scored once by a model trained
    on the other groups. Deterministic: the same keys always give the same folds.
    """
    keys = sorted(keys)
    if not 2 <= int(n_folds) <= len(keys):
        raise InputError(f"n_folds: {n_folds} must be within 2-{len(keys)} (number of images)")
    return [tuple(keys[i :: int(n_folds)]) for i in range(int(n_folds))]


def point_pairs(
    items: Sequence[tuple[np.ndarray, float, np.ndarray]], task: Any
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training pairs ``((1, H, W) image, (C, H, W) target)`` at ``task``'s working sampling."""
    import pandas as pd

    from ..backend.normalise import normalise
    from ..backend.sampling import resample

    work = float(task.working_pixel_size_nm)
    pairs = []
    for image, ps, points in items:
        img = resample(np.asarray(image, np.float32), ps, work, max_upsample=task.max_upsample)
        x = normalise(task.flatten(img), task.normalisation).astype(np.float32)[None]
        cols = pd.DataFrame({"y_px": points[:, 0], "x_px": points[:, 1], "visible": True})
        target = task.render_target(cols, ps, (0, 0), img.shape)
        pairs.append((np.ascontiguousarray(x), np.ascontiguousarray(target)))
    return pairs


def write_pairs(
    config_path: str | Path | Any,
    images: Sequence[str] | str | None = None,
    folder: Path | None = None,
) -> Path:
    """Write the ``pairs`` file a fine-tuning config names; returns its path.

    ``config_path`` is a YAML path or a :class:`~..backend.train.TrainConfig`;
    ``images``: Pt image keys, ``"all"``, or None for :data:`PT_FINETUNE_IMAGES`.
    """
    from ..backend.train import TrainConfig, load_task
    from ..backend.train_data import save_pairs

    cfg = (
        config_path if isinstance(config_path, TrainConfig) else TrainConfig.from_yaml(config_path)
    )
    if not cfg.pairs:
        raise InputError(f"{config_path}: the config has no 'pairs: PATH' to write")
    task = load_task(cfg.task, cfg.task_options)
    folder = folder if folder is not None else shared_data_dir() / "pt_single_atoms"
    if not folder.is_dir():
        raise InputError(f"{folder}: not found (set NAPARI_ATOMSEG_SHARED_DATA)")
    if images is None:
        keys: Sequence[str] = PT_FINETUNE_IMAGES
    elif isinstance(images, str):
        keys = pt_image_keys(folder) if images == "all" else images.split(",")
    else:
        keys = images
    items = [read_pt_image(folder, key) for key in keys]
    out = Path(cfg.pairs)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_pairs(out, point_pairs(items, task))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m napari_atomseg.atoms.finetune",
        description="write the fine-tuning pairs a training config names (Pt single atoms)",
    )
    parser.add_argument("config", help="training config (YAML) with 'pairs: PATH'")
    parser.add_argument(
        "--images",
        default=",".join(PT_FINETUNE_IMAGES),
        help="comma-separated image keys (e.g. 021,025) or 'all' (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        path = write_pairs(args.config, args.images)
    except AtomsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
