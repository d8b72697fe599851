"""Backend speed and memory: network forward times, full tiled predictions, threads, RSS.

Prints tables (no asserts); the numbers in docs/backend.md come from

    python benchmarks/backend_tiling.py                 # everything (~5 min on 2 cores)
    python benchmarks/backend_tiling.py forward         # one section: forward | predict |
                                                        #   threads | memory

Sections
- forward: forward time of candidate U-Nets on one 1024^2 (atoms) or 512^2/1024^2 input,
  eager NCHW vs channels_last vs TorchScript-frozen, under torch.inference_mode, with
  batch norm folded. Minimum of several runs (the machine is shared).
- predict: the whole iter_predict (resample, normalise, tiles, blend, map back) on a
  1024^2 image for the atom candidates and a 2048^2 image for the segmentation candidates.
- threads: the same prediction in the main thread, in a threading.Thread, and in a
  thread that never calls torch_threads (what a naive worker would do).
- memory: peak RSS above the baseline for an 8192^2 float32 image, measured in a fresh
  subprocess per model (ru_maxrss), for a 1-channel and a 3-channel model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ATOM_CANDIDATES = {
    "a8_d3": {"base_channels": 8, "depth": 3},
    "a8_d3_c1": {"base_channels": 8, "depth": 3, "convs_per_block": 1},
    "a12_d3_c1": {"base_channels": 12, "depth": 3, "convs_per_block": 1},
    "a16_d3": {"base_channels": 16, "depth": 3},
    "a16_d3_s2": {"base_channels": 16, "depth": 3, "stem_stride": 2},
    "a24_d3_s2": {"base_channels": 24, "depth": 3, "stem_stride": 2},
}
SEG_CANDIDATES = {
    "s16_d4_s4": {"base_channels": 16, "depth": 4, "stem_stride": 4},
    "s24_d4_s4": {"base_channels": 24, "depth": 4, "stem_stride": 4},
    "s32_d4_s4": {"base_channels": 32, "depth": 4, "stem_stride": 4},
    "s16_d4_s2": {"base_channels": 16, "depth": 4, "stem_stride": 2},
}


def _min_time(fn, repeats: int = 5, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _net(arch: dict, heads=(1,), fold: bool = True):
    import torch

    from napari_atomseg.backend.nets import build_model, fold_batchnorm

    torch.manual_seed(0)
    net = build_model(arch, heads).eval()
    return fold_batchnorm(net) if fold else net


def forward(threads: int) -> None:
    import torch

    from napari_atomseg.backend.nets import count_parameters

    torch.set_num_threads(threads)
    print(f"\n## forward time, ms (min of 5; torch {torch.__version__}, {threads} threads)\n")
    print("| model | params | input | NCHW | channels_last | jit.freeze + channels_last |")
    print("|---|---|---|---|---|---|")
    cases = [(n, a, 1024) for n, a in ATOM_CANDIDATES.items()]
    cases += [(n, a, 512) for n, a in SEG_CANDIDATES.items()]
    cases += [(n, a, 1024) for n, a in SEG_CANDIDATES.items()]
    for name, arch, side in cases:
        net = _net(arch)
        x = torch.randn(1, 1, side, side)
        row = []
        with torch.inference_mode():
            row.append(_min_time(lambda: net(x)))
            net_cl = net.to(memory_format=torch.channels_last)
            xc = x.contiguous(memory_format=torch.channels_last)
            row.append(_min_time(lambda: net_cl(xc)))
            frozen = torch.jit.freeze(torch.jit.trace(net_cl, xc))
            row.append(_min_time(lambda: frozen(xc)))
        print(
            f"| {name} | {count_parameters(net):,} | {side}^2 | "
            + " | ".join(f"{1000 * t:.0f}" for t in row)
            + " |",
            flush=True,
        )


def _export(arch: dict, name: str, folder: Path, *, task: str, working: float, heads) -> Path:
    from napari_atomseg.backend.cards import card_from_dict
    from napari_atomseg.backend.registry import export_model

    outputs = (
        [{"name": "heatmap", "activation": "sigmoid"}]
        if task == "atoms"
        else [{"name": "classes", "activation": "softmax", "channels": heads[0]}]
    )
    card = card_from_dict(
        {
            "name": name,
            "task": task,
            "architecture": {"type": "unet", **arch},
            "outputs": outputs,
            "classes": None if task == "atoms" else ["vacuum", "crystal", "amorphous"],
            "input": {
                "working_pixel_size_nm": working,
                "pixel_size_range_nm": [0.002, 0.5],
                "tile_px": 512 if task == "atoms" else 1024,
                "overlap_px": 64,
            },
        }
    )
    return export_model(_net(arch, heads, fold=False), card, folder / name).path


def _image(side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.poisson(30, (side, side)) + 100).astype(np.uint16)


def predict_section(threads: int, folder: Path) -> None:
    from napari_atomseg.backend import predict
    from napari_atomseg.backend.registry import get_model

    print(
        f"\n## full prediction, s (min of 3; {threads} threads; image at the working pixel size)\n"
    )
    print("| model | image | tiles of | total | resample | normalise | network | map back |")
    print("|---|---|---|---|---|---|---|---|")
    cases = [(n, a, "atoms", 1024, 0.02, 0.02) for n, a in ATOM_CANDIDATES.items()]
    cases += [(n, a, "segmentation", 2048, 0.05, 0.03) for n, a in SEG_CANDIDATES.items()]
    for name, arch, task, side, working, px in cases:
        heads = (1,) if task == "atoms" else (3,)
        path = _export(arch, name, folder, task=task, working=working, heads=heads)
        model = get_model(path)
        img = _image(side)
        best = None
        for _ in range(3):
            p = predict(model, img, px, threads=threads)
            if best is None or p.timings_s["total_s"] < best["total_s"]:
                best = dict(p.timings_s)
        tile = model.card.input.tile_px
        print(
            f"| {name} | {side}^2 @ {px} nm/px -> {working} | {tile} | {best['total_s']:.2f} | "
            f"{best['resample_s']:.3f} | {best['normalise_s']:.3f} | {best['network_s']:.2f} | "
            f"{best['map_back_s']:.3f} |",
            flush=True,
        )


def threads_section(threads: int, folder: Path) -> None:
    import torch

    from napari_atomseg.backend import predict
    from napari_atomseg.backend.registry import get_model

    arch = ATOM_CANDIDATES["a16_d3_s2"]
    model = get_model(_export(arch, "thr", folder, task="atoms", working=0.02, heads=(1,)))
    img = _image(1024)

    def run_in_thread(fn) -> float:
        out = {}

        def target():
            out["t"] = _min_time(fn, repeats=3, warmup=1)

        t = threading.Thread(target=target)
        t.start()
        t.join()
        return out["t"]

    print(f"\n## main thread vs worker thread, s (min of 3; 1024^2, {arch})\n")
    print("| where | torch threads in that thread | predict |")
    print("|---|---|---|")
    torch.set_num_threads(threads)
    t_main = _min_time(lambda: predict(model, img, 0.02, threads=threads), repeats=3, warmup=1)
    print(f"| main thread | {threads} | {t_main:.2f} |")
    t_thr = run_in_thread(lambda: predict(model, img, 0.02, threads=threads))
    print(f"| threading.Thread, iter_predict sets threads | {threads} | {t_thr:.2f} |")
    # A worker in a process whose main thread was set to 1 thread (e.g. by another library):
    torch.set_num_threads(1)
    seen = {}

    def naive():
        seen["n"] = torch.get_num_threads()
        from napari_atomseg.backend.inference import iter_predict

        gen = iter_predict(model, img, 0.02, threads=torch.get_num_threads())
        try:
            while True:
                next(gen)
        except StopIteration:
            pass

    t_naive = run_in_thread(naive)
    print(f"| threading.Thread, inherits main's setting of 1 | {seen.get('n')} | {t_naive:.2f} |")
    t_fixed = run_in_thread(lambda: predict(model, img, 0.02))
    print(
        f"| threading.Thread, iter_predict default (NAPARI_ATOMSEG_THREADS / cores) | auto | {t_fixed:.2f} |"
    )
    torch.set_num_threads(threads)


_MEMORY_CHILD = r"""
import json, resource, sys, numpy as np
from napari_atomseg.backend import predict
from napari_atomseg.backend.registry import get_model
path, side, px = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
model = get_model(path)
img = np.random.default_rng(0).random((side, side), dtype=np.float32)
# warm up on a small image so one-off allocations (oneDNN, scipy) are in the baseline
predict(model, img[:256, :256].copy(), px)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import psutil
base_now = psutil.Process().memory_info().rss
steps = 0
from napari_atomseg.backend.inference import iter_predict
gen = iter_predict(model, img, px)
import time
t = time.perf_counter()
try:
    while True:
        next(gen); steps += 1
