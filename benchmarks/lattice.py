"""Lattice analysis against exact fields, simulated images and a real crystal, beside Atomap.

Usage (heavy: run under the project's lock)::

    OMP_NUM_THREADS=2 flock /tmp/atomseg-heavy.lock \\
        python benchmarks/lattice.py [--parts exact images real speed] [--seeds 2] \\
        [--atomap /work/venvs/atomap/bin/python] [--out runs/lattice_bench]

Parts (each prints a markdown table; everything is also written to OUT/results.json):

- ``exact`` -- exact perovskite [001] positions (Sr, Ti-O columns; 0.02 nm/px, 400^2 px)
  under known fields (normal strains to +-3 %, shear, 2 deg rotation, a linear strain
  gradient, B-site displacements 5-30 pm). Median |error| of strain_xx / strain_yy
  (and of strain_xy, rotation for ours: Atomap's distance maps have neither) and of the
  B-site displacement vector, with the unstrained cell as the reference for both.
- ``images`` -- the same fields imaged by the project's simulator (SrTiO3 [001] HAADF,
  0.02 nm/px, 512^2 px, 3e4 e/A^2: moderate dose), columns found by today's
  ``find_atoms`` (``--refine``: its sub-pixel refinement, default the finder's own), then
  analysed; Atomap gets the very same found
  positions, split into Sr and Ti by the ground truth (its advantage: ours finds the
  sublattices itself). Ours with one-cell (default) and two-cell neighbourhoods; also
  ours on the exact positions of the same image, which separates the finder's error from
  the analysis's.
- ``real`` -- the real unstrained SrTiO3 file (``16_STOimage_1.ser``): per-column strain
  scatter (std) with and without the scan-distortion correction, for all columns and for
  those at least one spacing from the border; the scan-distortion report; Atomap's
  distance scatter on the same positions.
- ``speed`` -- 100,000 columns (positions and brightness, no image) analysed, best of 3;
  Atomap's time per column from the exact part.

Atomap runs in its own virtual environment through ``benchmarks/_atomap_driver.py``
(positions and images passed in .npz files); without it those columns say "n/a".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from napari_atomseg import analyse_lattice, find_atoms, read_image  # noqa: E402
from napari_atomseg.atoms.options import REFINE_METHODS  # noqa: E402
from napari_atomseg.simulation import SimulationParameters, simulate  # noqa: E402
from napari_atomseg.simulation.deformation import Deformation, perovskite_columns  # noqa: E402

A_NM = 0.3905
PS = 0.02
CELL = ((0.0, A_NM), (A_NM, 0.0))
STO_FILE = REPO.parent / "shared" / "data" / "formats" / "openNCEM" / "16_STOimage_1.ser"
CASES = {
    "stretch x +3 %": Deformation(strain_xx=0.03),
    "biaxial +3 / -3 %": Deformation(strain_xx=0.03, strain_yy=-0.03),
    "compress y -2 %": Deformation(strain_yy=-0.02),
    "shear 1.5 %": Deformation(strain_xy=0.015),
    "rotation 2 deg": Deformation(rotation_deg=2.0),
    "gradient 0.3 %/nm": Deformation(strain_xx_gradient_per_nm=0.003),
    "Ti 5 pm": Deformation(shifts_pm=(("Ti", 3.0, 4.0),)),
    "Ti 15 pm": Deformation(shifts_pm=(("Ti", 0.0, 15.0),)),
    "Ti 30 pm": Deformation(shifts_pm=(("Ti", -18.0, 24.0),)),
    "2 % + 2 deg + 20 pm": Deformation(
        strain_xx=0.02, rotation_deg=2.0, shifts_pm=(("Ti", 12.0, 16.0),)
    ),
}


# --------------------------------------------------------------------------- Atomap
def run_atomap(python: str | None, jobs: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """Atomap's answers per job (empty when it is not available)."""
    if not python or not Path(python).exists() or not jobs:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        flat = {f"{job}_{k}": v for job, d in jobs.items() for k, v in d.items()}
        np.savez(inp, **flat)
        driver = REPO / "benchmarks" / "_atomap_driver.py"
        subprocess.run([python, str(driver), str(inp), str(outp)], check=True, cwd=tmp)
        data = np.load(outp)
        out: dict[str, dict] = {job: {} for job in jobs}
        for key in data.files:
            job, name = key.rsplit("_", 1)
            out[job][name] = data[key]
    return out


