"""Run directories: atomic writes of tables, arrays and summaries (rank 0 writes).

Every file is written to a temporary name and renamed into place, so a run that
dies mid-way never leaves a half-written file that looks complete. A run is
finished when its ``summary.json`` exists: it is written last.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
