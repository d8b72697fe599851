"""Time the atom finder's training examples per mixture, and draw a few of them.

Makes ``AtomsTask.make_example`` pairs (simulate a random recipe of the mix, resample to
the working grid, crop, normalise, render the heatmap target) with the task options of
``configs/atoms_default.yaml``, alternating between the mixes so both see the same
machine load, and prints wall and CPU ms per example (median, mean, 90 %, max). With
``--png`` it also draws the first examples of the last mix: image, and the target
(visible columns; ignored pixels grey)::

    OMP_NUM_THREADS=1 python benchmarks/atoms_examples.py configs/atoms_mix.yaml \\
        configs/atoms_mix_v2.yaml --n 60 --png runs/atoms_examples_v2.png
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _task(mix: str):
    from napari_atomseg.atoms.training import AtomsTask

    return AtomsTask(
        mix=mix,
        working_pixel_size_nm=0.03,
        patch_px=128,
        sigma_fraction=0.25,
        sigma_max_nm=0.08,
        sigma_min_px=1.5,
        min_separation_nm=0.08,
        background_sigma_nm=1.2,
    )


def _summary(values: list[float]) -> str:
    v = np.array(values) * 1e3
    return f"{np.median(v):6.0f} {v.mean():6.0f} {np.quantile(v, 0.9):6.0f} {v.max():6.0f}"


def _draw(task, n: int, seed: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    cols = 6
    rows = int(np.ceil(n / cols)) * 2
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows))
    for i in range(n):
        x, y = task.make_example(rng)
        r, c = 2 * (i // cols), i % cols
        axes[r, c].imshow(x[0], cmap="gray")
        target = np.where(y[0] < 0, 0.5, y[0])
        axes[r + 1, c].imshow(target, cmap="magma", vmin=0, vmax=1)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mixes", nargs="+")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default=None)
    parser.add_argument("--png-n", type=int, default=18)
    args = parser.parse_args(argv)

    tasks = {m: _task(m) for m in args.mixes}
    rngs = {m: np.random.default_rng(args.seed) for m in args.mixes}
    for m in args.mixes:  # warm-up: imports, FFT plans, column cells
        tasks[m].make_example(np.random.default_rng(10**6))
    wall = {m: [] for m in args.mixes}
    cpu = {m: [] for m in args.mixes}
    for _ in range(args.n):
        for m in args.mixes:
            t0, c0 = time.perf_counter(), time.process_time()
            x, y = tasks[m].make_example(rngs[m])
            wall[m].append(time.perf_counter() - t0)
            cpu[m].append(time.process_time() - c0)
            assert x.shape == (1, 128, 128) and y.shape[1:] == (128, 128)
    print(f"{args.n} examples each (128 px at 0.03 nm/px), ms: median mean p90 max")
    for m in args.mixes:
        print(f"{m:32s} wall {_summary(wall[m])} | CPU {_summary(cpu[m])}")
    if args.png:
        _draw(tasks[args.mixes[-1]], args.png_n, args.seed + 1, args.png)


if __name__ == "__main__":
    main()
