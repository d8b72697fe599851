"""Segmentation on what users bring: the final graphene set, real out-of-distribution
micrographs, every catalogue crystal, full-multislice HRTEM, bright-field particles, speed.

    python benchmarks/segmentation_realworld.py --sections final panel crystals \\
        multislice particles speed --json runs/logs/realworld.json

Sections (each prints its tables; ``--json`` keeps every row):

- ``selection``: what chooses the defaults, on the 20 images of the *selection* set only:
  a date-grouped 4-fold cross-validation of the shipped fine-tuning recipe
  (configs/segment_contamination.yaml, one fold model per fold, kept in
  runs/segment_cv/), scoring the U-Net/Bragg average's weight and threshold on the
  held-out folds; and the Bragg filter's grid (benchmarks/segmentation.py), whose
  parameters are chosen on the whole selection set (the Bragg filter is not trained).

- ``scale``: the pixel-size estimate (napari_atomseg.scale) against the graphene set's
  {100} table (selection set only) and the panel's stated pixel sizes, and on the real Pt
  single atoms (no lattice).
- ``final``: the 11 graphene images of the date-grouped final third
  (:func:`napari_atomseg.segmentation.data.final_split`), never trained on and never used to
  choose anything -- scored once per shipped model and method, with the pixel size of the
  set's table and without one (as a PNG arrives). Pooled Jaccard / F1 / precision /
  recall, the worst images, and every image called >= 90 % amorphous.
- ``panel``: the real panel (clean crystals, a particle, a hole with contamination) and
  the two openNCEM lattices, with the stated pixel size and without; crystal fractions
  per method, exceptions counted. The real Pt single atoms on carbon (no lattice).
- ``crystals``: a clean simulated crystal of every catalogue material along every zone
  axis, in HAADF, ABF-like (inverted HAADF) and HRTEM: crystal fraction.
- ``multislice``: abTEM full-multislice HRTEM of graphene with hydrocarbon patches
  (benchmarks/make_multislice_graphene.py).
- ``particles``: the synthetic held-out engine set of benchmarks/segmentation.py (pixel
  size given) and a synthetic bright-field survey set (no pixel size) against a
  Gaussian-smoothed Otsu threshold in the same run.
- ``speed``: 2048^2 at 0.01-0.05 nm/px, this tree against the code of ``--baseline``
  (default: the commit this branch started from) in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd

from napari_atomseg.segmentation import segment
from napari_atomseg.segmentation.metrics import MaskScores, summarise

COLUMNS = ["jaccard", "f1", "precision", "recall", "pixel_accuracy"]
#: (label, segment() keyword arguments) of the contamination rows.
CONTAMINATION_METHODS = {
    "default (auto)": {},
    "unet (no fall-back)": {"method": "unet"},
    "bragg": {"method": "bragg"},
    "unet synthetic only": {"method": "unet", "model": "segment_contamination_synthetic"},
}


def _pooled(scores: list[MaskScores]) -> dict[str, float]:
    table = summarise(scores, 1)
    row = {k: float(table.loc["pooled", k]) for k in COLUMNS if k in table.columns}
    row["jaccard_mean_per_image"] = float(table.loc["mean", "jaccard"])
    return row


def _score_set(items, methods: dict[str, dict], with_px: bool) -> tuple[dict, pd.DataFrame]:
    """Pooled rows per method and a per-image table; exceptions are recorded, not raised."""
    rows, per_image = {}, []
    for label, options in methods.items():
        scores = []
        for it in items:
            px = it.pixel_size_nm if with_px else None
            try:
                res = segment(it.image, px, **options)
            except Exception as exc:  # a benchmark records every failure
                per_image.append({"method": label, "image": it.name, "error": repr(exc)})
                continue
            s = MaskScores.from_masks(it.mask, res.flagged_mask)
            scores.append(s)
            summary = s.summary(1)
            per_image.append(
                {
                    "method": label,
                    "image": it.name,
                    "jaccard": summary["jaccard"],
                    "f1": summary["f1"],
                    "amorphous_called": float(res.flagged_mask.mean()),
                    "amorphous_true": float(it.mask.mean()),
                    "pixel_size_used": res.pixel_size_nm,
                    "method_used": res.details.get("method_used", ""),
                    "error": "",
                }
            )
        rows[label] = {**_pooled(scores), "n": len(scores), "errors": len(items) - len(scores)}
    return rows, pd.DataFrame(per_image)


#: The U-Net/Bragg average's candidates: (U-Net weight = 1 - bragg_weight, threshold).
FUSION_WEIGHTS = (0.0, 0.3, 0.5, 0.7)
FUSION_THRESHOLDS = (0.4, 0.5, 0.6)


def section_selection(folds: int = 4, keep: Path = Path("runs/segment_cv")) -> dict[str, Any]:
    from _evaluation_data import graphene_split
    from lib.bragg_tuning import BraggGrid, bragg_grid_scores

    from napari_atomseg.segmentation.data import date_of, kfold_splits
    from segmentation import BRAGG_MAP_OPTIONS, FINETUNE_CONFIG, fold_models

    selection, _final = graphene_split()
    splits = kfold_splits([date_of(it.name) for it in selection], folds, seed=0)
    t0 = time.perf_counter()
    grid = bragg_grid_scores([(it.image, it.mask) for it in selection], BraggGrid())
    table = grid.pooled_table().sort_values("jaccard", ascending=False)
    best_bragg = {
        k: table.iloc[0][k] for k in (*BRAGG_MAP_OPTIONS, "smooth_sigma", "min_region_size")
    }
    print(
        f"\n### Bragg grid on the selection set ({len(grid.candidates)} candidates, "
        f"{time.perf_counter() - t0:.0f} s): best pooled Jaccard {table.iloc[0]['jaccard']:.3f}"
    )
    print(table.head(5).to_markdown(index=False, floatfmt=".3f"))
    import yaml

    steps = int(yaml.safe_load(FINETUNE_CONFIG.read_text())["steps"])
    cards = fold_models(selection, splits, steps, FINETUNE_CONFIG, keep)
    confusion: dict[tuple, np.ndarray] = {}
    per_fold_default = []
    for (_train, test), card in zip(splits, cards):
        for i in test:
            it = selection[int(i)]
            for w in FUSION_WEIGHTS:
                for t in FUSION_THRESHOLDS if w > 0 else (0.5,):
                    res = segment(it.image, it.pixel_size_nm, method="unet", model=str(card),
                                  bragg_weight=w, flag_threshold=t)  # fmt: skip
                    cm = MaskScores.from_masks(it.mask, res.flagged_mask).confusion
                    confusion[(w, t)] = confusion.get((w, t), 0) + cm
            res = segment(it.image, None, model=str(card))
            per_fold_default.append(MaskScores.from_masks(it.mask, res.flagged_mask))
    rows = {
        f"bragg_weight {w:g}, threshold {t:g}": MaskScores(cm, ("other", "flagged")).summary(1)
        for (w, t), cm in confusion.items()
    }
    ranking = pd.DataFrame(rows).T.sort_values("jaccard", ascending=False)
    print(f"\n### Selection set, {folds}-fold date-grouped CV, pixel size given (pooled)\n")
    print(ranking[["jaccard", "f1", "precision", "recall"]].to_markdown(floatfmt=".3f"))
    no_px = _pooled(per_fold_default)
    print(f"\nDefault (auto), no pixel size, same CV: {no_px}")
    return {
        "bragg_best": {k: float(v) for k, v in best_bragg.items()},
        "bragg_top": table.head(10).to_dict("records"),
        "fusion": rows,
        "default_no_px": no_px,
    }


def section_scale() -> dict[str, Any]:
    from _evaluation_data import graphene_split, pt_single_atoms, real_panel

    from napari_atomseg.scale import estimate_image_scale

    selection, _final = graphene_split()
    rows = []
    for group, items in (("graphene selection", selection), ("panel", real_panel()),
                         ("Pt single atoms", pt_single_atoms())):  # fmt: skip
        for it in items:
            t0 = time.perf_counter()
            est = estimate_image_scale(it.image)
            ref = it.pixel_size_nm
            rows.append(
                {
                    "group": group,
                    "image": it.name,
                    "reference_nm": ref,
                    "estimate_nm": est.pixel_size_nm,
                    "ratio": est.pixel_size_nm / ref if ref and est.pixel_size_nm else None,
                    "source": est.source,
                    "as": f"{est.material} [{est.zone_axis}]" if est.material else "",
                    "confidence": est.confidence,
                    "seconds": time.perf_counter() - t0,
                }
            )
    table = pd.DataFrame(rows)
    print("\n### Pixel-size estimate vs the stated / tabulated value\n")
    print(table.to_markdown(index=False, floatfmt=".4g"))
    g = table[(table["group"] == "graphene selection") & (table["source"] == "lattice")]
    err = np.abs(np.log(g["ratio"].astype(float)))
    print(
        f"- graphene selection: {len(g)}/{len(selection)} from the lattice, median error "
        f"{100 * np.median(err):.1f} %, worst {100 * err.max():.1f} %"
    )
    return {"rows": rows}


def section_final() -> dict[str, Any]:
    from _evaluation_data import graphene_split

    _selection, final = graphene_split()
    print(f"final set: {len(final)} images ({', '.join(sorted({i.name[:9] for i in final}))})")
    out: dict[str, Any] = {}
    for with_px in (True, False):
        key = "with pixel size" if with_px else "no pixel size"
        rows, per_image = _score_set(final, CONTAMINATION_METHODS, with_px)
        table = pd.DataFrame(rows).T
        print(f"\n### Final set, {key} (pooled over pixels)\n")
        print(table.to_markdown(floatfmt=".3f"))
        ok = per_image[per_image["error"] == ""]
        for label in CONTAMINATION_METHODS:
            sub = ok[ok["method"] == label].sort_values("jaccard")
            worst = ", ".join(f"{r.image} {r.jaccard:.3f}" for r in sub.head(3).itertuples())
            high = sub[sub["amorphous_called"] >= 0.9]
            flagged = ", ".join(
                f"{r.image} ({100 * r.amorphous_called:.0f} % called, "
                f"{100 * r.amorphous_true:.0f} % true)"
                for r in high.itertuples()
            )
            print(f"- {label}: worst {worst}; >= 90 % amorphous: {flagged or 'none'}")
        out[key] = {"pooled": rows, "per_image": per_image.to_dict("records")}
    return out


def _fractions(res: Any) -> dict[str, float]:
    return {k: round(v, 4) for k, v in res.class_fractions().items()}


def section_panel() -> dict[str, Any]:
    from _evaluation_data import pt_single_atoms, real_panel

    methods = {"default (auto)": {}, "unet": {"method": "unet"}, "bragg": {"method": "bragg"}}
    rows = []
    for item in real_panel() + pt_single_atoms():
        for with_px in (True, False):
            px = item.pixel_size_nm if with_px else None
            if with_px and px is None:
                continue
            for label, options in methods.items():
                row = {"image": item.name, "kind": item.kind, "pixel_size": "stated" if with_px else "none", "method": label}  # fmt: skip
                try:
                    res = segment(item.image, px, **options)
                    row.update(_fractions(res))
                    row["has_lattice"] = res.has_lattice
                    row["used_nm"] = res.pixel_size_nm
                    row["method_used"] = res.details.get("method_used", label)
                    row["error"] = ""
                except Exception as exc:  # record, never stop
                    row["error"] = repr(exc)
                rows.append(row)
    table = pd.DataFrame(rows)
    show = table[table["method"] == "default (auto)"]
    print("\n### Real panel, default method: class fractions\n")
    print(show.drop(columns=["method"]).to_markdown(index=False, floatfmt=".3f"))
    for label in methods:
        sub = table[table["method"] == label]
        crystals = sub[sub["kind"] == "crystal"]
        pt = sub[sub["kind"] == "no_lattice"]
        print(
            f"- {label}: errors {int((sub['error'] != '').sum())}; clean crystals "
            f"min crystal {crystals['crystal'].min():.3f} ({(crystals['crystal'] >= 0.95).sum()}"
            f"/{len(crystals)} >= 0.95); Pt single atoms max crystal {pt['crystal'].max():.3f}"
        )
    return {"rows": rows}


def section_crystals(size: int = 256) -> dict[str, Any]:
    from napari_atomseg.simulation import SimulationParameters, simulate
    from napari_atomseg.simulation.materials import MATERIALS

    rows = []
    rng = np.random.default_rng(123_456)
    for name, material in MATERIALS.items():
        for zone in material.zone_axes:
            for mode in ("haadf", "abf", "hrtem"):
                px = float(np.exp(rng.uniform(np.log(0.01), np.log(0.04))))
                kw = {"layers": 1} if material.kind == "layered" else {"thickness_nm": 8.0}
                params = SimulationParameters(
                    material=name,
                    zone_axis=zone,
                    mode="haadf" if mode == "abf" else mode,
                    shape_px=(size, size),
                    pixel_size_nm=px,
                    dose_e_per_A2=2e4 if mode == "hrtem" else 1e5,
                    energy_keV=300.0 if material.kind == "bulk" else 80.0,
                    defocus_nm=-6.0 if mode == "hrtem" else 0.0,
                    cs_um=-15.0 if mode == "hrtem" else 0.0,
                    rotation_deg=float(rng.uniform(0, 360)),
                    seed=int(rng.integers(1e9)),
                    **kw,
                )
                image = simulate(params).image
                if mode == "abf":
                    image = image.max() - image
                row = {"material": name, "zone": zone, "mode": mode, "px": px}
                for with_px in (True, False):
                    try:
                        res = segment(image, px if with_px else None)
                        row["crystal" + ("" if with_px else "_no_px")] = res.class_fractions()[
                            "crystal"
                        ]
                    except Exception as exc:
                        row["error"] = repr(exc)
                rows.append(row)
    table = pd.DataFrame(rows)
    print("\n### Clean simulated crystals, default method: crystal fraction\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    for col in ("crystal", "crystal_no_px"):
        print(
            f"- {col}: min {table[col].min():.3f}, {(table[col] >= 0.95).sum()}/{len(table)} >= 0.95"
        )
    return {"rows": rows}


def section_multislice() -> dict[str, Any]:
    from _evaluation_data import multislice_graphene

    data = multislice_graphene()
    if not data:
        print("(no multislice set: run benchmarks/make_multislice_graphene.py)")
        return {}

    class _It:
        def __init__(self, name, image, mask, px):
            self.name, self.image, self.mask, self.pixel_size_nm = name, image, mask, px

    items = [_It(*d) for d in data]
    out = {}
    for with_px in (True, False):
        rows, per_image = _score_set(items, CONTAMINATION_METHODS, with_px)
        key = "with pixel size" if with_px else "no pixel size"
        print(f"\n### Full-multislice graphene HRTEM ({len(items)} images), {key}\n")
        print(pd.DataFrame(rows).T.to_markdown(floatfmt=".3f"))
        out[key] = {"pooled": rows, "per_image": per_image.to_dict("records")}
    return out


def otsu_particles(image: np.ndarray, sigma_px: float = 1.0) -> np.ndarray:
    """The baseline: Gaussian-smoothed image, Otsu threshold, the darker side (BF)."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    smooth = ndi.gaussian_filter(np.asarray(image, np.float32), sigma_px)
    return smooth < threshold_otsu(smooth)


