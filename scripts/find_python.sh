# Sourced by scripts/bootstrap.sh and scripts/adios2_venv.sh: find_python prints the path of
# a Python >= 3.12 ($PYTHON, then python3.12/3.13/python3 on PATH, then pyenv's versions).
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
