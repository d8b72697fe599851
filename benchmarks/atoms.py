"""Atom-finder benchmark: the shipped model vs every baseline, synthetic and real, one run.

Usage (from the repository root)::

    OMP_NUM_THREADS=2 python benchmarks/atoms.py                   # everything
    # the run recorded in docs/atoms.md and the card (30 test + 6 tuning images per group):
    OMP_NUM_THREADS=2 python benchmarks/atoms.py --sections synthetic timing pt --calibrate --update-card
    python benchmarks/atoms.py --sections synthetic timing         # synthetic | pt | timing
    python benchmarks/atoms.py --json results.json --model atoms_default

Synthetic (simulation engine, seeds never used in training; 256 x 256 images at
0.012-0.05 nm/px): groups ``haadf_moderate`` (1e4-1e5 e/A^2), ``haadf_low_dose``
(1e3-3e3 e/A^2), ``hrtem`` (2e3-3e4 e/A^2, black or white atoms as the optics give),
``single_atoms`` (Pt/Au/Ir... on carbon, HAADF, 3e3-1e5 e/A^2) and ``unseen`` (ZnO and
Ge lattices: not in the training mixture). Truth = the simulator's *visible* columns;
columns closer than ``max(0.08 nm, 2.5 px)`` to another visible one (not resolvable, also
ignored in training) and invisible ones are *ignored*: predictions near them (within
twice the match radius, and nearer to them than to a scored column) count neither way. Columns within 0.1 nm of the border are left out on both sides. Match
radius: ``min(0.1 nm, 0.5 x median true spacing)``.

Baselines (``napari_atomseg.atoms.baselines``: blob_log, blob_dog, peak_local_max,
atomap_like) are tuned by grid search *on a separate tuning set* of the same groups
(other seeds), told the true contrast (bright/dark atoms; the plugin is told it too:
``contrast=``, which shows its network the inverted image for dark atoms), and then
applied unchanged:
one setting for all synthetic images, as the plugin uses its defaults for all. The plugin
is also told whether an image is STEM or HRTEM (``imaging=``: white-atom HRTEM then gets
its stricter image check, ``detect.HRTEM_MIN_PROMINENCE``); so with ``--per-mode``
(default) every baseline is tuned a second time on the STEM and the HRTEM tuning images
apart, and those rows ("tuned per mode") are reported beside the all-image ones. With
``--calibrate`` the plugin's detection threshold is chosen the same way (best pooled F1
over a grid, on the same tuning images), then the refinement (Gaussian fit or centre of
mass on the image, centre of mass of the heatmap, or the heatmap peak itself: whichever
has the lower RMS error there);
``--update-card`` stores both in the model card's ``postprocess``, which find_atoms, the
CLI and the widget use by default. The plugin runs with its defaults otherwise
(``contrast_check`` on: heatmap peaks must be image maxima, minima for dark columns).

Real (``../shared/data/pt_single_atoms``, isolated Pt atoms on carbon, 0.0293 nm/px,
hand labels, match radius 0.1 nm): the baselines are tuned on images 021 and 025 and every
method is reported on the other 9; the default model is never tuned on real data and is
also reported on all 11. (The extra model ``atoms_pt_carbon`` is fine-tuned on all 11, so
it cannot be scored here: ``benchmarks/atoms_pt_cv.py`` scores its recipe by 4-fold
cross-validation.)

Timing: one 1024 x 1024 synthetic HAADF image (0.02 nm/px), full pipeline of each method
(plugin: resample + network + post-processing + image check + the refinement it uses
for the accuracy rows), median of
repeats, torch threads = ``--threads`` (default 2: this CPU's cores).

Scores are pooled over the images of a group (TP/FP/FN summed; RMS over all matched
pairs; Chamfer the mean of the per-image values).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from napari_atomseg.atoms.baselines import BASELINES, tune  # noqa: E402
from napari_atomseg.atoms.finetune import PT_FINETUNE_IMAGES as PT_TUNE  # noqa: E402
from napari_atomseg.atoms.metrics import point_metrics  # noqa: E402

SHARED = Path(os.environ.get("NAPARI_ATOMSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
PT_DIR = SHARED / "pt_single_atoms"
PT_PIXEL_NM = 0.029296875
#: Seed base of the benchmark (training draws from seed 20261128's streams).
BENCH_SEED = 777_000
TRAIN_MIX = REPO / "configs" / "atoms_mix.yaml"
BORDER_NM = 0.1

GROUPS: dict[str, dict] = {
    "haadf_moderate": {
        "modes": {"haadf": 1.0},
        "scenes": {"lattice": 0.7, "particles": 0.3},
        "dose_haadf_e_per_A2_log": (1e4, 1e5),
    },
    "haadf_low_dose": {
        "modes": {"haadf": 1.0},
        "scenes": {"lattice": 0.7, "particles": 0.3},
        "dose_haadf_e_per_A2_log": (1e3, 3e3),
    },
    "hrtem": {
        "modes": {"hrtem": 1.0},
        "scenes": {"lattice": 1.0},
        "dose_hrtem_e_per_A2_log": (2e3, 3e4),
    },
    "single_atoms": {
        "modes": {"haadf": 1.0},
        "scenes": {"single_atoms": 1.0},
        "dose_haadf_e_per_A2_log": (3e3, 1e5),
    },
    "unseen": {
        "modes": {"haadf": 1.0},
        "scenes": {"lattice": 1.0},
        "materials": {"ZnO": 1.0, "Ge": 1.0},
        "dose_haadf_e_per_A2_log": (1e4, 1e5),
    },
}


# ----------------------------------------------------------------------------- data
@dataclasses.dataclass
class Case:
    name: str
    image: np.ndarray
    pixel_size_nm: float
    truth_px: np.ndarray  # scored columns
    ignore_px: np.ndarray  # columns that count neither way
    bright: bool
    radius_nm: float
    border_nm: float = 0.0  # band along the edges that is out of the score
    imaging: str | None = None  # "stem" / "hrtem": what the plugin is told (``imaging=``)

    @property
    def contrast(self) -> str:
        """What the plugin is told (``contrast=``), as the baselines get ``bright_atoms``."""
        return "bright" if self.bright else "dark"


def _mix(overrides: dict):
    from napari_atomseg.simulate import load_mix

    base = load_mix(TRAIN_MIX)
    return dataclasses.replace(
        base, shape_px=(256, 256), pixel_size_nm_log=(0.012, 0.05), **overrides
    )


def _truth_from_columns(columns, shape, ps: float) -> tuple[np.ndarray, np.ndarray]:
    yx = columns[["y_px", "x_px"]].to_numpy(float)
    visible = columns["visible"].to_numpy(bool)
    nn = np.full(len(yx), np.inf)
    vis = np.flatnonzero(visible)
    if len(vis) >= 2:
        d, _ = cKDTree(yx[vis]).query(yx[vis], k=2)
        nn[vis] = d[:, 1] * ps
    good = visible & (nn >= max(0.08, 2.5 * ps))
    b = BORDER_NM / ps
    inside = (
        (yx[:, 0] >= b)
        & (yx[:, 1] >= b)
        & (yx[:, 0] <= shape[0] - 1 - b)
        & (yx[:, 1] <= shape[1] - 1 - b)
    )
    return yx[good & inside], yx[~good]


def _bright(params, result) -> bool:
    """Contrast of the scored (visible) columns, as the simulator judges each column's: the
    noise-free image at the column against its mean over 0.6 nm around; the majority
    decides. (Against the whole image's median, a thickness gradient whose dark half holds
    most columns got a bright-column Si image called dark.)"""
    from napari_atomseg.simulate.groundtruth import local_mean

    if params.mode == "haadf":
        return True
    yx = result.columns[["y_px", "x_px"]].to_numpy(float)
    vis = result.columns["visible"].to_numpy(bool)
    yx = yx[vis]
    h, w = result.image.shape
    inside = (yx[:, 0] >= 0) & (yx[:, 1] >= 0) & (yx[:, 0] < h - 0.5) & (yx[:, 1] < w - 0.5)
    if not inside.any():
        return True
    idx = np.rint(yx[inside]).astype(int)
    clean = np.asarray(result.image_clean, np.float64)
    window = max(5, round(0.6 / float(result.pixel_size_nm)))
    signed = (clean - local_mean(clean, window))[idx[:, 0], idx[:, 1]]
    return bool(np.median(signed) >= 0)


def synthetic_cases(group: str, n: int, offset: int) -> list[Case]:
    from napari_atomseg.simulate import random_parameters, simulate

    mix = _mix(GROUPS[group])
    cases = []
    gi = list(GROUPS).index(group)
    i = 0
    while len(cases) < n:
        rng = np.random.default_rng([BENCH_SEED, gi, offset + i])
        i += 1
        params = random_parameters(rng, mix)
        res = simulate(params)
        ps = float(res.pixel_size_nm)
        truth, ignore = _truth_from_columns(res.columns, res.image.shape, ps)
        if len(truth) < 3:  # an (almost) empty field says nothing about detection
            continue
        spacing = float(np.median(cKDTree(truth).query(truth, k=2)[0][:, 1])) * ps
        cases.append(
            Case(
                f"{group}/{offset + i - 1}:{params.material if params.scene == 'lattice' else params.scene}",
                np.asarray(res.image, np.float32),
                ps,
                truth,
                ignore,
                _bright(params, res),
                min(0.1, 0.5 * spacing),
                BORDER_NM,
                "hrtem" if params.mode == "hrtem" else "stem",
            )
        )
    return cases


def pt_cases() -> list[Case]:
    import pandas as pd

    from napari_atomseg.io import read_image

    cases = []
    for img_path in sorted((PT_DIR / "images").glob("*.tif")):
        key = img_path.name[:3]
        table = pd.read_csv(PT_DIR / "coordinates" / f"{key}_Results.csv")
        truth = table[["Y", "X"]].to_numpy(float)
        image, cal = read_image(img_path)
        ps = cal.pixel_size_nm or PT_PIXEL_NM
        cases.append(
            Case(
                key,
                np.asarray(image, np.float32),
                ps,
                truth,
                np.zeros((0, 2)),
                True,
                0.1,
                imaging="stem",
            )
        )
    return cases


def add_seed_set_arguments(parser: argparse.ArgumentParser) -> None:
    """--n, --offset, --groups, --model, --threads: the options of the scripts that score a
    setting on synthetic images apart from the test images (parse with
    :func:`parse_seed_set`)."""
    parser.add_argument("--n", type=int, default=6, help="images per group")
    parser.add_argument(
        "--offset", type=int, default=10_000, help="first seed index (10000: tuning images)"
    )
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2)


def parse_seed_set(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, refusing the test images' seeds (0-999)."""
    args = parser.parse_args(argv)
    if args.offset < 1000:
        parser.error("--offset: seeds 0-999 hold the benchmark's test images")
    return args


