"""``napari-atomseg train CONFIG.yaml``: train (or fine-tune) a model from a config file.

Light at import time (the CLI parser imports it): torch is imported only in :func:`run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``napari-atomseg train``."""
    parser.add_argument("config", help="training config (YAML); see docs/backend.md")
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT_DIR/checkpoint.safetensors"
    )
    parser.add_argument("--steps", type=int, help="override the number of optimiser steps")
    parser.add_argument(
        "--seed",
        type=int,
        help="override the config's seed (several seeds of one recipe show its spread)",
    )
    parser.add_argument("--out", dest="out_dir", help="override out_dir (checkpoints, logs)")
    parser.add_argument(
        "--export-dir", help="where NAME.safetensors + NAME.yaml go (default: out_dir)"
    )
    parser.add_argument(
        "--device", help="cpu, cuda, cuda:N, mps or auto (NAPARI_ATOMSEG_DEVICE wins)"
    )
    parser.add_argument("--workers", type=int, help="DataLoader worker processes (0: in-process)")
    parser.add_argument("--threads", type=int, help="torch CPU threads for the training process")
    parser.add_argument("--init-from", help="fine-tune: start from this model (name or card path)")
    parser.add_argument(
        "--pairs", help="fine-tune: .npz of real (image, target) pairs (save_pairs format)"
    )
    parser.add_argument("--val-pairs", help=".npz of held-out pairs to validate on")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines (the logs are still written)"
    )


def _command(args: argparse.Namespace) -> str:
    """The command line as the user would retype it (recorded in the model card)."""
    parts = ["napari-atomseg", "train", args.config]
    if args.resume:
        parts.append("--resume")
    for key in (
        "steps",
        "seed",
        "out_dir",
        "export_dir",
        "device",
        "workers",
        "threads",
        "init_from",
        "pairs",
        "val_pairs",
    ):
        value = getattr(args, key)
        if value is not None:
            flag = "--out" if key == "out_dir" else "--" + key.replace("_", "-")
            parts += [flag, str(value)]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    """``napari-atomseg train``: train, print the card's path. Returns the exit code."""
    from ..errors import AtomsegError
    from .train_loop import TrainConfig, train

    try:
        cfg = TrainConfig.from_yaml(args.config)
        overrides = {
            key: getattr(args, key)
            for key in (
                "steps",
                "seed",
                "out_dir",
                "export_dir",
                "device",
                "workers",
                "threads",
                "init_from",
                "pairs",
                "val_pairs",
            )
            if getattr(args, key) is not None
        }
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)
            cfg.validate()
        result = train(
            cfg,
            resume=args.resume,
            log=None if args.quiet else (lambda line: print(line, flush=True)),
            command=_command(args),
        )
    except AtomsegError as exc:
        print(f"napari-atomseg train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("napari-atomseg train: interrupted; continue with --resume", file=sys.stderr)
        return 130
    print(f"model written: {result.card_path} (validation: {dict(result.validation)})")
    return 0
