"""Pre-emption of batch jobs: SIGTERM / SIGUSR1 set a flag; the run checkpoints and stops.

Slurm sends SIGTERM (and, with ``--signal=USR1@<seconds>``, SIGUSR1 ahead of the time
limit); mpiexec forwards SIGTERM to every rank. ``handle_signals`` (installed by the
command line only, restored afterwards) turns both into a flag; the time loops poll
``requested()`` once per step, agree over the ranks, write a checkpoint and raise
``Preempted``. The command line then exits with ``Preempted.exit_code`` (75, EX_TEMPFAIL
of sysexits.h: "try again later"), and ``--resume`` continues from the checkpoint.

Work that holds nothing to save and runs on one rank alone (the setup of a serial run:
reading the config, building the mesh and the scheme; drawing a particle task's initial
positions; one fixed step of a particle task, rolled back to its start) runs
``immediately(where)``: a signal raises ``Preempted`` at once there, at the next Python
bytecode, instead of waiting for the next time step, so that a long allocation or a long
first step is not waited for. Between ranks the flag is agreed with ``poll`` (collective);
a rank never raises alone in the middle of a collective.

Exit codes: ``solver.errors``.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from solver.errors import Preempted

__all__ = ["Preempted", "clear", "handle_signals", "immediately", "poll", "reason",
           "reinstall", "request", "requested"]

#: The signals that ask for a checkpoint and a clean stop.
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

_requested: int | None = None  # the signal number received, None while running on
_immediate: str | None = None  # what runs now if a signal is to raise at once (immediately)
_installed = False  # whether handle_signals' handlers are in place


def request(signum: int = signal.SIGTERM, frame: object = None) -> None:
    """The signal handler: remember that a stop was asked for; within ``immediately``,
    raise ``Preempted`` at once."""
    global _requested
    _requested = signum
    if _immediate is not None and _installed:
        raise Preempted(_stopped_in(_immediate))


def _stopped_in(where: str) -> str:
    return f"pre-empted ({reason()}) during {where}; nothing to save there yet"


@contextlib.contextmanager
def immediately(where: str) -> Iterator[None]:
    """Within the block a signal raises ``Preempted`` at once (where: what runs, for the
    message); a signal that came before raises on entry. For work on one rank that holds no
    state to save (or rolls back to its start). Without ``handle_signals`` it changes
    nothing."""
    global _immediate
    if _installed and requested():
        raise Preempted(_stopped_in(where))
    previous, _immediate = _immediate, where
    try:
        yield
    finally:
        _immediate = previous


def reinstall(signals: tuple[int, ...] = SIGNALS) -> None:
    """Put the handlers back after a library took the signals over at the C level (PETSc's
    initialisation, on importing DOLFINx, installs its own SIGTERM handler that aborts with
    MPI_Abort); Python's ``signal.getsignal`` does not see that. Nothing without
    ``handle_signals``."""
    if _installed:
        for s in signals:
            signal.signal(s, request)


def poll(comm, where: str) -> None:
    """``Preempted`` on every rank if a signal reached any rank. Collective."""
    from mpi4py import MPI

    if comm.allreduce(int(requested()), op=MPI.MAX):
        raise Preempted(f"pre-empted ({reason() or 'on another rank'}) during {where}; "
                        "nothing to save there yet")


def requested() -> bool:
    """Whether SIGTERM or SIGUSR1 arrived since the handlers were installed."""
    return _requested is not None


def reason() -> str:
    """The signal that asked for the stop, e.g. "SIGTERM" ("" when none)."""
    return "" if _requested is None else signal.Signals(_requested).name


def clear() -> None:
    global _requested
    _requested = None


@contextlib.contextmanager
def handle_signals(signals: tuple[int, ...] = SIGNALS) -> Iterator[None]:
    """Within the block, ``signals`` set the flag instead of killing the process; the
    previous handlers and a clear flag are restored on exit."""
    global _installed
    previous = {s: signal.signal(s, request) for s in signals}
    was_installed, _installed = _installed, True
    clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _installed = was_installed
        clear()
