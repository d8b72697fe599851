#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job end to end: with no arguments, simulate a
# HAADF-STEM micrograph of MoS2 with contamination, find every atomic column, segment the
# contamination, write the results to ./atomseg_demo and score them against the exact
# ground truth; with file arguments (DM3/DM4/MRC/TIFF/SER/EMD), do the same for each file.
# napari opens with the results when a display exists (pass --no-viewer to skip it).
# Extra arguments go to `napari-atomseg demo` (see `napari-atomseg demo --help`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/napari-atomseg" demo "$@"
