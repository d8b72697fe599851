"""Lazy public names for a package: imported on first use, so ``import napari_atomseg``
(or any sub-package) pulls in neither torch, abTEM nor Qt until a name is used."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], extra: Sequence[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    ``exports`` maps a public name to the module defining it (absolute, or relative to
    ``package``); ``extra`` are names the package defines itself. A loaded name is stored
    in the package so later lookups skip ``__getattr__``. Use as::

        __getattr__, __dir__, __all__ = lazy_exports(__name__, {"simulate": ".engine"})

    Type checkers and IDEs do not run ``__getattr__``: import the same names under
    ``if TYPE_CHECKING:`` as ``from .engine import simulate as simulate``
    (``tests/test_lazy_names.py`` checks the two agree and that every name resolves).
    """
    names = [*extra, *sorted(exports)]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__, names
