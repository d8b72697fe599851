"""Batch runs for the CLIs: one task per image (or frame chunk), in-process or on Dask.

Used by ``napari-atomseg atoms``, ``segment`` and ``track``; the options are those of
``simulate``:

- ``--scheduler synchronous`` (default): this process, one task after the other;
- ``--scheduler local --workers N``: a Dask ``LocalCluster`` of N worker processes with
  one thread each;
- ``--scheduler threads --workers N``: N threads in this process (no torch speed-up
  beyond what the GIL allows; for I/O-bound jobs);
- ``--scheduler tcp://host:8786``: a running ``dask-scheduler`` with its ``dask-worker``\\ s
  (they must see the input and output paths).

Every task runs with the same number of torch threads (``--threads``, default 1, set
through ``NAPARI_ATOMSEG_THREADS`` for the task), so results are identical whatever the
scheduler: a convolution summed by two threads may differ from one thread's in the last
bit, and that can move a sub-pixel position by 1e-7 px. Parallelism comes from workers.

Resume: a task's outputs are written by the task; when its result comes back, the
driver records it in ``OUT/.napari-atomseg/<command>/<digest of key>.json`` (atomic
rename; the key holds the input file and the settings). A
re-run into the same ``--out`` skips every task whose record and outputs exist and uses
the recorded summary row; ``--overwrite`` redoes them all. A task interrupted before its
record was written is simply redone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AtomsegError, InputError

SCHEDULER_HELP = (
    "where tasks run: synchronous (this process, default), local (a Dask LocalCluster of "
    "--workers processes, one thread each), threads, or a scheduler address tcp://host:8786"
)
RECORD_DIR = ".napari-atomseg"


def add_arguments(parser: argparse.ArgumentParser, default: str = "synchronous") -> None:
    """``--scheduler``, ``--workers`` and ``--threads`` (as ``simulate`` has them)."""
    parser.add_argument("--scheduler", default=default, help=SCHEDULER_HELP)
    parser.add_argument(
        "--workers",
        type=int,
        help="worker processes for 'local' / threads for 'threads' (default: CPUs)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per task (default 1; results are identical for any scheduler "
        "with the same value)",
    )


def check_scheduler(scheduler: str, workers: int | None, threads: int = 1) -> None:
    """Raise InputError for an unknown scheduler or a bad worker / thread count."""
    known = scheduler in ("synchronous", "local", "threads") or scheduler.startswith(
        ("tcp://", "tls://", "inproc://", "ucx://")
    )
    if not known:
        raise InputError(
            f"--scheduler: {scheduler!r} is not synchronous, local, threads or a Dask "
            "scheduler address like tcp://host:8786"
        )
    if workers is not None and workers < 1:
        raise InputError(f"--workers: {workers} must be >= 1")
    if threads < 1:
        raise InputError(f"--threads: {threads} must be >= 1")


@dataclass(frozen=True)
class Task:
    """One unit of work: ``func(*args)`` writing ``outputs``; ``key`` names its record."""

    key: str
    func: Callable[..., dict[str, Any]]
    args: tuple[Any, ...]
    outputs: tuple[Path, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """A finished (or skipped) task: its summary row, or the error that stopped it."""

    task: Task
    row: dict[str, Any] | None
    error: str = ""
    skipped: bool = False


def run_task(func: Callable[..., Any], args: tuple, kwargs: dict, threads: int) -> tuple[str, Any]:
    """Run one task with ``threads`` torch threads; ``("ok", value)`` or ``("error", message)``.

    Errors come back as values so one bad file never stops a batch; deliberate errors
    keep their message, anything else its type too.
    """
    from .backend.device import THREADS_ENV

    previous = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(int(threads))
    try:
        return "ok", func(*args, **kwargs)
    except AtomsegError as exc:
        return "error", str(exc)
    except Exception as exc:  # reported per task, the batch goes on
        return "error", f"{type(exc).__name__}: {exc}"
    finally:
        if previous is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = previous


#: Dask's setting for the environment its nannies give new worker processes.
PRE_SPAWN = "distributed.nanny.pre-spawn-environ"


@contextmanager
def dask_client(scheduler: str, workers: int | None) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for ``scheduler`` (None for ``synchronous``)."""
    if scheduler == "synchronous":
        yield None
        return
    from dask.distributed import Client, LocalCluster

    cluster = None
    n = workers or max(1, os.cpu_count() or 1)
    one_thread = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    if scheduler == "local":
        import dask

        # Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536 (to hand memory
        # back to the OS); glibc then maps and unmaps every array over 64 kB, and the
        # finder's array arithmetic ran 3x slower per image in a worker than in this
        # process. The workers get glibc's default instead (read when they start).
        with dask.config.set({f"{PRE_SPAWN}.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=one_thread,
            )
    elif scheduler == "threads":
        cluster = LocalCluster(
            n_workers=1, threads_per_worker=n, processes=False, dashboard_address=None
        )
    client = Client(cluster if cluster is not None else scheduler)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class Records:
    """Done records of one command in an output folder (see the module docstring)."""

    def __init__(self, out_dir: Path, command: str) -> None:
        self.folder = Path(out_dir) / RECORD_DIR / command

    def _path(self, key: str) -> Path:
        import hashlib

        # The key holds the input path and the settings: a digest makes a file name of it.
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def get(self, task: Task) -> dict[str, Any] | None:
        """The recorded row of ``task`` when it finished and its outputs still exist."""
        path = self._path(task.key)
        if not path.is_file() or not all(Path(p).exists() for p in task.outputs):
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return record.get("row") if record.get("key") == task.key else None

    def put(self, task: Task, row: dict[str, Any]) -> None:
        """Record ``task`` as done with its summary ``row`` (written atomically)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(task.key)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": task.key, "row": row}, default=_plain))
        os.replace(tmp, path)

    def clear(self, task: Task) -> None:
        """Forget ``task``'s record, so the next run redoes it."""
        self._path(task.key).unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def run_tasks(
    tasks: Sequence[Task],
    records: Records | None,
    scheduler: str = "synchronous",
    workers: int | None = None,
    threads: int = 1,
    overwrite: bool = False,
    desc: str = "tasks",
    unit: str = "image",
) -> list[Outcome]:
    """Run ``tasks`` (skipping recorded ones unless ``overwrite``) with a progress bar;
    outcomes in the order of ``tasks``."""
    from tqdm import tqdm

    check_scheduler(scheduler, workers, threads)
    outcomes: dict[int, Outcome] = {}
    todo: list[int] = []
    for i, task in enumerate(tasks):
        row = None if (overwrite or records is None) else records.get(task)
        if row is not None:
            outcomes[i] = Outcome(task, row, skipped=True)
        else:
            todo.append(i)
    with tqdm(
        total=len(tasks), initial=len(outcomes), desc=desc, unit=unit, file=sys.stderr
    ) as bar:
        if outcomes:
            bar.set_postfix_str(f"{len(outcomes)} already done", refresh=True)
        for i, status, value in _execute(tasks, todo, scheduler, workers, threads):
            task = tasks[i]
            if status == "ok":
                if records is not None:
                    records.put(task, value)
                outcomes[i] = Outcome(task, value)
            else:
                if records is not None:
                    records.clear(task)
                outcomes[i] = Outcome(task, None, error=str(value))
            bar.update(1)
    return [outcomes[i] for i in range(len(tasks))]


def _execute(
    tasks: Sequence[Task], todo: list[int], scheduler: str, workers: int | None, threads: int
) -> Iterator[tuple[int, str, Any]]:
    if not todo:
        return
    with dask_client(scheduler, workers) as client:
        if client is None:
            for i in todo:
                t = tasks[i]
                yield (i, *run_task(t.func, t.args, t.kwargs, threads))
            return
        from dask.distributed import as_completed

        futures = {
            client.submit(
                run_task, tasks[i].func, tasks[i].args, tasks[i].kwargs, threads, pure=False
            ): i
            for i in todo
        }
        for future in as_completed(futures):
            yield (futures[future], *future.result())
