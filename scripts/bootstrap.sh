#!/usr/bin/env bash
# Create a venv with Python >= 3.12 and install the project into it:
#   scripts/bootstrap.sh                       .venv, with the DOLFINx wheel (extras dolfinx,dev)
#   scripts/bootstrap.sh .venv-particles dev   a particle-only install (no DOLFINx)
# Re-running is cheap: the install is skipped when pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for cand in "${PYTHON:-}" python3.12 python3.13 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$cand"; return
    fi
  done
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  command -v pyenv >/dev/null 2>&1 && root="$(pyenv root)"
  for py in "$root"/versions/3.1[2-9]*/bin/python; do
    [ -x "$py" ] && { echo "$py"; return; }
  done
  echo "error: need Python >= 3.12 (set PYTHON=/path/to/python3.12)" >&2
  exit 1
}

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
