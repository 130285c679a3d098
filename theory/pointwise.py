"""C3a — pointwise designed profiles (Taylor and Newton forms).

Statement
---------
Let ``r_0, ..., r_K`` be any integers with ``0 <= r_k <= min(m, n)`` — in
particular any permutation of ``{1, ..., K+1}`` when ``min(m, n) >= K+1``.
Choose constant matrices ``M_k`` with ``rank M_k = r_k``.

* Taylor: ``A(t) = Σ_k M_k (t - t0)^k / k!`` satisfies
  ``A^{(k)}(t0) = M_k``, so ``rank A^{(k)}(t0) = r_k`` for k = 0..K.
* Newton: ``A(j) = Σ_k C(j, k) M_k`` satisfies ``Δ^k A(0) = M_k``, because
  ``Δ C(j, k) = C(j, k-1)`` and ``C(0, k) = [k = 0]``.

These are ranks *at a point*; the generic profile of the same ``A`` is in
general different (see :mod:`theory.designer` for generic profiles).

Examples
--------
>>> import sympy as sp
>>> t = sp.Symbol("t")
>>> A = taylor_design((2, 3, 1), t)
>>> pointwise_ranks(A, 2)
(2, 3, 1)
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import sympy as sp

from ._claims import ClaimResult, const_rank, timed
from ._typing import Expr, Matrix, MatrixLike, Symbol
from .profiles import derivatives, differences

__all__ = ["rank_matrix", "taylor_design", "newton_design", "pointwise_ranks", "check"]


def _check_target(target, size):
    target = tuple(target)
    if not target:
        raise ValueError("target must be a non-empty sequence of ranks")
    for k, r in enumerate(target):
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise ValueError(f"target[{k}] = {r!r} is not a non-negative int")
    size = max(target) if size is None else size
    if isinstance(size, int):
        size = (size, size)
    m, n = size
    if max(target) > min(m, n):
        raise ValueError(f"target rank {max(target)} exceeds min(m, n) = {min(m, n)} for shape {size}")
    return target, (m, n)


def rank_matrix(r: int, shape: tuple[int, int], *, rng: random.Random | None = None) -> Matrix:
    """A constant integer ``m x n`` matrix of rank exactly ``r``.

    Parameters
    ----------
    r : int
        Rank, ``0 <= r <= min(m, n)``.
    shape : tuple of int
    rng : random.Random, optional
        If given, a random matrix ``U V`` (retried until the rank is ``r``);
        otherwise ``diag(1, ..., 1, 0, ..., 0)``.

    Returns
    -------
    sympy.Matrix

    Raises
    ------
    ValueError
        If ``r`` is out of range.

    Examples
    --------
    >>> rank_matrix(1, (2, 3))
    Matrix([
    [1, 0, 0],
    [0, 0, 0]])
    """
    m, n = shape
    if not 0 <= r <= min(m, n):
        raise ValueError(f"r must be in [0, min(m, n)] = [0, {min(m, n)}], got {r}")
    if rng is None:
        return sp.Matrix(m, n, lambda i, j: 1 if (i == j and int(i) < r) else 0)
    while True:
        M = sp.Matrix(m, r, lambda *_: rng.randint(-3, 3)) * sp.Matrix(r, n, lambda *_: rng.randint(-3, 3))
        if const_rank(M) == r:
            return M


def taylor_design(
    target: Sequence[int],
    var: Symbol,
    *,
    shape: tuple[int, int] | None = None,
    t0: Expr = 0,
    rng: random.Random | None = None,
) -> Matrix:
    """``A = Σ_k M_k (t - t0)^k / k!`` with ``rank M_k = target[k]``.

    Parameters
    ----------
    target : sequence of int
        Ranks ``r_0..r_K``.
    var : sympy.Symbol
    shape : int or tuple of int, optional
        Matrix shape (default: square of size ``max(target)``).
    t0 : rational, default 0
        Expansion point.
    rng : random.Random, optional
        Random ``M_k`` instead of diagonal ones.

    Returns
    -------
    sympy.Matrix

    Raises
    ------
    ValueError
        If a target rank is negative or exceeds ``min(shape)``.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> taylor_design((1, 2), t)
    Matrix([
    [t + 1, 0],
    [    0, t]])
    """
    target, shape = _check_target(target, shape)
    A = sp.zeros(*shape)
    for k, r in enumerate(target):
        A += rank_matrix(r, shape, rng=rng) * (var - t0) ** k / sp.factorial(k)
    return A.applyfunc(sp.expand)


def newton_design(
    target: Sequence[int], var: Symbol, *, shape: tuple[int, int] | None = None, rng: random.Random | None = None
) -> Matrix:
    """``A(j) = Σ_k C(j, k) M_k`` with ``rank M_k = target[k]``.

    Parameters
    ----------
    target : sequence of int
    var : sympy.Symbol
        The integer index ``j``.
    shape : int or tuple of int, optional
    rng : random.Random, optional

    Returns
    -------
    sympy.Matrix
        Polynomial entries (binomials expanded).

    Examples
    --------
    >>> import sympy as sp
    >>> j = sp.Symbol("j", integer=True)
    >>> pointwise_ranks(newton_design((2, 1, 2), j), 2, kind="difference")
    (2, 1, 2)
    """
    target, shape = _check_target(target, shape)
    A = sp.zeros(*shape)
    for k, r in enumerate(target):
        A += rank_matrix(r, shape, rng=rng) * sp.expand_func(sp.binomial(var, k))
    return A.applyfunc(sp.expand)


def pointwise_ranks(
    A: MatrixLike, max_order: int, *, var: Symbol | None = None, at: Expr = 0, kind: str = "derivative"
) -> tuple[int, ...]:
    """Exact ranks of ``A^{(k)}(at)`` (or ``Δ^k A(at)``), k = 0..max_order.

    Parameters
    ----------
    A : sympy.Matrix
    max_order : int
        Highest order.
    var : sympy.Symbol, optional
        The variable (inferred when ``A`` has one free symbol).
    at : rational, default 0
    kind : {"derivative", "difference"}

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        If ``at`` is a pole of an entry, or on bad ``kind``.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> pointwise_ranks(sp.Matrix([[1, t], [t, t**2]]), 3, at=1)
    (1, 2, 1, 0)
    """
    if kind not in ("derivative", "difference"):
        raise ValueError(f"kind must be 'derivative' or 'difference', got {kind!r}")
    mats = (derivatives if kind == "derivative" else differences)(A, max_order, var=var)
    out = []
    for M in mats:
        V = M.to_sympy().xreplace({M.var: sp.Rational(at)})
        if any(not e.is_finite for e in V):
            raise ValueError(f"at={at} is a pole of an entry")
        out.append(const_rank(V))
    return tuple(out)


def check(seed: int = 0, *, K: int = 4) -> list[ClaimResult]:
    """C3a checks: every permutation of {1..K} realised pointwise (both forms).

    Returns
    -------
    list of ClaimResult

    Examples
    --------
    >>> all(r.passed for r in check(K=2))
    True
    """
    rng = random.Random(seed)
    t, j = sp.Symbol("t"), sp.Symbol("j", integer=True)
    res = ClaimResult(f"C3a pointwise Taylor/Newton, all perms of 1..{K}")
    with timed(res):
        for perm in itertools.permutations(range(1, K + 1)):
            A = taylor_design(perm, t, t0=sp.Rational(1, 2), rng=rng)
            B = newton_design(perm, j, rng=rng)
            ok = (
                pointwise_ranks(A, K - 1, var=t, at=sp.Rational(1, 2)) == perm
                and pointwise_ranks(B, K - 1, var=j, kind="difference") == perm
            )
            res.record(ok, f"{perm}")
    return [res]
