"""RunPanel: progress from yields, cancel between steps, every error a notification."""

from __future__ import annotations

import threading

import pytest
from napari.utils.notifications import notification_manager

from napari_atomseg._napari.widgets._runner import RunPanel
from napari_atomseg._progress import Progress
from napari_atomseg.errors import ModelError


@pytest.fixture
def notifications():
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


def test_result_and_progress(qtbot):
    panel = RunPanel()
    got = []

    def job(n):
        for i in range(n):
            yield Progress(i, n, f"step {i}")
        return n * 10

    panel.start(job, 5, on_result=lambda v: got.append(v) or f"got {v}")
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
    assert got == [50]
    assert (panel.progress.max, panel.progress.value) == (5, 4)  # the last yield
    assert panel.status.value == "got 50"
    assert not panel.cancel.enabled


def test_cancel_stops_between_steps(qtbot):
    panel = RunPanel()
    release = threading.Event()
    done_steps = []
    got = []

    def job():
        for i in range(1000):
            done_steps.append(i)
            yield Progress(i, 1000, "working")
            release.wait(0.01)
        return "finished"

    panel.start(job, on_result=got.append)
    qtbot.waitUntil(lambda: len(done_steps) > 3, timeout=10_000)
    panel.cancel.native.click()
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
    assert got == []
    assert len(done_steps) < 1000
    assert panel.status.value == "cancelled"


def test_model_error_is_notified_and_frees_the_panel(qtbot, notifications):
    # ModelError is a RuntimeError, which superqt's worker would otherwise drop silently.
    panel = RunPanel()

    def job():
        yield Progress(0, 1, "loading")
        raise ModelError("model 'x': weights file missing: /nowhere/x.safetensors")

    panel.start(job, on_result=lambda v: None)
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
    assert panel.status.value.startswith("failed: model 'x'")
    assert any("weights file missing" in str(n.message) for n in notifications)


def test_unexpected_error_keeps_its_traceback(qtbot, notifications):
    panel = RunPanel()

    def job():
        yield Progress(0, 1, "")
        return 1 / 0

    panel.start(job, on_result=lambda v: None)
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
    qtbot.waitUntil(lambda: bool(notifications), timeout=10_000)
    assert any("division by zero" in str(n.message) for n in notifications)