def atomap_errors(res: dict, truth_strain, truth_disp, origin) -> dict[str, float]:
    """Median |error| of Atomap's normal strains (at midpoints) and displacements."""
    if not res or "error" in res:
        return {"atomap_strain": np.nan, "atomap_disp_pm": np.nan, "atomap_coverage": 0.0}
    errs = []
    for name, idx in (("xx", (1, 1)), ("yy", (0, 0))):
        x, y, eps = res[name].T
        true = truth_strain(np.column_stack([y, x]) * PS)[:, idx[0], idx[1]]
        errs.append(np.abs(eps - true))
    y_b, x_b, dy, dx = res["pol"].T
    true_d = truth_disp(np.column_stack([y_b, x_b]))
    disp_err = np.hypot(dy * PS * 1000 - true_d[:, 0], dx * PS * 1000 - true_d[:, 1])
    return {
        "atomap_strain": float(np.median(np.concatenate(errs))),
        "atomap_disp_pm": float(np.median(disp_err)) if disp_err.size else np.nan,
        "atomap_seconds": float(res["seconds"]),
    }


# --------------------------------------------------------------------------- ours
def our_errors(res: pd.DataFrame, true_eps: np.ndarray, true_disp: np.ndarray, is_b) -> dict:
    ok = np.isfinite(res["strain_xx"]).to_numpy()
    e = {
        "xx": np.abs(res["strain_xx"].to_numpy() - true_eps[:, 1, 1])[ok],
        "yy": np.abs(res["strain_yy"].to_numpy() - true_eps[:, 0, 0])[ok],
        "xy": np.abs(res["strain_xy"].to_numpy() - true_eps[:, 0, 1])[ok],
    }
    disp = res[["displacement_y_pm", "displacement_x_pm"]].to_numpy()
    db = is_b & np.isfinite(disp).all(axis=1)
    d_err = np.hypot(*(disp[db] - true_disp[db]).T)
    return {
        "ours_strain": float(np.median(np.concatenate([e["xx"], e["yy"]]))),
        "ours_shear": float(np.median(e["xy"])),
        "ours_disp_pm": float(np.median(d_err)) if d_err.size else np.nan,
        "ours_disp_p95_pm": float(np.percentile(d_err, 95)) if d_err.size else np.nan,
        "ours_coverage": float(ok.mean()),
    }


def _brightness(element: pd.Series, rng) -> np.ndarray:
    return element.map({"Sr": 3.0, "Ti": 2.0, "O": 0.5}).to_numpy() + rng.normal(
        0, 0.05, len(element)
    )


# --------------------------------------------------------------------------- parts
def part_exact(atomap: str | None) -> list[dict]:
    shape = (400, 400)
    origin = np.array([(shape[0] - 1) / 2, (shape[1] - 1) / 2]) * PS
    rows, jobs, keep = [], {}, {}
    for i, (name, d) in enumerate(CASES.items()):
        cols = perovskite_columns(shape, PS, d, oxygen=False)
        cols["intensity"] = _brightness(cols["element"], np.random.default_rng(i))
        t0 = time.perf_counter()
        res = analyse_lattice(cols, pixel_size_nm=PS, cell_nm=CELL)
        seconds = time.perf_counter() - t0
        true_eps = np.zeros((len(cols), 2, 2))
        true_eps[:, 1, 1], true_eps[:, 0, 0] = cols["true_strain_xx"], cols["true_strain_yy"]
        true_eps[:, 0, 1] = true_eps[:, 1, 0] = cols["true_strain_xy"]
        true_disp = cols[["true_displacement_y_pm", "true_displacement_x_pm"]].to_numpy()
        is_b = (cols["element"] == "Ti").to_numpy()
        row = {"case": name, "n_columns": len(cols), **our_errors(res, true_eps, true_disp, is_b)}
        rot = np.abs(res["rotation_deg"] - d.rotation_deg)
        row["ours_rotation_deg"] = float(np.nanmedian(rot))
        row["ours_seconds"] = seconds
        rows.append(row)
        pos = cols[["y_px", "x_px"]].to_numpy()
        job = f"exact{i}"
        jobs[job] = {
            "pos_a": pos[~is_b],
            "pos_b": pos[is_b],
            "image": np.zeros(shape, np.float32),
            "a_px": np.array(A_NM / PS),
        }
        keep[job] = (d, origin, row)
    answers = run_atomap(atomap, jobs)
    for job, (d, origin, row) in keep.items():
        row.update(_atomap_row(answers.get(job, {}), d, origin))
    return rows


def _atomap_row(answer: dict, d: Deformation, origin: np.ndarray) -> dict:
    def strain_at(yx_nm):
        ref = d.reference_positions_nm(yx_nm, origin)
        return d.biot_strain(ref, origin)

    def disp_at(yx_px):
        shift = {e: (dy, dx) for e, dy, dx in d.shifts_pm}.get("Ti", (0.0, 0.0))
        return np.tile(np.asarray(shift, float), (len(yx_px), 1))

    return atomap_errors(answer, strain_at, disp_at, origin)


