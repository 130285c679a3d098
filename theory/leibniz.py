"""C2 — Leibniz rule, Hankel growth, the (j+1)-bound and rank-one persistence.

Statements
----------
Leibniz rule
    ``(BC)^{(k)} = Σ_{i=0}^{k} C(k, i) B^{(i)} C^{(k-i)}``; for differences
    ``Δ^k(BC)(j) = Σ_i C(k, i) Δ^i B(j) · Δ^{k-i} C(j + i)``.

Hankel family
    ``H_d = u uᵀ`` with ``u = (1, t, ..., t^d)`` has profile
    ``ρ(k) = max(0, min(k + 1, 2d + 1 - k))``, strictly increasing for
    ``k <= d`` — for derivatives and for forward differences.

Bound
    For every matrix function, ``ρ(k + j) <= (j + 1) ρ(k)``.  Proof: write
    ``A^{(k)} = U V`` with ``U`` of size ``m x r``, ``V`` of size ``r x n``
    over ℚ(t), ``r = ρ(k)`` (rank factorisation).  By Leibniz,
    ``A^{(k+j)} = Σ_{i=0}^{j} C(j, i) U^{(i)} V^{(j-i)}``, a sum of ``j + 1``
    matrices of rank ``<= r``.  The discrete Leibniz rule gives the same for
    differences.  Tight: ``r`` diagonal copies of the k-fold antiderivative of
    ``H_d`` (``d >= j``) have ``ρ(k) = r`` and ``ρ(k + j) = (j + 1) r``.

Rank-one persistence
    If ``ρ(k) = 1`` and ``ρ(k + 1) <= 1`` then ``ρ(k + i) <= 1`` for all i.
    Proof: ``A^{(k)} = u vᵀ``, ``A^{(k+1)} = u' vᵀ + u v'ᵀ = [u' u][v v']ᵀ``.
    If ``u, u'`` were independent and ``v, v'`` independent this would have
    rank 2; so ``u' = α u`` or ``v' = β v`` (α, β ∈ ℚ(t)).  In the first case
    every later derivative has the form ``u wᵀ`` (since ``(u wᵀ)' =
    u (α w + w')ᵀ``), in the second ``w vᵀ``: rank ``<= 1`` forever.  For
    differences the same argument works with ``Δ(u vᵀ)(j) = Δu(j) v(j+1)ᵀ +
    u(j) Δv(j)ᵀ``.

Examples
--------
>>> import sympy as sp
>>> t = sp.Symbol("t")
>>> hankel_formula(2, 5)
(1, 2, 3, 2, 1, 0)
>>> from theory.profiles import rank_profile
>>> rank_profile(hankel(2, t), 5).ranks
(1, 2, 3, 2, 1, 0)
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import sympy as sp

from ._claims import ClaimResult, block_diag, timed
from ._convert import RationalMatrix
from ._typing import Matrix, MatrixLike, Symbol
from .profiles import derivatives, difference_profile, differences, rank_profile

__all__ = [
    "leibniz_sum",
    "check_leibniz",
    "hankel",
    "hankel_formula",
    "antiderivative_hankel",
    "bound_violations",
    "persistence_violations",
    "doubling_violations",
    "rigidity_violations",
    "tight_example",
    "check",
]


def _check_int(name, v, low=0):
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


def leibniz_sum(B: MatrixLike, C: MatrixLike, k: int, *, var: Symbol, kind: str = "derivative") -> RationalMatrix:
    """Right-hand side of the (discrete) Leibniz rule as a RationalMatrix.

    Parameters
    ----------
    B, C : matrices
        Compatible shapes, entries rational in ``var``.
    k : int
        Order.
    var : sympy.Symbol
    kind : {"derivative", "difference"}

    Returns
    -------
    RationalMatrix
        ``Σ C(k,i) B^{(i)} C^{(k-i)}`` or ``Σ C(k,i) Δ^i B(j) Δ^{k-i} C(j+i)``.

    Raises
    ------
    ValueError
        On bad ``k``, ``kind`` or shapes.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> leibniz_sum(sp.Matrix([[t]]), sp.Matrix([[t**2]]), 2, var=t).to_sympy()
    Matrix([[6*t]])
    """
    _check_int("k", k)
    if kind not in ("derivative", "difference"):
        raise ValueError(f"kind must be 'derivative' or 'difference', got {kind!r}")
    B, C = sp.Matrix(B), sp.Matrix(C)
    if B.cols != C.rows:
        raise ValueError(f"B is {B.shape} and C is {C.shape}: B*C is undefined")
    ops = derivatives if kind == "derivative" else differences
    Bs, Cs = ops(B, k, var=var), ops(C, k, var=var)
    total = sp.zeros(B.rows, C.cols)
    for i in range(k + 1):
        Ci = Cs[k - i] if kind == "derivative" else Cs[k - i].shift(i)
        total += sp.binomial(k, i) * Bs[i].to_sympy() * Ci.to_sympy()
    return RationalMatrix.from_sympy(total, var)


def check_leibniz(B: MatrixLike, C: MatrixLike, k: int, *, var: Symbol, kind: str = "derivative") -> bool:
    """Whether the Leibniz identity holds exactly for ``B C`` at order ``k``.

    Returns
    -------
    bool

    Examples
    --------
    >>> import sympy as sp
    >>> j = sp.Symbol("j", integer=True)
    >>> check_leibniz(sp.Matrix([[j, 1]]), sp.Matrix([[j**2], [1 / (j + 1)]]), 3, var=j, kind="difference")
    True
    """
    lhs = (derivatives if kind == "derivative" else differences)(sp.Matrix(B) * sp.Matrix(C), k, var=var)[k]
    return (lhs - leibniz_sum(B, C, k, var=var, kind=kind)).is_zero()


def hankel(d: int, var: Symbol) -> Matrix:
    """``H_d = u uᵀ`` with ``u = (1, t, ..., t^d)``.

    Examples
    --------
    >>> import sympy as sp
    >>> hankel(1, sp.Symbol("t"))
    Matrix([
    [1,    t],
    [t, t**2]])
    """
    _check_int("d", d)
    u = sp.Matrix([var**i for i in range(d + 1)])
    return u * u.T


def hankel_formula(d: int, max_order: int) -> tuple[int, ...]:
    """``(max(0, min(k+1, 2d+1-k)) for k = 0..max_order)``: the profile of ``H_d``.

    Examples
    --------
    >>> hankel_formula(1, 4)
    (1, 2, 1, 0, 0)
    """
    _check_int("d", d)
    _check_int("max_order", max_order)
    return tuple(max(0, min(k + 1, 2 * d + 1 - k)) for k in range(max_order + 1))


def antiderivative_hankel(d: int, m: int, var: Symbol) -> Matrix:
    """The m-fold antiderivative of ``H_d`` with zero integration constants.

    Entry ``(a, b)`` is ``(a+b)! / (a+b+m)! · t^{a+b+m}``.  Its profile is
    ``d+1`` repeated ``m`` times followed by the Hankel profile
    (the constant Hankel matrices ``[s!/(s+m-k)!]`` are moment matrices of
    a positive measure on [0, 1], hence nonsingular).

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> antiderivative_hankel(1, 1, t)
    Matrix([
    [     t, t**2/2],
    [t**2/2, t**3/3]])
    """
    _check_int("d", d)
    _check_int("m", m)
    return sp.Matrix(d + 1, d + 1, lambda a, b: var ** (a + b + m) * sp.factorial(a + b) / sp.factorial(a + b + m))


def bound_violations(ranks: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs ``(k, j)`` with ``ranks[k+j] > (j+1) * ranks[k]``.

    Examples
    --------
    >>> bound_violations((1, 3, 2))
    [(0, 1)]
    """
    K = len(ranks)
    return [(k, j) for k in range(K) for j in range(1, K - k) if ranks[k + j] > (j + 1) * ranks[k]]


