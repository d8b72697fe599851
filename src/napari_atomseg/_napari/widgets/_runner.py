"""Run a compute generator off the GUI thread: progress bar, status line, cancel, errors.

Compute functions are generators yielding :class:`napari_atomseg._progress.Progress` and
returning their result (see ``_progress.py``). :class:`RunPanel` starts one in a
``superqt`` generator worker (what ``napari.qt.threading.thread_worker`` is built on),
moves the progress bar on every yield, and asks the worker to stop at the next yield when
Cancel is pressed; the stopped generator is then closed, so a job's ``finally`` /
``except GeneratorExit`` clean-up (e.g. removing a cancelled training run's checkpoint)
runs at once. The result goes to a callback on the GUI thread, which turns it into
layers. Errors never escape to Qt: deliberate ones (:mod:`napari_atomseg.errors`) are
shown as a napari error notification with their own message; anything else as a napari
error notification carrying the traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import notification_manager, show_error, show_info
from superqt.utils import GeneratorWorker

from napari_atomseg._progress import Progress
from napari_atomseg.errors import AtomsegError


def notify_error(exc: BaseException) -> None:
    """Show ``exc`` in napari: its message for our errors, message + traceback otherwise."""
    if isinstance(exc, AtomsegError):
        show_error(str(exc))
    else:
        notification_manager.receive_error(type(exc), exc, exc.__traceback__)


class _Failed:
    """A job's exception, carried out of the worker as its return value."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def _drive(gen: Generator[Progress, Any, Any]) -> Generator[Progress, Any, Any]:
    """The generator the worker runs (superqt wants a generator function); the panel
    keeps ``gen`` itself, to close it when the job is cancelled."""
    return (yield from gen)


def _guarded(
    job: Callable[..., Generator[Progress, Any, Any]], *args: Any, **kwargs: Any
) -> Generator[Progress, Any, Any]:
    """Run ``job`` and return its exception instead of raising it.

    superqt's GeneratorWorker treats any RuntimeError from the generator as "the worker
    was deleted": it emits neither ``errored`` nor ``finished`` and only warns. Our
    :class:`~napari_atomseg.errors.ModelError` is a RuntimeError, so a missing model would
    leave the panel busy for ever. Returning the exception sidesteps that path.
    """
    try:
        return (yield from job(*args, **kwargs))
    except Exception as exc:
        return _Failed(exc)


class RunPanel(Container):
    """Progress bar + status + Cancel for one long computation at a time."""

    def __init__(self) -> None:
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress", visible=False)
        self.status = Label(value="")
        # Warnings and errors are sentences: wrap them instead of widening the dock (the
        # dock's layout does not grow a wrapped label by itself: room for three lines).
        self.status.native.setWordWrap(True)
        self.status.native.setMinimumHeight(3 * self.status.native.fontMetrics().lineSpacing())
        self.cancel = PushButton(text="Cancel", enabled=False, visible=False)
        super().__init__(widgets=[self.progress, self.status, self.cancel], labels=False)
        self.cancel.changed.connect(self._on_cancel)
        self.worker: GeneratorWorker | None = None
        self.cancelled = False
        self._gen: Generator[Progress, Any, Any] | None = None
        self._quiet = False

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self.worker is not None

    def start(
        self,
        job: Callable[..., Generator[Progress, Any, Any]],
        *args: Any,
        on_result: Callable[[Any], str | None],
        on_finish: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> GeneratorWorker:
        """Run ``job(*args, **kwargs)`` in a worker; ``on_result(value)`` gets its return.

        ``on_result`` runs on the GUI thread and may return a one-line summary for the
        status line. ``on_finish`` runs after success, failure or cancel alike.
        """
        if self.worker is not None:
            raise AtomsegError("a computation is already running; wait or cancel it")
        self._gen = _guarded(job, *args, **kwargs)
        worker = create_worker(
            _drive, self._gen, _worker_class=GeneratorWorker, _ignore_errors=True
        )
        self.cancelled = False
        self._quiet = False

        def returned(value: Any) -> None:
            """The job's return on the GUI thread: its error, or ``on_result``'s summary."""
            if isinstance(value, _Failed):
                self._on_error(value.exc)
                return
            if self.cancelled:
                return
            try:
                summary = on_result(value)
            except Exception as exc:  # shown, not swallowed: making the layers failed
                self._on_error(exc)
                return
            self.status.value = summary or "done"

        worker.yielded.connect(self._on_progress)
        worker.returned.connect(returned)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        if on_finish is not None:
            worker.finished.connect(on_finish)
        self.worker = worker
        self.progress.visible = True
        self.progress.max = 1
        self.progress.value = 0
        self.status.value = "starting..."
        self.cancel.enabled = True
        self.cancel.visible = True
        worker.start()
        return worker

    def _on_progress(self, step: Any) -> None:
        if not isinstance(step, Progress):
            return
        total = max(1, int(step.total))
        self.progress.max = total
        self.progress.value = min(total, max(0, int(step.done)))
        if step.message:
            self.status.value = step.message

    def _on_error(self, exc: BaseException) -> None:
        self.status.value = f"failed: {exc}"[:200]
        notify_error(exc)

    def _on_cancel(self) -> None:
        if self.worker is not None:
            self.cancelled = True
            self.status.value = "cancelling at the next step..."
            self.worker.quit()

    def stop_quietly(self) -> None:
        """Stop the running job at its next step without announcing it (a live preview
        superseded by a new run); ``on_finish`` callbacks still run."""
        if self.worker is not None:
            self._quiet = True
            self.cancelled = True
            self.worker.quit()

    def _on_aborted(self) -> None:
        if self._quiet:
            return
        self.status.value = "cancelled"
        show_info("cancelled")

    def _on_finished(self) -> None:
        if self._gen is not None:  # a cancelled job: run its clean-up now (no-op if done)
            self._gen.close()
            self._gen = None
        self.worker = None
        self.cancel.enabled = False
        self.cancel.visible = False
        self.progress.visible = False
