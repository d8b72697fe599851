"""``napari-atomseg simulate``: write a training library of random synthetic micrographs.

Examples::

    napari-atomseg simulate --n 10000 --out lib.zarr                  # default mixture
    napari-atomseg simulate --n 2000 --out atoms.zarr --mix atoms --seed 7
    napari-atomseg simulate --n 500 --out lib.zarr --mix my_mix.yaml --scheduler tcp://host:8786
    napari-atomseg simulate --list-materials

Running the same command again resumes (finished images are skipped); a larger ``--n``
extends the library. Heavy modules are imported in :func:`run` only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``napari-atomseg simulate``."""
    parser.add_argument("--n", type=int, help="number of images in the library")
    parser.add_argument("--out", type=Path, help="output zarr folder (created or resumed)")
    parser.add_argument(
        "--mix",
        default="default",
        help="mixture: a shipped name (default, atoms, particles) or a YAML file",
    )
    parser.add_argument("--seed", type=int, default=0, help="library seed (default 0)")
    parser.add_argument(
        "--scheduler",
        default="local",
        help="local (dask LocalCluster, default), synchronous, threads, or tcp://host:port",
    )
    parser.add_argument("--workers", type=int, help="worker processes for 'local' (default: CPUs)")
    parser.add_argument(
        "--chunk-images", type=int, default=8, help="images per zarr chunk / dask task (8)"
    )
    parser.add_argument(
        "--shape", type=int, nargs=2, metavar=("H", "W"), help="override the mixture's image size"
    )
    parser.add_argument(
        "--no-clean", action="store_true", help="do not store the noise-free images"
    )
    parser.add_argument(
        "--list-materials", action="store_true", help="print the material catalogue and exit"
    )


def run(args: argparse.Namespace) -> int:
    """``napari-atomseg simulate``: write (or extend) the library. Returns the exit code."""
    from ..errors import AtomsegError

    if args.list_materials:
        from .materials import list_materials

        for name, info in list_materials().items():
            axes = ", ".join(info["zone_axes"])
            extra = " (also nanoparticles)" if info["particle"] else ""
            print(f"{name:9s} {info['kind']:8s} [{axes}]  {info['description']}{extra}")
        return 0
    if args.n is None or args.out is None:
        print("napari-atomseg simulate: --n and --out are required", file=sys.stderr)
        return 2
    try:
        from tqdm import tqdm

        from .._progress import drain
        from .library import generate_library_steps
        from .mix import load_mix

        mix = load_mix(args.mix)
        if args.shape:
            mix = type(mix).from_dict({**mix.to_dict(), "shape_px": list(args.shape)})
        bar = tqdm(total=args.n, unit="img", desc="simulate")

        def update(step) -> None:
            """Show one Progress on the bar."""
            bar.n = step.done
            bar.set_postfix_str(step.message, refresh=False)
            bar.refresh()

        summary = drain(
            generate_library_steps(
                args.out,
                args.n,
                mix,
                seed=args.seed,
                scheduler=args.scheduler,
                workers=args.workers,
                chunk_images=args.chunk_images,
                store_clean=not args.no_clean,
            ),
            callback=update,
        )
        bar.close()
    except AtomsegError as exc:
        print(f"napari-atomseg simulate: {exc}", file=sys.stderr)
        return 1
    rate = summary.images_per_second
    print(
        f"{summary.path}: {summary.n_images} images ({summary.written} written, "
        f"{summary.skipped} already done) in {summary.seconds:.1f} s"
        + (f", {rate:.1f} images/s" if summary.written else "")
    )
    return 0