except StopIteration as s:
    pred = s.value
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_extra_mb": (peak * 1024 - base_now) / 2**20, "output_mb": pred.outputs.nbytes / 2**20,
                  "input_mb": img.nbytes / 2**20, "seconds": time.perf_counter() - t, "progress_steps": steps}))
"""


def memory_section(folder: Path) -> None:
    print(
        "\n## peak memory for an 8192^2 float32 image (fresh process each; RSS above the baseline)\n"
    )
    print("| model | pixel size -> working | output | peak extra RSS | time |")
    print("|---|---|---|---|---|")
    cases = [
        ("mem_atoms", ATOM_CANDIDATES["a16_d3_s2"], "atoms", (1,), 0.02, 0.02),
        ("mem_atoms_rs", ATOM_CANDIDATES["a16_d3_s2"], "atoms", (1,), 0.02, 0.015),
        ("mem_seg", SEG_CANDIDATES["s16_d4_s4"], "segmentation", (3,), 0.05, 0.04),
    ]
    rows = []  # (label, card path, pixel size of the image, working pixel size)
    for name, arch, task, heads, working, px in cases:
        path = _export(arch, name, folder, task=task, working=working, heads=heads)
        rows.append((f"{name} ({len(heads)} head, {heads[0]} ch)", path, px, working))
    # The shipped default atom model, background subtraction included (its card says so).
    from napari_atomseg.backend.cards import load_card

    card = load_card("atoms_default")
    working = card.input.working_pixel_size_nm
    label = f"atoms_default (shipped; background {card.input.background_sigma_nm} nm)"
    rows += [(label, card.path, px, working) for px in (working, 0.02)]
    for label, path, px, working in rows:
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(path), "8192", str(px)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {label} | {px} -> {working} | {r['output_mb']:.0f} MB | "
            f"{r['peak_extra_mb']:.0f} MB | {r['seconds']:.0f} s |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sections", nargs="*", default=["forward", "predict", "threads", "memory"])
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    os.environ.setdefault("NAPARI_ATOMSEG_THREADS", str(args.threads))
    print(
        f"# backend benchmark ({os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for section in args.sections:
            if section == "forward":
                forward(args.threads)
            elif section == "predict":
                predict_section(args.threads, folder)
            elif section == "threads":
                threads_section(args.threads, folder)
            elif section == "memory":
                memory_section(folder)
            else:
                raise SystemExit(f"unknown section {section!r}")


if __name__ == "__main__":
    main()
