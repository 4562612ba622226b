"""Pre-emption of batch jobs: SIGTERM / SIGUSR1 set a flag; the run checkpoints and stops.

Slurm sends SIGTERM (and, with ``--signal=USR1@<seconds>``, SIGUSR1 ahead of the time
limit); mpiexec forwards SIGTERM to every rank. ``handle_signals`` (installed by the
command line only, restored afterwards) turns both into a flag; the time loops poll
``requested()`` once per step, agree over the ranks, write a checkpoint and raise
``Preempted``. The command line then exits with ``EXIT_PREEMPTED`` (75, EX_TEMPFAIL
of sysexits.h: "try again later"), and ``--resume`` continues from the checkpoint.

Exit codes of ``meanfield``: EXIT_OK 0 (done), EXIT_CONFIG 2 (config or option error),
EXIT_RUN_EXISTS 3 (the run directory holds a finished run or another config's run),
EXIT_CHECKPOINT 4 (a checkpoint cannot be used: corrupted, truncated or from another
config), EXIT_PREEMPTED 75 (checkpointed after SIGTERM/SIGUSR1: requeue with --resume).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_RUN_EXISTS = 3
EXIT_CHECKPOINT = 4
EXIT_PREEMPTED = 75

#: The signals that ask for a checkpoint and a clean stop.
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

_requested: int | None = None  # the signal number received, None while running on


class Preempted(Exception):
    """The run stopped after writing its checkpoint because a signal asked it to."""


def request(signum: int = signal.SIGTERM, frame: object = None) -> None:
    """The signal handler: remember that a stop was asked for (async-signal safe)."""
    global _requested
    _requested = signum


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
    previous = {s: signal.signal(s, request) for s in signals}
    clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        clear()
