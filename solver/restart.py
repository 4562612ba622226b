"""What checkpoints of the PDE and of particle tasks share (numpy only).

- ``CheckpointError``: a checkpoint that cannot be trusted (missing, truncated,
  corrupted, or written by a run of another problem or other settings). Never loaded.
- ``fingerprint``: the SHA-256 of a canonical description of a problem and its settings
  (every public attribute, arrays by the hash of their bytes), stored in a checkpoint so
  that a resumed run refuses the state of a different run.
- ``Clock``: "a checkpoint is due" every ``every`` seconds of wall time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import time

import numpy as np

#: How deep ``describe`` follows attributes (a unit inside a target inside a problem).
_MAX_DEPTH = 6


def describe(value: object, depth: int = 0) -> object:
    """A JSON-able description of value: scalars as they are, arrays as shape, dtype and
    the SHA-256 of their bytes, dataclasses and objects as their type and public
    attributes, functions by name."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return describe(value.item(), depth)
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return {"shape": list(data.shape), "dtype": data.dtype.str,
                "sha256": hashlib.sha256(data.tobytes()).hexdigest()}
    if depth > _MAX_DEPTH:
        return type(value).__qualname__
    if isinstance(value, list | tuple):
        return [describe(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, type) or inspect.isroutine(value):
        return getattr(value, "__qualname__", repr(value))
    if dataclasses.is_dataclass(value):
        # a field added later with metadata {"fingerprint": "omit_default"} is left out at its
        # default, so runs that do not use it keep the fingerprint of their checkpoints
        items = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)
                 if not (f.metadata.get("fingerprint") == "omit_default"
                         and getattr(value, f.name) is f.default)}
    elif hasattr(value, "__dict__"):
        items = vars(value)
    else:
        return repr(value)
    return {"type": type(value).__qualname__,
            **{k: describe(v, depth + 1) for k, v in sorted(items.items())
               if not k.startswith("_")}}


def fingerprint(**parts: object) -> str:
    """SHA-256 (hex) of the canonical JSON of ``describe(parts)``."""
    text = json.dumps(describe(parts), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Clock:
    """Wall-time schedule of periodic checkpoints: ``due()`` once ``every`` seconds have
    passed since the start or the last ``reset()`` (every = inf: never)."""

    def __init__(self, every: float):
        self.every = every
        self.reset()

    def reset(self) -> None:
        self.last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every