# ----------------------------------------------------------------------------- scoring
def _drop_ignored(pred: np.ndarray, case: Case) -> np.ndarray:
    """Predictions that belong to an ignored column (nearer to it than to any scored one
    and within twice the match radius) or lie in the border band are removed."""
    if len(pred) == 0:
        return pred
    r = case.radius_nm / case.pixel_size_nm
    keep = np.ones(len(pred), bool)
    if len(case.ignore_px):
        d_ign = cKDTree(case.ignore_px).query(pred)[0]
        d_true = cKDTree(case.truth_px).query(pred)[0] if len(case.truth_px) else np.inf
        keep &= ~((d_ign <= 2 * r) & (d_ign < d_true))
    if case.border_nm > 0:
        b = case.border_nm / case.pixel_size_nm
        h, w = case.image.shape
        inside = (
            (pred[:, 0] >= b)
            & (pred[:, 1] >= b)
            & (pred[:, 0] <= h - 1 - b)
            & (pred[:, 1] <= w - 1 - b)
        )
        # A prediction just outside the band may still match a column just inside it.
        near_true = (
            cKDTree(case.truth_px).query(pred)[0] <= r
            if len(case.truth_px)
            else np.zeros(len(pred), bool)
        )
        keep &= inside | near_true
    return pred[keep]


