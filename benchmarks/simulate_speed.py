"""Speed of the imaging models: ms per image (with ground truth and targets).

Times :func:`napari_atomseg.simulation.simulate` for fixed recipes (MoS2 monolayer and a
4 nm Au [001] slab in fast HAADF, graphene in fast HRTEM) at 256^2 and 512^2, the
multislice modes on small fields (their cost grows with the field: HAADF multislice with
the number of probe positions times the grid, so 256^2 would take hours on 2 cores), and
the default training mixture (random recipes, as the library generator makes them, in
this one process). Prints a Markdown table for docs/simulation.md::

    OMP_NUM_THREADS=1 python benchmarks/simulate_speed.py            # ~5 min on 2 loaded cores
    OMP_NUM_THREADS=1 python benchmarks/simulate_speed.py --quick    # no multislice

Median of ``--repeat`` runs after one warm-up run (imports, FFT plans); seeds vary so no
cache helps. Wall time depends on what else runs on the machine; the CPU time of this
process (single-threaded with OMP_NUM_THREADS=1) does much less, and images/s per core
is what one library worker per core achieves.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def _time(make, repeat: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms of this process) per call, after one warm-up."""
    make(0)  # warm-up: imports, numba / FFT planning
    wall, cpu = [], []
    for i in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        make(i + 1)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)) * 1e3, float(np.median(cpu)) * 1e3


def main(argv: list[str] | None = None) -> None:
    from napari_atomseg.simulation import SimulationParameters, simulate
    from napari_atomseg.simulation.library import image_parameters
    from napari_atomseg.simulation.mix import MixConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the multislice rows")
    args = parser.parse_args(argv)

    recipes = {
        "fast HAADF, MoS2 monolayer": dict(mode="haadf", material="MoS2"),
        "fast HAADF, Au [001] 4 nm": dict(mode="haadf", material="Au", thickness_nm=4.0),
        "fast HRTEM, graphene": dict(
            mode="hrtem", material="graphene", energy_keV=80.0, dose_e_per_A2=1e4
        ),
    }
    rows = []
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={threads}, median of {args.repeat} (mixture: {4 * args.repeat})\n"
    )
    print("| model | image | wall ms / image | CPU ms / image | images / s per core (CPU) |")
    print("|---|---|---|---|---|", flush=True)

    def row(label: str, size: str, wall: float, cpu: float) -> None:
        rows.append((label, size, wall, cpu))
        print(f"| {label} | {size} | {wall:.0f} | {cpu:.0f} | {1e3 / cpu:.3g} |", flush=True)

    for label, kw in recipes.items():
        for n in (256, 512):
            p = SimulationParameters(shape_px=(n, n), pixel_size_nm=0.02, **kw)
            wall, cpu = _time(lambda s, p=p: simulate(p.replace(seed=s)), args.repeat)
            row(label, f"{n}^2", wall, cpu)
    for n in (256, 512):
        mix = MixConfig(shape_px=(n, n))
        # A different image of the mixture at every call, as the library generator does.
        wall, cpu = _time(lambda s, mix=mix: simulate(image_parameters(1, s, mix)), 4 * args.repeat)
        row("default mixture (random recipes)", f"{n}^2", wall, cpu)
    if not args.quick:
        # The fast suite's validation case (tests/simulation/test_validation.py): abTEM's
        # cost is the probe positions x the grid x the slices x the frozen phonons.
        ms = dict(
            material="MoS2",
            energy_keV=60.0,
            adf_inner_mrad=60.0,
            adf_outer_mrad=130.0,
            multislice_sampling_nm=0.012,
            frozen_phonons=1,
        )
        for n in (16, 24):
            p = SimulationParameters(
                mode="haadf_multislice", shape_px=(n, n), pixel_size_nm=0.045, **ms
            )
            wall, cpu = _time(lambda s, p=p: simulate(p.replace(seed=s)), 1)
            row("HAADF multislice (abTEM), MoS2, 1 phonon", f"{n}^2", wall, cpu)
        for n in (128, 256):
            p = SimulationParameters(
                mode="hrtem_multislice",
                material="graphene",
                energy_keV=80.0,
                shape_px=(n, n),
                pixel_size_nm=0.025,
                frozen_phonons=8,
            )
            wall, cpu = _time(lambda s, p=p: simulate(p.replace(seed=s)), 1)
            row("HRTEM multislice (abTEM), graphene, 4 phonons", f"{n}^2", wall, cpu)


if __name__ == "__main__":
    main()
