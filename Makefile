# The two commands of the README: `make main` (flagship example end to end)
# and `make test` (ruff, the test suite serially, MPI-marked tests on 2 ranks, and the
# suite again in a particle-only install without DOLFINx, whose PDE tests skip).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1

.PHONY: setup main test test-particles gallery

setup:
	scripts/bootstrap.sh

main: setup
	$(VENV)/bin/meanfield run examples/rbf_circle.toml --force

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q
	$(VENV)/bin/mpiexec -n 2 $(PY) -m pytest -q -m mpi -p no:cacheprovider
	$(MAKE) test-particles

# `pip install .` without the DOLFINx extra (the particle simulator, check, the comparison;
# mpiexec from the mpich wheel): the suite serially and on 2 ranks, the DOLFINx tests skip
# ("needs DOLFINx"); 47-64 s with a new venv, 23 s when it exists (measured)
test-particles:
	scripts/bootstrap.sh .venv-particles dev
	.venv-particles/bin/python -m pytest -q -p no:cacheprovider
	.venv-particles/bin/mpiexec -n 2 .venv-particles/bin/python -m pytest -q -m mpi -p no:cacheprovider

# Every example at its default size, then their figures into docs/gallery/ (the sum of the wall times in the README gallery, about 40 min)
gallery: setup
	for config in examples/*.toml; do $(VENV)/bin/meanfield run $$config --force --no-progress || exit 1; done
	for script in examples/[!_]*.py; do $(PY) $$script --force --no-progress || exit 1; done
	$(PY) scripts/gallery.py
