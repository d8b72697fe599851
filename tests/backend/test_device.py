"""Device choice and per-thread torch thread counts."""

from __future__ import annotations

import threading

import pytest
import torch

from napari_atomseg.backend.device import (
    DEVICE_ENV,
    THREADS_ENV,
    default_num_threads,
    get_device,
    torch_threads,
)
from napari_atomseg.errors import InputError


def test_environment_overrides_preference(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert get_device("auto") == torch.device("cpu")
    assert get_device("cuda") == torch.device("cpu")  # the environment wins


def test_auto_picks_the_best_available(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    want = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        want = "mps"
    assert get_device().type == want
    assert get_device(torch.device("cpu")).type == "cpu"


def test_bad_requests_are_clear(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    with pytest.raises(InputError, match="is not a device"):
        get_device("gpu0")
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    with pytest.raises(InputError, match=DEVICE_ENV):
        get_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv(DEVICE_ENV, "cuda")
        with pytest.raises(InputError, match="not available"):
            get_device()


def test_thread_count_from_environment(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "1")
    assert default_num_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(InputError, match="integer"):
        default_num_threads()


def test_torch_threads_sets_and_restores_in_the_calling_thread():
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    seen = {}

    def worker():
        with torch_threads(2):
            seen["inside"] = torch.get_num_threads()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["inside"] == 2
    assert torch.get_num_threads() == before
    with pytest.raises(InputError), torch_threads(0):
        pass
