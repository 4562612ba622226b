"""Parameter domains D in which theta lives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """The box D = prod_i [lower_i, upper_i] in R^k (interval, rectangle or box)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def __post_init__(self) -> None:
        lo = np.asarray(self.lower, dtype=float)
        hi = np.asarray(self.upper, dtype=float)
        if lo.ndim != 1 or lo.shape != hi.shape or lo.size == 0:
            raise ValueError(
                f"domain: lower {self.lower} and upper {self.upper} must be equal-length lists"
            )
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
            raise ValueError(
                f"domain: need finite lower < upper in every coordinate, got "
                f"lower={self.lower}, upper={self.upper}"
            )
        object.__setattr__(self, "lower", tuple(float(v) for v in lo))
        object.__setattr__(self, "upper", tuple(float(v) for v in hi))

    @property
    def dim(self) -> int:
        return len(self.lower)

    @property
    def volume(self) -> float:
        return float(np.prod(np.subtract(self.upper, self.lower)))

    def contains(self, theta: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows of theta (Q, k) inside the closed box."""
        return np.all((theta >= self.lower) & (theta <= self.upper), axis=1)
