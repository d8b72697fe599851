"""Exceptions the plugin raises on purpose.

Every error a user can cause (a corrupt file, a NaN image, an absurd parameter) is one of
these, with a message that names the problem and, where there is one, the file. The napari
widgets show the message; the CLI prints it and goes on with the next file.
"""

from __future__ import annotations


class AtomsegError(Exception):
    """Base class of every deliberate napari-atomseg error."""


class InputError(AtomsegError, ValueError):
    """The input array or a parameter is unusable (NaN, wrong shape, out of range...)."""


class FileReadError(AtomsegError, OSError):
    """A file could not be read: corrupt, truncated, unsupported or empty."""


class FileWriteError(AtomsegError, OSError):
    """A result could not be written (it would overwrite an input, the folder is missing...)."""


class ModelError(AtomsegError):
    """A shipped or user model is missing, corrupt (sha256 mismatch) or inconsistent with its card.

    Deliberately not a ``RuntimeError``: superqt's worker threads (napari's
    ``thread_worker``) silently drop ``RuntimeError``s, which left a widget waiting for ever.
    """


class Cancelled(AtomsegError):
    """The user cancelled a long computation (raised between tiles / images)."""


class ResultWarning(UserWarning):
    """A result was made, but something about it needs the user's eye (e.g. the network's
    columns disagree with the image's contrast). The same text is in the result's
    ``attrs["warnings"]``, which the widgets show and the CLI prints and records."""