def score(preds: list[np.ndarray], cases: list[Case]) -> dict[str, float]:
    tp = fp = fn = 0
    sq, n_sq = 0.0, 0
    chamfers = []
    for pred, case in zip(preds, cases):
        pred = _drop_ignored(np.asarray(pred, float).reshape(-1, 2), case)
        m = point_metrics(
            pred, case.truth_px, radius_nm=case.radius_nm, pixel_size_nm=case.pixel_size_nm
        )
        tp, fp, fn = tp + m.true_positives, fp + m.false_positives, fn + m.false_negatives
        if m.true_positives:
            sq += m.rms_error_pm**2 * m.true_positives
            n_sq += m.true_positives
        if math.isfinite(m.chamfer_pm):
            chamfers.append(m.chamfer_pm)
    denom = 2 * tp + fp + fn
    return {
        "images": len(cases),
        "columns": tp + fn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "f1": 2 * tp / denom if denom else 1.0,
        "jaccard": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
        "chamfer_pm": float(np.mean(chamfers)) if chamfers else float("nan"),
        "rms_pm": math.sqrt(sq / n_sq) if n_sq else float("nan"),
    }


# ----------------------------------------------------------------------------- methods
#: Post-processing options of the plugin in this run (set by --calibrate; else the card's).
PLUGIN_OPTIONS: dict = {}


