#!/usr/bin/env bash
# Create a venv with Python >= 3.12 and install the project into it:
#   scripts/bootstrap.sh                       .venv, with the DOLFINx wheel (extras dolfinx,dev)
#   scripts/bootstrap.sh .venv-particles dev   a particle-only install (no DOLFINx)
# Re-running is cheap: the install is skipped when pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/find_python.sh

venv=${1:-.venv}
extras=${2:-dolfinx,dev}
if [ ! -x "$venv/bin/python" ]; then
  "$(find_python)" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
stamp=$venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)-${extras//,/-}
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install -q -e ".[$extras]"
  rm -f "$venv"/.installed-*; touch "$stamp"
fi
