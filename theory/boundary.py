"""C1′ — where monotonicity stops: overlapping decompositions.

Statement
---------
Without the direct-sum hypothesis of C1 the profile can increase.  The
smallest example is

    A(t) = [[1, t], [t, t²]] = E11 + t (E12 + E21) + t² E22,

whose profile is ``(1, 2, 1, 0)``: ``A = u uᵀ`` with ``u = (1, t)`` has rank
1, ``A' = [[0, 1], [1, 2t]]`` has determinant ``-1``, ``A'' = 2 E22`` has
rank 1 and ``A''' = 0``.  Here ``col(E11) = span(e1)`` lies inside
``col(E12 + E21) = ℚ²``, so neither the column nor the row spaces are in
direct sum (every decomposition of this A fails the hypothesis, since C1
would force a non-increasing profile).

Generator.  More generally, ``A = u vᵀ`` with polynomial vectors ``u, v``
such that ``u, u'`` are linearly independent and ``v, v'`` are linearly
independent has ``ρ(0) = 1`` and ``ρ(1) = rank(u' vᵀ + u v'ᵀ) = 2``
(the product of an ``m x 2`` and a ``2 x n`` matrix of full rank 2).  By C1
(contrapositive) its coefficient decomposition ``A = Σ_s t^s A_s`` cannot
satisfy either direct-sum hypothesis; :func:`counterexamples` yields such
matrices together with their certified profiles and checks this.

Examples
--------
>>> import sympy as sp
>>> t = sp.Symbol("t")
>>> from theory.profiles import rank_profile
>>> rank_profile(overlapping_example(t), 3).ranks
(1, 2, 1, 0)
"""

from __future__ import annotations

import random

import sympy as sp

from ._claims import ClaimResult, timed
from .monotonicity import direct_sum_side
from .profiles import difference_profile, is_nonincreasing, rank_profile

__all__ = [
    "OVERLAPPING_PROFILE",
    "overlapping_example",
    "coefficient_decomposition",
    "counterexamples",
    "check",
]

OVERLAPPING_PROFILE = (1, 2, 1, 0)


def overlapping_example(var=None):
    """The matrix ``[[1, t], [t, t²]]`` (profile ``(1, 2, 1, 0)``).

    Parameters
    ----------
    var : sympy.Symbol, optional
        Defaults to ``Symbol('t')``.

    Returns
    -------
    sympy.Matrix

    Examples
    --------
    >>> overlapping_example()
    Matrix([
    [1,    t],
    [t, t**2]])
    """
    t = sp.Symbol("t") if var is None else var
    return sp.Matrix([[1, t], [t, t**2]])


def coefficient_decomposition(A, *, var):
    """``A = Σ_s var**s A_s`` for a polynomial matrix: the lists (phis, Ms).

    Parameters
    ----------
    A : sympy.Matrix
        Polynomial entries in ``var``.
    var : sympy.Symbol

    Returns
    -------
    phis : list
        ``[1, var, var**2, ...]`` (only the powers with a nonzero coefficient).
    Ms : list of sympy.Matrix
        The constant coefficient matrices.

    Raises
    ------
    ValueError
        If an entry is not a polynomial in ``var`` with rational coefficients.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> phis, Ms = coefficient_decomposition(overlapping_example(t), var=t)
    >>> phis, [M.tolist() for M in Ms]
    ([1, t, t**2], [[[1, 0], [0, 0]], [[0, 1], [1, 0]], [[0, 0], [0, 1]]])
    """
    A = sp.Matrix(A)
    polys = {}
    for i in range(A.rows):
        for j in range(A.cols):
            try:
                P = sp.Poly(A[i, j], var)
            except sp.PolynomialError:
                raise ValueError(f"A[{i}, {j}] = {A[i, j]} is not a polynomial in {var}") from None
            if not (P.domain.is_ZZ or P.domain.is_QQ):
                raise ValueError(f"A[{i}, {j}] = {A[i, j]} has non-rational coefficients")
            polys[i, j] = P
    deg = max((P.degree() for P in polys.values()), default=0)
    phis, Ms = [], []
    for s in range(max(deg, 0) + 1):
        coeffs = [polys[i, j].coeff_monomial(var**s) for i in range(A.rows) for j in range(A.cols)]
        M = sp.Matrix(A.rows, A.cols, coeffs)
        if any(M):
            phis.append(var**s if s else sp.Integer(1))
            Ms.append(M)
    return phis, Ms


