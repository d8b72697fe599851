"""Folder sorting: rank every image of a folder by clean-lattice (or particle) fraction.

Runs :func:`napari_atomseg.segmentation.sorting.iter_rank_images` in a worker (cancel between
images), writes the ranking as CSV (default ``FOLDER/ranking.csv``) and shows it as a
table in the widget, best first; files that failed keep their error in the table. The
segmentation settings come from the parent widget (a callable returning them).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pandas as pd
from magicgui.widgets import CheckBox, Container, FileEdit, PushButton, Table

from napari_atomseg._progress import Progress
from napari_atomseg.errors import AtomsegError, FileWriteError, InputError
from napari_atomseg.segmentation import sorting

from ._runner import RunPanel, notify_error

#: Columns shown in the table (the CSV has them all).
SHOWN = ("rank", "file", "fraction_crystal", "fraction_amorphous", "fraction_vacuum",
         "fraction_background", "fraction_particle", "error")  # fmt: skip


def rank_folder_steps(
    folder: Path, out_csv: Path, recursive: bool, settings: dict[str, Any]
) -> Generator[Progress, None, pd.DataFrame]:
    """Rank the supported files of ``folder`` and write ``out_csv`` (generator)."""
    files = sorting.supported_files(folder, recursive=recursive)
    if not files:
        raise InputError(
            f"{folder}: no image files this plugin reads (DM, MRC, TIFF, SER, EMD, HSPY, PNG...)"
        )
    opts = dict(settings)
    task, method = opts.pop("task"), opts.pop("method")
    pixel_size_nm = opts.pop("pixel_size_nm", None)
    table = yield from sorting.iter_rank_images(files, task, method, pixel_size_nm, **opts)
    try:
        table.to_csv(out_csv, index=False, float_format="%.6g")
    except OSError as exc:
        raise FileWriteError(f"{out_csv}: cannot write the ranking ({exc})") from exc
    return table


def table_rows(table: pd.DataFrame) -> dict[str, list[Any]]:
    """The ranking for magicgui's Table: file names, class fractions in per cent."""
    out: dict[str, list[Any]] = {}
    for col in SHOWN:
        if col not in table:
            continue
        values = table[col]
        if col == "file":
            out[col] = [Path(v).name for v in values]
        elif col.startswith("fraction_"):
            header = col.removeprefix("fraction_")
            out[header] = ["" if pd.isna(v) else f"{100 * float(v):.1f}%" for v in values]
        else:
            out[col] = ["" if pd.isna(v) else v for v in values]
    return out


class SortFolderWidget(Container):
    """Folder -> ranked CSV + table (settings from ``settings()``)."""

    def __init__(self, settings: Callable[[], dict[str, Any]]) -> None:
        self._settings = settings
        self.folder = FileEdit(mode="d", label="folder")
        self.recursive = CheckBox(value=False, text="include sub-folders")
        self.out_csv = FileEdit(mode="w", filter="*.csv", label="CSV", value="")
        self.rank_button = PushButton(text="Rank folder")
        self.panel = RunPanel()
        self.table = Table(value={"rank": [], "file": []})
        super().__init__(
            widgets=[
                self.folder,
                self.recursive,
                self.out_csv,
                self.rank_button,
                self.panel,
                self.table,
            ]
        )
        self.rank_button.changed.connect(self.run)

    def csv_path(self, folder: Path) -> Path:
        """The CSV chosen, else ``ranking.csv`` in ``folder``."""
        chosen = str(self.out_csv.value or "").strip()
        if chosen and chosen != "." and chosen.endswith(".csv"):
            return Path(chosen)
        return folder / "ranking.csv"

    def run(self) -> Any:
        """Rank the chosen folder and write the CSV; returns the worker (None when the
        input was refused)."""
        try:
            value = str(self.folder.value or "").strip()
            folder = Path(value)
            if not value or value == "." or not folder.is_dir():
                raise InputError(f"choose a folder of images first (got {value or 'nothing'!r})")
            out = self.csv_path(folder)
            return self.panel.start(
                rank_folder_steps,
                folder,
                out,
                bool(self.recursive.value),
                self._settings(),
                on_result=lambda table: self._show(table, out),
            )
        except AtomsegError as exc:
            notify_error(exc)
            self.panel.status.value = f"not started: {exc}"[:200]
            return None

    def _show(self, table: pd.DataFrame, out: Path) -> str:
        self.table.value = table_rows(table)
        failed = int((table["error"].fillna("") != "").sum())
        return f"ranked {len(table) - failed} image(s), {failed} failed; wrote {out}"
