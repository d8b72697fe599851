"""Atom-finder benchmark: a model against tuned classical baselines, synthetic and real.

    OMP_NUM_THREADS=2 python benchmarks/atoms.py                        # everything
    OMP_NUM_THREADS=2 python benchmarks/atoms.py --calibrate --update-card   # choose + record
    python benchmarks/atoms.py --sections pt --model runs/x/x.yaml      # one section, a model

Synthetic groups and scoring: ``lib/cases.py``. The baselines (``lib/baselines.py``:
blob_log, blob_dog, peak_local_max, atomap_like) are tuned by grid search on the *tuning*
seed set of the same groups, told the true contrast, and applied unchanged to the *test*
set; the plugin is told the contrast and the imaging mode, and runs with its card's
defaults. ``--calibrate`` chooses those defaults the same way: the detection threshold and
the image evidence a column needs (best mean over the groups of each group's pooled F1 on
the tuning images, over a grid; ties to the stricter evidence); ``--update-card`` writes them into the card's ``postprocess`` and
the test rows into ``metrics.benchmark``.

Real Pt (``../shared/data/pt_single_atoms``, 11 hand-labelled images): scored by the
paper's rule (21 px boxes, IoU > 0.5, one to one) and at 0.1 nm; the baselines are tuned on
021 and 025 and every method is reported on the other 9; the plugin is never tuned on them.

Timing: one 1024^2 synthetic HAADF image (0.02 nm/px), full pipeline of each method,
interleaved repeats, median.

Memory (``--sections memory``, not in the default run): the full pipeline on an
``--memory-side`` px square image (default 8192) of an ideal perovskite-like lattice
(0.39 nm cell, three sublattices, 0.02 nm/px, 5 % noise), in a fresh process: the peak
resident memory during ``find_atoms`` above the resident memory just before it (image and
model already loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from lib.baselines import BASELINES, tune
from lib.cases import (
    BENCH_SEED,
    GROUPS,
    TEST,
    TUNING,
    Case,
    box_score,
    pt_cases,
    score,
    synthetic_cases,
)
from lib.pt import PT_DIR, PT_TUNE_KEYS

#: The grid --calibrate searches (threshold x min_evidence).
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.2, 0.751, 0.05))
EVIDENCE = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


def options_for(case: Case, extra: dict | None = None) -> dict:
    """The plugin's options for a case: told the contrast and the imaging mode."""
    return {"contrast": case.contrast, "imaging": case.imaging, **(extra or {})}


def heatmaps(cases: list[Case], model: str, threads: int) -> list:
    """The network's answer per case (contrast as told), computed once."""
    from napari_atomseg._progress import drain
    from napari_atomseg.atoms.find import iter_network_answer
    from napari_atomseg.atoms.options import FinderOptions

    out = []
    for c in cases:
        opts = FinderOptions(**options_for(c), threads=threads)
        result, _ = drain(iter_network_answer(c.image, c.pixel_size_nm, model, opts))
        out.append(result)
    return out


def columns(results: list, cases: list[Case], **options) -> list[np.ndarray]:
    from napari_atomseg.atoms.find import heatmap_to_atoms

    return [
        heatmap_to_atoms(r, **options_for(c, options))[["y_px", "x_px"]].to_numpy(float)
        for r, c in zip(results, cases)
    ]


def calibrate(cases: list[Case], model: str, threads: int, log) -> dict:
    """Threshold and min_evidence with the best mean F1 over the groups of the tuning
    images (each group's F1 pooled over its images, then averaged): every kind of image
    counts alike, so the thousands of columns of a lattice image cannot outvote the few
    atoms of a single-atom image."""
    t0 = time.perf_counter()
    results = heatmaps(cases, model, threads)
    groups = sorted({c.group for c in cases})

    def group_mean_f1(t: float, e: float) -> float:
        found = columns(results, cases, threshold=t, min_evidence=e, refine="none")
        per_group = []
        for g in groups:
            keep = [k for k, c in enumerate(cases) if c.group == g]
            per_group.append(score([found[k] for k in keep], [cases[k] for k in keep])["f1"])
        return float(np.mean(per_group))

    grid = {(t, e): group_mean_f1(t, e) for t in THRESHOLDS for e in EVIDENCE}
    best = max(grid, key=lambda k: (round(grid[k], 4), k[1], k[0]))
    log(
        f"calibrated on {len(cases)} tuning images: threshold {best[0]}, min_evidence "
        f"{best[1]} (mean tuning F1 over {len(groups)} groups {grid[best]:.4f}; "
        f"{time.perf_counter() - t0:.0f} s)"
    )
    return {"threshold": best[0], "min_evidence": best[1], "rule": "best mean F1 over the groups",
            "tuning_group_mean_f1": round(grid[best], 4),
            "grid_group_mean_f1": {f"{t}/{e}": round(v, 4) for (t, e), v in grid.items()}}  # fmt: skip


