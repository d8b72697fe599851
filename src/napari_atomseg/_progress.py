"""Progress reporting without Qt: long computations are generators.

A long computation is written as a generator that yields :class:`Progress` records and
*returns* its result (``return value`` inside the generator). Three drivers consume it:

- the napari widgets run it inside ``napari.qt.threading.thread_worker`` (progress bar,
  cancel between yields),
- the CLI drains it with a tqdm bar (:func:`drain` with ``callback``),
- tests and scripts call :func:`drain` directly.

Compute modules import only this file, never Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One step of a long computation: ``done`` of ``total`` units, with a short message."""

    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """``done / total`` within [0, 1] (1 when there is no total)."""
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressGenerator = Generator[Progress, None, T]


def drain(
    gen: Generator[Progress, Any, T],
    callback: Callable[[Progress], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> T:
    """Run a progress generator to the end and return its result.

    ``callback`` receives every :class:`Progress`; if ``should_stop()`` becomes true the
    generator is closed and :class:`napari_atomseg.errors.Cancelled` is raised.
    """
    from .errors import Cancelled

    try:
        while True:
            step = next(gen)
            if callback is not None:
                callback(step)
            if should_stop is not None and should_stop():
                gen.close()
                raise Cancelled("cancelled by the user")
    except StopIteration as stop:
        return stop.value


def as_part(
    gen: Generator[Progress, Any, T], k: int, n: int, what: str
) -> Generator[Progress, Any, T]:
    """Re-emit ``gen``'s Progress as part ``k`` of ``n`` (units of 1/100 of a part), the
    message prefixed with ``"{what} k+1/n: "`` when there is more than one part; returns
    ``gen``'s result."""
    while True:
        try:
            step = next(gen)
        except StopIteration as done:
            return done.value
        prefix = f"{what} {k + 1}/{n}: " if n > 1 else ""
        yield Progress(100 * k + int(100 * step.fraction), 100 * n, prefix + step.message)