def _simulate(d: Deformation, seed: int, dose: float):
    p = SimulationParameters(
        material="SrTiO3", zone_axis="001", mode="haadf", shape_px=(512, 512),
        pixel_size_nm=PS, dose_e_per_A2=dose, thickness_nm=10.0, seed=seed,
    )  # fmt: skip
    return simulate(p, d)


def _match_truth(found_yx: np.ndarray, sim, d: Deformation, origin: np.ndarray):
    """Truth per found column: species, exact strain and displacement (NaN: no match)."""
    truth = sim.columns
    tree = cKDTree(truth[["y_px", "x_px"]].to_numpy())
    dist, j = tree.query(found_yx)
    matched = dist <= 0.05 / PS
    elements = truth["elements"].str.extract(r"^([A-Z][a-z]?)")[0].to_numpy()[j]
    yx_nm = truth[["y_px", "x_px"]].to_numpy()[j] * PS
    masks = {"Ti": elements == "Ti"}
    ref = d.reference_positions_nm(yx_nm, origin, masks)
    eps = d.biot_strain(ref, origin)
    shift = {e: (dy, dx) for e, dy, dx in d.shifts_pm}.get("Ti", (0.0, 0.0))
    disp = np.where((elements == "Ti")[:, None], np.asarray(shift, float), 0.0)
    return matched, elements, eps, disp


def _find(image: np.ndarray, pixel_size_nm: float, refine: str | None) -> pd.DataFrame:
    """``find_atoms`` with ``refine`` (None: the finder's default)."""
    return find_atoms(image, pixel_size_nm, **({} if refine is None else {"refine": refine}))


def part_images(
    atomap: str | None, seeds: int, dose: float, refine: str | None = None
) -> list[dict]:
    rows, jobs, keep = [], {}, {}
    origin = np.array([511 / 2, 511 / 2]) * PS
    for i, (name, d) in enumerate(CASES.items()):
        for seed in range(seeds):
            sim = _simulate(d, seed, dose)
            t0 = time.perf_counter()
            found = _find(sim.image, PS, refine)
            find_s = time.perf_counter() - t0
            pos = found[["y_px", "x_px"]].to_numpy()
            matched, elements, eps, disp = _match_truth(pos, sim, d, origin)
            res = analyse_lattice(found, image=sim.image, pixel_size_nm=PS, cell_nm=CELL)
            is_b = matched & (elements == "Ti")
            row = {"case": name, "seed": seed, "n_found": len(found), "find_s": find_s}
            sel = matched
            row.update(our_errors(res[sel].reset_index(drop=True), eps[sel], disp[sel], is_b[sel]))
            # Two-cell neighbourhoods: less noise, half the spatial resolution.
            res2 = analyse_lattice(
                found, image=sim.image, pixel_size_nm=PS, cell_nm=CELL, neighbour_cells=2
            )
            two = our_errors(res2[sel].reset_index(drop=True), eps[sel], disp[sel], is_b[sel])
            row["ours_strain_2cells"] = two["ours_strain"]
            # The same analysis on the exact positions of the columns the finder matched.
            exact = sim.columns[sim.columns["visible"]].reset_index(drop=True)
            _ex_m, ex_el, ex_eps, ex_disp = _match_truth(
                exact[["y_px", "x_px"]].to_numpy(), sim, d, origin
            )
            res_ex = analyse_lattice(
                exact[["y_px", "x_px"]], image=sim.image, pixel_size_nm=PS, cell_nm=CELL
            )
            ideal = our_errors(res_ex, ex_eps, ex_disp, ex_el == "Ti")
            row["exact_positions_strain"] = ideal["ours_strain"]
            row["exact_positions_disp_pm"] = ideal["ours_disp_pm"]
            rows.append(row)
            job = f"img{i}s{seed}"
            jobs[job] = {
                "pos_a": pos[matched & (elements == "Sr")],
                "pos_b": pos[is_b],
                "image": sim.image,
                "a_px": np.array(A_NM / PS),
            }
            keep[job] = (d, row)
            print(f"images: {name} seed {seed}: {row}", file=sys.stderr, flush=True)
    answers = run_atomap(atomap, jobs)
    for job, (d, row) in keep.items():
        row.update(_atomap_row(answers.get(job, {}), d, origin))
    return rows


