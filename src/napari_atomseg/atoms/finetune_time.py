"""How long a fine-tuning run will take here: measured on a few real training steps.

:func:`iter_measure_finetune` starts the very run :func:`~.finetune_user.iter_finetune_atoms`
would make (same images, points, base model, recipe, device and threads) in a temporary
folder, times its set-up and a few training steps after the first, and stops it (the
cancelled run cleans up after itself). What it measures therefore includes everything a
step costs -- sampling and augmenting the crops, rendering their targets, the network's
forward and backward pass -- on this machine, as loaded as it is now.
:meth:`FinetuneTiming.total_s` scales that to the run the user sets up. Takes the set-up
plus ``n_steps + 1`` steps (about 10 s for one image on a 2-core CPU).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._progress import Progress, ProgressGenerator
from .._validate import check_range

#: After the last step: the detection threshold is chosen on every labelled image (one
#: network pass and a grid of post-processings each); seconds per image, an estimate
#: from one Pt image on a 2-core CPU.
THRESHOLD_S_PER_IMAGE = 2.0
#: Steps the measuring run asks for; it is stopped long before.
_PROBE_STEPS = 10_000


@dataclass(frozen=True)
class FinetuneTiming:
    """What :func:`iter_measure_finetune` measured.

    Attributes
    ----------
    step_s
        Seconds per training step (the first step, which warms up, excluded).
    setup_s
        Seconds from the start to the first step (pairs, model, data) for ``n_images``.
    n_images
        How many labelled images the measuring run had.
    """

    step_s: float
    setup_s: float
    n_images: int

    def total_s(self, steps: int, n_images: int | None = None) -> float:
        """Seconds for a run of ``steps`` steps on ``n_images`` images (default: as
        measured): set-up (scaled per image), the steps and the threshold choice."""
        n = self.n_images if n_images is None else max(1, int(n_images))
        setup = self.setup_s * n / max(1, self.n_images)
        return setup + int(steps) * self.step_s + THRESHOLD_S_PER_IMAGE * n


def iter_measure_finetune(
    images: Sequence[Any],
    points: Sequence[Any],
    pixel_sizes_nm: Sequence[float] | float,
    *,
    base: str | os.PathLike[str] = "default",
    n_steps: int = 4,
    **options: Any,
) -> ProgressGenerator[FinetuneTiming]:
    """Time the set-up and ``n_steps`` steps of the fine-tuning run these arguments make.

    ``options`` are further :func:`~.finetune_user.iter_finetune_atoms` arguments
    (``contrast``, ``device``, ``threads`` ...); ``steps`` is ignored. Nothing is kept.
    """
    from .finetune_user import iter_finetune_atoms

    n_steps = int(check_range(n_steps, 1, 100, "n_steps"))
    options = {k: v for k, v in options.items() if k != "steps"}
    stamps: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="atomseg_timing_") as tmp:
        t0 = time.perf_counter()
        run = iter_finetune_atoms(
            images, points, pixel_sizes_nm, tmp, base=base, steps=_PROBE_STEPS, **options
        )
        try:
            for progress in run:
                if progress.message.startswith("step") and progress.done > 0:
                    stamps.append((time.perf_counter(), progress.done))
                    yield Progress(len(stamps), n_steps + 1, "timing the training steps...")
                    if len(stamps) > n_steps:
                        break
                else:
                    yield Progress(0, n_steps + 1, "timing the set-up...")
        finally:
            run.close()
    (t_first, first), (t_last, last) = stamps[0], stamps[-1]
    step_s = (t_last - t_first) / max(1, last - first)
    # The first stamp closes the first step, which also counts as set-up here.
    setup_s = t_first - t0 - step_s
    return FinetuneTiming(step_s, max(0.0, setup_s), len(images))
