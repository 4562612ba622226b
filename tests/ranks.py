"""How results on different numbers of ranks are compared: normwise, to round-off.

A run on N ranks differs from the serial one only by round-off: the length-M allreduce
that makes f global and the scalar reductions (energy, mass, ...) sum in another order
(a relative difference of at most about M eps in each sum), the MUMPS LU of the implicit
scheme factorises in another order (forward error <= cond(A) eps per step, cond(A) <=
1 + 2 dt / dt_CFL for its M-matrix), and a stable flow carries these on without growing
them. No step size depends on round-off beyond its own (explicit steps: a min over cells;
implicit: ``solver.pde.implicit.step_factor`` puts the factors on a grid). So every
quantity agrees to a few hundred eps *of its own size over the run* (normwise), but not
entry by entry: an f(x_m) near zero, or a difference quotient such as dE/dt, carries the
absolute round-off of the large terms it was computed from. The largest difference
measured in the suite is below 1e-13 of the scale (MEANFIELD_RANKS_LOG=file records
each comparison's ratio to the tolerance).
"""

import os
from pathlib import Path

import numpy as np
import pytest

#: Relative to each quantity's largest value over the run.
RANKS_RTOL = 1e-12


def shared_dir(comm, tmp_path: Path) -> Path:
    """Rank 0's tmp_path on every rank (each pytest process has its own)."""
    return Path(comm.bcast(str(tmp_path), root=0))


def on_root(comm, check) -> None:
    """Run check() on rank 0 and fail on every rank if it fails (no rank waits forever)."""
    error = None
    if comm.rank == 0:
        try:
            check()
        except Exception as exc:  # AssertionError included
            error = f"rank 0: {type(exc).__name__}: {exc}"
    error = comm.bcast(error, root=0)
    if error:
        pytest.fail(error)


def assert_ranks_agree(actual, expected, what: str, rtol: float = RANKS_RTOL,
                       scale=None) -> None:
    """|actual - expected| <= rtol * scale entry by entry, scale = max |expected| unless
    given (a number or an array broadcasting against the values)."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    if scale is None:
        scale = np.abs(expected).max() if expected.size else 0.0
    bound = rtol * np.asarray(scale, float) + 1e-300
    ratio = float(np.max(np.abs(actual - expected) / bound)) if actual.size else 0.0
    log = os.environ.get("MEANFIELD_RANKS_LOG")
    if log:
        with open(log, "a") as out:
            out.write(f"{ratio:.3e} {os.environ.get('PYTEST_CURRENT_TEST', '?')} {what}\n")
    assert ratio <= 1.0, (f"{what}: differs across rank counts by {ratio:.3g} x the "
                          f"round-off tolerance {rtol:g} of its scale")


def assert_runs_agree(a, b, rtol: float = RANKS_RTOL) -> None:
    """Two PDEResults: the same steps, every recorded value and output within rtol of its
    scale; times and steps to t_final, dE/dt (a difference quotient) to max |E| / dt_n."""
    assert len(a.steps["t"]) == len(b.steps["t"])
    t_final, dt = a.steps["t"][-1], np.array(a.steps["dt"])
    energy_scale = np.max(np.abs(a.steps["energy"]))
    for key in a.steps:
        scale = {"t": t_final, "dt": t_final, "min_rho": 1.0,
                 "dEdt": energy_scale / np.where(dt > 0, dt, 1.0)}.get(key)
        assert_ranks_agree(b.steps[key], a.steps[key], f"steps.{key}", rtol, scale)
    for key in ("times", "f", "energy", "loss", "mc"):
        assert_ranks_agree(getattr(b, key), getattr(a, key), key, rtol)