def tune_baselines(cases: list[Case], log) -> dict[str, dict[str, float]]:
    out = {}
    for name in BASELINES:
        res = tune(
            name,
            [c.image for c in cases],
            [c.truth_px for c in cases],
            [c.pixel_size_nm for c in cases],
            radius_nm=0.07,
            bright_atoms=[c.bright for c in cases],
        )
        out[name] = res.params
        log(f"tuned {name}: {res.params} (tuning F1 {res.f1:.3f})")
    return out


def predict(case: Case, model: str, threads: int, extra: dict | None) -> np.ndarray:
    from napari_atomseg.atoms.find import find_atoms

    df = find_atoms(
        case.image, case.pixel_size_nm, model, threads=threads, **options_for(case, extra)
    )
    return df[["y_px", "x_px"]].to_numpy(float)


def evaluate(cases, params, model, threads, extra, scorer=score) -> dict[str, dict]:
    rows = {"napari-atomseg": scorer([predict(c, model, threads, extra) for c in cases], cases)}
    for name, base in BASELINES.items():
        preds = [
            base(c.image, c.pixel_size_nm, bright_atoms=c.bright, **params[name]) for c in cases
        ]
        rows[name] = scorer(preds, cases)
    return rows


def worst_images(cases, model, threads, extra, k=5) -> list[tuple[str, float, float, float]]:
    """The plugin's ``k`` worst test images: (name, F1, precision, recall)."""
    per = [(c.name, score([predict(c, model, threads, extra)], [c])) for c in cases]
    per.sort(key=lambda item: item[1]["f1"])
    return [(n, s["f1"], s["precision"], s["recall"]) for n, s in per[:k]]


def timing(model: str, threads: int, params: dict, repeats: int, extra: dict) -> dict[str, float]:
    from napari_atomseg.atoms.find import find_atoms
    from napari_atomseg.simulation import SimulationParameters, simulate

    p = SimulationParameters(material="SrTiO3", shape_px=(1024, 1024), pixel_size_nm=0.02,
                             dose_e_per_A2=3e4, seed=BENCH_SEED, rotation_deg=12.0)  # fmt: skip
    img = np.asarray(simulate(p).image, np.float32)
    calls = {
        "napari-atomseg": lambda: find_atoms(
            img, 0.02, model, threads=threads, contrast="bright", **extra
        )
    }
    for name, base in BASELINES.items():
        calls[name] = lambda b=base, q=params[name]: b(img, 0.02, **q)
    n_columns = len(calls["napari-atomseg"]())  # load + warm up
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):  # interleaved: a slow spell falls on every method alike
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()} | {"_columns": n_columns}


def memory_child(model: str, side_px: int, threads: int) -> dict:
    """Run in a fresh process: peak RSS of find_atoms above the RSS before it."""
    from atoms_stress import BASES
    from lib.memory import rss_mb

    from napari_atomseg.atoms.find import find_atoms
    from napari_atomseg.simulation.lattice2d import PlainLattice, ideal_lattice_image

    lattice = PlainLattice(kind="square", a_nm=0.39, sublattices=BASES["three"], rotation_deg=7.0)
    img = ideal_lattice_image(lattice, (side_px, side_px), 0.02, 0.05, 0.05, 0.0, seed=1).image
    find_atoms(img[:256, :256], 0.02, model, threads=threads, contrast="bright")  # load, warm up
    before = rss_mb("VmRSS")
    t0 = time.perf_counter()
    found = find_atoms(img, 0.02, model, threads=threads, contrast="bright")
    wall = time.perf_counter() - t0
    return {"side_px": side_px, "columns": len(found), "input_mb": img.nbytes / 2**20,
            "rss_before_mb": before, "peak_extra_mb": rss_mb("VmHWM") - before, "wall_s": wall}  # fmt: skip


