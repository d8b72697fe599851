"""Fine-tune the atom finder on your own corrected atom positions.

The workflow a microscopist follows: run the finder, correct its points by hand in napari
(add / delete / move), save them (the plugin's CSV writer, napari's own Points CSV or an
ImageJ Results table), then adapt the network to those images and run the adapted model
over the rest of the series::

    napari-atomseg finetune img1.dm4 img2.dm4 --points corrected/ --out my_model
    napari-atomseg atoms series/*.dm4 --model my_model/atoms_finetuned.yaml --out results

or from Python :func:`finetune_atoms` (generator form :func:`iter_finetune_atoms`).

What it does, in order:

1. reads the base model's card (default: the shipped ``atoms_default``) for its training
   task and task options, so the targets are rendered and the images prepared exactly as
   the base model was trained (background subtraction, normalisation, working sampling);
2. turns every (image, points) pair into a training pair
   (:func:`point_pairs`; dark-column images are inverted first, as inference
   does for ``contrast="dark"``);
3. trains from the base weights (:data:`RECIPE`: a short one-cycle run, 128-px crops,
   rotation/flip/intensity augmentation; optionally a share of synthetic examples from
   the base model's simulation mixture, :data:`SYNTHETIC_FRACTION`, 0 by default);
4. chooses the detection threshold on the labelled images (best pooled F1 of
   :func:`~.find.heatmap_to_atoms` over a grid) and stores it in the new card's
   ``postprocess``, so ``find_atoms(..., model=card)`` uses it by default.

**Label every atom** in the images you give: an atom without a point is taught as
background. Crop an image to the region you corrected before fine-tuning on it.

The recipe was chosen by 4-fold cross-validation on the 11 hand-labelled real Pt images
(``benchmarks/atoms_pt_cv.py``; docs/finetune.md).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import Progress, ProgressGenerator
from .._validate import as_image2d, check_pixel_size_nm, check_range
from ..errors import FileReadError, InputError

#: The fine-tuning recipe (keys of a training config; see docs/finetune.md for the
#: cross-validation that chose it).
RECIPE: dict[str, Any] = {
    "steps": 600,
    "batch_size": 8,
    "lr": 0.002,
    "schedule": "onecycle",
    "crop_px": 128,
    "example_pool": 240,
    "val_examples": 16,
    "checkpoint_every": 100,
    "log_every": 50,
    "augment": {
        "rot90": True,
        "flip": True,
        "gain": 0.2,
        "offset": 0.2,
        "noise": 0.05,
        "scale_jitter": 0.05,
    },
}
#: Share of synthetic examples (from the base model's simulation mixture) in each batch.
#: 0: only the user's images; it scored a better held-out F1 than 0.1 on the real Pt images
#: (measured: docs/finetune.md) and needs no simulation.
SYNTHETIC_FRACTION = 0.0
#: Detection thresholds and image evidence tried when the new model's defaults are chosen.
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.1, 0.91, 0.05))
EVIDENCE = (0.0, 1.0, 2.0, 3.0, 4.0)
#: Name of the fine-tuned model unless told otherwise.
DEFAULT_NAME = "atoms_finetuned"
#: Largest match radius used to score points while choosing the threshold, nm.
MATCH_RADIUS_NM = 0.1


# --------------------------------------------------------------------------- points files
def read_points_table(
    path: str | os.PathLike[str], pixel_size_nm: float | None = None
) -> np.ndarray:
    """Atom positions ``(N, 2)`` (row, col) in pixels from a CSV table.

    Understood layouts: those of :func:`napari_atomseg.io.read_points_table` (this
    plugin's tables, ``y_px, x_px``; napari's built-in Points CSV, ``axis-0, axis-1`` ...,
    the last two axes being row, col; ImageJ Results, ``X, Y``: column, row in pixels), and
    ``y_nm, x_nm`` only, converted with ``pixel_size_nm``.

    Raises :class:`FileReadError` for unreadable files and tables without coordinates.
    """
    import pandas as pd

    from ..io.points_table import layout_of
    from ..io.points_table import read_points_table as read_table

    p = Path(path)
    try:
        table = pd.read_csv(p, nrows=0)
    except (OSError, ValueError) as exc:
        raise FileReadError(f"{p}: cannot read the points table ({exc})") from exc
    cols = [str(c).strip() for c in table.columns]
    if layout_of(cols) is not None:
        return read_table(p).points_px[:, -2:]
    if "y_nm" not in cols or "x_nm" not in cols:
        raise FileReadError(
            f"{p}: no atom coordinates found; expected columns y_px, x_px (napari-atomseg), "
            f"axis-0, axis-1 (napari Points CSV), X, Y (ImageJ Results) or y_nm, x_nm; "
            f"got {cols[:8]}"
        )
    if pixel_size_nm is None:
        raise FileReadError(
            f"{p}: positions are in nm only (y_nm, x_nm); the image's pixel size is needed"
        )
    table = pd.read_csv(p)
    table.columns = cols
    try:
        out = table[["y_nm", "x_nm"]].to_numpy(dtype=np.float64) / float(pixel_size_nm)
    except (TypeError, ValueError) as exc:
        raise FileReadError(f"{p}: coordinates are not numbers ({exc})") from exc
    if not np.isfinite(out).all():
        raise FileReadError(f"{p}: coordinates contain NaN or empty cells")
    return out


def find_points_file(image_path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """The points table of ``image_path`` in ``folder``: ``<stem>_atoms.csv`` (what
    ``napari-atomseg atoms`` writes) or ``<stem>.csv``."""
    stem = Path(image_path).stem
    for name in (f"{stem}_atoms.csv", f"{stem}.csv"):
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    raise InputError(f"{folder}: no {stem}_atoms.csv or {stem}.csv for {image_path}")


# --------------------------------------------------------------------------- config
def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def _resolve_mix(mix: str) -> str:
    """The base model's simulation mixture as a name or an existing absolute path."""
    from ..simulation.mix import MIXES_DIR

    p = Path(mix)
    if not p.suffix and (MIXES_DIR / f"{mix}.yaml").is_file():
        return mix
    for candidate in (p, _repo_root() / p):
        if candidate.is_file():
            return str(candidate.resolve())
    raise InputError(
        f"the base model's simulation mixture {mix!r} was not found (it is kept in the "
        "source repository); run from a source checkout or use synthetic_fraction=0"
    )


