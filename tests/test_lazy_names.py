"""Every public lazy name of the package and its sub-packages resolves to what its
``_LAZY`` entry names, and type checkers see the same names (``if TYPE_CHECKING:``); no
public name is also the name of a sub-module, which would hide it once imported."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import pkgutil
import subprocess
import sys
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


def _all_packages() -> list[str]:
    """``napari_atomseg`` and every sub-package, at any depth."""
    return ["napari_atomseg"] + [
        m.name for m in pkgutil.walk_packages(napari_atomseg.__path__, "napari_atomseg.") if m.ispkg
    ]


@pytest.mark.parametrize("package", _all_packages())
def test_no_public_name_is_a_submodule(package):
    # Importing a sub-module binds it to the package attribute of the same name, so a
    # public function named like a module would become the module (issue 22).
    pkg = importlib.import_module(package)
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    clashes = sorted(set(getattr(pkg, "__all__", ())) & submodules)
    assert not clashes, f"{package}: {clashes} are public names and sub-modules"


#: Public functions whose names were sub-module names before issue 22.
FORMERLY_HIDDEN = (
    ("napari_atomseg", "segment"),
    ("napari_atomseg", "simulate"),
    ("napari_atomseg.track", "register"),
    ("napari_atomseg.track", "link"),
    ("napari_atomseg.backend", "train"),
    ("napari_atomseg.backend", "normalise"),
)

# In a fresh interpreter: a module that this process imported already (through a lazy
# name, say) is not bound to its package again by a later import, which would hide a clash.
_IMPORT_ALL_THEN_LOOK = """
import importlib, json, pkgutil, sys, types
import napari_atomseg
for m in pkgutil.walk_packages(napari_atomseg.__path__, "napari_atomseg."):
    importlib.import_module(m.name)
out = {}
for spec in sys.argv[1:]:
    package, name = spec.split(":")
    value = getattr(importlib.import_module(package), name)
    out[spec] = callable(value) and not isinstance(value, types.ModuleType)
print(json.dumps(out))
"""


def test_public_functions_stay_functions_after_every_module_is_imported():
    specs = [f"{package}:{name}" for package, name in FORMERLY_HIDDEN]
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL_THEN_LOOK, *specs],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    are_functions = json.loads(result.stdout.strip().splitlines()[-1])
    not_functions = [spec for spec, ok in are_functions.items() if not ok]
    assert not not_functions, f"modules, not functions, after importing everything: {not_functions}"