def persistence_violations(ranks):
    """Pairs ``(k, i)`` with ``ranks[k] == 1``, ``ranks[k+1] <= 1``, ``ranks[k+i] > 1``.

    Examples
    --------
    >>> persistence_violations((1, 1, 2)), persistence_violations((1, 2, 1))
    ([(0, 2)], [])
    """
    K = len(ranks)
    return [
        (k, i) for k in range(K - 1) if ranks[k] == 1 and ranks[k + 1] <= 1 for i in range(2, K - k) if ranks[k + i] > 1
    ]


def rigidity_violations(ranks):
    """Pairs ``(k, j)`` with ``ranks[k+j] == (j+1) ranks[k] > 0`` but ``ranks[k+j+1] < j ranks[k]``.

    Generalised rigidity says this never happens, for derivatives and for
    forward differences (proof in the theory documentation, "Generalised
    rigidity").  ``j = 1`` is doubling rigidity.

    Examples
    --------
    >>> rigidity_violations((1, 2, 0)), rigidity_violations((1, 2, 3, 1)), rigidity_violations((1, 2, 3, 2))
    ([(0, 1)], [(0, 2)], [])
    """
    K = len(ranks)
    return [
        (k, j)
        for k in range(K)
        for j in range(1, K - k - 1)
        if ranks[k] and ranks[k + j] == (j + 1) * ranks[k] and ranks[k + j + 1] < j * ranks[k]
    ]


