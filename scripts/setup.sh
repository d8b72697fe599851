#!/usr/bin/env bash
# Set up napari-atomseg in ./.venv on a fresh machine (idempotent; sourced by the other
# scripts). Installs, in this order:
#   1. the Debian packages napari/Qt need under Xvfb (only when root on Debian/Ubuntu;
#      otherwise prints exactly what is missing),
#   2. CPU PyTorch (torch==2.13.0) *before* anything else, so no multi-GB CUDA build is pulled,
#   3. the plugin itself, editable, with its test extras (napari[all] = PyQt6).
# Environment: PYTHON (default python3), VENV (default .venv), ATOMSEG_TORCH (default 2.13.0).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$ROOT/.venv}"
TORCH_VERSION="${ATOMSEG_TORCH:-2.13.0}"

DEB_PACKAGES="xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libdbus-1-3 libfontconfig1 \
libglib2.0-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libxcb-xkb1"

install_system_packages() {
  if ! command -v dpkg >/dev/null 2>&1; then
    echo "[setup] not a Debian-like system: make sure Xvfb and the Qt/OpenGL libraries are installed" >&2
    return 0
  fi
  local missing=()
  for p in $DEB_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "[setup] missing Debian packages (napari needs them to run under Xvfb):" >&2
    echo "        sudo apt-get install ${missing[*]}" >&2
  fi
}

install_system_packages

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing CPU PyTorch $TORCH_VERSION first"
  "$PY" -m pip install -q "torch==$TORCH_VERSION" 2>&1 | grep -v "is ignored" || true
fi
"$PY" -c "import torch" || { echo "[setup] torch failed to install" >&2; exit 1; }
echo "[setup] installing napari-atomseg and its dependencies"
"$PY" -m pip install -q -e "$ROOT[testing]" 2>&1 | grep -v "is ignored" || true
"$PY" -c "import napari_atomseg, napari, abtem, torch" || { echo "[setup] install incomplete" >&2; exit 1; }
echo "[setup] ready: $("$PY" -c 'import napari_atomseg, torch, napari; print("napari-atomseg", napari_atomseg.__version__, "| torch", torch.__version__, "| napari", napari.__version__)')"
