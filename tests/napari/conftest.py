"""Fixtures for the widget tests: a tiny exported atoms model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._synth import LATTICE_PIXEL_SIZE_NM

os.environ.setdefault("NAPARI_ATOMSEG_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_atoms_card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Card path of an untrained atoms model working at the widget tests' pixel size
    (plumbing, not accuracy)."""
    torch = pytest.importorskip("torch")
    from napari_atomseg.backend import registry
    from tests._models import export_tiny_atoms_model

    torch.set_num_threads(1)
    card = export_tiny_atoms_model(
        tmp_path_factory.mktemp("model"),
        "atoms_widget_test",
        working_pixel_size_nm=LATTICE_PIXEL_SIZE_NM,
    )
    yield card.path
    registry.clear_cache()
