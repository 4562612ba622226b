"""Will the run fit this machine? Lower estimates of its memory and disk, checked before work.

A config that asks for 10^10 cells, 10^12 particles or 2^62 seeds fails in minutes with
a MemoryError, a full disk or a hang; these estimates refuse it at once with a
``ResourceError`` naming the setting. They are deliberately *lower* bounds (below what
was measured on these machines), so a run that is refused could not have run:

- PDE: per cell at least 1.5 kB (FV), 6 kB (DG1), 12 kB (DG2); measured 1.8-2.3 kB,
  8.1 kB and 17 kB (``meanfield``'s flagship problem, M = 64, 128^2 and 256^2 cells);
  spread over the ranks, compared with the memory available on one node, so that a job
  over many nodes is never refused.
- particles: one task holds its n x k positions several times (RK4 stages: at least 4
  copies of 8 bytes); every task writes f_n(t) at the output times (T x M doubles) to disk.
- PDE outputs: f_t(x_m) at ``outputs`` times (T x M doubles) in the time series.

During the run every large write checks first that its estimated size fits the free space
of its file system, ``RESERVE`` left over (``require_space``), and a write that fails
anyway (ENOSPC, EFBIG, EDQUOT, from Python, h5py or ADIOS2) becomes ``DiskFullError``
(``disk_error``): the writers remove their temporary files and keep the file they would
have replaced.
"""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
from pathlib import Path

from solver.errors import DiskFullError, ResourceError

#: Lower bounds of the memory per cell of the PDE schemes, bytes.
BYTES_PER_CELL = {("fv", 1): 1500, ("fv", 2): 1500, ("dg", 1): 6000, ("dg", 2): 12000}
#: Copies of the node positions a lagrangian step holds (Dormand-Prince: 7 slopes, the
#: state, the trial, the error estimate, the stage).
NODE_COPIES = 11


def bytes_per_cell(scheme: str, degree: int, param_dim: int, cell_dim: int) -> float:
    """A lower bound of a scheme's memory per cell: the table above, or for "lagrangian" the
    position copies of its (degree + 1)^cell_dim nodes per cell (a simplex has at least as
    many)."""
    if scheme == "lagrangian":
        return 8.0 * NODE_COPIES * param_dim * (degree + 1) ** cell_dim
    return BYTES_PER_CELL[scheme, degree]


#: Lower bound of the copies of the positions a particle step holds (RK4 stages).
POSITION_COPIES = 4


def available_memory() -> int:
    """MemAvailable of this node in bytes (the physical memory if /proc is not there)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def free_disk(path: Path) -> int:
    """Free bytes on the file system that will hold ``path`` (its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


#: Bytes a write must leave free (metadata of the writers, the next small files).
RESERVE = 256 * 1024
#: errno values of a full disk, a file beyond the size limit, an exhausted quota.
DISK_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_DISK_TEXT = re.compile(r"errno = (28|27|122)\b|No space left|File too large|quota exceeded",
                        re.IGNORECASE)


def require_space(path: str | os.PathLike, nbytes: float, what: str = "") -> None:
    """DiskFullError naming ``path`` unless ``nbytes`` (an estimate) plus ``RESERVE`` fit
    the free space of the file system that will hold it."""
    free = free_disk(Path(path))
    if nbytes + RESERVE > free:
        raise DiskFullError(f"{what or 'writing'} {path} needs about {_size(nbytes)} (and "
                            f"{_size(RESERVE)} to spare), but its file system has "
                            f"{_size(free)} free; nothing was written")


def is_disk_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a full disk, a file over the size limit or an exhausted quota:
    an OSError with that errno, or a RuntimeError of h5py or ADIOS2 quoting it."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return True
    return isinstance(exc, OSError | RuntimeError) and bool(_DISK_TEXT.search(str(exc)))


def disk_error(path: str | os.PathLike, exc: BaseException) -> DiskFullError:
    """The DiskFullError of a failed write of ``path``."""
    quoted = re.search(r"errno = (\d+)", str(exc))
    reason = (os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS
              else os.strerror(int(quoted.group(1))) if quoted
              else "disk full or file too large")
    try:
        free = f"; {_size(free_disk(Path(path)))} free there"
    except OSError:
        free = ""
    return DiskFullError(f"writing {path} failed: {reason}{free}; its temporary file was "
                         "removed")


def _writable_file_system(path: Path) -> bool:
    """Whether the file system that would hold ``path`` takes files at all (not a pseudo
    file system of size 0, not mounted read-only)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    try:
        stats = os.statvfs(path)
    except OSError:
        return False
    return stats.f_blocks > 0 and not stats.f_flag & os.ST_RDONLY


def mesh_cells(cfg) -> int | None:
    """A lower bound of the number of cells of the PDE mesh (None: named mesh or file)."""
    cells = cfg.pde.cells
    if not cells:
        return None
    kind = cfg.problem.domain.kind
    if kind == "sphere":
        return 20 * 4 ** cells[0] if cfg.problem.domain.param_dim == 3 else 2 * cells[0]
    return math.prod(cells)


def check_resources(cfg, ranks: int = 1) -> None:
    """ResourceError, listing every setting whose lower estimate does not fit (memory of one
    node, disk under cfg.output), or nothing."""
    memory, disk = available_memory(), free_disk(cfg.output)
    if not _writable_file_system(cfg.output):
        disk = math.inf  # /proc, /sys, a read-only mount: the output check names it
    problems, need_disk = [], 0
    M, k = cfg.problem.data.size, cfg.problem.param_dim
    if cfg.pde is not None:
        cells = mesh_cells(cfg)
        if cells is not None:
            need = cells * bytes_per_cell(cfg.pde.scheme, cfg.pde.degree, k,
                                          cfg.problem.domain.manifold_dim) / ranks
            if need > memory:
                problems.append(f"pde.cells = {list(cfg.pde.cells)}: {cells:.3g} cells need at "
                                f"least {_size(need)} per rank on {ranks} rank(s); this node "
                                f"has {_size(memory)} available")
        outputs = 8.0 * (cfg.pde.outputs + 1) * (M + 4)
        if outputs > memory:
            problems.append(f"pde.outputs = {cfg.pde.outputs}: f_t at every output time needs "
                            f"at least {_size(outputs)}; this node has {_size(memory)}")
        need_disk += outputs
    if cfg.particles is not None:
        n = max(cfg.particles.n)
        need = 8.0 * POSITION_COPIES * n * k
        if need > memory:
            problems.append(f"particles.n = {n}: one task needs at least {_size(need)} for its "
                            f"positions; this node has {_size(memory)} available")
        times = (cfg.pde.outputs + 1) if cfg.pde is not None else 2
        tasks = len(cfg.particles.n) * cfg.particles.seeds
        files = 8.0 * tasks * times * M
        if files > disk:
            problems.append(f"particles.seeds = {cfg.particles.seeds} (x {len(cfg.particles.n)} "
                            f"widths): the task files need at least {_size(files)}; "
                            f"the disk under {cfg.output} has {_size(disk)} free")
        need_disk += files
    if need_disk > disk and not problems:
        problems.append(f"output = {str(cfg.output)!r}: the run writes at least "
                        f"{_size(need_disk)}; {_size(disk)} free there")
    if problems:
        raise ResourceError("this run cannot fit this machine:\n  " + "\n  ".join(problems))


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000:
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    return f"{nbytes:.3g} EB"