def base_task(base: str | os.PathLike[str] = "default") -> tuple[Any, str, dict[str, Any]]:
    """(card, task spec, task options) of the model to fine-tune, read from its card."""
    from ..backend import default_model_name
    from ..backend.cards import load_card

    name = default_model_name("atoms") if str(base) == "default" else base
    card = load_card(name)
    config = dict((card.training or {}).get("config") or {})
    task = str(config.get("task", ""))
    if card.task != "atoms":
        raise InputError(
            f"model {card.name!r}: only atom-finder models can be fine-tuned on points; "
            f"its card says task {card.task!r}"
        )
    if not task.endswith(":AtomsTask") or not config.get("task_options"):
        raise InputError(
            f"model {card.name!r}: its card records no training task and task options "
            "(AtomsTask), so the targets it was trained on cannot be reproduced; fine-tune "
            "from a model trained by 'napari-atomseg train'"
        )
    return card, str(task), dict(config["task_options"])


def finetune_config(
    base: str | os.PathLike[str] = "default",
    out_dir: str | os.PathLike[str] = DEFAULT_NAME,
    name: str = DEFAULT_NAME,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    description: str | None = None,
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    synthetic_fraction: float = SYNTHETIC_FRACTION,
    device: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The training config (a mapping for ``napari-atomseg train``) of a fine-tuning run.

    The model is exported to ``out_dir``; the checkpoint and training log go to
    ``work_dir`` (default: ``out_dir``).
    """
    from ..backend.cards import _NAME_RE

    if not _NAME_RE.match(str(name)):
        raise InputError(f"model name {name!r}: use letters, digits, '_', '-' and '.' only")
    card, task, options = base_task(base)
    synthetic_fraction = check_range(synthetic_fraction, 0.0, 0.9, "synthetic_fraction")
    if synthetic_fraction > 0:
        options["mix"] = _resolve_mix(str(options.get("mix", "default")))
    cfg: dict[str, Any] = {
        "name": name,
        "task": task,
        "task_options": options,
        # A shipped model by name (portable in the card's record), a card file by path.
        "init_from": str(card.path) if Path(str(base)).suffix in (".yaml", ".yml") else card.name,
        "pairs_fraction": round(1.0 - synthetic_fraction, 6),
        "card": {
            "description": description
            or f"{card.name} fine-tuned on hand-corrected atom positions (napari-atomseg finetune).",
            "default": False,
        },
        "seed": int(seed),
        **{k: (dict(v) if isinstance(v, dict) else v) for k, v in RECIPE.items()},
        "workers": 0,
        "out_dir": str(work_dir if work_dir is not None else out_dir),
        "export_dir": str(out_dir),
    }
    if steps is not None:
        cfg["steps"] = int(check_range(steps, 1, 1_000_000, "steps"))
    if lr is not None:
        cfg["lr"] = check_range(lr, 1e-7, 1.0, "lr")
    cfg["val_every"] = cfg["steps"]
    if synthetic_fraction == 0:
        cfg["example_pool"] = 0
        cfg["val_examples"] = 0
    if device is not None:
        cfg["device"] = device
    if threads is not None:
        cfg["threads"] = int(threads)
    return cfg


# --------------------------------------------------------------------------- clean-up
def _remove_new_files(folders: Sequence[Path], before: set[Path]) -> list[Path]:
    """Delete the files a cancelled run left in ``folders`` that were not there before,
    and those folders if the run created them and they are now empty."""
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and path not in before:
                path.unlink(missing_ok=True)
                removed.append(path)
        if folder not in before and not any(folder.iterdir()):
            folder.rmdir()
    return removed


# --------------------------------------------------------------------------- run
def _check_items(
    images: Sequence[Any], points: Sequence[Any], pixel_sizes_nm: Sequence[float] | float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images, points = [images], [points]
    if len(images) == 0:
        raise InputError("fine-tuning needs at least one image with its atom positions")
    if len(images) != len(points):
        raise InputError(
            f"{len(images)} image(s) but {len(points)} point set(s); give one per image"
        )
    if np.ndim(pixel_sizes_nm) == 0:
        pixel_sizes_nm = [pixel_sizes_nm] * len(images)  # type: ignore[list-item]
    if len(pixel_sizes_nm) != len(images):  # type: ignore[arg-type]
        raise InputError(f"{len(images)} image(s) but {len(pixel_sizes_nm)} pixel sizes")  # type: ignore[arg-type]
    items = []
    n_points = 0
    for i, (img, pts, ps) in enumerate(zip(images, points, pixel_sizes_nm)):  # type: ignore[arg-type]
        name = f"image {i}"
        arr = as_image2d(img, name)
        if ps is None:
            raise InputError(
                f"{name}: the pixel size is needed to fine-tune (the network learns at its "
                "working sampling); give pixel_size_nm"
            )
        size = check_pixel_size_nm(ps, f"{name}: pixel_size_nm")
        p = np.asarray(pts, dtype=np.float64)
        if p.size == 0:
            p = p.reshape(0, 2)
        if p.ndim != 2 or p.shape[1] != 2:
            raise InputError(
                f"{name}: points must be (N, 2) row, col in pixels; got shape {p.shape}"
            )
        if not np.isfinite(p).all():
            raise InputError(f"{name}: points contain NaN or inf")
        h, w = arr.shape
        outside = (p[:, 0] < -0.5) | (p[:, 0] > h - 0.5) | (p[:, 1] < -0.5) | (p[:, 1] > w - 0.5)
        if outside.any():
            raise InputError(
                f"{name}: {int(outside.sum())} of {len(p)} points lie outside the "
                f"{h}x{w} image (are they in nm, or are x and y swapped?)"
            )
        n_points += len(p)
        items.append((arr, float(size), p))  # type: ignore[arg-type]
    if n_points == 0:
        raise InputError("no atom positions given: mark the atoms before fine-tuning")
    return items


def point_pairs(
    items: Sequence[tuple[np.ndarray, float, np.ndarray]], task: Any
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training pairs ``((1, H, W) image, (C, H, W) target)`` at ``task``'s working sampling.

    Each image goes the path a real image takes at inference (resampled to the working pixel
    size, normalised as the card says); the target is rendered from the hand positions as
    :class:`~.training.AtomsTask` renders simulated columns.
    """
    import pandas as pd

    from ..backend.normalisation import normalise
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


def match_radius_nm(items: Sequence[tuple[np.ndarray, float, np.ndarray]]) -> float:
    """Match radius used to score the labelled images: half the labelled atoms' median
    nearest-neighbour distance, at most :data:`MATCH_RADIUS_NM`."""
    from scipy.spatial import cKDTree

    nn = []
    for _, ps, p in items:
        if len(p) > 1:
            d, _ = cKDTree(p).query(p, k=2)
            nn.append(d[:, 1] * ps)
    if not nn:
        return MATCH_RADIUS_NM
    return float(min(MATCH_RADIUS_NM, 0.5 * np.median(np.concatenate(nn))))


def choose_threshold(
    heatmaps: Sequence[Any],
    items: Sequence[tuple[np.ndarray, float, np.ndarray]],
    radius_nm: float,
) -> tuple[tuple[float, float], dict[tuple[float, float], float]]:
    """The (threshold, min_evidence) of :data:`THRESHOLDS` x :data:`EVIDENCE` with the best
    pooled F1 on the labelled images (ties: the stricter evidence, then the threshold
    nearer 0.5); returns (the pair, the F1 of every pair)."""
    from .find import heatmap_to_atoms
    from .metrics import point_metrics

    curve = {}
    for t in THRESHOLDS:
        for e in EVIDENCE:
            tp = fp = fn = 0
            for h, (_, ps, truth) in zip(heatmaps, items):
                pred = heatmap_to_atoms(h, threshold=t, min_evidence=e, refine="none")
                m = point_metrics(
                    pred[["y_px", "x_px"]].to_numpy(float),
                    truth,
                    radius_nm=radius_nm,
                    pixel_size_nm=ps,
                )
                tp, fp, fn = tp + m.true_positives, fp + m.false_positives, fn + m.false_negatives
            curve[(t, e)] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    best = max(curve, key=lambda k: (round(curve[k], 6), k[1], -abs(k[0] - 0.5)))
    return best, curve


def iter_finetune_atoms(
    images: Sequence[Any],
    points: Sequence[Any],
    pixel_sizes_nm: Sequence[float] | float,
    out_dir: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] = "default",
    name: str = DEFAULT_NAME,
    work_dir: str | os.PathLike[str] | None = None,
    description: str | None = None,
    contrast: str = "bright",
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    synthetic_fraction: float = SYNTHETIC_FRACTION,
    device: str | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> ProgressGenerator[Path]:
    """Fine-tune ``base`` on images with hand-placed atoms; returns the new card's path.

    Parameters
    ----------
    images, points, pixel_sizes_nm
        The images (2-D arrays), their atom positions ((N, 2) row, col in pixels, every
        atom of the image) and pixel sizes (nm/px; one number for all or one per image).
    out_dir
        Folder for the model (``NAME.yaml`` + ``NAME.safetensors``); an existing model of
        the same name there is replaced.
    work_dir, description
        Folder for the checkpoint and training log (default ``out_dir``); the card's
        description (default: says what it was fine-tuned from).
    base
        Model to start from: ``"default"`` or a card name / path of an atom-finder model.
    contrast
        ``"bright"`` (HAADF, white atoms) or ``"dark"`` (black-atom HRTEM: the network
        learns the inverted image, as :func:`find_atoms` shows it with ``contrast="dark"``).
    steps, lr, seed, synthetic_fraction
        Training length, peak learning rate (defaults: :data:`RECIPE`), random seed, and
        the share of synthetic examples in each batch (0 needs no simulation).
    device, threads
        Torch device and CPU threads (defaults: the backend's choice).

    Cancelled (the generator closed before the end, as the napari widget's Cancel
    does), the run removes what it wrote -- checkpoint, training log, a half-exported
    model -- leaving files that were there before untouched.
    """
    from ..backend.cards import load_card, save_card
    from ..backend.train_loop import TrainConfig, iter_train, load_task
    from .heatmap import predict_heatmap

    if contrast not in ("bright", "dark"):
        raise InputError(f"contrast: expected 'bright' or 'dark', got {contrast!r}")
    items = _check_items(images, points, pixel_sizes_nm)
    out = Path(out_dir)
    cfg = TrainConfig.from_mapping(
        finetune_config(
            base,
            out,
            name,
            work_dir=work_dir,
            description=description,
            steps=steps,
            lr=lr,
            seed=seed,
            synthetic_fraction=synthetic_fraction,
            device=device,
            threads=threads,
        )
    )
    task = load_task(cfg.task, cfg.task_options)
    sign = -1.0 if contrast == "dark" else 1.0
    pairs = point_pairs([(sign * img, ps, p) for img, ps, p in items], task)
    folders = list(dict.fromkeys([out, Path(cfg.out_path)]))
    before = {f for f in folders if f.is_dir()}
    before |= {path for f in before for path in f.iterdir()}
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        result = yield from iter_train(
            cfg,
            pairs=pairs,
            log=log,
            command=command or f"napari_atomseg.atoms.finetune_user.finetune_atoms(name={name!r})",
        )
        # The detection threshold, chosen on the labelled images.
        yield Progress(cfg.steps, cfg.steps, "choosing the detection threshold")
    except GeneratorExit:  # cancelled: no half-trained checkpoint or model left behind
        _remove_new_files(folders, before)
        raise
    heatmaps = [
        predict_heatmap(img, ps, model=result.card_path, contrast=contrast, threads=threads)
        for img, ps, _ in items
    ]
    radius = match_radius_nm(items)
    (threshold, evidence), curve = choose_threshold(heatmaps, items, radius)
    card = load_card(result.card_path)
    metrics = dict(card.metrics)
    metrics["fine_tuning"] = {
        "images": len(items),
        "atoms": int(sum(len(p) for _, _, p in items)),
        "contrast": contrast,
        "threshold_how": "threshold and min_evidence with the best pooled F1 on the labelled "
        f"(training) images, match radius {radius:.3g} nm; in-sample, so optimistic",
        "match_radius_nm": round(radius, 4),
        "grid_f1": {f"{t}/{e}": round(v, 4) for (t, e), v in curve.items()},
        "training_f1": round(curve[(threshold, evidence)], 4),
        "wall_time_s": round(time.perf_counter() - t0, 1),
    }
    postprocess = {**dict(card.postprocess), "threshold": threshold, "min_evidence": evidence}
    changes: dict[str, Any] = {"postprocess": postprocess, "metrics": metrics}
    base_card = load_card(cfg.init_from)
    if card.input.scale_reference is None and base_card.input.scale_reference is not None:
        # Without synthetic validation examples no scale reference is measured; the base
        # model's describes the same working sampling, so uncalibrated images still get
        # an estimated pixel size.
        changes["input"] = dataclasses.replace(
            card.input, scale_reference=base_card.input.scale_reference
        )
    save_card(card.with_updates(**changes), card.path)
    if log is not None:
        log(
            f"threshold {threshold}, min evidence {evidence} (F1 "
            f"{curve[(threshold, evidence)]:.3f} on the labelled images, radius "
            f"{radius:.3g} nm); model: {card.path}"
        )
    return Path(card.path)


def finetune_atoms(*args: Any, **kwargs: Any) -> Path:
    """:func:`iter_finetune_atoms` run to the end (same arguments); the new card's path."""
    from .._progress import drain

    return drain(iter_finetune_atoms(*args, **kwargs))


__all__ = [
    "RECIPE",
    "find_points_file",
    "finetune_atoms",
    "finetune_config",
    "iter_finetune_atoms",
    "point_pairs",
    "read_points_table",
]