def counterexamples(seed=0, *, count=5, size=(3, 3), maxdeg=2, var=None):
    """Yield rank-increasing matrices ``u vᵀ`` with certified profiles.

    Parameters
    ----------
    seed : int
        Random seed.
    count : int
        Number of examples to yield.
    size : tuple of int
        ``(m, n)``, both at least 2.
    maxdeg : int
        Maximal degree of the entries of ``u`` and ``v`` (at least 1).
    var : sympy.Symbol, optional

    Yields
    ------
    A : sympy.Matrix
        ``u vᵀ``.
    profile : theory.profiles.Profile
        Certified derivative profile up to order ``2 * maxdeg + 1``, with
        ``ρ(1) > ρ(0)``.

    Raises
    ------
    ValueError
        If ``size`` has a side below 2 or ``maxdeg < 1``.

    Examples
    --------
    >>> A, prof = next(counterexamples(count=1))
    >>> prof.ranks[:2]
    (1, 2)
    """
    m, n = size
    if m < 2 or n < 2 or maxdeg < 1:
        raise ValueError(f"need size >= (2, 2) and maxdeg >= 1, got size={size}, maxdeg={maxdeg}")
    t = sp.Symbol("t") if var is None else var
    rng = random.Random(seed)
    made = 0
    while made < count:

        def vec(k):
            return sp.Matrix([sum(rng.randint(-3, 3) * t**e for e in range(maxdeg + 1)) for _ in range(k)])

        u, v = vec(m), vec(n)
        A = (u * v.T).applyfunc(sp.expand)
        prof = rank_profile(A, 2 * maxdeg + 1, var=t, seed=rng.randrange(2**30))
        if prof.ranks[0] == 1 and prof.ranks[1] == 2:
            made += 1
            yield A, prof


def check(seed=0, *, count=4):
    """C1′ checks for ``python -m theory``.

    The overlapping example has profile ``(1, 2, 1, 0)`` for derivatives and
    for differences (in ``j``), and its coefficient decomposition fails both
    direct-sum hypotheses; every generated counterexample increases and its
    coefficient decomposition fails both hypotheses too.

    Returns
    -------
    list of ClaimResult

    Examples
    --------
    >>> all(r.passed for r in check(count=1))
    True
    """
    res = ClaimResult("C1' boundary: overlap breaks monotonicity")
    with timed(res):
        t, j = sp.Symbol("t"), sp.Symbol("j", integer=True)
        A = overlapping_example(t)
        p = rank_profile(A, 3, var=t, seed=seed)
        res.record(p.certified and p.ranks == OVERLAPPING_PROFILE, f"[[1,t],[t,t^2]] derivative profile {p.ranks}")
        q = difference_profile(overlapping_example(j), 3, var=j, seed=seed)
        res.record(q.certified and q.ranks == OVERLAPPING_PROFILE, f"[[1,j],[j,j^2]] difference profile {q.ranks}")
        _, Ms = coefficient_decomposition(A, var=t)
        res.record(direct_sum_side(Ms) is None, "E11 + t(E12+E21) + t^2 E22: no direct sum")
        for A, prof in counterexamples(seed, count=count, var=t):
            _, Ms = coefficient_decomposition(A, var=t)
            ok = prof.certified and not is_nonincreasing(prof.ranks) and direct_sum_side(Ms) is None
            res.record(ok, f"u v^T profile {prof.ranks}, decomposition not direct")
    return [res]
