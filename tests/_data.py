"""Where the real data lives (../shared/data), and skipping cleanly when it is absent.

Use ``from tests._data import shared_path`` in test modules.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: ../shared/data beside the checkout; NAPARI_ATOMSEG_SHARED_DATA overrides it.
SHARED_DATA = Path(
    os.environ.get("NAPARI_ATOMSEG_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test when it does not exist."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not present: {path}")
    return path
