"""Every public lazy name of the package and its sub-packages resolves to what its
``_LAZY`` entry names, and type checkers see the same names (``if TYPE_CHECKING:``)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import types

import pytest

import napari_atomseg


def _lazy_packages() -> list[str]:
    names = ["napari_atomseg"] + [
        f"napari_atomseg.{m.name}"
        for m in pkgutil.iter_modules(napari_atomseg.__path__)
        if m.ispkg and m.name != "_napari"  # (imports Qt; it has no lazy names)
    ]
    return [n for n in names if hasattr(importlib.import_module(n), "_LAZY")]


PACKAGES = _lazy_packages()


def _declared(package: str) -> dict[str, str]:
    """``_LAZY`` as name -> absolute module."""
    lazy = importlib.import_module(package)._LAZY
    return {name: importlib.util.resolve_name(mod, package) for name, mod in lazy.items()}


def _type_checking_imports(package: str) -> dict[str, str]:
    """Names imported under ``if TYPE_CHECKING:`` in the package's ``__init__``, as
    name -> absolute module; fails on an import that is not a ``name as name`` re-export."""
    tree = ast.parse(inspect.getsource(importlib.import_module(package)))
    out: dict[str, str] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"):
            continue
        for imp in node.body:
            assert isinstance(imp, ast.ImportFrom), ast.unparse(imp)
            module = importlib.util.resolve_name("." * imp.level + (imp.module or ""), package)
            for alias in imp.names:
                assert alias.asname == alias.name, (
                    f"{package}: {ast.unparse(imp)} re-exports nothing"
                )
                out[alias.name] = module
    return out


def test_the_lazy_packages_are_found():
    assert {"napari_atomseg", "napari_atomseg.atoms", "napari_atomseg.backend"} <= set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_lazy_name_resolves(package):
    pkg = importlib.import_module(package)
    declared = _declared(package)
    assert set(declared) <= set(pkg.__all__) and set(declared) <= set(dir(pkg))
    for name, module in declared.items():
        # Through the package's own lookup: a sub-package of the same name, once
        # imported, would hide the name from getattr.
        value = pkg.__getattr__(name)
        assert value is getattr(importlib.import_module(module), name), f"{package}.{name}"
        assert not isinstance(value, types.ModuleType), f"{package}.{name} is a module"


@pytest.mark.parametrize("package", PACKAGES)
def test_type_checkers_see_the_lazy_names(package):
    declared, seen = _declared(package), _type_checking_imports(package)
    missing = sorted(set(declared) - set(seen))
    extra = sorted(set(seen) - set(declared))
    assert not missing, f"{package}: import {missing} under 'if TYPE_CHECKING:' as in _LAZY"
    assert not extra, f"{package}: {extra} imported under TYPE_CHECKING but not in _LAZY"
    wrong = {n: (seen[n], declared[n]) for n in declared if seen[n] != declared[n]}
    assert not wrong, f"{package}: TYPE_CHECKING imports from other modules than _LAZY: {wrong}"
