"""The ``napari-atomseg`` command line: batch entry points over the same compute as napari.

Each sub-command lives next to the code it drives, in a module that exposes
``configure(parser)`` (adds its arguments; must import nothing heavy) and
``run(args) -> int`` (the exit code). This file only dispatches, so adding a sub-command
never touches another one.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__

#: sub-command -> (module, one-line help). Modules are imported when the parser is built,
#: so they must be light at import time (no torch, abtem or Qt at module level).
#: Each owner adds one line here when its module exists.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "napari_atomseg._cli_demo",
        "the main job end to end: simulate (or read) an image, find atoms, segment, write results, open napari",
    ),
    "train": (
        "napari_atomseg.backend._cli",
        "train or fine-tune a model from a YAML config (writes safetensors + model card)",
    ),
    "info": (
        "napari_atomseg.io._cli_info",
        "show what the readers find in files: pixel size, units, instrument",
    ),
    "convert": (
        "napari_atomseg.io._cli_convert",
        "convert DM/MRC/TIA/EMD/TIFF images to calibrated ImageJ TIFFs",
    ),
    "segment": (
        "napari_atomseg.segmentation._cli",
        "segment contamination / nanoparticles; write label TIFFs and a ranking CSV",
    ),
    "sort": (
        "napari_atomseg.segmentation._cli_sort",
        "rank a folder of images by clean-lattice fraction",
    ),
    "atoms": ("napari_atomseg.atoms._cli", "find atomic columns; one CSV per image + a summary"),
    "finetune": (
        "napari_atomseg.atoms._cli_finetune",
        "fine-tune the atom finder on your hand-corrected atom positions (image + CSV)",
    ),
    "track": (
        "napari_atomseg.track._cli",
        "movies: drift, atoms tracked across frames, jumps; tracks/drift CSV + registered average",
    ),
    "lattice": ("napari_atomseg.lattice._cli", "sublattices, strain, polarisation, intensities"),
    "simulate": (
        "napari_atomseg.simulation._cli",
        "write a zarr library of random synthetic micrographs with exact ground truth",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``napari-atomseg`` parser, one sub-parser per :data:`SUBCOMMANDS` entry."""
    parser = argparse.ArgumentParser(
        prog="napari-atomseg",
        description="Find atomic columns and segment contamination/nanoparticles in "
        "electron micrographs (DM3/DM4/MRC/TIFF/SER/EMD).",
    )
    parser.add_argument("--version", action="version", version=f"napari-atomseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).configure(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sub-command ``argv`` names (default: ``sys.argv[1:]``); its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
