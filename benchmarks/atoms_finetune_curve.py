"""How many labelled images does fine-tuning need? A learning curve on the real Pt images.

The 11 hand-labelled HAADF images of ``../shared/data/pt_single_atoms`` are split once:
the held-out images (``--held-out``, default the CV's folds 2 and 3: 027 045 051 034 047)
are never trained on; the others form the training pool, in a fixed order. For each k in
``--sizes``, ``napari_atomseg.atoms.finetune_user.finetune_atoms`` -- exactly what
``napari-atomseg finetune`` runs, threshold choice included -- fine-tunes the shipped
default on the first k pool images, and the held-out images are scored with
``find_atoms(image, 0.0293, model=card)`` (the card's chosen threshold) against the hand
labels within ``--radius-nm`` (0.1 nm), pooled. k = 0 is the default model at its own
threshold. The baselines (blob_dog, blob_log) are tuned on the same k images.

    OMP_NUM_THREADS=1 python benchmarks/atoms_finetune_curve.py --out runs/ft_curve

Fine-tuned models are kept in ``--out/kK/`` and reused (delete the folder to retrain).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_atomseg.atoms.baselines import BASELINES, tune  # noqa: E402
from napari_atomseg.atoms.find import find_atoms  # noqa: E402
from napari_atomseg.atoms.finetune import pt_image_keys, read_pt_image, shared_data_dir  # noqa: E402
from napari_atomseg.atoms.finetune_user import finetune_atoms  # noqa: E402
from napari_atomseg.atoms.metrics import point_metrics  # noqa: E402

POOL_ORDER = ("021", "025", "037", "038", "048", "049")
HELD_OUT = ("027", "045", "051", "034", "047")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pooled(preds, cases, radius_nm: float) -> dict[str, float]:
    tp = fp = fn = 0
    for pred, (_, ps, truth) in zip(preds, cases):
        m = point_metrics(pred, truth, radius_nm=radius_nm, pixel_size_nm=ps)
        tp, fp, fn = tp + m.true_positives, fp + m.false_positives, fn + m.false_negatives
    return {
        "f1": round(2 * tp / (2 * tp + fp + fn), 4),
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
    }


def plugin_preds(model, cases):
    return [
        find_atoms(img, ps, model=model)[["y_px", "x_px"]].to_numpy(float) for img, ps, _ in cases
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3, 6])
    ap.add_argument("--held-out", nargs="+", default=list(HELD_OUT))
    ap.add_argument("--out", type=Path, default=Path("runs/ft_curve"))
    ap.add_argument("--radius-nm", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    folder = shared_data_dir() / "pt_single_atoms"
    if not folder.is_dir():
        log(f"{folder} not found: nothing to do")
        return 1
    import torch

    torch.set_num_threads(args.threads)
    keys = pt_image_keys(folder)
    held = [k for k in args.held_out if k in keys]
    pool = [k for k in POOL_ORDER if k in keys and k not in held]
    pool += [k for k in keys if k not in pool and k not in held]
    data = {k: read_pt_image(folder, k) for k in keys}
    test = [data[k] for k in held]
    log(f"held out {held}; training pool in order {pool}")
    rows = {}
    rows["0 (atoms_default, no fine-tuning)"] = pooled(
        plugin_preds("default", test), test, args.radius_nm
    )
    log(f"k=0: {rows['0 (atoms_default, no fine-tuning)']}")
    for k in args.sizes:
        train = [data[key] for key in pool[:k]]
        out = args.out / f"k{k}"
        card = out / "atoms_finetuned.yaml"
        t0 = time.perf_counter()
        if not card.is_file():
            card = finetune_atoms(
                [img for img, _, _ in train],
                [p for _, _, p in train],
                [ps for _, ps, _ in train],
                out,
                threads=args.threads,
                log=lambda s: log(f"  {s}"),
                command=f"benchmarks/atoms_finetune_curve.py k={k}",
            )
        seconds = time.perf_counter() - t0
        row = pooled(plugin_preds(str(card), test), test, args.radius_nm)
        for name in ("blob_dog", "blob_log"):
            res = tune(
                name,
                [img for img, _, _ in train],
                [p for _, _, p in train],
                [ps for _, ps, _ in train],
                radius_nm=args.radius_nm,
                bright_atoms=[True] * len(train),
            )
            preds = [
                BASELINES[name](img, ps, bright_atoms=True, **res.params) for img, ps, _ in test
            ]
            row[f"{name}_f1"] = pooled(preds, test, args.radius_nm)["f1"]
        row["images"] = pool[:k]
        row["train_seconds"] = round(seconds, 1)
        rows[str(k)] = row
        log(f"k={k}: {row}")
    print(f"\nFine-tuning learning curve, real Pt; held out {held}, radius {args.radius_nm} nm")
    print(
        f"{'labelled images':<34} {'F1':>6} {'prec':>6} {'recall':>6} {'blob_dog':>9} {'blob_log':>9}"
    )
    for k, r in rows.items():
        print(
            f"{k:<34} {r['f1']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} "
            f"{r.get('blob_dog_f1', float('nan')):9.3f} {r.get('blob_log_f1', float('nan')):9.3f}"
        )
    print(f"load average {os.getloadavg()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"held_out": held, "pool": pool, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
