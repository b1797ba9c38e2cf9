#!/usr/bin/env bash
# Builds the `atlas` Python module into the virtual environment .venv at the repository
# root, creating it first if needed: what scripts/check and scripts/run-examples call, and
# the README's Python setup. Needs python3 (3.9+) with venv and pip, and cargo.
# Idempotent: a second run reinstalls nothing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { echo "$PYTHON not found: install Python 3.9 or newer" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export VIRTUAL_ENV="$PWD/.venv"
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install "maturin>=1.9.4,<2" "numpy>=1.23" "pytest>=7" "hypothesis>=6"
# Optional: the xarray tests skip without these.
"${pip[@]}" install xarray dask || echo "python: xarray/dask not installed; their tests will skip" >&2
# Optional: libnvcomp for GPU reads (device="cuda"); scripts/check also runs the nvcomp-sys
# loader tests against it. Needs no GPU to install.
"${pip[@]}" install "nvidia-libnvcomp-cu12>=4.2" || echo "python: nvidia-libnvcomp-cu12 not installed; GPU reads will say so" >&2
# Shares target/ with the root workspace, so the dependencies built there are reused.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" .venv/bin/maturin develop --release --quiet -m python/Cargo.toml
