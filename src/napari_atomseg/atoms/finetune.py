"""Fine-tuning pairs for the atom finder from real images with hand-placed atom positions.

Two steps make a fine-tuned model (both driven by one training config)::

    python -m napari_atomseg.atoms.finetune configs/atoms_pt_carbon.yaml
    napari-atomseg train configs/atoms_pt_carbon.yaml

The first writes the config's ``pairs`` file (``.npz``, under ``runs/``, ignored by git:
the real data stay outside the repository) from the images of
``shared/data/pt_single_atoms`` named in :data:`PT_FINETUNE_IMAGES` -- the same images on
which ``benchmarks/atoms.py`` tunes the baselines, so every method is scored on the
other nine. The second fine-tunes the config's ``init_from`` model on them, mixed with
synthetic examples (``pairs_fraction``).

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

#: Pt images used for fine-tuning (and for tuning the baselines in the benchmark).
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
        x = normalise(img, task.normalisation).astype(np.float32)[None]
        cols = pd.DataFrame({"y_px": points[:, 0], "x_px": points[:, 1], "visible": True})
        target = task.render_target(cols, ps, (0, 0), img.shape)
        pairs.append((np.ascontiguousarray(x), np.ascontiguousarray(target)))
    return pairs


def write_pairs(config_path: str | Path) -> Path:
    """Write the ``pairs`` file a fine-tuning config names; returns its path."""
    from ..backend.train import TrainConfig, load_task
    from ..backend.train_data import save_pairs

    cfg = TrainConfig.from_yaml(config_path)
    if not cfg.pairs:
        raise InputError(f"{config_path}: the config has no 'pairs: PATH' to write")
    task = load_task(cfg.task, cfg.task_options)
    folder = shared_data_dir() / "pt_single_atoms"
    if not folder.is_dir():
        raise InputError(f"{folder}: not found (set NAPARI_ATOMSEG_SHARED_DATA)")
    items = [read_pt_image(folder, key) for key in PT_FINETUNE_IMAGES]
    out = Path(cfg.pairs)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_pairs(out, point_pairs(items, task))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m napari_atomseg.atoms.finetune",
        description="write the fine-tuning pairs a training config names (Pt single atoms)",
    )
    parser.add_argument("config", help="training config (YAML) with 'pairs: PATH'")
    args = parser.parse_args(argv)
    try:
        path = write_pairs(args.config)
    except AtomsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
