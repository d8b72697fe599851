"""The batch runner's Dask clusters (``napari_atomseg._batch``)."""

from __future__ import annotations

import os

import pytest

from napari_atomseg._batch import check_scheduler, dask_client
from napari_atomseg.errors import InputError


def _worker_environment() -> dict[str, str | None]:
    names = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    return {name: os.environ.get(name) for name in names}


def test_local_workers_run_one_thread_with_glibc_s_own_malloc_settings():
    """Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, under which every
    array over 64 kB is mapped and unmapped afresh: the finder ran 3x slower per image in
    a worker than in-process. ``--scheduler local`` workers must not get it."""
    pytest.importorskip("distributed")
    with dask_client("local", 1) as client:
        (environment,) = client.run(_worker_environment).values()
    assert environment["MALLOC_TRIM_THRESHOLD_"] is None
    assert environment["OMP_NUM_THREADS"] == "1" and environment["MKL_NUM_THREADS"] == "1"


def test_unknown_schedulers_and_counts_are_refused():
    with pytest.raises(InputError, match="scheduler"):
        check_scheduler("fast", None)
    with pytest.raises(InputError, match="workers"):
        check_scheduler("local", 0)
    with pytest.raises(InputError, match="threads"):
        check_scheduler("local", 2, threads=0)
