"""Which device runs the networks, and how many CPU threads they use: the one place.

Nothing here touches torch's global state at import time. :func:`get_device` picks
cuda, then mps, then cpu, unless ``NAPARI_ATOMSEG_DEVICE`` (e.g. ``cpu``, ``cuda:1``)
says otherwise. :func:`torch_threads` is a context manager that gives the *calling
thread* a sensible intra-op thread count and restores the previous one afterwards.

Why a per-thread setting: torch's CPU kernels run on OpenMP, whose thread count is an
OpenMP per-thread setting. ``torch.set_num_threads`` in the main thread does not reach
a thread started later (napari's ``thread_worker``, a ``threading.Thread``): such a
thread starts from OpenMP's default instead, and setting it there again costs nothing.
``benchmarks/backend_tiling.py`` measures inference in the main thread and in a worker
thread; :func:`~napari_atomseg.backend.inference.iter_predict` always runs inside
:func:`torch_threads`, which makes the two equal.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    import torch

#: Environment variable forcing the device, e.g. ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
DEVICE_ENV = "NAPARI_ATOMSEG_DEVICE"
#: Environment variable forcing the number of CPU threads used for inference/training.
THREADS_ENV = "NAPARI_ATOMSEG_THREADS"


def _available(kind: str) -> bool:
    import torch

    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available())
    return kind == "cpu"


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return the torch device to run on.

    Order: the ``NAPARI_ATOMSEG_DEVICE`` environment variable, then ``prefer`` (``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ``"mps"``, a ``torch.device`` or ``"auto"``/None), then
    cuda > mps > cpu, whichever is available. Asking for a device that is not available
    raises :class:`InputError` (never a silent fall-back to a much slower CPU).

    Parameters
    ----------
    prefer
        The device asked for; the environment variable wins over it.

    Returns
    -------
    torch.device
        An available device.
    """
    import torch

    env = os.environ.get(DEVICE_ENV, "").strip()
    request = env or (str(prefer) if prefer is not None else "auto")
    source = f"environment variable {DEVICE_ENV}" if env else "device"
    if request.lower() == "auto":
        for kind in ("cuda", "mps"):
            if _available(kind):
                return torch.device(kind)
        return torch.device("cpu")
    try:
        dev = torch.device(request)
    except (RuntimeError, TypeError) as exc:
        raise InputError(
            f"{source}: {request!r} is not a device (use cpu, cuda, cuda:N, mps or auto)"
        ) from exc
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"{source}: device type {dev.type!r} is not supported (cpu, cuda, mps)")
    if not _available(dev.type):
        raise InputError(
            f"{source}: {request!r} was requested but is not available on this machine"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(
            f"{source}: {request!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    return dev


def default_num_threads() -> int:
    """CPU threads for torch: ``NAPARI_ATOMSEG_THREADS`` or the CPUs this process may use.

    Logical CPUs beyond the physical cores add little to convolution throughput but are
    harmless; on a shared machine set ``NAPARI_ATOMSEG_THREADS`` (or OMP_NUM_THREADS).
    """
    env = os.environ.get(THREADS_ENV) or os.environ.get("OMP_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise InputError(
                f"{THREADS_ENV}/OMP_NUM_THREADS must be an integer, got {env!r}"
            ) from None
        if n >= 1:
            return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int | None = None) -> Iterator[int]:
    """Set torch's intra-op CPU thread count for the calling thread, restore it on exit.

    Parameters
    ----------
    n
        Threads (>= 1); None: :func:`default_num_threads`.

    Yields
    ------
    int
        The thread count in effect inside the ``with`` block.
    """
    import torch

    n = default_num_threads() if n is None else int(n)
    if n < 1:
        raise InputError(f"threads must be >= 1, got {n}")
    previous = torch.get_num_threads()
    if previous != n:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
