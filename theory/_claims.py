"""Shared result type for claim checks and small exact helpers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sympy as sp
from sympy.polys.matrices import DomainMatrix

__all__ = ["ClaimResult", "timed", "const_rank", "block_diag"]


@dataclass
class ClaimResult:
    """Outcome of checking one claim on a set of instances.

    Attributes
    ----------
    claim : str
        Short claim label, e.g. ``"C1 monotonicity (derivatives)"``.
    instances : int
        Number of instances checked.
    passed : bool
        True iff the claim held (exactly, with certified ranks) on all of them.
    details : list of str
        One line per instance or per failure.
    seconds : float
        Wall-clock time.
    """

    claim: str
    instances: int = 0
    passed: bool = True
    details: list = field(default_factory=list)
    seconds: float = 0.0

    def record(self, ok, line):
        """Add one instance outcome."""
        self.instances += 1
        self.passed = self.passed and bool(ok)
        self.details.append(("ok   " if ok else "FAIL ") + line)

    def __bool__(self):
        return self.passed


class timed:
    """Context manager filling ``result.seconds``."""

    def __init__(self, result):
        self.result = result

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self.result

    def __exit__(self, *exc):
        self.result.seconds = time.perf_counter() - self.t0
        return False


def const_rank(M):
    """Exact rank of a constant rational matrix (SymPy ``DomainMatrix`` over QQ).

    Parameters
    ----------
    M : Matrix or array_like
        Rational entries.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If an entry is not a rational number.

    Examples
    --------
    >>> const_rank([[1, 2], [2, 4]])
    1
    """
    M = sp.Matrix(M)
    if M.rows == 0 or M.cols == 0:
        return 0
    for i in range(M.rows):
        for j in range(M.cols):
            if not sp.sympify(M[i, j]).is_Rational:
                raise ValueError(f"M[{i}, {j}] = {M[i, j]} is not a rational constant")
    return DomainMatrix.from_Matrix(M).convert_to(sp.QQ).rank()


def block_diag(*blocks):
    """Block-diagonal SymPy matrix (empty blocks allowed).

    Examples
    --------
    >>> block_diag(sp.Matrix([[1]]), sp.Matrix([[2, 3]])).shape
    (2, 3)
    """
    return sp.diag(*[sp.Matrix(b) for b in blocks]) if blocks else sp.zeros(0, 0)
