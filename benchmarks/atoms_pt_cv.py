"""k-fold cross-validation of the real-Pt fine-tuning recipe (configs/atoms_pt_carbon.yaml).

Data: the 11 hand-labelled HAADF images of ``../shared/data/pt_single_atoms`` (isolated Pt
atoms on N-doped carbon, 0.0293 nm/px). The images are split into ``--folds`` groups
(``atoms.finetune.cv_folds``: round robin over the sorted keys); for each fold

1. the recipe of ``--config`` is fine-tuned on the *other* folds' images (pairs written
   with ``atoms.finetune.point_pairs``, i.e. exactly as ``python -m
   napari_atomseg.atoms.finetune`` does), same seed, same steps, one torch thread; the
   fold model is kept in ``--out``/foldK/ and reused while its recipe is unchanged;
2. the detection threshold is chosen on the fold's *training* images only (pooled F1 of
   ``heatmap_to_atoms`` over a grid of thresholds; ties go to the lower RMS error, then
   to the threshold nearest 0.5) -- never on the held-out images;
3. the held-out images are scored with ``find_atoms(image, 0.0293, model=fold card,
   threshold=chosen)`` against the hand labels (``atoms.metrics.point_metrics``, match
   radius ``--radius-nm``, default 0.1 nm);
4. the baselines (``--baselines``, default blob_dog and blob_log) are tuned on the same
   training images with the rule of ``atoms.baselines.tune`` (its grid, one round of
   geometric-midpoint refinement, pooled F1, ties to the lower RMS) and applied unchanged
   to the held-out images. Baseline detections are cached per (image, parameters), so the
   grid is run once per image, not once per fold.

Scores are pooled over all 11 held-out predictions (TP/FP/FN summed; RMS over all matched
pairs, pm). Also printed, for information only (NOT used for any choice): the pooled
held-out F1 of the fine-tuned models at a few fixed thresholds, and of the stage-2 start
model (``--init-model``) at its default threshold.

    OMP_NUM_THREADS=1 python benchmarks/atoms_pt_cv.py --json runs/atoms_pt_cv/cv.json
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.chdir(ROOT)  # configs and runs/ paths are relative to the repository root
sys.path.insert(0, str(ROOT / "src"))

from napari_atomseg.atoms.baselines import BASELINES, grid_search  # noqa: E402
from napari_atomseg.atoms.find import find_atoms, heatmap_to_atoms  # noqa: E402
from napari_atomseg.atoms.finetune import (  # noqa: E402
    cv_folds,
    point_pairs,
    pt_image_keys,
    read_pt_image,
    shared_data_dir,
)
from napari_atomseg.atoms.heatmap import predict_heatmap  # noqa: E402
from napari_atomseg.atoms.metrics import point_metrics  # noqa: E402
from napari_atomseg.atoms.options import DEFAULT_THRESHOLD  # noqa: E402

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))
#: The start model of configs/atoms_pt_carbon*.yaml (scored without fine-tuning).
INIT_MODEL = "runs/atoms_stage2/atoms_stage2.yaml"


@dataclass
class Case:
    key: str
    image: np.ndarray
    pixel_size_nm: float
    truth: np.ndarray


@dataclass
class Counts:
    """Pooled detection counts (TP/FP/FN) and squared matched-pair errors (nm^2)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    sq_nm2: float = 0.0

    def add(self, pred_px: np.ndarray, case: Case, radius_nm: float) -> Counts:
        m = point_metrics(
            pred_px, case.truth, radius_nm=radius_nm, pixel_size_nm=case.pixel_size_nm
        )
        self.tp += m.true_positives
        self.fp += m.false_positives
        self.fn += m.false_negatives
        if m.true_positives:
            self.sq_nm2 += (m.rms_error_px * case.pixel_size_nm) ** 2 * m.true_positives
        return self

    def __iadd__(self, other: Counts) -> Counts:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.sq_nm2 += other.sq_nm2
        return self

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 1.0

    @property
    def rms_pm(self) -> float:
        return 1000 * math.sqrt(self.sq_nm2 / self.tp) if self.tp else float("nan")

    def as_dict(self) -> dict[str, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        return {
            "f1": round(self.f1, 4),
            "precision": round(p, 4),
            "recall": round(r, 4),
            "rms_pm": round(self.rms_pm, 2),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_cases(folder: Path) -> list[Case]:
    return [Case(k, *read_pt_image(folder, k)) for k in pt_image_keys(folder)]


# --------------------------------------------------------------------------- fine-tuning
def fold_config(base: dict, fold: int, out: Path, steps: int | None) -> dict:
    cfg = copy.deepcopy(base)
    d = out / f"fold{fold}"
    cfg["name"] = f"{base['name']}_cv{fold}"
    cfg["pairs"] = str(d / "pt_pairs.npz")
    cfg["out_dir"] = cfg["export_dir"] = str(d)
    if steps is not None:
        cfg["steps"] = steps
        cfg["val_every"] = min(int(cfg.get("val_every", steps)), steps)
    return cfg


def recipe_key(cfg: dict, train_keys: tuple[str, ...]) -> str:
    """What makes a fold model: the recipe (not where its files go) and its training images."""
    recipe = {k: v for k, v in cfg.items() if k not in ("pairs", "out_dir", "export_dir")}
    blob = json.dumps({"config": recipe, "train": train_keys}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_fold(cfg: dict, train_cases: list[Case], command: str) -> Path:
    """Fine-tune one fold (or reuse the kept model of the same recipe); returns its card path."""
    from napari_atomseg.backend.train import TrainConfig, load_task, train
    from napari_atomseg.backend.train_data import save_pairs

    d = Path(cfg["out_dir"])
    card_path = d / f"{cfg['name']}.yaml"
    key = recipe_key(cfg, tuple(c.key for c in train_cases))
    stamp = d / "recipe.json"
    if card_path.is_file() and stamp.is_file() and json.loads(stamp.read_text())["key"] == key:
        log(f"{cfg['name']}: reusing {card_path} (same recipe)")
        return card_path
    d.mkdir(parents=True, exist_ok=True)
    tcfg = TrainConfig.from_mapping(cfg)
    task = load_task(tcfg.task, tcfg.task_options)
    items = [(c.image, c.pixel_size_nm, c.truth) for c in train_cases]
    save_pairs(tcfg.pairs, point_pairs(items, task))
    # The synthetic example pool depends only on task, options, seed and size: share it.
    if tcfg.example_pool:
        for other in sorted(d.parent.glob("fold*/example_pool.npz")):
            target = d / "example_pool.npz"
            if other.parent != d and not target.exists():
                target.symlink_to(other.resolve())
                break
    t0 = time.perf_counter()
    train(tcfg, log=lambda s: log(f"  {s}"), command=command)
    stamp.write_text(json.dumps({"key": key, "train": [c.key for c in train_cases]}))
    log(f"{cfg['name']}: trained in {time.perf_counter() - t0:.0f} s")
    return card_path


# --------------------------------------------------------------------------- plugin
def heatmaps(
    card_path: Path, cases: list[Case], threads: int, cache_dir: Path | None = None
) -> dict[str, object]:
    """HeatmapResult per image, cached in ``cache_dir`` (default: beside the model; never
    give a shipped model's folder) keyed by the weights' sha256."""
    from napari_atomseg.atoms.heatmap import HeatmapResult
    from napari_atomseg.backend.cards import load_card

    sha = load_card(card_path).weights.sha256
    cache = (cache_dir or card_path.parent) / f"heatmaps_{sha[:12]}.npz"
    stored = {}
    if cache.is_file():
        with np.load(cache) as z:
            stored = {k: z[k] for k in z.files}
    out = {}
    for c in cases:
        if c.key in stored:
            out[c.key] = HeatmapResult.from_arrays(c.image, stored[c.key], c.pixel_size_nm)
        else:
            out[c.key] = predict_heatmap(c.image, c.pixel_size_nm, str(card_path), threads=threads)
            stored[c.key] = out[c.key].heatmap
    np.savez_compressed(cache, **stored)
    return out


def counts_at(heat: dict, cases: list[Case], threshold: float, radius_nm: float) -> Counts:
    total = Counts()
    for c in cases:
        df = heatmap_to_atoms(heat[c.key], threshold=threshold)
        total.add(df[["y_px", "x_px"]].to_numpy(), c, radius_nm)
    return total


def choose_threshold(heat: dict, train_cases: list[Case], radius_nm: float) -> tuple[float, dict]:
    curve = {t: counts_at(heat, train_cases, t, radius_nm) for t in THRESHOLDS}

    def rank(t: float) -> tuple:
        c = curve[t]
        return (round(c.f1, 6), -(c.rms_pm if math.isfinite(c.rms_pm) else 1e9), -abs(t - 0.5))

    best = max(THRESHOLDS, key=rank)
    return best, {t: round(c.f1, 4) for t, c in curve.items()}


# --------------------------------------------------------------------------- baselines
class BaselineCache:
    """Per-image detection counts of one baseline, per parameter set (computed once)."""

    def __init__(self, name: str, cases: list[Case], radius_nm: float, path: Path):
        self.name, self.base, self.radius = name, BASELINES[name], radius_nm
        self.cases = {c.key: c for c in cases}
        self.path = path
        self.store: dict[str, list] = json.loads(path.read_text()) if path.is_file() else {}

    def counts(self, params: dict, key: str) -> Counts:
        k = f"{key}|" + ",".join(f"{p}={params[p]:.6g}" for p in sorted(params))
        if k not in self.store:
            c = self.cases[key]
            pred = self.base(c.image, c.pixel_size_nm, bright_atoms=True, **params)
            n = Counts().add(pred, c, self.radius)
            self.store[k] = [n.tp, n.fp, n.fn, n.sq_nm2]
        tp, fp, fn, sq = self.store[k]
        return Counts(tp, fp, fn, sq)

    def pooled(self, params: dict, keys: list[str]) -> Counts:
        total = Counts()
        for k in keys:
            total += self.counts(params, k)
        return total

    def tune(self, keys: list[str]) -> dict:
        """``atoms.baselines.tune``'s rule (its ``grid_search``) on ``keys``, with cached
        detections: the folds share most training images."""

        def score(params: dict) -> tuple[float, float]:
            c = self.pooled(params, keys)
            return c.f1, c.rms_pm

        names, _, best = grid_search(self.base.grid, score)
        self.path.write_text(json.dumps(self.store))
        return dict(zip(names, best))


def update_card(
    name: str,
    args: argparse.Namespace,
    command: str,
    folds: list,
    rows: dict,
    per_fold: list,
    thrs: list,
    n_images: int,
    recipe: dict,
) -> None:
    """Record this run in ``metrics.cross_validation`` of model ``name``'s card (which must
    have been trained with the same ``recipe`` on all images)."""
    from napari_atomseg.backend.cards import card_from_dict, load_card, save_card

    card = load_card(name)
    trained = (card.training or {}).get("config", {})
    for key in ("task_options", "pairs_fraction", "lr", "steps", "seed", "init_from"):
        if trained.get(key) != recipe.get(key):
            raise SystemExit(f"{name}: its {key} differs from {args.config}'s; not updating")
    plugin = rows["napari-atomseg fine-tuned (CV)"].as_dict()
    data = card.to_dict()
    data.setdefault("metrics", {})["cross_validation"] = {
        "command": command,
        "dataset": "shared/data/pt_single_atoms (real HAADF, Pt on N-doped carbon, hand labels)",
        "n_images": n_images,
        "folds": len(folds),
        "held_out_images": [list(f) for f in folds],
        "match_radius_nm": args.radius_nm,
        "pooled_over": "all held-out images (each scored once by a fold model that never saw it)",
        **{k: plugin[k] for k in ("f1", "precision", "recall", "rms_pm")},
        "fold_thresholds": thrs,
        "threshold_rule": "per fold: best pooled F1 on the fold's training images",
        "recommended_threshold": float(np.median(thrs)),
        "baselines": {
            k.split(" ")[0]: {m: v for m, v in c.as_dict().items() if m in ("f1", "rms_pm")}
            for k, c in rows.items()
            if k.startswith("blob_")
        },
    }
    # The recommended threshold becomes the card's post-processing default, which
    # find_atoms, the atoms CLI and the Find atoms widget use when none is given.
    data["postprocess"] = {**(data.get("postprocess") or {}), "threshold": float(np.median(thrs))}
    save_card(card_from_dict(data), card.path)
    log(f"updated {card.path}")


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/atoms_pt_carbon.yaml")
    ap.add_argument(
        "--user-recipe",
        default=None,
        metavar="BASE",
        help="instead of --config: the recipe of 'napari-atomseg finetune' starting from "
        "model BASE (e.g. default), as atoms.finetune_user.finetune_config builds it",
    )
    ap.add_argument("--lr", type=float, default=None, help="with --user-recipe: peak lr")
    ap.add_argument(
        "--synthetic-fraction",
        type=float,
        default=None,
        help="with --user-recipe: share of synthetic examples (default: the recipe's)",
    )
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None, help="override the config's steps")
    ap.add_argument("--out", type=Path, default=Path("runs/atoms_pt_cv"))
    ap.add_argument("--radius-nm", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--baselines", nargs="*", default=["blob_dog", "blob_log"])
    ap.add_argument("--init-model", default=INIT_MODEL)
    ap.add_argument("--only-train", action="store_true", help="train the fold models and stop")
    ap.add_argument(
        "--train-folds", type=int, nargs="*", default=None, help="with --only-train: these folds"
    )
    ap.add_argument(
        "--only-baselines", action="store_true", help="tune and score the baselines only"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--update-card",
        default=None,
        metavar="MODEL",
        help="write the CV scores and the recommended threshold into this model's card "
        "(the model trained on all images with the same --config)",
    )
    args = ap.parse_args(argv)
    command = "python benchmarks/atoms_pt_cv.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    t_start = time.perf_counter()

    import torch

    torch.set_num_threads(args.threads)
    folder = shared_data_dir() / "pt_single_atoms"
    if not folder.is_dir():
        log(f"{folder} not found: nothing to do")
        return 1
    cases = load_cases(folder)
    by_key = {c.key: c for c in cases}
    folds = cv_folds([c.key for c in cases], args.folds)
    if args.user_recipe:
        from napari_atomseg.atoms.finetune_user import SYNTHETIC_FRACTION, finetune_config

        fraction = (
            SYNTHETIC_FRACTION if args.synthetic_fraction is None else args.synthetic_fraction
        )
        base = finetune_config(
            args.user_recipe, args.out, "atoms_finetuned", lr=args.lr, synthetic_fraction=fraction
        )
        base["threads"] = args.threads
        args.config = f"user recipe from {args.user_recipe}"
        if args.init_model == INIT_MODEL:
            from napari_atomseg.backend.cards import load_card

            args.init_model = str(load_card(base["init_from"]).path)
    else:
        base = yaml.safe_load(Path(args.config).read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    log(f"{len(cases)} images, folds {folds}")

    cards = []
    for f, held in enumerate(folds if not args.only_baselines else []):
        if args.only_train and args.train_folds is not None and f not in args.train_folds:
            continue
        train_cases = [c for c in cases if c.key not in held]
        cfg = fold_config(base, f, args.out, args.steps)
        cards.append(train_fold(cfg, train_cases, command))
    if args.only_train:
        return 0

    rows: dict[str, Counts] = {}
    per_fold = []
    fixed = {t: Counts() for t in (0.2, 0.3, 0.4, 0.5)}
    plugin = Counts()
    per_image = {}
    for f, (held, card) in enumerate(zip(folds, cards)):  # empty with --only-baselines
        train_cases = [c for c in cases if c.key not in held]
        held_cases = [by_key[k] for k in held]
        heat = heatmaps(card, cases, args.threads)
        thr, curve = choose_threshold(heat, train_cases, args.radius_nm)
        fold_counts = Counts()
        for c in held_cases:
            df = find_atoms(c.image, c.pixel_size_nm, model=str(card), threshold=thr)
            n = Counts().add(df[["y_px", "x_px"]].to_numpy(), c, args.radius_nm)
            per_image[c.key] = {"fold": f, **n.as_dict()}
            fold_counts += n
        plugin += fold_counts
        for t in fixed:
            fixed[t] += counts_at(heat, held_cases, t, args.radius_nm)
        per_fold.append(
            {
                "fold": f,
                "images": list(held),
                "threshold": thr,
                "train_f1_curve": curve,
                "held_out": fold_counts.as_dict(),
            }
        )
        log(f"fold {f} {held}: threshold {thr} -> held-out {fold_counts.as_dict()}")
    if cards:
        rows["napari-atomseg fine-tuned (CV)"] = plugin

    baseline_params = {}
    for name in args.baselines:
        cache = BaselineCache(name, cases, args.radius_nm, args.out / f"baseline_{name}.json")
        total = Counts()
        baseline_params[name] = []
        for f, held in enumerate(folds):
            train_keys = [c.key for c in cases if c.key not in held]
            params = cache.tune(train_keys)
            baseline_params[name].append(params)
            total += cache.pooled(params, list(held))
            log(f"{name} fold {f}: {params}")
        rows[f"{name} (tuned on training folds)"] = total

    if args.init_model and Path(args.init_model).is_file() and not args.only_baselines:
        start = Counts()
        heat0 = heatmaps(Path(args.init_model), cases, args.threads, cache_dir=args.out)
        from napari_atomseg.backend.cards import load_card

        t0 = float(load_card(args.init_model).postprocess.get("threshold", DEFAULT_THRESHOLD))
        start = counts_at(heat0, cases, t0, args.radius_nm)
        rows[f"start model {Path(args.init_model).stem} (threshold {t0}, no fine-tuning)"] = start

    width = max(len(k) for k in rows) + 2
    print(f"\nReal Pt single atoms, {len(folds)}-fold CV, pooled over {len(cases)} held-out images")
    print(f"{'method':<{width}} {'F1':>6} {'prec':>6} {'recall':>6} {'RMS pm':>7}")
    for k, c in rows.items():
        d = c.as_dict()
        print(
            f"{k:<{width}} {d['f1']:6.3f} {d['precision']:6.3f} {d['recall']:6.3f} "
            f"{d['rms_pm']:7.1f}"
        )
    thrs = [float(p["threshold"]) for p in per_fold] or [float("nan")]
    print(f"thresholds chosen on the training folds: {thrs} (median {float(np.median(thrs))})")
    print(
        "for information, fine-tuned models at fixed thresholds (not used for any choice): "
        + ", ".join(f"{t}: F1 {c.f1:.3f}" for t, c in fixed.items())
    )
    wall = time.perf_counter() - t_start
    print(f"wall {wall:.0f} s, load average {os.getloadavg()}")
    if args.update_card and cards:
        update_card(args.update_card, args, command, folds, rows, per_fold, thrs, len(cases), base)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "config": args.config,
                    "folds": [list(f) for f in folds],
                    "radius_nm": args.radius_nm,
                    "results": {k: c.as_dict() for k, c in rows.items()},
                    "per_fold": per_fold,
                    "per_image": per_image,
                    "fixed_thresholds": {str(t): c.as_dict() for t, c in fixed.items()},
                    "baseline_params": baseline_params,
                    "recommended_threshold": float(np.median(thrs)),
                    "wall_s": round(wall, 1),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