def doubling_violations(ranks):
    """Orders ``k`` with ``ranks[k+1] == 2 ranks[k] > 0`` but ``ranks[k+2] < ranks[k]``.

    This never happens, for derivatives and for differences: it is the case
    ``j = 1`` of :func:`rigidity_violations`.

    Examples
    --------
    >>> doubling_violations((1, 2, 0)), doubling_violations((1, 2, 1))
    ([0], [])
    """
    return [k for k in range(len(ranks) - 2) if ranks[k] and ranks[k + 1] == 2 * ranks[k] and ranks[k + 2] < ranks[k]]


def tight_example(k: int, j: int, r: int, var: Symbol) -> Matrix:
    """A matrix with ``ρ(k) = r`` and ``ρ(k + j) = (j + 1) r``.

    ``r`` diagonal copies of the k-fold antiderivative of ``H_j``.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> from theory.profiles import rank_profile
    >>> rank_profile(tight_example(1, 2, 1, t), 3).ranks
    (3, 1, 2, 3)
    """
    _check_int("k", k)
    _check_int("j", j, 1)
    _check_int("r", r, 1)
    G = antiderivative_hankel(j, k, var)
    return block_diag(*([G] * r))


def check(seed: int = 0, *, d_max: int = 4, n_products: int = 6, n_identities: int = 3) -> list[ClaimResult]:
    """C2 checks for ``python -m theory``.

    Parameters
    ----------
    seed : int
        Seed for the random instances.
    d_max : int
        Hankel matrices ``H_0 .. H_{d_max}``.
    n_products : int
        Random products ``B C`` whose profiles are checked against the bounds.
    n_identities : int
        Random ``2x3 * 3x2`` products on which the Leibniz identity is checked
        (the slowest part: exact symbolic sums of rational matrices).

    Returns
    -------
    list of ClaimResult
        Leibniz identities, Hankel formula (derivatives and differences),
        tightness, bound and persistence on random products.

    Examples
    --------
    >>> all(r.passed for r in check(d_max=1, n_products=1, n_identities=1))
    True
    """
    rng = random.Random(seed)
    t, jv = sp.Symbol("t"), sp.Symbol("j", integer=True)
    out = []

    res = ClaimResult("C2 Leibniz rule (derivative & difference)")
    with timed(res):
        for i in range(n_identities):
            B = sp.Matrix(2, 3, lambda *_: rng.randint(-2, 2) * t**2 + rng.randint(-2, 2) * t + rng.randint(-2, 2))
            C = sp.Matrix(3, 2, lambda *_: rng.randint(-2, 2) * t + rng.randint(1, 2) / (t + rng.randint(1, 3)))
            res.record(check_leibniz(B, C, 3, var=t), f"random 2x3 * 3x2, k=3, derivative #{i}")
            ok = check_leibniz(B.subs(t, jv), C.subs(t, jv), 3, var=jv, kind="difference")
            res.record(ok, f"same, difference #{i}")
    out.append(res)

    res = ClaimResult("C2 Hankel profile max(0,min(k+1,2d+1-k))")
    with timed(res):
        for d in range(d_max + 1):
            want = hankel_formula(d, 2 * d + 2)
            p = rank_profile(hankel(d, t), 2 * d + 2, var=t, seed=seed + d)
            q = difference_profile(hankel(d, jv), 2 * d + 2, var=jv, seed=seed + d)
            res.record(p.certified and p.ranks == want, f"H_{d} derivatives {p.ranks}")
            res.record(q.certified and q.ranks == want, f"H_{d} differences {q.ranks}")
    out.append(res)

    res = ClaimResult("C2 bound (j+1)rho(k), tight; persistence; rigidity")
    with timed(res):
        for k, j, r in ((0, 2, 1), (1, 1, 2), (2, 2, 1), (1, 3, 1)):
            p = rank_profile(tight_example(k, j, r, t), k + j, var=t, seed=seed)
            res.record(p.ranks[k] == r and p.ranks[k + j] == (j + 1) * r, f"tight k={k} j={j} r={r}: profile {p.ranks}")
        for i in range(n_products):
            m, s, n = rng.randint(2, 4), rng.randint(1, 2), rng.randint(2, 4)
            B = sp.Matrix(m, s, lambda *_: sum(rng.randint(-2, 2) * t**e for e in range(rng.randint(1, 3))))
            C = sp.Matrix(s, n, lambda *_: sum(rng.randint(-2, 2) * t**e for e in range(rng.randint(1, 3))))
            p = rank_profile((B * C).applyfunc(sp.expand), 5, var=t, seed=seed + i)
            q = difference_profile((B * C).subs(t, jv).applyfunc(sp.expand), 5, var=jv, seed=seed + i)
            ok = all(
                P.certified
                and not (bound_violations(P.ranks) or persistence_violations(P.ranks) or rigidity_violations(P.ranks))
                for P in (p, q)
            )
            res.record(ok, f"random {m}x{s}x{n} product: profiles {p.ranks} (d/dt), {q.ranks} (Δ)")
    out.append(res)
    return out
