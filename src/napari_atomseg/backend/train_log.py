"""What a training run writes as it goes: a CSV of metrics by step, plain-text progress
lines, and the record of the command and hardware it ran on (for the model card)."""

from __future__ import annotations

import csv
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .train_config import TrainConfig

#: Columns every CSV log starts with; validation metrics are appended as ``val_NAME``.
CSV_FIELDS = ("step", "wall_time_s", "lr", "train_loss")


class TrainLog:
    """A run's CSV and text logs in ``out_dir`` (``NAME.train_log.csv`` / ``.txt``).

    Parameters
    ----------
    out_dir
        The run's folder.
    name
        The run's name (the config's ``name``).
    echo
        Also receives every text line (e.g. ``print``); None: the file only.
    """

    def __init__(self, out_dir: Path, name: str, echo: Callable[[str], None] | None) -> None:
        self.csv_path = out_dir / f"{name}.train_log.csv"
        self.text_path = out_dir / f"{name}.train_log.txt"
        self.echo = echo
        self._fields = list(CSV_FIELDS)

    def line(self, text: str) -> None:
        """Append a progress line to the text log and echo it."""
        with open(self.text_path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        if self.echo is not None:
            self.echo(text)

    def row(self, row: Mapping[str, Any]) -> None:
        """Append a CSV row; new columns rewrite the file with the wider header."""
        self._fields = _append_csv(self.csv_path, row, self._fields)

    def start_afresh(self) -> None:
        """Remove the logs of an earlier run in the same folder."""
        for p in (self.csv_path, self.text_path):
            p.unlink(missing_ok=True)

    def trim_after(self, step: int) -> None:
        """Drop CSV rows written after ``step`` (the checkpoint a resumed run restarts from)."""
        if not self.csv_path.is_file():
            return
        with open(self.csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            names = reader.fieldnames or []
            rows = [r for r in reader if int(r["step"]) <= step]
        with open(self.csv_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=names)
            w.writeheader()
            w.writerows(rows)


def _append_csv(path: Path, row: Mapping[str, Any], fields: list[str]) -> list[str]:
    """Append ``row`` to ``path`` (written with ``fields``); returns the fields now in use."""
    new_fields = fields + [k for k in row if k not in fields]
    rows: list[dict[str, Any]] = []
    if path.is_file() and new_fields != fields:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    if not path.is_file() or rows or new_fields != fields:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=new_fields)
            w.writeheader()
            w.writerows(rows)
            w.writerow(dict(row))
    else:
        with open(path, "a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, fieldnames=new_fields).writerow(dict(row))
    return new_fields


def hardware_record(device: Any) -> dict[str, Any]:
    """Device, CPU model, torch threads and versions, for the card's ``training.hardware``."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "device": str(device),
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def default_command(cfg: TrainConfig) -> str:
    """The command recorded in the card when the caller names none: this process's
    ``napari-atomseg ...`` command line, else the Python call that reproduces the run."""
    argv0 = Path(sys.argv[0]).name if sys.argv else ""
    if argv0.startswith("napari-atomseg"):
        return " ".join(["napari-atomseg", *sys.argv[1:]])
    return f"napari_atomseg.backend.train({cfg.config_path or cfg.name!r})"
