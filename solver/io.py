"""Run directories: atomic writes of tables, arrays and summaries (rank 0 writes).

Every file is written to a temporary name and renamed into place, so a run that
dies mid-way never leaves a half-written file that looks complete. A run is
finished when its ``summary.json`` exists: it is written last.

A full disk: a write whose bytes do not fit the free space is refused before it starts,
and one that fails (ENOSPC, EFBIG, EDQUOT) has its temporary file removed; both raise
``DiskFullError`` naming the file, and the file it would have replaced is left as it was.
HDF5 files are built in memory (``atomic_h5``) and written like any other bytes: the HDF5
library never meets a full disk (it crashes at exit after a failed flush).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from solver.resources import disk_error, is_disk_error, require_space

# -- atomic files ----------------------------------------------------------------------

def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be synced
        _fsync(path)


def _fsync_tree(path: Path) -> None:
    for p in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        _fsync(p)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def temporary_name(path: str | os.PathLike, tag: str | None = None) -> Path:
    """A hidden sibling of ``path``: ``dir/.name.tmp-<tag>`` (tag: the process id)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid() if tag is None else tag}")


def replace_into_place(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` (a file or a directory tree) to disk and rename it to ``path``.

    A directory already at ``path`` (a stale snapshot) is moved aside first and removed
    after the rename.
    """
    _fsync_tree(tmp)
    old = None
    if path.is_dir() and not path.is_symlink():
        old = temporary_name(path, "old")
        remove_path(old)
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if old is not None:
        remove_path(old)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was; a full
    disk (or a file over the size limit) becomes ``DiskFullError`` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    remove_path(tmp)
    try:
        yield tmp
        replace_into_place(tmp, path)
    except BaseException as exc:
        remove_path(tmp)
        if is_disk_error(exc):
            raise disk_error(path, exc) from exc
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """``data`` into ``path`` atomically, after checking that it fits the free space
    (``DiskFullError`` naming the file otherwise)."""
    require_space(path, len(data), "writing")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


_atomic_write_bytes = write_bytes_atomic


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[object]:
    """Yield an HDF5 file (h5py.File) built in memory; on success its image is written to
    ``path`` by ``write_bytes_atomic``. A full disk is a ``DiskFullError``; the HDF5 library
    itself never writes to the disk (after a failed flush it crashes the process at exit)."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        yield h5
    write_bytes_atomic(path, buffer.getvalue())


class RunDirectory:
    """A directory of results; only ``writer`` ranks touch the disk."""

    def __init__(self, path: str | os.PathLike, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        if writer:
            self.path.mkdir(parents=True, exist_ok=True)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def write_bytes(self, name: str, data: bytes) -> None:
        if self.writer:
            _atomic_write_bytes(self.path / name, data)

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def write_json(self, name: str, obj: object) -> None:
        text = json.dumps(_plain(obj), indent=2, allow_nan=False)
        self.write_text(name, text + "\n")

    def write_csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows([[_fmt(v) for v in row] for row in rows])
        self.write_text(name, buf.getvalue())

    def write_npz(self, name: str, **arrays: np.ndarray) -> None:
        if self.writer:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            self.write_bytes(name, buf.getvalue())


def _fmt(value: object) -> object:
    return repr(float(value)) if isinstance(value, float | np.floating) else value


def _plain(value: object) -> object:
    """JSON-ready: arrays and numpy scalars as Python values, paths as strings, and
    non-finite floats as the strings "inf", "-inf", "nan" (strict JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value
