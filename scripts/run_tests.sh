#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, the napari/Qt tests included:
# pytest-xvfb starts a virtual X server for them. Extra arguments go to pytest.
# Exits non-zero if any test fails or if no test ran.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
command -v Xvfb >/dev/null || { echo "Xvfb is missing: install the packages listed by scripts/setup.sh" >&2; exit 1; }
export PYTHONUNBUFFERED=1
exec "$ROOT/.venv/bin/python" -m pytest "$@"
