"""Fit the atom finder's per-peak rescorer (card ``postprocess.rescorer``) and compare it
with the card's noise-ramp threshold on synthetic images apart from the test images.

The rescorer (``napari_atomseg.atoms.rescore``) decides for each heatmap peak of a noisy
lattice whether it is a column, where the noise ramp keeps every peak above one threshold
per image. Steps, all from the seed given (``--seed``):

1. Training images: seeds 50000+ of every benchmark group (``--n`` each) and 60000+ of
   the low-dose group (``--n-low-dose``); the default model's heatmap after find_atoms'
   second look, told the contrast and the imaging mode as the benchmark does.
2. Candidates: the heatmap's peaks down to 0.1 with the card's suppression; features of
   ``rescore.FEATURE_NAMES``; label 1 where a peak matches a true column within the
   benchmark's radius (Hungarian), 0 where it matches none, left out where it belongs to
   an ignored column or the border band. Only images through the rescorer's gate (a
   regular, noisy lattice, not HRTEM) take part.
3. A one-hidden-layer tanh network (``--hidden`` units), full-batch L-BFGS on the
   per-image-weighted cross-entropy (every image counts the same, whatever its number of
   peaks) with weight decay ``--weight-decay``.
4. The keep probability tau: best pooled F1 of the candidate labels by 5-fold
   cross-validation over the *training* images (never the images of step 5).
5. The comparison: pooled F1 with the card's current rule and with the rescorer, after
   all of find_atoms' post-processing (contrast check, refinement), on the tuning (10000+),
   development (20000+), low-dose A (30000+) and B (40000+) images of
   ``benchmarks/atoms_noise_threshold.py`` and the two real Pt tuning images.

``--write-card`` stores the fitted rescorer (the numbers the comparison ran with), the
cross-validation, the comparison and this command in the default model's card.

    OMP_NUM_THREADS=2 python benchmarks/atoms_rescorer.py --write-card    # ~4.5 min on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from atoms_noise_threshold import seed_sets

import atoms as bench  # benchmarks/atoms.py: cases and scoring

TRAIN_OFFSET = 50_000
TRAIN_LOW_DOSE_OFFSET = 60_000
TAUS = tuple(round(float(t), 2) for t in np.arange(0.3, 0.701, 0.05))


@dataclasses.dataclass
class Image:
    group: str
    case: bench.Case
    heat: object  # HeatmapResult after the second look
    cand: object  # detect.PeakCandidates
    labels: np.ndarray  # per candidate: 1 column, 0 not, -1 out of the score
    gated: bool


def labels_for(case: bench.Case, pos: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    from napari_atomseg.atoms.metrics import match_points

    lab = np.zeros(len(pos), np.int8)
    if len(pos) == 0:
        return lab
    kept = bench._drop_ignored(pos, case)
    scored = np.zeros(len(pos), bool)
    if len(kept):
        scored = cKDTree(kept).query(pos)[0] < 1e-9
    lab[~scored] = -1
    if len(case.truth_px) and scored.any():
        idx = np.flatnonzero(scored)
        m = match_points(pos[idx], case.truth_px, case.radius_nm / case.pixel_size_nm)
        lab[idx[m.predicted]] = 1
    return lab


def prepare(cases: list[tuple[str, bench.Case]], threads: int) -> list[Image]:
    from napari_atomseg.atoms.candidates import peak_candidates
    from napari_atomseg.atoms.rescore import in_gate

    out = []
    for group, case in cases:
        heat = bench.first_and_second_look(case, "default", threads)[1][0]
        heat = dataclasses.replace(heat, postprocess=_without_rescorer(heat.postprocess))
        cand = peak_candidates(heat, contrast=case.contrast, imaging=case.imaging)
        ok = bool(
            in_gate(
                cand.lattice,
                heat.pixel_size_nm,
                cand.noise_level,
                case.imaging,
                kept=cand.kept_lattice,
            )
            and len(cand.features)
        )
        out.append(Image(group, case, heat, cand, labels_for(case, cand.positions_px), ok))
    return out


def _without_rescorer(pp):
    return {k: v for k, v in (pp or {}).items() if k != "rescorer"}


def fit(images: list[Image], hidden: int, weight_decay: float, seed: int) -> dict:
    """A rescorer spec (the card's mapping, tau left out) fitted on ``images``."""
    import torch

    from napari_atomseg.atoms.rescore import FEATURE_NAMES

    X, y, w = [], [], []
    for im in images:
        ok = im.labels >= 0
        X.append(im.cand.features[ok])
        y.append(im.labels[ok])
        w.append(np.full(ok.sum(), 1.0 / max(ok.sum(), 1)))
    X = np.concatenate(X)
    y = np.concatenate(y).astype(np.float32)
    w = np.concatenate(w)
    w = w / w.mean()
    mean, std = X.mean(0), X.std(0)
    std[std < 1e-6] = 1.0  # a constant feature (e.g. ``dark`` with no dark images) stays 0
    torch.manual_seed(seed)
    xt = torch.tensor((X - mean) / std, dtype=torch.float64)
    yt, wt = torch.tensor(y, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
    ).double()
    opt = torch.optim.LBFGS(net.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        out = net(xt)[:, 0]
        loss = (
            torch.nn.functional.binary_cross_entropy_with_logits(out, yt, reduction="none") * wt
        ).mean()
        loss = loss + weight_decay * (net[0].weight.square().sum() + net[2].weight.square().sum())
        loss.backward()
        return loss

    opt.step(closure)
    return {
        "features": list(FEATURE_NAMES),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "w1": net[0].weight.detach().numpy().tolist(),
        "b1": net[0].bias.detach().numpy().tolist(),
        "w2": net[2].weight.detach().numpy()[0].tolist(),
        "b2": float(net[2].bias.detach().numpy()[0]),
    }


def candidate_f1(images: list[Image], keeps: list[np.ndarray]) -> float:
    tp = fp = fn = 0
    for im, k in zip(images, keeps):
        t = int(((im.labels == 1) & k).sum())
        tp, fp, fn = tp + t, fp + int(((im.labels == 0) & k).sum()), fn + len(im.case.truth_px) - t
    return 2 * tp / max(2 * tp + fp + fn, 1)


def choose_tau(images, hidden, weight_decay, seed, log) -> tuple[float, dict]:
    from napari_atomseg.atoms.rescore import Rescorer

    fold = np.random.default_rng(seed).integers(0, 5, len(images))
    probs: list = [None] * len(images)
    for k in range(5):
        spec = fit([im for im, f in zip(images, fold) if f != k], hidden, weight_decay, seed)
        r = Rescorer.from_card({**spec, "keep_probability": 0.5})
        for i, im in enumerate(images):
            if fold[i] == k:
                probs[i] = r.probability(im.cand.features)
    grid = {t: candidate_f1(images, [p >= t for p in probs]) for t in TAUS}
    ramp = candidate_f1(images, [im.cand.confidence >= im.cand.threshold for im in images])
    log(
        "  5-fold CV, candidate F1 on the gated training images: "
        + " ".join(f"{t}:{v:.4f}" for t, v in grid.items())
        + f" | noise ramp {ramp:.4f}"
    )
    tau = max(grid, key=grid.get)
    return tau, {
        "cv_candidate_f1": {str(t): round(v, 4) for t, v in grid.items()},
        "cv_candidate_f1_noise_ramp": round(ramp, 4),
    }


def compare(sets: dict[str, list[Image]], spec: dict) -> dict:
    from napari_atomseg.atoms.find import heatmap_to_atoms

    rows = {}
    for name, images in sets.items():
        per: dict[str, tuple[list, list, list, int]] = {}
        for im in images:
            post = {"contrast": im.case.contrast, "imaging": im.case.imaging}
            base = heatmap_to_atoms(im.heat, **post)
            h2 = dataclasses.replace(im.heat, postprocess={**im.heat.postprocess, "rescorer": spec})
            new = heatmap_to_atoms(h2, **post)
            for key in (im.group, "all"):
                b, n, c, g = per.get(key, ([], [], [], 0))
                b.append(base[["y_px", "x_px"]].to_numpy(float))
                n.append(new[["y_px", "x_px"]].to_numpy(float))
                c.append(im.case)
                per[key] = (b, n, c, g + int(new.attrs["threshold_from"] == "rescorer"))
        rows[name] = {
            key: {
                "images": len(c),
                "rescored": g,
                "f1_ramp": round(bench.score(b, c)["f1"], 4),
                "f1_rescorer": round(bench.score(n, c)["f1"], 4),
            }
            for key, (b, n, c, g) in per.items()
        }
    return rows


def main(argv=None) -> int:
    import torch

    from napari_atomseg.atoms import rescore
    from napari_atomseg.atoms.rescore import Rescorer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=80, help="training images per group")
    p.add_argument("--n-low-dose", type=int, default=240, help="further low-dose training images")
    p.add_argument("--n-eval", type=int, default=12, help="tuning/development images per group")
    p.add_argument("--n-eval-low-dose", type=int, default=60, help="images in low dose A and B")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write-card", action="store_true", help="store it in the default card")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)

    train_cases = [
        (g, c) for g in bench.GROUPS for c in bench.synthetic_cases(g, args.n, TRAIN_OFFSET)
    ]
    train_cases += [
        ("haadf_low_dose", c)
        for c in bench.synthetic_cases("haadf_low_dose", args.n_low_dose, TRAIN_LOW_DOSE_OFFSET)
    ]
    log(f"training images: {len(train_cases)}")
    train = [im for im in prepare(train_cases, args.threads) if im.gated]
    log(f"  through the gate: {len(train)}")
    tau, cv = choose_tau(train, args.hidden, args.weight_decay, args.seed, log)
    spec = fit(train, args.hidden, args.weight_decay, args.seed)
    spec.update(
        {
            "keep_probability": tau,
            "candidate_threshold": rescore.CANDIDATE_THRESHOLD,
            "max_spacing_nm": rescore.MAX_SPACING_NM,
            "max_spacing_cv": rescore.MAX_SPACING_CV,
            "min_noise_level": rescore.MIN_NOISE_LEVEL,
        }
    )
    Rescorer.from_card(spec)  # it loads
    log(f"fitted: {args.hidden} hidden units, tau {tau}")

    sets = {
        name: prepare(cases, args.threads)
        for name, cases in seed_sets(args.n_eval, args.n_eval_low_dose).items()
    }
    rows = compare(sets, spec)
    print("\n| set | group | images | rescored | F1 noise ramp | F1 rescorer |")
    print("|---|---|---|---|---|---|")
    for name, groups in rows.items():
        for key, r in sorted(groups.items(), key=lambda kv: kv[0] != "all"):
            print(
                f"| {name} | {key} | {r['images']} | {r['rescored']} | "
                f"{r['f1_ramp']:.4f} | {r['f1_rescorer']:.4f} |"
            )
    log("done")
    if args.write_card:
        write_card(spec, cv, rows, args, len(train_cases), len(train))
    return 0


def write_card(spec, cv, rows, args, n_train, n_gated) -> None:
    from napari_atomseg.backend.cards import load_card, save_card

    card = load_card("atoms_default")
    command = "OMP_NUM_THREADS=2 python benchmarks/atoms_rescorer.py --write-card" + (
        f" --seed {args.seed}" if args.seed else ""
    )
    metrics = dict(card.metrics)
    metrics["rescorer"] = {
        "command": command,
        "seed": args.seed,
        "data": (
            f"synthetic: {args.n} images per benchmark group from seed {TRAIN_OFFSET} and "
            f"{args.n_low_dose} low-dose images from seed {TRAIN_LOW_DOSE_OFFSET} "
            f"({n_train} in all, {n_gated} through the gate)"
        ),
        "fit": (
            f"{args.hidden} tanh units, L-BFGS on per-image-weighted cross-entropy, "
            f"weight decay {args.weight_decay}; keep probability by 5-fold CV on the "
            "training images"
        ),
        **cv,
        "comparison_f1": rows,
    }
    postprocess = {**dict(card.postprocess), "rescorer": spec}
    # Plain Python numbers only in the YAML (numpy scalars have no YAML form).
    plain = json.loads(json.dumps({"p": postprocess, "m": metrics}, default=float))
    save_card(card.with_updates(postprocess=plain["p"], metrics=plain["m"]), card.path)
    print(f"wrote the rescorer into {card.path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
