"""Pre-emption of batch jobs: SIGTERM / SIGUSR1 set a flag; the run checkpoints and stops.

Slurm sends SIGTERM (and, with ``--signal=USR1@<seconds>``, SIGUSR1 ahead of the time
limit); mpiexec forwards SIGTERM to every rank. ``handle_signals`` (installed by the
command line only, restored afterwards) turns both into a flag; the time loops poll
``requested()`` once per step, agree over the ranks, write a checkpoint and raise
``Preempted``. The command line then exits with ``Preempted.exit_code`` (75, EX_TEMPFAIL
of sysexits.h: "try again later"), and ``--resume`` continues from the checkpoint.

Exit codes: ``solver.errors``.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from solver.errors import Preempted

__all__ = ["Preempted", "clear", "handle_signals", "reason", "request", "requested"]

#: The signals that ask for a checkpoint and a clean stop.
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

_requested: int | None = None  # the signal number received, None while running on


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
