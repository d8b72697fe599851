"""The atom finder's benchmark images: synthetic groups, the real Pt set, and scoring.

Synthetic (the simulation engine, seeds never used in training; 256 x 256 images at
0.012-0.05 nm/px): groups ``haadf_moderate`` (1e4-1e5 e/A^2), ``haadf_low_dose``
(1e3-3e3 e/A^2), ``hrtem`` (2e3-3e4 e/A^2, black or white atoms as the optics give),
``single_atoms`` (Pt/Au/Ir... on carbon, HAADF, 3e3-1e5 e/A^2) and ``unseen`` (ZnO and Ge
lattices: not in the training mixture). Truth = the simulator's *visible* columns; columns
closer than ``max(0.08 nm, 2.5 px)`` to another visible one and invisible ones are
*ignored*: predictions near them count neither way. Columns within 0.1 nm of the border
are left out on both sides. Match radius ``min(0.1 nm, 0.5 x median true spacing)``.

Seed sets: ``offset`` 0 is the *test* set, 10 000 the *tuning* set (where thresholds and
baseline parameters are chosen), 20 000 the *development* set.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from napari_atomseg.atoms.metrics import box_iou_metrics, point_metrics

from .pt import PT_DIR, pt_image_keys, read_pt_image

REPO = Path(__file__).resolve().parents[2]
#: Seed base of the benchmark (training draws from other seeds' streams).
BENCH_SEED = 777_000
#: The benchmark's base mixture (the first finder's training mix), kept fixed so that
#: the synthetic numbers compare across models; the groups below override it.
BENCH_MIX = REPO / "configs" / "atoms_mix.yaml"
BORDER_NM = 0.1
TEST, TUNING, DEVELOPMENT = 0, 10_000, 20_000

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


@dataclasses.dataclass
class Case:
    """One benchmark image with its truth."""

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

    @property
    def group(self) -> str:
        return self.name.split("/", 1)[0]


def _mix(overrides: dict):
    from napari_atomseg.simulation import load_mix

    base = load_mix(BENCH_MIX)
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


def synthetic_cases(group: str, n: int, offset: int) -> list[Case]:
    """``n`` images of ``group`` from seed set ``offset`` (TEST, TUNING, DEVELOPMENT...)."""
    from napari_atomseg.atoms.training import columns_are_dark
    from napari_atomseg.simulation import random_parameters, simulate

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
        what = params.material if params.scene == "lattice" else params.scene
        cases.append(
            Case(
                f"{group}/{offset + i - 1}:{what}",
                np.asarray(res.image, np.float32),
                ps,
                truth,
                ignore,
                params.mode == "haadf" or not columns_are_dark(res),
                min(0.1, 0.5 * spacing),
                BORDER_NM,
                "hrtem" if params.mode == "hrtem" else "stem",
            )
        )
    return cases


def pt_cases(keys: tuple[str, ...] | None = None) -> list[Case]:
    """The real Pt images as cases (match radius 0.1 nm; HAADF, bright atoms)."""
    out = []
    for key in keys or pt_image_keys(PT_DIR):
        image, ps, truth = read_pt_image(key)
        out.append(
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
    return out


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
    """Pooled precision, recall, F1, Jaccard, mean Chamfer and RMS error (pm)."""
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
    return _pooled(tp, fp, fn, len(cases)) | {
        "chamfer_pm": float(np.mean(chamfers)) if chamfers else float("nan"),
        "rms_pm": math.sqrt(sq / n_sq) if n_sq else float("nan"),
    }


def box_score(preds: list[np.ndarray], cases: list[Case], box_px: float = 21.0) -> dict[str, float]:
    """Pooled scores by the Pt paper's rule (21 px boxes, IoU > 0.5, one to one)."""
    tp = fp = fn = 0
    per_image = {}
    for pred, case in zip(preds, cases):
        m = box_iou_metrics(pred, case.truth_px, box_px)
        tp, fp, fn = tp + m.true_positives, fp + m.false_positives, fn + m.false_negatives
        per_image[case.name] = round(m.f1, 3)
    return _pooled(tp, fp, fn, len(cases)) | {"per_image_f1": per_image}


def _pooled(tp: int, fp: int, fn: int, images: int) -> dict[str, float]:
    denom = 2 * tp + fp + fn
    return {
        "images": images,
        "columns": tp + fn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "f1": 2 * tp / denom if denom else 1.0,
        "jaccard": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
    }