def plugin_predict(case: Case, model: str, threads: int) -> np.ndarray:
    from napari_atomseg.atoms.find import find_atoms

    options = PLUGIN_OPTIONS if model == PLUGIN_OPTIONS.get("_model") else {}
    options = {k: v for k, v in options.items() if not k.startswith("_")}
    # Equal settings: the plugin is told the columns' contrast, as the baselines are.
    options.setdefault("contrast", case.contrast)
    # ... and whether the image is STEM or HRTEM (the baselines get tuned per mode too).
    options.setdefault("imaging", case.imaging)
    df = find_atoms(case.image, case.pixel_size_nm, model=model, threads=threads, **options)
    return df[["y_px", "x_px"]].to_numpy(float)


#: Thresholds tried when calibrating the plugin's detection threshold (--calibrate).
THRESHOLD_GRID = tuple(round(float(t), 2) for t in np.arange(0.15, 0.701, 0.05))


def heatmaps(cases: list[Case], model: str, threads: int) -> list:
    """The network's answer for each case (told the case's contrast), computed once."""
    from napari_atomseg.atoms.heatmap import predict_heatmap

    return [
        predict_heatmap(c.image, c.pixel_size_nm, model=model, threads=threads, contrast=c.contrast)
        for c in cases
    ]


def first_and_second_look(case: Case, model: str, threads: int):
    """The network's first answer on ``case`` and find_atoms' answer after its second look
    (``detect.iter_second_look``), each as (HeatmapResult, columns DataFrame) with the
    card's post-processing; the network runs once, or twice where the look runs."""
    from napari_atomseg._progress import drain
    from napari_atomseg.atoms.find import heatmap_to_atoms
    from napari_atomseg.atoms.heatmap import predict_heatmap
    from napari_atomseg.atoms.second_look import iter_second_look

    heat = predict_heatmap(
        case.image, case.pixel_size_nm, model=model, threads=threads, contrast=case.contrast
    )
    from napari_atomseg.atoms.options import FinderOptions

    options = FinderOptions(contrast=case.contrast, imaging=case.imaging, threads=threads)
    first = heatmap_to_atoms(heat, options)
    looked = drain(iter_second_look(heat, first, model, options))
    return (heat, first), looked


def columns_from(
    heats: list, cases: list[Case], threshold: float, refine: str = "none", ramp: bool = True
):
    """Post-processing only (every other option at its default): (row, col) per case.
    ``threshold`` is the base: where the model's card raises its threshold on noisy
    lattices (``threshold_noisy``; ``detect.default_threshold``), each image gets the
    library's rule with ``threshold`` as the card's (``ramp=False``: the same fixed
    threshold for every image)."""
    from napari_atomseg.atoms.find import heatmap_to_atoms

    out = []
    for h, c in zip(heats, cases):
        post = {"refine": refine, "contrast": c.contrast, "imaging": c.imaging}
        pp = h.postprocess or {}
        if ramp and "threshold_noisy" in pp:
            noisy = max(float(pp["threshold_noisy"]), threshold)
            card = {**pp, "threshold": threshold, "threshold_noisy": noisy}
            # (The copy measures the image's noise level again: ~5 ms per 256^2 image.)
            df = heatmap_to_atoms(dataclasses.replace(h, postprocess=card), **post)
        else:
            df = heatmap_to_atoms(h, threshold=threshold, **post)
        out.append(df[["y_px", "x_px"]].to_numpy(float))
    return out


