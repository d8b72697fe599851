"""Contact sheet of random library images with their ground truth overlaid.

Draws ``--n`` recipes from a training mixture exactly as ``napari-atomseg simulate`` does
(image i of a library with ``--seed`` uses ``image_parameters(seed, i, mix)``), simulates
them and writes one PNG: each tile shows the micrograph (0.5-99.5 % contrast) with the
visible ground-truth columns as green dots (invisible ones red), the contamination
(orange) and support (yellow-green) outlines, and a caption (mode, material or scene,
pixel size, dose). Run from the repository root::

    python docs/make_contact_sheet.py                     # 50 images of the default mix
    python docs/make_contact_sheet.py --n 20 --mix atoms --out /tmp/atoms.png
    python docs/make_contact_sheet.py --samples    # the 3 npe2 samples -> sim_samples.png

Needs matplotlib (a dev dependency).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def caption(p) -> str:
    what = p.material if p.scene in ("lattice", "particles") else p.scene.replace("_", " ")
    if p.scene == "single_atoms":
        what = f"{p.single_atom_element} atoms"
    if p.scene == "particles":
        what = f"{p.material} {p.particle_shape[:4]}."
    mode = "HAADF" if p.mode.startswith("haadf") else "HRTEM"
    return f"{mode} {what} {p.pixel_size_nm:.3f} nm/px {p.dose_e_per_A2:.0e} e/A2"


def draw(ax, result, show_truth: bool = True) -> None:
    img = result.image
    lo, hi = np.percentile(img, [0.5, 99.5])
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="none")
    if show_truth:
        cls = result.masks["classes"]
        for value, colour in ((3, "#ff8c00"), (2, "#9acd32")):
            m = cls == value
            if m.any() and not m.all():
                ax.contour(m, levels=[0.5], colors=[colour], linewidths=0.6)
        c = result.columns
        if len(c):
            vis = c.visible.to_numpy(bool)
            size = 1.5 if len(c) > 400 else 3.0
            ax.scatter(c.x_px[vis], c.y_px[vis], s=size, c="#00ff80", linewidths=0)
            ax.scatter(c.x_px[~vis], c.y_px[~vis], s=size, c="#ff3030", linewidths=0)
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    ax.set_title(caption(result.parameters), fontsize=5.5, pad=1.5)


def _save_small_png(fig, out: Path, dpi: int, colors: int = 256) -> None:
    """Save as a palette PNG of ``colors`` colours (noisy micrographs barely compress:
    256 colours keep a 50-image sheet ~1 MB, 48 colours and a lower dpi ~1/3 of it)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=colors, dither=Image.Dither.NONE)
    image.save(out, optimize=True)


def samples(out: Path) -> None:
    """The three File > Open Sample micrographs, without and with their ground truth."""
    import matplotlib.pyplot as plt

    from napari_atomseg._napari.sample_data import SAMPLES, sample_parameters
    from napari_atomseg.simulation import simulate

    fig, axes = plt.subplots(2, len(SAMPLES), figsize=(4 * len(SAMPLES), 8.3))
    for col, name in enumerate(SAMPLES):
        result = simulate(sample_parameters(name))
        draw(axes[0, col], result, show_truth=False)
        draw(axes[1, col], result, show_truth=True)
        axes[0, col].set_title(name, fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.96, wspace=0.04, hspace=0.1)
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_small_png(fig, out, dpi=100)
    print(f"{out}: the npe2 samples")


def main(argv: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_atomseg.simulation import load_mix, simulate
    from napari_atomseg.simulation.library import image_parameters

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--mix", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cols", type=int, default=10)
    parser.add_argument("--no-truth", action="store_true", help="images only, no overlay")
    parser.add_argument("--samples", action="store_true", help="draw the npe2 sample data")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--dpi", type=int, default=110)
    parser.add_argument("--colors", type=int, default=256, help="PNG palette size")
    args = parser.parse_args(argv)
    if args.samples:
        samples(args.out or HERE / "images" / "sim_samples.png")
        return
    args.out = args.out or HERE / "images" / "sim_contact_sheet.png"

    mix = load_mix(args.mix)
    rows = int(np.ceil(args.n / args.cols))
    fig, axes = plt.subplots(rows, args.cols, figsize=(1.6 * args.cols, 1.72 * rows))
    t0 = time.perf_counter()
    for i, ax in enumerate(np.ravel(axes)):
        if i >= args.n:
            ax.set_axis_off()
            continue
        draw(ax, simulate(image_parameters(args.seed, i, mix)), not args.no_truth)
    seconds = time.perf_counter() - t0
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.005, top=0.985, wspace=0.03, hspace=0.12)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _save_small_png(fig, args.out, dpi=args.dpi, colors=args.colors)
    print(f"{args.out}: {args.n} images of mix {args.mix!r} (seed {args.seed}) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