def section_particles(n_bf: int = 12) -> dict[str, Any]:
    from _evaluation_data import bf_evaluation_set

    from segmentation import particles as engine_particles

    out: dict[str, Any] = {}
    print("\n### Particles: synthetic engine held-out set (pixel size given), Dice = f1\n")
    rows = engine_particles(10, 0)
    print(
        pd.DataFrame(rows).T[["f1", "jaccard", "precision", "recall"]].to_markdown(floatfmt=".3f")
    )
    out["engine"] = rows
    data = bf_evaluation_set(n_bf)
    scores: dict[str, list[MaskScores]] = {
        "default (auto), no pixel size": [],
        "default, pixel size given": [],
    }
    for sigma in (1.0, 2.0):
        scores[f"smoothed Otsu (sigma {sigma:g} px)"] = []
    per_image = []
    errors = {k: 0 for k in scores}
    for name, image, mask, px in data:
        found = {}
        for label, given in (("default (auto), no pixel size", None),
                             ("default, pixel size given", px)):  # fmt: skip
            try:  # an exception is a result on real data: count it, never stop
                found[label] = segment(image, given, task="particles")
            except Exception as exc:
                errors[label] += 1
                print(f"- {name}, {label}: {exc!r}")
                continue
            scores[label].append(MaskScores.from_masks(mask, found[label].flagged_mask))
        for sigma in (1.0, 2.0):
            scores[f"smoothed Otsu (sigma {sigma:g} px)"].append(
                MaskScores.from_masks(mask, otsu_particles(image, sigma))
            )
        res = found.get("default (auto), no pixel size")
        per_image.append(
            {
                "image": name,
                "px": px,
                "dice": MaskScores.from_masks(mask, res.flagged_mask).summary(1)["f1"]
                if res is not None
                else None,
                "n_true": int(mask.sum()),
                "n_particles_found": len(res.particles) if res is not None else None,
                "zoom": res.details.get("zoom") if res is not None else None,
            }
        )
    rows = {
        k: {**_pooled(v), "n": len(v), "errors": errors[k]} if v else {"n": 0, "errors": errors[k]}
        for k, v in scores.items()
    }
    print(
        f"\n### SYNTHETIC bright-field survey set ({len(data)} x 512^2, 2-4 nm Au, 5-10 px, 8-bit narrow grey)\n"
    )
    print(pd.DataFrame(rows).T.to_markdown(floatfmt=".3f"))
    print(pd.DataFrame(per_image).to_markdown(index=False, floatfmt=".3f"))
    out["bf"] = {"pooled": rows, "per_image": per_image}
    return out