def calibrate_threshold(cases: list[Case], model: str, threads: int, log) -> dict:
    """The plugin's detection threshold, chosen like the baselines' parameters: the best
    pooled F1 on the tuning images (never the test images). The network runs once per
    image; only the peak finding is repeated (refinement does not change what is found).
    With a card that raises the threshold on noisy images, this chooses the base of that
    ramp (``columns_from``); the ramp itself is chosen by atoms_noise_threshold.py."""
    from napari_atomseg.atoms.options import DEFAULT_CONTRAST_CHECK, REFINE_METHODS

    t0 = time.perf_counter()
    heats = heatmaps(cases, model, threads)
    f1 = {t: score(columns_from(heats, cases, t), cases)["f1"] for t in THRESHOLD_GRID}
    best = max(THRESHOLD_GRID, key=lambda t: (round(f1[t], 4), t))
    # Then the refinement: the one with the lower RMS error on the same tuning images.
    rms = {
        refine: score(columns_from(heats, cases, best, refine), cases)["rms_pm"]
        for refine in REFINE_METHODS
    }
    refine = min(rms, key=lambda r: (rms[r], r != "gaussian"))
    log(
        f"  calibrated the plugin on {len(cases)} tuning images: threshold {best} "
        f"(tuning F1 {f1[best]:.3f}; grid {', '.join(f'{t}: {v:.3f}' for t, v in f1.items())}), "
        f"refine {refine} (RMS {', '.join(f'{k} {v:.1f} pm' for k, v in rms.items())}; "
        f"{time.perf_counter() - t0:.0f} s)"
    )
    return {
        "threshold": best,
        "tuning_f1": round(f1[best], 4),
        "grid_f1": f1,
        "refine": refine,
        "tuning_rms_pm": {k: round(v, 2) for k, v in rms.items()},
        "contrast_check": DEFAULT_CONTRAST_CHECK,
    }


def tune_baselines(cases: list[Case], log) -> dict[str, dict[str, float]]:
    out = {}
    for name in BASELINES:
        t0 = time.perf_counter()
        res = tune(
            name,
            [c.image for c in cases],
            [c.truth_px for c in cases],
            [c.pixel_size_nm for c in cases],
            radius_nm=0.07,
            bright_atoms=[c.bright for c in cases],
        )
        out[name] = res.params
        log(
            f"  tuned {name}: {res.params} (tuning F1 {res.f1:.3f}, {time.perf_counter() - t0:.0f} s)"
        )
    return out


def evaluate(
    cases: list[Case],
    params: dict,
    model: str,
    threads: int,
    also: tuple[str, ...] = (),
    mode_params: dict | None = None,
) -> dict[str, dict]:
    rows = {}
    preds = [plugin_predict(c, model, threads) for c in cases]
    rows["napari-atomseg"] = score(preds, cases)
    for other in also:
        preds = [plugin_predict(c, other, threads) for c in cases]
        rows[f"napari-atomseg ({Path(other).stem})"] = score(preds, cases)
    tunings = [("", params)] + ([(" (tuned per mode)", mode_params)] if mode_params else [])
    for suffix, chosen in tunings:
        for name, base in BASELINES.items():
            preds = [
                base(c.image, c.pixel_size_nm, bright_atoms=c.bright, **chosen[name]) for c in cases
            ]
            rows[name + suffix] = score(preds, cases)
    return rows


def timing(model: str, threads: int, params: dict, repeats: int, log) -> dict[str, float]:
    from napari_atomseg.atoms.find import find_atoms
    from napari_atomseg.simulate import SimulationParameters, simulate

    res = simulate(
        SimulationParameters(
            material="SrTiO3",
            zone_axis="001",
            shape_px=(1024, 1024),
            pixel_size_nm=0.02,
            dose_e_per_A2=3e4,
            seed=BENCH_SEED,
            rotation_deg=12.0,
        )
    )
    img = np.asarray(res.image, np.float32)
    opts = {k: v for k, v in PLUGIN_OPTIONS.items() if not k.startswith("_")}
    calls = {"napari-atomseg": lambda: find_atoms(img, 0.02, model=model, threads=threads, **opts)}
    for name, base in BASELINES.items():
        calls[name] = lambda b=base, p=params[name]: b(img, 0.02, **p)
    df = calls["napari-atomseg"]()  # load + warm up
    # Interleaved: every repeat times each method once, so a slow spell of the machine
    # (other jobs, frequency changes) falls on all of them alike; the median per method.
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    out: dict[str, float] = {name: float(np.median(t)) for name, t in times.items()}
    out["_plugin_columns"] = len(df)
    log(f"  timing image: 1024x1024 SrTiO3 [001] HAADF, {len(df)} columns found by the plugin")
    return out


