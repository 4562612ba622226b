#!/usr/bin/env bash
# Make the small venv of the ADIOS2 reader test (tests/test_vtx_adios2.py):
#   scripts/adios2_venv.sh [DIR]      default .venv-adios2; prints DIR/bin/python
# PyPI's adios2 cannot live beside the DOLFINx wheel (its vendored ADIOS2 clashes:
# ../shared/DESIGN.md), so it gets its own venv: adios2 + numpy only. Idempotent: a venv
# whose Python imports both is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find_python.sh

venv=${1:-.venv-adios2}
if ! "$venv/bin/python" -c 'import adios2, numpy' >/dev/null 2>&1; then
  "$(find_python)" -m venv --clear "$venv"
  "$venv/bin/python" -m pip install -q adios2 numpy
fi
echo "$venv/bin/python"
