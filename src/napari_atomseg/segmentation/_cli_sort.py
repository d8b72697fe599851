"""``napari-atomseg sort FOLDER``: rank a folder of images by clean-lattice fraction.

The command lives in :mod:`._cli` beside ``segment``; this module only gives the
dispatcher in ``napari_atomseg.cli`` its ``configure`` / ``run`` pair.
"""

from __future__ import annotations

from ._cli import configure_sort as configure
from ._cli import run_sort as run

__all__ = ["configure", "run"]
