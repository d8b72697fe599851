"""Fine-tuning the atom finder on real Pt single atoms, measured on images it never saw.

The recipe is the users' own (``napari-atomseg finetune``, ``atoms.finetune_user``). The
11 labelled images of ``../shared/data/pt_single_atoms`` are split into ``--folds`` groups
(round robin); each group is scored by a model fine-tuned on the other groups, with the
detection threshold that model's fine-tuning chose on its own training images. The
held-out predictions are pooled and scored by the paper's rule (21 px boxes, IoU > 0.5,
one to one) and at 0.1 nm. Baselines (blob_dog, blob_log) are tuned on the same training
folds. ``--train-keys 021`` instead fine-tunes on the named images and scores all others
(how far one labelled image goes).

    OMP_NUM_THREADS=2 python benchmarks/atoms_pt_cv.py --out runs/pt_cv
    OMP_NUM_THREADS=2 python benchmarks/atoms_pt_cv.py --train-keys 021 --out runs/pt_one
    python benchmarks/atoms_pt_cv.py --out runs/pt_cv --update-card atoms_pt_carbon

Fold models are kept in ``--out``/foldK and reused while the recipe and the training images
are the same.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from lib.baselines import BASELINES, tune
from lib.cases import Case, box_score, pt_cases, score
from lib.pt import cv_folds


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fine_tune(train: list[Case], folder: Path, args: argparse.Namespace) -> Path:
    """The user recipe on ``train`` (or the kept model of the same recipe); its card path."""
    from napari_atomseg.atoms.finetune_user import finetune_atoms

    recipe = {"base": args.base, "steps": args.steps, "lr": args.lr, "seed": args.seed,
              "synthetic_fraction": args.synthetic_fraction, "train": [c.name for c in train]}  # fmt: skip
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    card, stamp = folder / "atoms_finetuned.yaml", folder / "recipe.json"
    if card.is_file() and stamp.is_file() and json.loads(stamp.read_text())["key"] == key:
        log(f"{folder.name}: reusing {card}")
        return card
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    options = {k: recipe[k] for k in ("steps", "lr", "seed") if recipe[k] is not None}
    if args.synthetic_fraction is not None:
        options["synthetic_fraction"] = args.synthetic_fraction
    path = finetune_atoms(
        [c.image for c in train], [c.truth_px for c in train], [c.pixel_size_nm for c in train],
        folder, base=args.base, name="atoms_finetuned", threads=args.threads, **options,
    )  # fmt: skip
    stamp.write_text(json.dumps({"key": key, **recipe}))
    log(f"{folder.name}: fine-tuned on {len(train)} images in {time.perf_counter() - t0:.0f} s")
    return Path(path)


def predict(card: Path, cases: list[Case], threads: int) -> list[np.ndarray]:
    from napari_atomseg.atoms.find import find_atoms

    return [
        find_atoms(c.image, c.pixel_size_nm, str(card), threads=threads)[["y_px", "x_px"]].to_numpy(
            float
        )
        for c in cases
    ]


def baseline_predictions(train: list[Case], test: list[Case]) -> dict[str, list[np.ndarray]]:
    out = {}
    for name in ("blob_dog", "blob_log"):
        params = tune(
            name, [c.image for c in train], [c.truth_px for c in train],
            [c.pixel_size_nm for c in train], radius_nm=0.1,
        ).params  # fmt: skip
        out[name] = [BASELINES[name](c.image, c.pixel_size_nm, **params) for c in test]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument(
        "--train-keys", nargs="*", default=None, help="fine-tune on these, score the rest"
    )
    ap.add_argument(
        "--base", default="default", help="model to fine-tune (default: the shipped one)"
    )
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic-fraction", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument(
        "--update-card", default=None, metavar="NAME", help="record the CV in this card"
    )
    args = ap.parse_args(argv)
    cases = pt_cases()
    by_key = {c.name: c for c in cases}
    if args.train_keys:
        splits = [(tuple(k for k in by_key if k not in args.train_keys), tuple(args.train_keys))]
    else:
        splits = [
            (fold, tuple(k for k in by_key if k not in fold))
            for fold in cv_folds(list(by_key), args.folds)
        ]
    held, preds, base_preds, thresholds = [], [], {}, []
    for k, (test_keys, train_keys) in enumerate(splits):
        train, test = [by_key[x] for x in train_keys], [by_key[x] for x in test_keys]
        card = fine_tune(train, args.out / f"fold{k}", args)
        from napari_atomseg.backend.cards import load_card

        thresholds.append(float(load_card(card).postprocess["threshold"]))
        held += test
        preds += predict(card, test, args.threads)
        if args.baselines:
            for name, p in baseline_predictions(train, test).items():
                base_preds.setdefault(name, []).extend(p)
    rows = {"fine-tuned (held out)": (box_score(preds, held), score(preds, held))}
    zero = predict_default(args.base, held, args.threads)
    rows[f"{args.base} (no fine-tuning)"] = (box_score(zero, held), score(zero, held))
    for name, p in base_preds.items():
        rows[f"{name} (tuned on the training folds)"] = (box_score(p, held), score(p, held))
    print(
        "| method | box rule F1 | precision | recall | 0.1 nm F1 | RMS (pm) |\n|---|---|---|---|---|---|"
    )
    for name, (box, near) in rows.items():
        print(f"| {name} | {box['f1']:.3f} | {box['precision']:.3f} | {box['recall']:.3f} | "
              f"{near['f1']:.3f} | {near['rms_pm']:.0f} |")  # fmt: skip
    box = rows["fine-tuned (held out)"][0]
    print(
        "per image (box rule F1): "
        + ", ".join(f"{k} {v:.2f}" for k, v in box["per_image_f1"].items())
    )
    print(f"fold thresholds: {thresholds}")
    if args.update_card:
        record(args, rows, splits, thresholds)
    return 0


def predict_default(base: str, cases: list[Case], threads: int) -> list[np.ndarray]:
    return predict(Path(base) if base.endswith(".yaml") else base, cases, threads)


def record(args: argparse.Namespace, rows: dict, splits: list, thresholds: list[float]) -> None:
    """Write the held-out scores into the card of the model made from all 11 images."""
    from napari_atomseg.backend.cards import load_card, save_card

    card = load_card(args.update_card)
    box, near = rows["fine-tuned (held out)"]
    metrics = dict(card.metrics or {})
    metrics["cross_validation"] = {
        "command": "python benchmarks/atoms_pt_cv.py " + " ".join(sys.argv[1:]),
        "held_out": [list(test) for test, _ in splits],
        "box_rule": {k: round(box[k], 4) for k in ("f1", "precision", "recall")},
        "within_0.1_nm": {k: round(near[k], 4) for k in ("f1", "precision", "recall", "rms_pm")},
        "fold_thresholds": thresholds,
        "baselines_box_f1": {n: round(b["f1"], 4) for n, (b, _) in rows.items() if "tuned" in n},
        "date": time.strftime("%Y-%m-%d"),
    }
    save_card(card.with_updates(metrics=metrics), card.path)
    log(f"updated {card.path}")


if __name__ == "__main__":
    sys.exit(main())
