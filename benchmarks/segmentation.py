"""Segmentation benchmark: U-Net vs Bragg filter on real graphene, synthetic particles, speed.

Usage::

    python benchmarks/segmentation.py                       # everything available
    python benchmarks/segmentation.py --sections graphene   # graphene | particles | timing
    python benchmarks/segmentation.py --json results.json

Graphene (the 31 labelled images in ../shared/data/graphene_contamination): every score
is *held out*. The Bragg filter's parameters are chosen per fold on the other folds
(grouped 5-fold CV: frames of one acquisition series share a fold) and the pooled
scores of all held-out images are reported, as Sadre et al. pool theirs. Rows:

- ``bragg (CV-tuned)`` -- nested 5-fold CV (the honest number);
- ``bragg (shipped defaults, in-sample)`` -- the package defaults; these were chosen on
  all 31 images, so this row is optimistic and shown for reference only;
- ``unet synthetic only`` -- segment_contamination_synthetic, which never saw a real
  image: every image is held out (pixel sizes from the set's FFT estimates);
- ``unet fine-tuned (5-fold CV)`` -- the shipped recipe (configs/segment_contamination.yaml:
  the synthetic model fine-tuned on real labels) repeated per fold on the training folds
  only, each held-out fold scored by its own fold model (the honest U-Net number);
- ``unet shipped, saw all 31`` -- segment_contamination, fine-tuned on all 31 images:
  in-sample, reference only;
- the paper's numbers (Sadre et al. 2021, 5-fold CV on 131 images) for comparison.

Particles: a synthetic held-out set (seeds never used in training) of nanoparticles on
amorphous carbon for several materials; Dice of the particle class per material.

Timing: seconds per image for 256^2 and 2048^2 (the 2048^2 image is a real graphene
image tiled 8 x 8, so the lattice and contamination are realistic), median of repeats.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import pandas as pd
import yaml
from lib.bragg_tuning import (
    BraggGrid,
    bragg_grid_scores,
    cross_validated,
)

from napari_atomseg.errors import ModelError
from napari_atomseg.segmentation import segment
from napari_atomseg.segmentation.data import kfold_splits, load_graphene_contamination
from napari_atomseg.segmentation.metrics import MaskScores, summarise

#: Sadre, Ophus et al., Microsc. Microanal. 27 (2021) 804, 5-fold CV on 131 images.
PAPER = {
    "paper: bragg": {
        "pixel_accuracy": 0.956,
        "balanced_accuracy": 0.897,
        "jaccard": 0.688,
        "f1": 0.791,
    },
    "paper: unet": {
        "pixel_accuracy": 0.979,
        "balanced_accuracy": 0.950,
        "jaccard": 0.812,
        "f1": 0.884,
    },
}
#: The stage-1 model (synthetic only) and the recipe of the shipped fine-tuned one.
SYNTHETIC_MODEL = "segment_contamination_synthetic"
FINETUNE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "segment_contamination.yaml"
#: Bragg parameters of the grid that shape the Bragg map of the U-Net/Bragg average.
BRAGG_MAP_OPTIONS = ("aperture_sigma_rel", "lowpass_sigma_periods", "mask_threshold")
COLUMNS = ["pixel_accuracy", "balanced_accuracy", "jaccard", "f1", "precision", "recall"]


def _pooled_row(scores: list[MaskScores]) -> dict[str, float]:
    table = summarise(scores, 1)
    row = table.loc["pooled"].to_dict()
    row["jaccard_mean_per_image"] = float(table.loc["mean", "jaccard"])
    return row


def _installed_model(task: str) -> str | None:
    try:
        from napari_atomseg.segmentation._unet import default_model

        return default_model(task).name
    except (ModelError, ImportError, AttributeError) as exc:
        print(f"  (no U-Net for {task}: {exc})")
        return None


def _recipe_stamp(config: dict, train_names: list[str]) -> dict:
    """What a fold model depends on: the (overridden) config and its training images."""
    return {"config": config, "train_images": sorted(train_names)}


def fold_recipe(config: Path, steps: int) -> tuple[dict, str]:
    """The config as each fold runs it (name left out) and a short hash of it."""
    from napari_atomseg.segmentation.finetune import _read_config

    cfg = {**_read_config(config), "steps": steps, "val_examples": 0, "name": None}
    recipe = json.loads(json.dumps(cfg, default=str))
    return recipe, hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]


def fold_models(
    items: list,
    splits: list,
    steps: int,
    config: Path = FINETUNE_CONFIG,
    keep_dir: Path | None = None,
) -> list[Path]:
    """One fine-tuned model per fold (training folds only); returns their card paths.

    With ``keep_dir`` the models persist in ``keep_dir/recipe-HASH/foldK/`` (HASH: of the
    config as run, its name left out) beside a ``recipe.json`` (that config and the
    training images); a later run with the same recipe -- from any config file -- reuses
    them instead of training again, so post-processing variants can be scored without
    re-training.
    """
    import tempfile

    from napari_atomseg._progress import drain
    from napari_atomseg.segmentation.finetune import (
        _read_config,
        iter_finetune,
        real_pairs,
        task_from_config,
    )

    task = task_from_config(config)
    # One pair per image and scale (real_pair_scales): keep each image's pairs together.
    per_item = len(task.real_pair_scales())
    flat = real_pairs(items, task)
    pairs = [flat[i * per_item : (i + 1) * per_item] for i in range(len(items))]
    base = _read_config(config)
    if keep_dir is None:
        keep_dir = Path(tempfile.mkdtemp(prefix="segment_cv_"))
    overrides = {"steps": steps, "val_examples": 0}
    recipe, digest = fold_recipe(config, steps)
    cards: list[Path] = []
    for k, (train_idx, _test_idx) in enumerate(splits):
        # Distinct names per recipe keep the backend's model cache apart.
        name = f"{base['name']}_cv{digest}_fold{k}"
        stamp = _recipe_stamp(recipe, [items[i].name for i in train_idx])
        folder = Path(keep_dir) / f"recipe-{digest}" / f"fold{k}"
        stamp_path = folder / "recipe.json"
        found = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
        if stamp_path.is_file() and found and json.loads(stamp_path.read_text()) == stamp:
            print(f"  fold {k}: reusing {found[0]}")
            cards.append(found[0])
            continue
        t0 = time.perf_counter()
        train_pairs = [pair for i in train_idx for pair in pairs[i]]
        result = drain(iter_finetune(config, train_pairs, folder, name=name, **overrides))
        stamp_path.write_text(json.dumps(stamp, indent=1, default=str))
        cards.append(Path(result.card_path))
        print(
            f"  fold {k}: fine-tuned on {len(train_idx)} images, {steps} steps, "
            f"{time.perf_counter() - t0:.0f} s -> {result.card_path}"
        )
    return cards


def _finetuned_cv(
    items: list, splits: list, cards: list[Path], fold_options: list[dict] | None = None
) -> list[MaskScores]:
    """Each held-out fold scored by its own fold model through segment() (its defaults,
    plus that fold's ``fold_options``, e.g. the Bragg parameters chosen on its training
    images for the U-Net/Bragg average)."""
    scores: list[MaskScores | None] = [None] * len(items)
    for k, ((_train_idx, test_idx), card) in enumerate(zip(splits, cards)):
        options = (fold_options or [{}] * len(cards))[k]
        for i in test_idx:
            it = items[i]
            res = segment(it.image, it.pixel_size_nm, model=str(card), **options)
            scores[i] = MaskScores.from_masks(it.mask, res.flagged_mask)
    return [s for s in scores if s is not None]


def _binary_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """The table's metrics from ``(..., 2, 2)`` confusion matrices (vectorised)."""
    cm = cm.astype(np.float64)
    tn, fp, fn, tp = cm[..., 0, 0], cm[..., 0, 1], cm[..., 1, 0], cm[..., 1, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "pixel_accuracy": (tp + tn) / (tp + tn + fp + fn),
            "balanced_accuracy": (tp / (tp + fn) + tn / (tn + fp)) / 2,
            "jaccard": tp / (tp + fp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
        }


def paired_comparison(
    a: list[MaskScores], b: list[MaskScores], splits: list, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Pooled ``a - b`` per metric: per held-out fold, and a paired bootstrap over images.

    Columns: the difference on all images, per fold, the number of folds where ``a`` is
    ahead, and the 2.5 / 97.5 % percentiles of the difference when the images are
    resampled with replacement (both methods on the same resampled images).
    """
    ca = np.stack([s.confusion for s in a])
    cb = np.stack([s.confusion for s in b])
    rows = {}
    all_a, all_b = _binary_metrics(ca.sum(0)), _binary_metrics(cb.sum(0))
    folds_a = [_binary_metrics(ca[np.asarray(te)].sum(0)) for _tr, te in splits]
    folds_b = [_binary_metrics(cb[np.asarray(te)].sum(0)) for _tr, te in splits]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    boot_a = _binary_metrics(ca[idx].sum(1))
    boot_b = _binary_metrics(cb[idx].sum(1))
    for m in COLUMNS:
        diff_folds = [float(fa[m] - fb[m]) for fa, fb in zip(folds_a, folds_b)]
        boot = boot_a[m] - boot_b[m]
        rows[m] = {
            "all": float(all_a[m] - all_b[m]),
            **{f"fold {k}": d for k, d in enumerate(diff_folds)},
            "folds ahead": int(sum(d > 0 for d in diff_folds)),
            "boot 2.5%": float(np.nanpercentile(boot, 2.5)),
            "boot 97.5%": float(np.nanpercentile(boot, 97.5)),
        }
    return pd.DataFrame(rows).T


#: Post-processing grid of the fold models' variants (chosen per fold on training images):
#: threshold on p(amorphous) (None = arg-max, the default), clean-up lengths in nm
#: (smooth sigma, min region side; the defaults are 0.1 and 1.0), and the weight of the
#: U-Net in an average with a Bragg-derived contamination map.
VARIANT_THRESHOLDS = (None, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
VARIANT_CLEANUP_THRESHOLDS = (None, 0.4, 0.5)
VARIANT_SMOOTH_NM = (0.0, 0.1, 0.2)
VARIANT_MIN_REGION_NM = (0.5, 1.0, 2.0)
VARIANT_UNET_WEIGHT = (0.7, 0.5)
VARIANT_MIX_THRESHOLDS = (0.35, 0.4, 0.45, 0.5)


def _d4(image: np.ndarray, t: int) -> np.ndarray:
    """The t-th of the 8 rotations/flips (t = 0 identity, t = 1 left-right flip)."""
    out = image[..., ::-1] if t % 2 else image
    return np.rot90(out, t // 2, axes=(-2, -1))


def _d4_inverse(maps: np.ndarray, t: int) -> np.ndarray:
    out = np.rot90(maps, -(t // 2), axes=(-2, -1))
    return out[..., ::-1] if t % 2 else out


def _unet_probabilities(card: Path, it: Any) -> dict[str, np.ndarray]:
    """Class probabilities at image resolution: plain, flip-averaged (2x), D4-averaged (8x)."""
    maps = []
    for t in range(8):
        res = segment(np.ascontiguousarray(_d4(it.image, t)), it.pixel_size_nm, model=str(card))
        maps.append(_d4_inverse(res.probabilities, t))
    return {
        "none": maps[0],
        "flip": (maps[0] + maps[1]) / 2,
        "d4": np.mean(maps, axis=0),
    }


def _bragg_map(it: Any, bragg_options: dict) -> np.ndarray:
    """The Bragg map of the U-Net/Bragg average (as segment() computes it)."""
    from dataclasses import replace

    from napari_atomseg.segmentation import bragg as _bragg
    from napari_atomseg.segmentation.api import _DEFAULT_PREPROCESS, bragg_contamination_map
    from napari_atomseg.segmentation.preprocess import preprocess

    pre = replace(_DEFAULT_PREPROCESS["contamination"], standardise=False)
    params = _bragg.with_options(None, **bragg_options)
    res = _bragg.bragg_filter(preprocess(it.image, pre), params, lattice_amplitude=False)
    return bragg_contamination_map(res)


def _variant_confusions(
    probs: np.ndarray, bragg_map: np.ndarray, it: Any, candidates: list[tuple]
) -> np.ndarray:
    """(n_candidates, 2, 2) confusion matrices of one image for (w, t, smooth, min) tuples."""
    from napari_atomseg.segmentation.cleanup import clean_labels
    from napari_atomseg.segmentation.metrics import confusion_matrix

    px = float(it.pixel_size_nm)
    other = np.where(probs[2] > probs[0], 2, 0).astype(np.uint8)
    out = np.zeros((len(candidates), 2, 2), dtype=np.int64)
    for c, (w, t, smooth, min_region) in enumerate(candidates):
        if t is None:
            flagged = np.argmax(probs, axis=0) == 1
        else:
            score = probs[1] if w == 1 else w * probs[1] + (1 - w) * bragg_map
            flagged = score > t
        labels = np.where(flagged, 1, other).astype(np.uint8)
        labels = clean_labels(
            labels,
            smooth_sigma_px=smooth / px,
            min_region_px=round((min_region / px) ** 2),
            fill=True,
        )
        out[c] = confusion_matrix(it.mask, labels == 1, 2)
    return out


def unet_variants(
    items: list, splits: list, cards: list[Path], bragg_options: list[dict]
) -> dict[str, dict[str, float]]:
    """Post-processing variants of the fold models, every choice made on training images.

    Each fold model predicts every image (plain, with a left-right flip averaged in, and
    averaged over all 8 rotations/flips). Tuned variants choose their parameters per fold
    by the pooled Jaccard of that fold's *training* images, in one of two ways:

    - ``in-sample``: scored by the fold's own model (which was fine-tuned on them);
    - ``cross-fitted``: each training image scored by the fold model that held it out
      (no held-out label enters the choice, but those models were trained on the held-out
      fold's images).

    The held-out fold is then scored with the chosen parameters. The Bragg map of fold
    ``k`` uses ``bragg_options[k]`` (the Bragg parameters chosen on its training images).
    """
    fold_of = np.zeros(len(items), dtype=int)
    for k, (_tr, te) in enumerate(splits):
        fold_of[te] = k
    fixed = [(1.0, None, 0.1, 1.0)]
    tuned_t = [(1.0, t, 0.1, 1.0) for t in VARIANT_THRESHOLDS]
    tuned = [
        (1.0, t, s, m)
        for t in VARIANT_CLEANUP_THRESHOLDS
        for s in VARIANT_SMOOTH_NM
        for m in VARIANT_MIN_REGION_NM
    ]
    bragg_mix = tuned_t + [
        (w, t, 0.1, 1.0) for w in VARIANT_UNET_WEIGHT for t in VARIANT_MIX_THRESHOLDS
    ]
    candidates = list(dict.fromkeys(fixed + tuned + bragg_mix))
    index = {c: n for n, c in enumerate(candidates)}
    t0 = time.perf_counter()
    bragg_maps = [[_bragg_map(it, opts) for it in items] for opts in bragg_options]
    tta_modes = ("none", "flip", "d4")
    # confusion[tta][k, i, c]
    confusion = {
        m: np.zeros((len(cards), len(items), len(candidates), 2, 2), np.int64) for m in tta_modes
    }
    for k, card in enumerate(cards):
        for i, it in enumerate(items):
            maps = _unet_probabilities(card, it)
            for mode in tta_modes:
                cands = {"none": candidates, "flip": tuned_t, "d4": fixed}[mode]
                cm = _variant_confusions(maps[mode], bragg_maps[k][i], it, cands)
                for c, cand in enumerate(cands):
                    confusion[mode][k, i, index[cand]] = cm[c]
        print(
            f"  variants: fold model {k} scored on all {len(items)} images "
            f"({time.perf_counter() - t0:.0f} s)"
        )

    def pooled_choice(mode: str, subset: list[tuple], how: str) -> tuple[dict, list]:
        cols = [index[c] for c in subset]
        scores: list[MaskScores] = []
        chosen = []
        for k, (train, test) in enumerate(splits):
            if how == "in-sample":
                cm = confusion[mode][k, train][:, cols].sum(axis=0)
            else:
                cm = sum(confusion[mode][fold_of[i], i][cols] for i in train)
            jac = cm[:, 1, 1] / np.maximum(cm[:, 1, 1] + cm[:, 0, 1] + cm[:, 1, 0], 1)
            best = cols[int(np.argmax(jac))]
            chosen.append(candidates[best])
            scores += [MaskScores(confusion[mode][k, i, best], ("other", "flagged")) for i in test]
        return _pooled_row(scores), chosen

    rows: dict[str, dict[str, float]] = {}
    for mode, label in (
        ("none", "U-Net alone (arg-max)"),
        ("flip", "U-Net alone, flip TTA 2x"),
        ("d4", "U-Net alone, D4 TTA 8x"),
    ):
        rows[label], _ = pooled_choice(mode, fixed, "in-sample")
    for how in ("in-sample", "cross-fitted"):
        for mode, subset, what in (
            ("none", tuned_t, "threshold"),
            ("flip", tuned_t, "flip TTA 2x + threshold"),
            ("none", tuned, "threshold + clean-up"),
            ("none", bragg_mix, "U-Net/Bragg average + threshold"),
        ):
            row, chosen = pooled_choice(mode, subset, how)
            name = f"{what} ({how})"
            rows[name] = row
            print(f"  {name}: chosen (w_unet, t, smooth_nm, min_nm) per fold {chosen}")
    return rows


def graphene(
    folds: int,
    seed: int,
    grid: BraggGrid,
    finetune_steps: int | None,
    config: Path = FINETUNE_CONFIG,
    keep_dir: Path | None = None,
    bragg: bool = True,
    variants: bool = True,
) -> dict[str, dict[str, float]]:
    items = load_graphene_contamination()
    groups = [it.series for it in items]
    splits = kfold_splits(groups, folds, seed)
    rows: dict[str, dict[str, float]] = {}

    # The Bragg grid (thousands of candidate masks per image) runs in a second process
    # while the U-Nets are scored and fine-tuned here; both are single-threaded.
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        grid_future = None
        if bragg:
            grid_future = pool.submit(
                bragg_grid_scores, [(it.image, it.mask) for it in items], grid
            )
        for label, model, options in (
            # The synthetic model alone (U-Net arg-max, no Bragg average): what it learnt.
            (
                "unet synthetic only (segment_contamination_synthetic)",
                SYNTHETIC_MODEL,
                {"bragg_weight": 0},
            ),
            ("unet shipped, saw all 31 (in-sample, reference only)", "segment_contamination", {}),
        ):
            try:
                scores = [
                    MaskScores.from_masks(
                        it.mask,
                        segment(it.image, it.pixel_size_nm, model=model, **options).flagged_mask,
                    )
                    for it in items
                ]
            except ModelError as exc:
                print(f"  ({label}: {exc})")
                continue
            rows[label] = _pooled_row(scores)
        cards = None
        if finetune_steps is not None:
            cards = fold_models(items, splits, finetune_steps, config, keep_dir)
        grid_scores = grid_future.result() if grid_future is not None else None
    # The U-Net/Bragg average of fold k uses the Bragg parameters chosen on fold k's
    # training images (the shipped Bragg defaults were chosen on all 31 images).
    fold_bragg = [{} for _ in splits]
    cv = None
    if grid_scores is not None:
        cv = cross_validated(grid_scores, splits, objective="jaccard")
        fold_bragg = [{n: c[n] for n in BRAGG_MAP_OPTIONS} for c in cv.chosen]
    if cards is not None:
        unet_scores = _finetuned_cv(items, splits, cards, fold_bragg)
        rows["unet fine-tuned (5-fold CV)"] = _pooled_row(unet_scores)
        if variants:
            for name, row in unet_variants(items, splits, cards, fold_bragg).items():
                rows[f"unet fine-tuned (5-fold CV), {name}"] = row
    if grid_scores is None or cv is None:
        rows.update(PAPER)
        return rows
    rows["bragg (CV-tuned)"] = _pooled_row(cv.per_image)
    if cards is not None:
        print("  default U-Net (+ Bragg average) minus Bragg CV-tuned, held out:")
        table = paired_comparison(unet_scores, cv.per_image, splits)
        print(table.to_string(float_format=lambda v: f"{v:+.4f}"))
    print(
        f"  Bragg grid: {len(grid_scores.candidates)} candidates x {len(items)} images "
        f"(finished {time.perf_counter() - t0:.0f} s after the start); chosen per fold:"
    )
    for k, chosen in enumerate(cv.chosen):
        print(f"    fold {k}: " + ", ".join(f"{n}={v:g}" for n, v in chosen.items()))

    defaults = [
        MaskScores.from_masks(it.mask, segment(it.image, method="bragg").flagged_mask)
        for it in items
    ]
    rows["bragg (shipped defaults, in-sample)"] = _pooled_row(defaults)
    rows.update(PAPER)
    return rows


def particles(
    n_per_material: int, seed: int, extra_models: list[str] | None = None
) -> dict[str, dict[str, float]]:
    try:
        from napari_atomseg.simulation import SimulationParameters, list_materials, simulate
    except ImportError as exc:
        print(f"  (simulation engine not available: {exc})")
        return {}
    materials = [m for m, info in list_materials().items() if info.get("particle")][:4]
    name = _installed_model("particles")
    methods: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
        "bragg": lambda im, px: segment(im, px, task="particles", method="bragg").flagged_mask,
    }
    if name is not None:
        methods[f"unet {name}"] = lambda im, px: (
            segment(im, px, task="particles", method="unet").flagged_mask
        )
    for model in extra_models or []:
        methods[f"unet {model}"] = lambda im, px, model=model: (
            segment(im, px, task="particles", model=model).flagged_mask
        )
    rows: dict[str, dict[str, float]] = {}
    everything: dict[str, list[MaskScores]] = {m: [] for m in methods}
    rng = np.random.default_rng(seed)
    for material in materials:
        per_method: dict[str, list[MaskScores]] = {m: [] for m in methods}
        for i in range(n_per_material):
            # Held-out seeds: far above any seed a training run draws from its own stream.
            params = SimulationParameters(
                material=material,
                scene="particles",
                mode=str(rng.choice(["hrtem", "haadf"])),
                shape_px=(256, 256),
                # The ranges of the training mix (configs/segment_particles.yaml).
                pixel_size_nm=float(np.exp(rng.uniform(np.log(0.045), np.log(0.12)))),
                n_particles=int(rng.integers(1, 4)),
                particle_diameter_nm=float(np.exp(rng.uniform(np.log(1.5), np.log(8.0)))),
                support_thickness_nm=float(rng.uniform(2.0, 6.0)),
                seed=10_000_000 + 1000 * seed + i,
            )
            sim = simulate(params)
            truth = np.asarray(sim.masks["particle"]) > 0
            for m, fn in methods.items():
                per_method[m].append(MaskScores.from_masks(truth, fn(sim.image, sim.pixel_size_nm)))
        for m, scores in per_method.items():
            rows[f"{m} / {material}"] = _pooled_row(scores)
            everything[m].extend(scores)
    for m, scores in everything.items():
        rows[f"{m} / all {len(materials)} materials"] = _pooled_row(scores)
    return rows


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (imports, FFT plans, model load)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def timing(repeats: int) -> dict[str, dict[str, float]]:
    items = load_graphene_contamination()
    small = items[3].image
    big = np.tile(small, (8, 8))
    rows = {
        "bragg 256^2": {"seconds": _time(lambda: segment(small, method="bragg"), repeats)},
        "bragg 2048^2": {
            "seconds": _time(lambda: segment(big, method="bragg"), max(1, repeats // 2))
        },
    }
    if _installed_model("contamination") is not None:
        px = items[3].pixel_size_nm
        rows["unet 256^2"] = {"seconds": _time(lambda: segment(small, px, method="unet"), repeats)}
        rows["unet 2048^2"] = {
            "seconds": _time(lambda: segment(big, px, method="unet"), max(1, repeats // 2))
        }
    return rows


#: Which benchmark rows go into which shipped card (model -> {key in metrics: row prefix}).
CARD_ROWS = {
    "segment_contamination": {"real_graphene_5fold_cv": ("graphene", "unet fine-tuned")},
    "segment_contamination_synthetic": {
        "real_graphene_all_31_held_out": ("graphene", "unet synthetic only")
    },
    "segment_particles": {"synthetic_held_out": ("particles", "unet segment_particles")},
}


def write_card_metrics(results: dict, command: str) -> None:
    """Add the benchmark's held-out scores to the shipped cards (weights untouched)."""
    from napari_atomseg.backend.cards import MODELS_DIR

    for model, entries in CARD_ROWS.items():
        path = MODELS_DIR / f"{model}.yaml"
        if not path.is_file():
            continue
        card = yaml.safe_load(path.read_text(encoding="utf-8"))
        bench = {"command": command, "date": time.strftime("%Y-%m-%d")}
        for key, (section, prefix) in entries.items():
            rows = {
                name: {k: round(float(v), 4) for k, v in row.items()}
                for name, row in results.get(section, {}).items()
                if name.startswith(prefix)
            }
            if rows:
                bench[key] = rows
        if len(bench) > 2:
            card.setdefault("metrics", {})["benchmark"] = bench
            path.write_text(yaml.safe_dump(card, sort_keys=False), encoding="utf-8")
            print(f"  wrote the benchmark scores into {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="graphene,particles,timing")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--finetune-steps",
        type=int,
        default=None,
        help="steps per fold of the CV fine-tuning (default: the config's; 0 = skip)",
    )
    parser.add_argument(
        "--finetune-config",
        type=Path,
        default=FINETUNE_CONFIG,
        help="fine-tuning recipe repeated per fold (default: the shipped model's config)",
    )
    parser.add_argument(
        "--keep-models",
        type=Path,
        default=Path("runs") / "segment_cv",
        help="keep the fold models here and reuse them when the recipe is unchanged",
    )
    parser.add_argument(
        "--no-bragg", action="store_true", help="skip the Bragg grid (U-Net experiments)"
    )
    parser.add_argument(
        "--no-variants",
        action="store_true",
        help="skip the post-processing variants of the fold models",
    )
    parser.add_argument("--particles-per-material", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--particle-model",
        action="append",
        default=[],
        help="also score this particle model (name or card path; repeatable)",
    )
    parser.add_argument("--json", type=Path, help="also write all rows to this JSON file")
    parser.add_argument(
        "--write-card-metrics",
        action="store_true",
        help="record the held-out scores in the shipped models' cards (metrics: benchmark)",
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    print(
        f"# napari-atomseg segmentation benchmark -- {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print(f"# command: python {' '.join(sys.argv)}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    if "graphene" in sections:
        print("\n## Contamination on the real graphene images (held-out, pooled over pixels)")
        steps = args.finetune_steps
        if steps is None:
            steps = int(yaml.safe_load(args.finetune_config.read_text())["steps"])
        steps = steps or None  # 0: skip the CV fine-tuning
        rows = graphene(
            args.folds,
            args.seed,
            BraggGrid(),
            steps,
            config=args.finetune_config,
            keep_dir=args.keep_models,
            bragg=not args.no_bragg,
            variants=not args.no_variants,
        )
        table = pd.DataFrame(rows).T.reindex(columns=[*COLUMNS, "jaccard_mean_per_image"])
        print(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"))
        results["graphene"] = rows
    if "particles" in sections:
        print("\n## Particles vs amorphous carbon, synthetic held-out set (pooled Dice = f1)")
        rows = particles(args.particles_per_material, args.seed, args.particle_model)
        if rows:
            print(
                pd.DataFrame(rows)
                .T[["f1", "jaccard", "pixel_accuracy"]]
                .to_string(float_format=lambda v: f"{v:.3f}")
            )
        results["particles"] = rows
    if "timing" in sections:
        print("\n## Time per image (median, seconds, pre-processing and clean-up included)")
        rows = timing(args.repeats)
        print(pd.DataFrame(rows).T.to_string(float_format=lambda v: f"{v:.3f}"))
        results["timing"] = rows
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    if args.write_card_metrics:
        write_card_metrics(results, f"python {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
