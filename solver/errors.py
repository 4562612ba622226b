"""The errors of ``meanfield`` and their exit codes, in one place.

Every failure a user can meet is a ``MeanfieldError`` subclass whose ``exit_code``
the command line returns and whose message names the setting to change. The
table (also in the README and ``meanfield --help``):

    0   done
    2   ConfigError         a config, grid file or option that cannot be used
    3   RunExistsError      the run directory holds a finished run or another config's run
        RunLockedError      another meanfield process is running in the run directory
    4   CheckpointError     a checkpoint cannot be used (corrupted, truncated, another config's)
    5   SchemeFailure       a structural check of the PDE broke (mass, positivity, energy,
                            outflow); the last good state is checkpointed
    6   ResourceError       the run cannot fit this machine (memory, disk)
        DiskFullError       a write failed or would not fit: disk full or file too large;
                            temporary files removed, the last good checkpoint kept
    75  Preempted           SIGTERM/SIGUSR1: the state is checkpointed, requeue with --resume
"""

from __future__ import annotations

from collections.abc import Callable

EXIT_OK = 0


class MeanfieldError(Exception):
    """A failure with a message for the user and the exit code of the command line."""

    exit_code = 1
    #: What the command line prints before the message, and what the exit code means.
    label = "error"
    meaning = "failed"
    #: What to do next, printed after the message.
    hint = ""

    def report(self) -> str:
        """The line the command line prints."""
        return f"meanfield: {self.label}: {self}" + (f"; {self.hint}" if self.hint else "")


class ConfigError(MeanfieldError, ValueError):
    """A config value that cannot be used: names the field, the value and what is allowed."""

    exit_code = 2
    label = "config error"
    meaning = "config or option error: fix the named field (meanfield check CONFIG)"


class RunExistsError(MeanfieldError):
    """The run directory holds a finished run, or another config's run (use --force)."""

    exit_code = 3
    label = "run exists"
    meaning = ("the run directory holds a finished run or another config's run (--force), "
               "or another meanfield process is running in it (locked)")


class RunLockedError(RunExistsError):
    """Another process holds the run directory's lock: two runs must not write one directory."""

    label = "run locked"


class CheckpointError(MeanfieldError):
    """A checkpoint that cannot be trusted: missing, truncated, corrupted or mismatched."""

    exit_code = 4
    label = "checkpoint error"
    meaning = "a checkpoint cannot be used (corrupted, truncated or another config's)"


class SchemeFailure(MeanfieldError, RuntimeError):
    """A structural check of the PDE broke: names the step, the time and the quantity."""

    exit_code = 5
    label = "scheme failure"
    meaning = ("the PDE broke a structural check (mass, positivity, energy, outflow); "
               "the last good state is checkpointed")
    hint = ("the time series up to the last good step and its state (pde/checkpoint.h5) "
            "are kept")


class ResourceError(MeanfieldError):
    """A run that cannot fit this machine: names the setting and the estimate."""

    exit_code = 6
    label = "resource error"
    meaning = ("the run cannot fit this machine (memory or disk), or the disk filled up: "
               "the message names the setting or the file; the last good checkpoint is kept")


class DiskFullError(ResourceError):
    """A write that failed (ENOSPC, EFBIG, EDQUOT) or would not fit the free space: names the
    file, its size and the free space; its temporary file is removed, the file it would have
    replaced (the last good checkpoint) is kept."""

    label = "disk full"
    hint = ("free space there or give another output (--output DIR); the checkpoints written "
            "before are kept: continue with --resume")


class Preempted(MeanfieldError):
    """The run stopped after writing its checkpoint because a signal asked it to."""

    exit_code = 75
    label = "pre-empted"
    meaning = "pre-empted: the state is checkpointed, requeue with --resume"
    hint = "continue with --resume"


def on_rank0(comm, action: Callable[[], object]) -> None:
    """``action()`` on rank 0; its MeanfieldError is raised on every rank, so that no rank
    waits in a collective for one that failed. Collective."""
    error = None
    if comm.rank == 0:
        try:
            action()
        except MeanfieldError as err:
            error = err
    error = comm.bcast(error, root=0)
    if error is not None:
        raise error


#: Every exit code with its meaning, for --help, the README and the tests.
EXIT_CODES = {EXIT_OK: "done"} | {
    cls.exit_code: cls.meaning
    for cls in (ConfigError, RunExistsError, CheckpointError, SchemeFailure, ResourceError,
                Preempted)
}