def part_real(atomap: str | None, refine: str | None = None) -> list[dict]:
    if not STO_FILE.exists():
        print(f"real: {STO_FILE} not found; skipped", file=sys.stderr)
        return []
    image, cal = read_image(STO_FILE)
    ps = cal.pixel_size_nm
    found = _find(image, ps, refine)
    spacing = float(np.median(found["nn_spacing_px"]))
    y, x = found["y_px"].to_numpy(), found["x_px"].to_numpy()
    h, w = image.shape
    inner = (y > spacing) & (y < h - 1 - spacing) & (x > spacing) & (x < w - 1 - spacing)
    rows = []
    settings = [
        ("default (no correction, 1 cell)", {}),
        ("scan correction linear", {"scan_correction": "linear"}),
        ("scan correction nonlinear", {"scan_correction": "nonlinear"}),
        ("nonlinear, 2-cell neighbourhood", {"scan_correction": "nonlinear", "neighbour_cells": 2}),
    ]
    for label, kw in settings:
        t0 = time.perf_counter()
        res = analyse_lattice(found, image=image, pixel_size_nm=ps, **kw)
        row = {"setting": label, "seconds": time.perf_counter() - t0, "n_columns": len(res)}
        for name in ("strain_xx", "strain_yy", "strain_xy"):
            v = res[name].to_numpy()
            row[f"{name}_std_all"] = float(np.nanstd(v))
            row[f"{name}_std_inner"] = float(np.nanstd(v[inner]))
        row["predicted_std"] = float(np.nanmedian(res["strain_xx_std"]))
        row["scan_distortion"] = {
            k: v for k, v in res.attrs["scan_distortion"].items() if k != "correction"
        }
        row["sublattices"] = res.attrs["sublattices"]
        row["warnings"] = res.attrs["warnings"]
        rows.append(row)
    # Atomap's distances on the same Sr / Ti-O positions (our sublattices split them).
    sub = res["sublattice"].to_numpy()
    pos = found[["y_px", "x_px"]].to_numpy()
    a_px = res.attrs["cell"]["a"] / ps
    answer = run_atomap(
        atomap,
        {"real": {"pos_a": pos[sub == 0], "pos_b": pos[sub == 1], "image": image,
                  "a_px": np.array(a_px)}},
    ).get("real", {})  # fmt: skip
    if answer and "error" not in answer:
        row = {"setting": "Atomap distance maps"}
        for name in ("xx", "yy"):
            x_m, y_m, eps = answer[name].T
            keep = (
                (y_m > spacing)
                & (y_m < h - 1 - spacing)
                & (x_m > spacing)
                & (x_m < w - 1 - spacing)
            )
            row[f"strain_{name}_std_all"] = float(np.std(eps - np.median(eps)))
            row[f"strain_{name}_std_inner"] = float(np.std(eps[keep] - np.median(eps[keep])))
        row["seconds"] = float(answer["seconds"])
        rows.append(row)
    return rows


def part_speed() -> dict:
    cols = perovskite_columns((3100, 3100), PS, Deformation(rotation_deg=2.0), oxygen=True)
    rng = np.random.default_rng(0)
    cols["intensity"] = _brightness(cols["element"], rng)
    cols[["y_px", "x_px"]] += rng.normal(0, 0.2, (len(cols), 2))
    table = cols[["y_px", "x_px", "intensity"]]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        analyse_lattice(table, pixel_size_nm=PS)
        times.append(time.perf_counter() - t0)
    return {"n_columns": len(table), "seconds_best": min(times), "seconds_all": times}


# --------------------------------------------------------------------------- report
def _table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = ""
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["exact", "images", "real", "speed"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--dose", type=float, default=3e4)
    parser.add_argument("--atomap", default="/work/venvs/atomap/bin/python")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "lattice_bench")
    parser.add_argument("--refine", choices=REFINE_METHODS, default=None,
                        help="find_atoms' refine for the images and real parts (default: its own)")  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    if "exact" in args.parts:
        results["exact"] = part_exact(args.atomap)
        print("\n## exact positions\n")
        print(_table(results["exact"], ["case", "n_columns", "ours_strain", "atomap_strain",
              "ours_shear", "ours_rotation_deg", "ours_disp_pm", "atomap_disp_pm",
              "ours_seconds", "atomap_seconds"]))  # fmt: skip
    if "images" in args.parts:
        results["images"] = part_images(args.atomap, args.seeds, args.dose, args.refine)
        print("\n## simulated images\n")
        print(_table(results["images"], ["case", "seed", "n_found", "ours_strain",
              "ours_strain_2cells", "atomap_strain", "exact_positions_strain", "ours_shear", "ours_disp_pm",
              "atomap_disp_pm", "exact_positions_disp_pm", "ours_coverage"]))  # fmt: skip
    if "real" in args.parts:
        results["real"] = part_real(args.atomap, args.refine)
        print("\n## real SrTiO3 (16_STOimage_1.ser)\n")
        print(_table(results["real"], ["setting", "strain_xx_std_all", "strain_xx_std_inner",
              "strain_yy_std_all", "strain_yy_std_inner", "strain_xy_std_inner",
              "predicted_std", "seconds"]))  # fmt: skip
        for r in results["real"][:1]:
            print("scan distortion:", r.get("scan_distortion"))
    if "speed" in args.parts:
        results["speed"] = part_speed()
        print("\n## speed\n", results["speed"])
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
