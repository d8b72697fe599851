"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._data import shared_path


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder (test skipped when absent)."""
    return shared_path()
