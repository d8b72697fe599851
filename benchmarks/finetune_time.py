"""Fine-tuning time: the widget's estimate (atoms.finetune_time) against the real run.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/finetune_time.py [--steps 25] [--rounds 1]

On real Pt image 021 of ``../shared/data/pt_single_atoms`` with its ImageJ Results
(the hand-placed atoms), 2 torch threads: measures the timing as *Estimate time* does
(set-up + 5 training steps of the very run), predicts the run of ``--steps`` steps,
then runs it (into a temporary folder) and prints predicted vs real seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pt_single_atoms"
PS_NM = 0.029296875


def main() -> None:
    import tifffile

    from napari_atomseg._progress import drain
    from napari_atomseg.atoms import finetune_user
    from napari_atomseg.atoms.finetune_time import iter_measure_finetune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    image = tifffile.imread(next((DATA / "images").glob("021_*"))).astype(np.float32)
    points = finetune_user.read_points_table(DATA / "coordinates" / "021_Results.csv")
    for k in range(args.rounds):
        t0 = time.perf_counter()
        timing = drain(iter_measure_finetune([image], [points], PS_NM, threads=2))
        measured_in = time.perf_counter() - t0
        predicted = timing.total_s(args.steps)
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            finetune_user.finetune_atoms([image], [points], PS_NM, out, steps=args.steps, threads=2)
            real = time.perf_counter() - t0
        print(
            f"round {k}: measured in {measured_in:.1f} s: {timing.step_s:.2f} s/step, set-up "
            f"{timing.setup_s:.1f} s -> predicted {predicted:.0f} s for {args.steps} steps; "
            f"real {real:.0f} s ({real / predicted - 1:+.0%})",
            flush=True,
        )


if __name__ == "__main__":
    main()
