"""The root napari.yaml is the manifest the installed plugin (and a built wheel) really uses."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT_MANIFEST = REPO / "napari.yaml"


def test_installed_entry_point_is_the_root_manifest() -> None:
    (entry,) = [
        ep
        for ep in importlib.metadata.entry_points(group="napari.manifest")
        if ep.name == "napari-atomseg"
    ]
    assert entry.value == "napari_atomseg:napari.yaml"
    installed = importlib.resources.files("napari_atomseg").joinpath("napari.yaml")
    assert installed.read_bytes() == ROOT_MANIFEST.read_bytes()


def test_npe2_sees_the_root_manifest_contributions() -> None:
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-atomseg")
    root = npe2.PluginManifest.from_file(ROOT_MANIFEST)
    assert manifest.contributions.readers == root.contributions.readers
    assert manifest.contributions.writers == root.contributions.writers
    assert [c.id for c in manifest.contributions.commands] == [
        c.id for c in root.contributions.commands
    ]


def test_npe2_validate_passes() -> None:
    npe2_cli = Path(sys.executable).with_name("npe2")
    command = [str(npe2_cli)] if npe2_cli.exists() else [sys.executable, "-m", "npe2"]
    result = subprocess.run(
        [*command, "validate", "napari-atomseg"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


@pytest.mark.slow
def test_built_wheel_ships_the_root_manifest(tmp_path: Path) -> None:
    pytest.importorskip("build")
    # Build from a copy so the working tree (and its ignored build/ dirs) stays untouched.
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "*.egg-info", "__pycache__", "dist", "build"
        ),
    )
    args = [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist")]
    try:
        import hatchling  # noqa: F401

        args.append("--no-isolation")  # no network needed
    except ImportError:
        pass  # isolated build: pip fetches hatchling
    result = subprocess.run([*args, str(src)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("napari_atomseg-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("napari_atomseg/napari.yaml") == ROOT_MANIFEST.read_bytes()
        (entry_points,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(entry_points).decode()
    assert "[napari.manifest]" in text
    assert "napari-atomseg = napari_atomseg:napari.yaml" in text
