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
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import pandas as pd
import yaml

from napari_atomseg.errors import ModelError
from napari_atomseg.segment import segment
from napari_atomseg.segment.data import kfold_splits, load_graphene_contamination
from napari_atomseg.segment.metrics import MaskScores, summarise
from napari_atomseg.segment.tuning import (
    BraggGrid,
    bragg_grid_scores,
    cross_validated,
)

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
COLUMNS = ["pixel_accuracy", "balanced_accuracy", "jaccard", "f1", "precision", "recall"]


def _pooled_row(scores: list[MaskScores]) -> dict[str, float]:
    table = summarise(scores, 1)
    row = table.loc["pooled"].to_dict()
    row["jaccard_mean_per_image"] = float(table.loc["mean", "jaccard"])
    return row


def _installed_model(task: str) -> str | None:
    try:
        from napari_atomseg.segment._unet import default_model

        return default_model(task).name
    except (ModelError, ImportError, AttributeError) as exc:
        print(f"  (no U-Net for {task}: {exc})")
        return None


def _finetuned_cv(items: list, splits: list, steps: int) -> dict[str, float]:
    """Fine-tune the synthetic model per fold (training folds only), score the held-out fold.

    Same recipe as the shipped model (configs/segment_contamination.yaml), except that no
    synthetic validation set is drawn (nothing here reads it).
    """
    import tempfile

    from napari_atomseg._progress import drain
    from napari_atomseg.segment.finetune import iter_finetune, real_pairs, task_from_config

    task = task_from_config(FINETUNE_CONFIG)
    pairs = real_pairs(items, task)
    scores: list[MaskScores | None] = [None] * len(items)
    with tempfile.TemporaryDirectory(prefix="segment_cv_") as tmp:
        for k, (train_idx, test_idx) in enumerate(splits):
            t0 = time.perf_counter()
            result = drain(
                iter_finetune(
                    FINETUNE_CONFIG,
                    [pairs[i] for i in train_idx],
                    Path(tmp) / f"fold{k}",
                    name=f"segment_contamination_cv_fold{k}",
                    steps=steps,
                    val_examples=0,
                )
            )
            for i in test_idx:
                it = items[i]
                res = segment(it.image, it.pixel_size_nm, model=str(result.card_path))
                scores[i] = MaskScores.from_masks(it.mask, res.flagged_mask)
            print(
                f"  fold {k}: fine-tuned on {len(train_idx)} images, {steps} steps, "
                f"{time.perf_counter() - t0:.0f} s; scored {len(test_idx)} held-out images"
            )
    return _pooled_row([s for s in scores if s is not None])


def graphene(
    folds: int, seed: int, grid: BraggGrid, finetune_steps: int | None
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
        grid_future = pool.submit(bragg_grid_scores, [(it.image, it.mask) for it in items], grid)
        for label, model in (
            ("unet synthetic only (segment_contamination_synthetic)", SYNTHETIC_MODEL),
            ("unet shipped, saw all 31 (in-sample, reference only)", "segment_contamination"),
        ):
            try:
                scores = [
                    MaskScores.from_masks(
                        it.mask, segment(it.image, it.pixel_size_nm, model=model).flagged_mask
                    )
                    for it in items
                ]
            except ModelError as exc:
                print(f"  ({label}: {exc})")
                continue
            rows[label] = _pooled_row(scores)
        if finetune_steps is not None:
            rows["unet fine-tuned (5-fold CV)"] = _finetuned_cv(items, splits, finetune_steps)
        grid_scores = grid_future.result()
    cv = cross_validated(grid_scores, splits, objective="jaccard")
    rows["bragg (CV-tuned)"] = _pooled_row(cv.per_image)
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
        from napari_atomseg.simulate import SimulationParameters, list_materials, simulate
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
            steps = int(yaml.safe_load(FINETUNE_CONFIG.read_text())["steps"])
        steps = steps or None  # 0: skip the CV fine-tuning
        rows = graphene(args.folds, args.seed, BraggGrid(), steps)
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
