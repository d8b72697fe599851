"""Full-multislice HRTEM of graphene with amorphous hydrocarbon patches (abTEM), with masks.

An evaluation set made by the project's *accurate* imaging path (``mode=
"hrtem_multislice"``: abTEM plane-wave multislice through every atom of the specimen,
contamination and all, then abTEM's CTF with partial coherence), not by the fast
phase-object model the segmentation models were trained on. Monolayer graphene at 80 kV,
aberration-corrected optics (white- or black-atom contrast), hydrocarbon patches of
1-3 nm thickness, 0.025-0.04 nm/px, realistic doses. Truth: the engine's contamination
mask (sim class 3 = "amorphous"); the graphene elsewhere is "crystal".

    flock /tmp/atomseg-heavy.lock python benchmarks/make_multislice_graphene.py --n 10 \\
        --out runs/multislice_graphene

Each image costs 2-5 min on one core; existing files are kept (resumable).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

#: Seeds far from anything a training run draws.
SEED_BASE = 70_000_000


def parameters(k: int):
    from napari_atomseg.simulation import SimulationParameters

    rng = np.random.default_rng([SEED_BASE, k])
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return SimulationParameters(
        material="graphene",
        mode="hrtem_multislice",
        shape_px=(192, 192),
        pixel_size_nm=float(rng.uniform(0.025, 0.04)),
        energy_keV=80.0,
        rotation_deg=float(rng.uniform(0, 360)),
        dose_e_per_A2=float(np.exp(rng.uniform(np.log(2e3), np.log(3e4)))),
        cs_um=sign * float(rng.uniform(5.0, 20.0)),
        defocus_nm=sign * float(rng.uniform(2.0, 9.0)),
        focal_spread_nm=float(rng.uniform(1.0, 3.0)),
        contamination_coverage=float(rng.uniform(0.2, 0.5)),
        contamination_thickness_nm=float(rng.uniform(1.0, 3.0)),
        contamination_blob_size_nm=float(rng.uniform(1.0, 4.0)),
        mtf_at_nyquist=float(rng.uniform(0.2, 0.6)),
        seed=SEED_BASE + k,
        frozen_phonons=4,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/multislice_graphene"))
    args = parser.parse_args(argv)
    from napari_atomseg.simulation import simulate

    args.out.mkdir(parents=True, exist_ok=True)
    for k in range(args.n):
        path = args.out / f"multislice_graphene_{k:02d}.npz"
        if path.exists():
            continue
        p = parameters(k)
        t0 = time.perf_counter()
        sim = simulate(p)
        np.savez_compressed(
            path,
            image=sim.image,
            classes=sim.masks["classes"],
            pixel_size_nm=sim.pixel_size_nm,
            parameters=str(p.to_dict()),
        )
        cover = float(np.mean(sim.masks["classes"] == 3))
        print(f"{path.name}: {time.perf_counter() - t0:.0f} s, contamination {cover:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