TIMING_SCRIPT = """
import sys, time, json, numpy as np
try:
    from napari_atomseg.segmentation.data import load_graphene_contamination
except ImportError:  # a baseline tree from before the segment/ -> segmentation/ rename
    from napari_atomseg.segment.data import load_graphene_contamination
from napari_atomseg import segment
items = load_graphene_contamination()
tile = items[3].image
out = {}
for px in (0.01, 0.03, 0.05):
    big = np.tile(tile, (8, 8))
    segment(big, px)  # warm-up
    t = []
    for _ in range(REPEATS):
        t0 = time.perf_counter(); segment(big, px); t.append(time.perf_counter() - t0)
    out[str(px)] = float(np.median(t))
print(json.dumps(out))
"""


def section_speed(baseline: str, repeats: int) -> dict[str, Any]:
    old = Path("runs") / f"baseline_src_{baseline[:8]}"
    if not old.exists():
        old.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", baseline, "src"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    script = TIMING_SCRIPT.replace("REPEATS", str(repeats))
    results = {}
    for label, path in (("baseline " + baseline[:8], old / "src"), ("this tree", Path("src"))):
        env = {**os.environ, "PYTHONPATH": str(path.resolve())}
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True
        )
        if proc.returncode:
            print(f"{label}: failed: {proc.stderr[-400:]}")
            continue
        results[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    table = pd.DataFrame(results)
    table.index = [f"2048^2 at {k} nm/px" for k in table.index]
    print(f"\n### Time per 2048^2 image, default segment(), median of {repeats} (s)\n")
    print(table.to_markdown(floatfmt=".2f"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sections", nargs="+", default=["final", "panel", "crystals", "multislice", "particles"]
    )
    parser.add_argument("--baseline", default="1aec35b", help="commit for the speed baseline")
    parser.add_argument("--folds", type=int, default=4, help="selection section: CV folds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(
        f"# segmentation_realworld -- {platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n# command: python {' '.join(sys.argv)}"
    )
    results: dict[str, Any] = {}
    for section in args.sections:
        t0 = time.perf_counter()
        if section == "speed":
            results[section] = section_speed(args.baseline, args.repeats)
        elif section == "selection":
            results[section] = section_selection(args.folds)
        else:
            results[section] = globals()[f"section_{section}"]()
        print(f"({section}: {time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
