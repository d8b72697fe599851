"""A second network pass with the image the other way round, where it can find more columns."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from .._progress import Progress, ProgressGenerator
from . import heatmap as _heatmap
from .heatmap import HeatmapResult
from .image_check import check_disagrees
from .options import FinderOptions

#: A second look replaces the first answer only when more than this many times as many
#: of its columns pass the image check: where the first answer was right the two counts
#: are within a few % of each other (chosen on synthetic tuning/development HRTEM
#: images; 1.0 swapped a MoS2 image at 1208 vs 1206 columns for a slightly worse answer).
SECOND_LOOK_MARGIN = 1.2


def needs_second_look(result: HeatmapResult, atoms: pd.DataFrame, contrast: str) -> bool:
    """Whether :func:`iter_second_look` runs the network again (see there)."""
    if contrast == "auto" or result.looked_again:
        return False  # no contrast to check against, or this already is the second look
    removed = int(atoms.attrs.get("contrast_check_removed", 0))
    return contrast == "dark" or check_disagrees(removed, removed + len(atoms))


def iter_second_look(
    result: HeatmapResult,
    atoms: pd.DataFrame,
    model: Any = "default",
    options: FinderOptions | None = None,
) -> ProgressGenerator[tuple[HeatmapResult, pd.DataFrame]]:
    """Show the network the image the other way round where that can find more columns.

    ``atoms`` is ``heatmap_to_atoms(result, options)``. Runs when the columns' contrast
    was given (not ``"auto"``) and either it is ``"dark"`` (the network first saw the
    inverted image, but which way round it reads better depends on lattice and defocus)
    or the image check removed more than ``CHECK_WARN_FRACTION`` of the network's peaks
    (hollows marked instead of columns). The network then sees the image the other way
    round (one more pass), the same post-processing runs, and the second answer is kept
    when more than :data:`SECOND_LOOK_MARGIN` times as many of its columns pass the image
    check; ``attrs["second_look"]`` says what happened. Otherwise ``(result, atoms)``
    come back unchanged and no network runs.
    """
    from .find import heatmap_to_atoms

    opts = options if options is not None else FinderOptions()
    if not needs_second_look(result, atoms, opts.contrast):
        return result, atoms
    yield Progress(0, 1, "second look: the network sees the image the other way round")
    predict = opts.predict_kwargs()
    other = yield from _heatmap.iter_predict_heatmap(
        result.image,
        result.pixel_size_nm,
        model,
        contrast=result.contrast,
        invert=not result.inverted,
        **predict,
    )
    other = dataclasses.replace(other, pixel_size_estimated=result.pixel_size_estimated)
    again = heatmap_to_atoms(other, opts)
    if len(again) > SECOND_LOOK_MARGIN * len(atoms):
        again.attrs["second_look"] = (
            f"kept: the network saw the image {other.network_input} ({len(again)} columns "
            f"pass the image check) instead of {result.network_input} ({len(atoms)})"
        )
        return other, again
    atoms.attrs["second_look"] = (
        f"discarded: with the image {other.network_input} {len(again)} columns passed the "
        f"image check (image {result.network_input}: {len(atoms)})"
    )
    return result, atoms
