"""Shared fixtures: the real-data folder, and the CPU threads the tests may use."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests._data import shared_path

THREADS_ENV = "NAPARI_ATOMSEG_THREADS"


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder (test skipped when absent)."""
    return shared_path()


@pytest.fixture(scope="session")
def limit_threads() -> Callable[[int], AbstractContextManager[None]]:
    """``with limit_threads(n):`` runs the code under test on at most ``n`` CPU threads.

    Inside, ``NAPARI_ATOMSEG_THREADS`` is ``n`` unless the caller set it before pytest
    started (their choice wins), and torch's intra-op thread count is at most ``n`` if
    torch is loaded (test modules that use it import it when collected); both are
    restored on exit. The tests share small machines with training jobs.
    """
    caller = os.environ.get(THREADS_ENV)  # read before any test changes it

    @contextlib.contextmanager
    def limit(n: int) -> Iterator[None]:
        # Only a torch the collected tests already imported, so runs that never use torch
        # (io, readers) do not load it for this.
        torch = sys.modules.get("torch")
        before = torch.get_num_threads() if torch is not None else None
        with pytest.MonkeyPatch.context() as mp:
            if caller is None:
                mp.setenv(THREADS_ENV, str(n))
            if torch is not None:
                torch.set_num_threads(min(n, before))
            try:
                yield
            finally:
                if torch is not None:
                    torch.set_num_threads(before)

    return limit


@pytest.fixture(scope="session", autouse=True)
def two_threads(limit_threads: Callable[[int], AbstractContextManager[None]]) -> Iterator[None]:
    """Every test runs on at most two CPU threads (see :func:`limit_threads`)."""
    with limit_threads(2):
        yield