def memory(model: str, side_px: int, threads: int) -> dict:
    """:func:`memory_child` in a fresh Python process (a clean high-water mark)."""
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(side_px), "--model", model,
         "--threads", str(threads)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: dict) -> str:
    lines = [
        "| data set | method | F1 | precision | recall | RMS (pm) |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, rows in results.items():
        for method, r in rows.items():
            rms = r.get("rms_pm", float("nan"))
            lines.append(
                f"| {dataset} ({r['images']} img, {r['columns']} col) | {method} | {r['f1']:.3f} | "
                f"{r['precision']:.3f} | {r['recall']:.3f} | {'' if rms != rms else f'{rms:.1f}'} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+", default=["synthetic", "pt", "timing"])
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=30, help="test images per synthetic group")
    ap.add_argument("--n-tune", type=int, default=6, help="tuning images per synthetic group")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7, help="timing repeats (interleaved)")
    ap.add_argument(
        "--calibrate", action="store_true", help="choose threshold and evidence on the tuning set"
    )
    ap.add_argument(
        "--update-card", action="store_true", help="record the choice and the rows in the card"
    )
    ap.add_argument("--memory-side", type=int, default=8192, help="memory section: image side")
    ap.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.model, args.memory_child, args.threads)))
        return 0

    import torch

    from napari_atomseg.backend import default_model_name, get_model

    torch.set_num_threads(args.threads)
    model = default_model_name("atoms") if args.model == "default" else args.model
    card = get_model(model).card
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    log(f"model {card.name} (sha256 {card.weights.sha256[:12]}), torch threads {args.threads}")
    results: dict[str, dict] = {}
    worst: dict[str, list] = {}
    extra: dict = {}
    calibration = params_syn = None
    if {"synthetic", "timing"} & set(args.sections) or args.calibrate:
        tune_cases = [c for g in GROUPS for c in synthetic_cases(g, args.n_tune, TUNING)]
        params_syn = tune_baselines(tune_cases, log)
        if args.calibrate:
            calibration = calibrate(tune_cases, model, args.threads, log)
            extra = {
                "threshold": calibration["threshold"],
                "min_evidence": calibration["min_evidence"],
            }
    if "synthetic" in args.sections:
        for g in GROUPS:
            cases = synthetic_cases(g, args.n, TEST)
            results[f"synthetic {g}"] = evaluate(cases, params_syn, model, args.threads, extra)
            worst[g] = worst_images(cases, model, args.threads, extra)
            log(
                f"{g}: "
                + ", ".join(f"{m} F1 {r['f1']:.3f}" for m, r in results[f"synthetic {g}"].items())
            )
    if "pt" in args.sections and PT_DIR.exists():
        cases = pt_cases()
        tune_set = [c for c in cases if c.name in PT_TUNE_KEYS]
        test_set = [c for c in cases if c.name not in PT_TUNE_KEYS]
        params_pt = tune_baselines(tune_set, log)
        results["Pt, paper's box rule (9 test img)"] = evaluate(
            test_set, params_pt, model, args.threads, extra, box_score
        )
        results["Pt, 0.1 nm (9 test img)"] = evaluate(
            test_set, params_pt, model, args.threads, extra
        )
        all_preds = [predict(c, model, args.threads, extra) for c in cases]
        results["Pt, paper's box rule (all 11 img)"] = {
            "napari-atomseg": box_score(all_preds, cases)
        }
    timings = (
        timing(model, args.threads, params_syn, args.repeats, extra)
        if "timing" in args.sections
        else None
    )
    mem = memory(model, args.memory_side, args.threads) if "memory" in args.sections else None
    print(table(results))
    if mem:
        print(
            f"\nmemory: {mem['side_px']}^2 image ({mem['input_mb']:.0f} MB float32), "
            f"{mem['columns']} columns, peak {mem['peak_extra_mb']:.0f} MB above the "
            f"{mem['rss_before_mb']:.0f} MB before find_atoms, {mem['wall_s']:.0f} s"
        )
    for g, rows in worst.items():
        print(
            f"\nworst {g}: "
            + "; ".join(f"{n} F1 {f:.2f} (P {p:.2f} R {r:.2f})" for n, f, p, r in rows)
        )
    if timings:
        print("\n| method | s / 1024^2 (full pipeline) |\n|---|---|")
        print("\n".join(f"| {m} | {t:.2f} |" for m, t in timings.items() if not m.startswith("_")))
    info = {
        "model": card.name,
        "sha256": card.weights.sha256,
        "command": "python benchmarks/atoms.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "threads": args.threads,
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
        "wall_s": round(time.perf_counter() - t_start, 1),
        "calibration": calibration,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"results": results, "worst": worst, "timings_s": timings, "memory": mem, **info},
                indent=1,
            )
        )
    if args.update_card:
        update_card(model, results, timings, calibration, info)
    return 0


def update_card(
    name: str, results: dict, timings: dict | None, calibration: dict | None, info: dict
) -> None:
    """Record this run's plugin rows (and a calibration) in the model card."""
    from napari_atomseg.backend.cards import load_card, save_card

    card = load_card(name)
    rows = {
        ds: {
            k: (round(v, 4) if isinstance(v, float) else v) for k, v in r["napari-atomseg"].items()
        }
        for ds, r in results.items()
    }
    bench = dict((card.metrics or {}).get("benchmark") or {})
    bench.update(
        {"command": info["command"], "date": time.strftime("%Y-%m-%d"), "threads": info["threads"]}
    )
    bench["pooled_scores"] = {**dict(bench.get("pooled_scores", {})), **rows}
    if timings is not None:
        bench["seconds_per_1024px_image"] = round(timings["napari-atomseg"], 3)
        bench["blob_log_seconds_per_1024px_image"] = round(timings["blob_log"], 3)
    metrics = {**dict(card.metrics or {}), "benchmark": bench}
    postprocess = dict(card.postprocess or {})
    if calibration is not None:
        postprocess.update(
            threshold=calibration["threshold"], min_evidence=calibration["min_evidence"]
        )
        metrics["calibration"] = {
            "command": info["command"],
            "how": "best mean over the synthetic groups of each group's F1, over threshold x "
            "min_evidence, on the tuning seed set (never the test images); ties to the stricter "
            "evidence",
            "tuning_group_mean_f1": calibration["tuning_group_mean_f1"],
        }
    save_card(card.with_updates(postprocess=postprocess, metrics=metrics), card.path)
    print(f"updated {card.path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
