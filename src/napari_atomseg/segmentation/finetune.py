"""Fine-tuning the contamination U-Net on real labelled micrographs (partial labels).

The real graphene masks say only "contamination" or "not" (clean graphene *or* vacuum), so
each real image becomes a training pair whose unflagged pixels are
:data:`~.training.NOT_FLAGGED` (see :meth:`.training.SegmentationTask.real_example`). The
image goes through exactly the pre-processing that :func:`~.api.segment` applies before the
network (flat-field, spike removal; the backend then resamples and normalises), so
fine-tuning and inference see the same input.

Two steps make the shipped model (both driven by one training config)::

    python -m napari_atomseg.segmentation.finetune configs/segment_contamination.yaml
    napari-atomseg train configs/segment_contamination.yaml

The first writes the config's ``pairs`` file (``.npz``, ignored by git: the real data stay
outside the repository) from the *selection* set of ``shared/data/graphene_contamination``
(the final third, :func:`~.data.final_split`, is never trained on); the second fine-tunes
the config's ``init_from`` model on it (mixed with synthetic examples by
``pairs_fraction``). :func:`iter_finetune` does the same from Python with pairs in memory,
which the benchmark uses for its k-fold cross-validation (one fine-tune per fold, on the
training folds only).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import ProgressGenerator
from ..errors import AtomsegError, InputError
from .data import LabelledImage, final_split, load_graphene_contamination
from .preprocess import PreprocessOptions, preprocess
from .training import SegmentationTask


def unet_preprocess_options(task: str = "contamination") -> PreprocessOptions:
    """The pre-processing :func:`~.api.segment` applies before the U-Net for ``task``."""
    from .api import _DEFAULT_PREPROCESS

    return replace(_DEFAULT_PREPROCESS[task], standardise=False)


def real_pairs(
    items: Sequence[LabelledImage],
    task: SegmentationTask,
    preprocess_options: PreprocessOptions | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fine-tuning pairs ``((1, h, w) float32, (h, w) int64)`` at the task's working sampling.

    Every item needs a pixel size (the graphene set's FFT estimates); the target holds the
    flagged class where the mask is set and :data:`~.training.NOT_FLAGGED` elsewhere. Each
    image gives one pair per :meth:`~.training.SegmentationTask.real_pair_scales` (three
    with a scale jitter: the model meets real images at wrong scales too).
    """
    pre = preprocess_options or unet_preprocess_options(task.mode)
    pairs = []
    for it in items:
        if it.pixel_size_nm is None:
            raise InputError(f"{it.name}: no pixel size; fine-tuning needs one per image")
        image = preprocess(it.image, pre)
        for scale in task.real_pair_scales():
            pairs.append(task.real_example(image, it.mask, it.pixel_size_nm, scale))
    return pairs


def _read_config(config: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    from ..backend.train_loop import TrainConfig

    if isinstance(config, Mapping):
        return dict(config)
    return TrainConfig.from_yaml(config).to_dict()


def task_from_config(config: str | Path | Mapping[str, Any]) -> SegmentationTask:
    """The :class:`SegmentationTask` a training config describes."""
    from ..backend.train_loop import load_task

    cfg = _read_config(config)
    task = load_task(cfg["task"], cfg.get("task_options") or {})
    if not isinstance(task, SegmentationTask):
        raise InputError(f"training config: task {cfg['task']!r} is not a SegmentationTask")
    return task


def write_pairs(
    config: str | Path,
    folder: str | Path | None = None,
    names: Sequence[str] | None = None,
    include_final: bool = False,
) -> Path:
    """Write the config's ``pairs`` file from the labelled images in ``folder``.

    By default only the *selection* set (:func:`~.data.final_split`): the final third is
    never trained on. ``names`` restricts the set further to those image names;
    ``include_final`` adds the final set back (experiments only).
    """
    from ..backend.train_data import save_pairs

    cfg = _read_config(config)
    out = cfg.get("pairs")
    if not out:
        raise InputError(f"{config}: the config has no 'pairs: PATH' to write")
    items = load_graphene_contamination(folder)
    if not include_final:
        selection, _final = final_split([it.name for it in items])
        items = [items[i] for i in selection]
    if names is not None:
        wanted = set(names)
        unknown = wanted - {it.name for it in items}
        if unknown:
            raise InputError(f"images not in the (selection) set: {sorted(unknown)}")
        items = [it for it in items if it.name in wanted]
    pairs = real_pairs(items, task_from_config(cfg))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_pairs(path, pairs)


def iter_finetune(
    config: str | Path | Mapping[str, Any],
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    out_dir: str | Path,
    name: str | None = None,
    **overrides: Any,
) -> ProgressGenerator[Any]:
    """Fine-tune as ``config`` says, on ``pairs`` in memory; writes the model to ``out_dir``.

    ``name`` renames the model (distinct names keep the backend's model cache apart);
    ``overrides`` replace config keys (e.g. ``steps``, ``val_examples``). Returns the
    backend's ``TrainResult``.
    """
    from ..backend.train_loop import iter_train

    cfg = _read_config(config)
    cfg.update(overrides)
    if name is not None:
        cfg["name"] = name
    cfg["pairs"] = None
    cfg["out_dir"] = str(out_dir)
    cfg["export_dir"] = str(out_dir)
    return (
        yield from iter_train(
            cfg, pairs=list(pairs), log=None, command=f"iter_finetune({cfg['name']!r})"
        )
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m napari_atomseg.segmentation.finetune CONFIG``: write the config's pairs
    file. Returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m napari_atomseg.segmentation.finetune",
        description="Write a training config's fine-tuning pairs from the real graphene set.",
    )
    parser.add_argument("config", help="training config with 'pairs: PATH' (YAML)")
    parser.add_argument(
        "--folder", help="graphene_contamination folder (default: shared/data beside the repo)"
    )
    args = parser.parse_args(argv)
    try:
        path = write_pairs(args.config, args.folder)
    except AtomsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