# ----------------------------------------------------------------------------- report
def fmt_table(results: dict, timings: dict | None) -> str:
    lines = [
        "| data set | method | F1 | Jaccard | precision | recall | Chamfer (pm) | RMS (pm) | s / 1024^2 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, rows in results.items():
        for method, r in rows.items():
            t = timings.get(method) if timings else None
            lines.append(
                f"| {dataset} ({r['images']} img, {r['columns']} col) | {method} | {r['f1']:.3f} | "
                f"{r['jaccard']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                f"{r['chamfer_pm']:.1f} | {r['rms_pm']:.1f} | "
                + (f"{t:.2f}" if t is not None else "")
                + " |"
            )
    if timings:
        lines += ["", "| method | s / 1024^2 (full pipeline) |", "|---|---|"]
        lines += [f"| {m} | {t:.2f} |" for m, t in timings.items() if not m.startswith("_")]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+", default=["synthetic", "pt", "timing"])
    ap.add_argument("--model", default="default")
    ap.add_argument(
        "--also", nargs="*", default=[], help="more atom models (names or cards) to score"
    )
    # 30: with 10 per group, two networks 0.006 apart on the tuning images swapped places
    # on three groups (single-atom F1 alone ranges 0.35-0.78 between 10-image seed sets).
    ap.add_argument("--n", type=int, default=30, help="test images per synthetic group")
    ap.add_argument("--n-tune", type=int, default=6, help="tuning images per synthetic group")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--per-mode",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also tune every baseline on the STEM and the HRTEM tuning images apart and "
        "report those rows ('tuned per mode'): the plugin is told the imaging mode",
    )
    ap.add_argument("--repeats", type=int, default=9, help="timing repeats (interleaved)")
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--update-card",
        action="store_true",
        help="write each scored model's rows into its card's metrics.benchmark (and, with "
        "--calibrate, the chosen threshold into its postprocess)",
    )
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="choose the plugin's detection threshold on the synthetic tuning images (as "
        "the baselines are tuned) and use it for --model in this run",
    )
    args = ap.parse_args(argv)

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
    params_syn = params_pt = calibration = None
    params_mode: dict[str, dict] = {}
    if "synthetic" in args.sections or "timing" in args.sections:
        tune_cases = [c for g in GROUPS for c in synthetic_cases(g, args.n_tune, 10_000)]
        log(f"synthetic tuning set: {len(tune_cases)} images")
        params_syn = tune_baselines(tune_cases, log)
        if args.per_mode:
            # The plugin is told STEM or HRTEM (imaging=): the baselines get the same
            # knowledge as a setting tuned on that mode's tuning images alone.
            for mode in ("stem", "hrtem"):
                log(f"baselines tuned on the {mode} tuning images alone:")
                params_mode[mode] = tune_baselines(
                    [c for c in tune_cases if c.imaging == mode], log
                )
        if args.calibrate:
            calibration = calibrate_threshold(tune_cases, model, args.threads, log)
            PLUGIN_OPTIONS.update(
                {
                    "_model": model,
                    "threshold": calibration["threshold"],
                    "refine": calibration["refine"],
                }
            )
    if "synthetic" in args.sections:
        for g in GROUPS:
            cases = synthetic_cases(g, args.n, 0)
            results[f"synthetic {g}"] = evaluate(
                cases,
                params_syn,
                model,
                args.threads,
                tuple(args.also),
                params_mode.get(cases[0].imaging),
            )
            log(
                f"{g}: "
                + ", ".join(f"{m} F1 {r['f1']:.3f}" for m, r in results[f"synthetic {g}"].items())
            )
    if "pt" in args.sections:
        if not PT_DIR.exists():
            log(f"skipping pt: {PT_DIR} not found")
        else:
            cases = pt_cases()
            tune_set = [c for c in cases if c.name in PT_TUNE]
            test_set = [c for c in cases if c.name not in PT_TUNE]
            params_pt = tune_baselines(tune_set, log)
            results["Pt single atoms (9 test img)"] = evaluate(
                test_set, params_pt, model, args.threads, tuple(args.also)
            )
            preds = [plugin_predict(c, model, args.threads) for c in cases]
            results["Pt single atoms (all 11 img)"] = {"napari-atomseg": score(preds, cases)}
            log(
                "pt: "
                + ", ".join(
                    f"{m} F1 {r['f1']:.3f}"
                    for m, r in results["Pt single atoms (9 test img)"].items()
                )
            )
    timings = None
    if "timing" in args.sections:
        timings = timing(model, args.threads, params_syn, args.repeats, log)
    print(fmt_table(results, timings))
    info = {
        "model": card.name,
        "sha256": card.weights.sha256,
        "command": "python benchmarks/atoms.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "threads": args.threads,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "wall_s": round(time.perf_counter() - t_start, 1),
        "baseline_params_synthetic": params_syn,
        "baseline_params_pt": params_pt,
        "baseline_params_per_mode": params_mode,
        "calibration": calibration,
    }
    print(f"\n{json.dumps({k: info[k] for k in ('model', 'threads', 'load_average', 'wall_s')})}")
    if args.json:
        args.json.write_text(
            json.dumps({"results": results, "timings_s": timings, **info}, indent=2)
        )
    if args.update_card:
        scored = [(model, "napari-atomseg")]
        scored += [(m, f"napari-atomseg ({Path(m).stem})") for m in args.also]
        for name, label in scored:
            update_card(name, label, results, timings if name == model else None, info)
        if calibration is not None:
            record_threshold(model, calibration, info)
    return 0


