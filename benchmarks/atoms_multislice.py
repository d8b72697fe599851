"""The atom finder on full-multislice images: not the fast models it was trained on.

Twelve HAADF-STEM images simulated with abTEM's multislice and frozen phonons through the
project's ``haadf_multislice`` mode -- MoS2, SrTiO3 [001], Si [011], Au particles and Pt
single atoms on amorphous carbon, graphene with Si dopants -- at 0.02-0.03 nm/px and
moderate dose. Truth and scoring as the synthetic benchmark (``lib/cases.py``: the
simulator's visible columns, match radius min(0.1 nm, half the spacing)). The images are
slow to make (minutes each on two cores) and are cached in ``runs/multislice/``.

    OMP_NUM_THREADS=2 python benchmarks/atoms_multislice.py            # make (once) and score
    python benchmarks/atoms_multislice.py --model runs/x/x.yaml
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from lib.cases import BORDER_NM, REPO, Case, _truth_from_columns, score
from scipy.spatial import cKDTree

CACHE = REPO / "runs" / "multislice"
SHAPE = (64, 64)
#: (name, SimulationParameters fields); seeds fixed, never used in training.
RECIPES = [
    ("MoS2-a", {"material": "MoS2", "pixel_size_nm": 0.025, "rotation_deg": 11.0}),
    ("MoS2-b", {"material": "MoS2", "pixel_size_nm": 0.02, "rotation_deg": 37.0, "energy_keV": 80.0}),
    ("SrTiO3-a", {"material": "SrTiO3", "pixel_size_nm": 0.025, "thickness_nm": 3.0, "rotation_deg": 7.0}),
    ("SrTiO3-b", {"material": "SrTiO3", "pixel_size_nm": 0.02, "thickness_nm": 5.0, "rotation_deg": 29.0}),
    ("Si-011-a", {"material": "Si", "zone_axis": "011", "pixel_size_nm": 0.02, "thickness_nm": 3.0, "rotation_deg": 3.0}),
    ("Si-011-b", {"material": "Si", "zone_axis": "011", "pixel_size_nm": 0.02, "thickness_nm": 5.0, "rotation_deg": 41.0}),
    ("Au-particle-a", {"material": "Au", "scene": "particles", "particle_diameter_nm": 1.4,
                       "pixel_size_nm": 0.025, "support_thickness_nm": 2.0}),
    ("Au-particle-b", {"material": "Au", "scene": "particles", "particle_shape": "octahedron",
                       "particle_axis": "011", "particle_diameter_nm": 1.6, "pixel_size_nm": 0.025,
                       "support_thickness_nm": 3.0}),
    ("Pt-atoms-a", {"scene": "single_atoms", "single_atom_element": "Pt", "single_atom_density_per_nm2": 1.0,
                    "pixel_size_nm": 0.03, "support_thickness_nm": 2.0, "thickness_nm": 1.0}),
    ("Pt-atoms-b", {"scene": "single_atoms", "single_atom_element": "Pt", "single_atom_density_per_nm2": 0.6,
                    "pixel_size_nm": 0.03, "support_thickness_nm": 3.0, "thickness_nm": 1.0}),
    ("graphene-Si-a", {"material": "graphene", "pixel_size_nm": 0.02, "substitution": "Si:C",
                       "substitution_fraction": 0.02, "energy_keV": 60.0, "rotation_deg": 5.0}),
    ("graphene-Si-b", {"material": "graphene", "pixel_size_nm": 0.02, "substitution": "Si:C",
                       "substitution_fraction": 0.03, "energy_keV": 80.0, "rotation_deg": 23.0}),
]  # fmt: skip


def make(name: str, fields: dict, seed: int):
    """Simulate (or load) one multislice image: (image, pixel size, columns table)."""
    import pandas as pd

    from napari_atomseg.simulation import SimulationParameters, simulate

    path = CACHE / f"{name}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        cols = pd.DataFrame({"y_px": z["y"], "x_px": z["x"], "visible": z["visible"]})
        return z["image"], float(z["ps"]), cols
    p = SimulationParameters(
        mode="haadf_multislice",
        shape_px=SHAPE,
        dose_e_per_A2=5e4,
        frozen_phonons=4,
        seed=seed,
        **fields,
    )
    t0 = time.perf_counter()
    res = simulate(p)
    CACHE.mkdir(parents=True, exist_ok=True)
    cols = res.columns
    np.savez_compressed(path, image=np.asarray(res.image, np.float32), ps=res.pixel_size_nm,
                        y=cols["y_px"].to_numpy(), x=cols["x_px"].to_numpy(), visible=cols["visible"].to_numpy())  # fmt: skip
    print(f"{name}: simulated in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return np.asarray(res.image, np.float32), float(res.pixel_size_nm), cols


def cases() -> list[Case]:
    out = []
    for k, (name, fields) in enumerate(RECIPES):
        image, ps, cols = make(name, fields, seed=880_000 + k)
        truth, ignore = _truth_from_columns(cols, image.shape, ps)
        if len(truth) < 2:
            continue
        spacing = float(np.median(cKDTree(truth).query(truth, k=2)[0][:, 1])) * ps
        out.append(
            Case(
                f"multislice/{name}",
                image,
                ps,
                truth,
                ignore,
                True,
                min(0.1, 0.5 * spacing),
                BORDER_NM,
                "stem",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from lib.baselines import BASELINES

    from napari_atomseg.atoms.find import find_atoms

    items = cases()
    preds = [
        find_atoms(c.image, c.pixel_size_nm, args.model, contrast="bright", imaging="stem", threads=args.threads)
        [["y_px", "x_px"]].to_numpy(float)
        for c in items
    ]  # fmt: skip
    rows = {"napari-atomseg": score(preds, items)}
    # blob_log at the column scale, its threshold at a middle value of its tuning grid.
    blob = [
        BASELINES["blob_log"](c.image, c.pixel_size_nm, sigma_nm=0.05, threshold=0.05)
        for c in items
    ]
    rows["blob_log (sigma 0.05 nm, threshold 0.05)"] = score(blob, items)
    print("| method | F1 | precision | recall | RMS (pm) |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['rms_pm']:.1f} |"
        )
    print("\nper image (plugin): " + ", ".join(
        f"{c.name.split('/')[1]} {score([p], [c])['f1']:.2f}" for p, c in zip(preds, items)
    ))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
