"""Sweep the atom finder's post-processing options over a case set (the network runs once).

    OMP_NUM_THREADS=2 python benchmarks/sweep.py --cases tuning --set threshold=0.3,0.4,0.5 \
        --set min_evidence=1,2,3
    python benchmarks/sweep.py --cases pt --model runs/x/x.yaml --set threshold=0.3,0.5
    python benchmarks/sweep.py --cases stress --set refine=gaussian,com

Case sets: ``tuning`` / ``development`` / ``test`` (the synthetic groups of
``lib/cases.py``, ``--n`` images per group), ``pt`` (the 11 real Pt images, scored by the
paper's box rule and at 0.1 nm) and ``stress`` (the quick stress suite of ideal lattices).
The network's answers are cached under ``runs/sweep_cache`` by model weights and case set.
Every combination of the ``--set`` values is scored: pooled F1, precision and recall per
group. For choosing, use tuning or development sets; the test set is for reporting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
from pathlib import Path

import numpy as np
from lib.cases import (
    DEVELOPMENT,
    GROUPS,
    REPO,
    TEST,
    TUNING,
    Case,
    box_score,
    pt_cases,
    score,
    synthetic_cases,
)

CACHE = REPO / "runs" / "sweep_cache"
SEED_SETS = {"tuning": TUNING, "development": DEVELOPMENT, "test": TEST}


def stress_cases() -> list[Case]:
    import atoms_stress as stress

    out = []
    for sc in stress.cases(quick=True):
        ideal = sc.image()
        out.append(Case(f"stress/{sc.name}", ideal.image, stress.PIXEL_SIZE_NM, ideal.positions_px,
                        np.zeros((0, 2)), True, stress.MATCH_NM, 8 * stress.PIXEL_SIZE_NM, None))  # fmt: skip
    return out


def case_set(name: str, n: int) -> list[Case]:
    if name in SEED_SETS:
        return [c for g in GROUPS for c in synthetic_cases(g, n, SEED_SETS[name])]
    if name == "pt":
        return pt_cases()
    if name == "stress":
        return stress_cases()
    raise SystemExit(f"unknown case set {name!r}")


def answers(cases: list[Case], model: str, set_name: str, n: int, threads: int) -> list:
    """The network's answer per case (told contrast and imaging), cached on disk."""
    from napari_atomseg._progress import drain
    from napari_atomseg.atoms.find import iter_network_answer
    from napari_atomseg.atoms.options import FinderOptions, model_name
    from napari_atomseg.backend import get_model

    sha = get_model(model_name(model)).card.weights.sha256[:12]
    path = CACHE / f"{set_name}_{n}_{sha}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    out = []
    for c in cases:
        opts = FinderOptions(contrast=c.contrast, imaging=c.imaging, threads=threads)
        out.append(drain(iter_network_answer(c.image, c.pixel_size_nm, model, opts))[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def per_case_summary(preds: list[np.ndarray], cases: list[Case], bar: float = 0.98) -> dict:
    """Per stress case: the lowest precision and recall, and how many cases reach ``bar``."""
    per = {c.name: score([p], [c]) for p, c in zip(preds, cases)}
    worst_p = min(per.items(), key=lambda kv: kv[1]["precision"])
    worst_r = min(per.items(), key=lambda kv: kv[1]["recall"])
    solved = sum(s["precision"] >= bar and s["recall"] >= bar for s in per.values())
    return {
        "precision": {k: round(s["precision"], 4) for k, s in per.items()},
        "recall": {k: round(s["recall"], 4) for k, s in per.items()},
        "line": f"solved {solved}/{len(per)}; min P {worst_p[1]['precision']:.3f} ({worst_p[0]}), "
        f"min R {worst_r[1]['recall']:.3f} ({worst_r[0]})",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="tuning", choices=[*SEED_SETS, "pt", "stress"])
    ap.add_argument("--n", type=int, default=6, help="images per synthetic group")
    ap.add_argument("--model", default="default")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=V1,V2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from napari_atomseg.atoms.find import heatmap_to_atoms

    grid = {}
    for item in args.set:
        key, values = item.split("=", 1)
        grid[key] = [json.loads(v) if v[:1] in "0123456789-tfn[" else v for v in values.split(",")]
    cases = case_set(args.cases, args.n)
    results = answers(cases, args.model, args.cases, args.n, args.threads)
    rows = []
    for combo in itertools.product(*grid.values()) if grid else [()]:
        opts = dict(zip(grid, combo))
        preds = [
            heatmap_to_atoms(r, contrast=c.contrast, imaging=c.imaging, **opts)[
                ["y_px", "x_px"]
            ].to_numpy(float)
            for r, c in zip(results, cases)
        ]
        groups = {"all": list(range(len(cases)))}
        for i, c in enumerate(cases):
            groups.setdefault(c.group, []).append(i)
        scorer = box_score if args.cases == "pt" else score
        row = {"options": opts}
        for g, idx in groups.items():
            row[g] = scorer([preds[i] for i in idx], [cases[i] for i in idx])
        if args.cases == "stress":
            row["per_case"] = per_case_summary(preds, cases)
        rows.append(row)
        print(f"{opts}: " + "  ".join(
            f"{g} {r['f1']:.3f} (P {r['precision']:.2f} R {r['recall']:.2f})"
            for g, r in row.items() if g not in ("options", "per_case")
        ) + (f"  {row['per_case']['line']}" if "per_case" in row else ""), flush=True)  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