def update_card(name: str, label: str, results: dict, timings: dict | None, info: dict) -> None:
    """Add this run's rows for one model to its card's ``metrics.benchmark``."""
    from napari_atomseg.backend.cards import load_card, save_card

    card = load_card(name)
    rows = {
        dataset: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r[label].items()}
        for dataset, r in results.items()
        if label in r
    }
    # Several runs (e.g. one per --sections) add up: rows are merged, commands listed.
    bench = dict((card.metrics or {}).get("benchmark") or {})
    commands = list(bench.get("commands", []))
    if info["command"] not in commands:
        commands.append(info["command"])
    bench.update(
        {
            "commands": commands,
            "date": time.strftime("%Y-%m-%d"),
            "threads": info["threads"],
            "pooled_scores": {**dict(bench.get("pooled_scores", {})), **rows},
        }
    )
    if timings is not None:
        bench["seconds_per_1024px_image"] = round(timings["napari-atomseg"], 3)
        bench["blob_log_seconds_per_1024px_image"] = round(timings["blob_log"], 3)
        bench["timing_load_average"] = [round(x, 1) for x in info["load_average"]]
    metrics = {**dict(card.metrics), "benchmark": bench}
    save_card(card.with_updates(metrics=metrics), card.path)
    print(f"updated {card.path}", file=sys.stderr)


def record_threshold(name: str, calibration: dict, info: dict) -> None:
    """Store the calibrated threshold as the card's recommended ``postprocess.threshold``
    (what find_atoms, the CLI and the widget then use by default), with how it was chosen."""
    from napari_atomseg.backend.cards import load_card, save_card

    card = load_card(name)
    postprocess = {
        **dict(card.postprocess),
        "threshold": calibration["threshold"],
        "refine": calibration["refine"],
        # The setting the calibration and the scores were made with (find_atoms' default).
        "contrast_check": bool(calibration["contrast_check"]),
    }
    metrics = dict(card.metrics)
    metrics["threshold_calibration"] = {
        "command": info["command"],
        "how": "best pooled F1 of the grid on the benchmark's synthetic tuning images "
        "(seeds apart from the test images; the baselines are tuned on the same images)",
        "chosen": calibration["threshold"],
        "tuning_f1": calibration["tuning_f1"],
        "grid_f1": {str(k): round(v, 4) for k, v in calibration["grid_f1"].items()},
        "refine_how": "lower pooled RMS error of gaussian / com / heatmap / none at that "
        "threshold, same "
        "images",
        "refine": calibration["refine"],
        "tuning_rms_pm": calibration["tuning_rms_pm"],
    }
    save_card(card.with_updates(postprocess=postprocess, metrics=metrics), card.path)
    print(f"recorded threshold {calibration['threshold']} in {card.path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
