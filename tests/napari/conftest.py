"""Fixtures for the widget tests: one CPU thread, and a tiny exported atoms model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests._synth import LATTICE_PIXEL_SIZE_NM


@pytest.fixture(scope="package", autouse=True)
def one_thread(limit_threads: Callable[[int], AbstractContextManager[None]]) -> Iterator[None]:
    """The widget tests run torch on one CPU thread (enough for the tiny model)."""
    with limit_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_atoms_card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Card path of an untrained atoms model working at the widget tests' pixel size
    (plumbing, not accuracy)."""
    pytest.importorskip("torch")
    from napari_atomseg.backend import registry
    from tests._models import export_tiny_atoms_model

    card = export_tiny_atoms_model(
        tmp_path_factory.mktemp("model"),
        "atoms_widget_test",
        working_pixel_size_nm=LATTICE_PIXEL_SIZE_NM,
    )
    yield card.path
    registry.clear_cache()
