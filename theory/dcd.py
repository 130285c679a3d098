"""The ``D_a C D_b`` family: matrix functions whose profile is a constant-matrix rank.

For integer exponents ``a_1..a_m``, ``b_1..b_n`` (negative allowed: Laurent
entries) and a constant rational matrix ``C``, let

    A(t) = D_a C D_b,   D_a = diag(t^{a_i}),   i.e.   A_ij = C_ij t^{a_i + b_j}.

Then ``A^{(k)} = t^{-k} D_a (C ∘ F_k) D_b`` with ``F_k[i, j] = (a_i + b_j)_k``
(falling factorial), because ``d^k/dt^k t^s = (s)_k t^{s-k}``.  ``D_a``,
``D_b`` and ``t^{-k}`` are invertible over ℚ(t), so

    ρ_A(k) = rank_ℚ (C ∘ F_k):

the generic profile is the rank of a *constant* Hadamard product — cheap and
exact.  Every block of the designer's library is of this form (``t^e``:
``a = (e,)``, ``b = (0,)``, ``C = [[1]]``; ``∫^m u_a u_bᵀ``: exponents
``i + m`` and ``j``, ``C_ij = (i+j)!/(i+j+m)!``), and block-diagonal sums of
such matrices are again of this form (exponents concatenated, ``C`` block
diagonal).

:func:`border_search` looks for a target profile by *lifting*: it realises
the tail ``(r_m, …, r_{K-1})`` by a sum of library blocks, integrates it
``m`` times (the tail moves to orders ``m..K-1``), and adds random border rows
and columns (random exponents, random small integer entries) until the
profile at every order matches.  The profile of each candidate is computed
exactly (modular ranks for speed, then confirmed over ℚ).

Examples
--------
>>> dcd_profile((0, 1), (0, 1), ((1, 1), (1, 1)), 4)      # H_1 = u uᵀ, u = (1, t)
(1, 2, 1, 0)
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from . import _modular as mod
from ._typing import Matrix, Symbol

__all__ = ["block_sum_dcd", "border_search", "dcd_matrix", "dcd_profile", "library_to_dcd"]

_PRIME = 2147483629  # a prime below 2**31, for the quick modular screen


def _falling(s, k):
    out = 1
    for i in range(k):
        out *= s - i
    return out


def _check(a, b, C):
    a, b = tuple(int(x) for x in a), tuple(int(x) for x in b)
    C = tuple(tuple(sp.Rational(x) for x in row) for row in C)
    if len(C) != len(a) or any(len(row) != len(b) for row in C):
        raise ValueError(f"C must have shape ({len(a)}, {len(b)}) to match a and b")
    return a, b, C


def dcd_matrix(a: Sequence[int], b: Sequence[int], C: Sequence[Sequence[Any]], var: Symbol) -> Matrix:
    """The matrix ``A_ij = C_ij var^(a_i + b_j)``.

    Parameters
    ----------
    a, b : sequence of int
        Row and column exponents (negative allowed).
    C : sequence of sequences of rationals, shape (len(a), len(b))
    var : sympy.Symbol

    Returns
    -------
    sympy.ImmutableMatrix

    Examples
    --------
    >>> import sympy as sp
    >>> dcd_matrix((0, 1), (-1, 0), ((1, 2), (3, 4)), sp.Symbol("t"))
    Matrix([
    [1/t,   2],
    [  3, 4*t]])
    """
    a, b, C = _check(a, b, C)
    return sp.ImmutableMatrix(len(a), len(b), lambda i, j: C[i][j] * var ** (a[i] + b[j]))


def _hadamard(a, b, C, k):
    return [[C[i][j] * _falling(a[i] + b[j], k) for j in range(len(b))] for i in range(len(a))]


def dcd_profile(a: Sequence[int], b: Sequence[int], C: Sequence[Sequence[Any]], K: int) -> tuple[int, ...]:
    """Exact generic profile ``rank(C ∘ F_k)``, ``k = 0..K-1``.

    Parameters
    ----------
    a, b : sequence of int
    C : sequence of sequences of rationals
    K : int
        Number of orders.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> dcd_profile((3,), (0,), ((1,),), 5)   # t^3
    (1, 1, 1, 1, 0)
    """
    a, b, C = _check(a, b, C)
    if not a or not b:
        return (0,) * K
    return tuple(sp.Matrix(_hadamard(a, b, C, k)).rank() for k in range(K))


def _quick_profile(a, b, C, K):
    """Profile from ranks modulo one large prime (a lower bound; exact with high probability)."""
    m, n = len(a), len(b)
    if not m or not n:
        return (0,) * K
    S = np.add.outer(np.asarray(a, np.int64), np.asarray(b, np.int64))
    F = np.ones_like(S)
    Cm = np.asarray(C, np.int64) % _PRIME
    out = []
    for k in range(K):
        out.append(mod.rank_mod((Cm * (F % _PRIME)) % _PRIME, _PRIME)[0])
        F = (F * ((S - k) % _PRIME)) % _PRIME
    return tuple(out)


def library_to_dcd(block):
    """A library block as ``(a, b, C)`` with integer ``C``.

    Parameters
    ----------
    block : tuple
        ``("monomial", e)``, ``("hankel_anti", d, m)``, ``("rect_anti", a, b, m)``
        or ``("dcd", a, b, C)``.

    Returns
    -------
    tuple
        ``(a, b, C)``; ``C`` is scaled by a positive integer (which changes
        no rank).

    Examples
    --------
    >>> library_to_dcd(("hankel_anti", 1, 2))
    ((2, 3), (0, 1), ((6, 2), (2, 1)))
    """
    kind = block[0]
    if kind == "monomial":
        return (int(block[1]),), (0,), ((1,),)
    if kind == "dcd":
        return tuple(block[1]), tuple(block[2]), tuple(tuple(int(x) for x in row) for row in block[3])
    if kind == "hankel_anti":
        d, m = block[1:]
        ra, rb = d, d
    elif kind == "rect_anti":
        ra, rb, m = block[1:]
    else:
        raise ValueError(f"unknown block {block!r}")
    L = math.factorial(ra + rb + m)  # makes every (i+j)!/(i+j+m)! an integer
    C = tuple(
        tuple(L * math.factorial(i + j) // math.factorial(i + j + m) for j in range(rb + 1)) for i in range(ra + 1)
    )
    g = math.gcd(*[x for row in C for x in row])
    C = tuple(tuple(x // g for x in row) for row in C)
    return tuple(i + m for i in range(ra + 1)), tuple(range(rb + 1)), C


def block_sum_dcd(parts):
    """Block-diagonal sum of ``(a, b, C)`` triples, again an ``(a, b, C)`` triple.

    Examples
    --------
    >>> block_sum_dcd([((0,), (0,), ((1,),)), ((1,), (1,), ((2,),))])
    ((0, 1), (0, 1), ((1, 0), (0, 2)))
    """
    a = tuple(x for p in parts for x in p[0])
    b = tuple(x for p in parts for x in p[1])
    C = [[0] * len(b) for _ in a]
    r0 = c0 = 0
    for pa, pb, pC in parts:
        for i in range(len(pa)):
            for j in range(len(pb)):
                C[r0 + i][c0 + j] = pC[i][j]
        r0 += len(pa)
        c0 += len(pb)
    return a, b, tuple(tuple(row) for row in C)


def _integrate(block, m):
    """The m-fold antiderivative (zero constants) of a library block, as a library block."""
    kind = block[0]
    if kind == "monomial":
        return ("monomial", block[1] + m)
    if kind == "hankel_anti":
        return ("hankel_anti", block[1], block[2] + m)
    if kind == "rect_anti":
        return ("rect_anti", block[1], block[2], block[3] + m)
    raise ValueError(f"cannot integrate {block!r}")


def border_search(
    target,
    tail_designs,
    *,
    budget=4000,
    seed=0,
    max_border=3,
    exp_range=(-2, 4),
    entries=(-2, -1, 1, 1, 2, 3),
    p_low=0.7,
    p_high=0.15,
):
    """Search a ``D_a C D_b`` realisation of ``target`` by lifting a tail design and adding a border.

    Parameters
    ----------
    target : tuple of int
        ``(r_0, …, r_{K-1})``.
    tail_designs : callable
        ``tail_designs(tail)`` returns a list of library blocks whose
        block-diagonal sum has generic profile ``tail`` (or None).
    budget : int
        Random border candidates per lifting order ``m``.
    seed : int
        The search is deterministic for a given seed.
    max_border : int
        At most this many new rows and new columns.
    exp_range : (int, int)
        Border exponents are drawn from ``range(*exp_range)`` shifted by ``m``
        (so entries of degree below ``m`` dominate, Laurent entries allowed).
    entries : tuple of int
        Nonzero values drawn for border entries.
    p_low, p_high : float
        Probability that a border entry is nonzero when its exponent sum is
        in ``[0, m)`` (it vanishes from order ``m`` on), resp. outside.

    Returns
    -------
    tuple or None
        ``("dcd", a, b, C)`` whose exact profile (:func:`dcd_profile`) equals
        ``target``, or None.

    Examples
    --------
    >>> from theory.designer import design_profile
    >>> tails = lambda tail: design_profile(tail, use_data=False).blocks or None
    >>> blk = border_search((3, 4, 1, 2), tails, budget=600, seed=6)
    >>> dcd_profile(*blk[1:], 4)
    (3, 4, 1, 2)
    """
    target = tuple(target)
    K = len(target)
    rng = random.Random(seed)
    for m in range(1, K):
        tail = target[m:]
        blocks = tail_designs(tail) if any(tail) else []
        if blocks is None:
            continue
        base = block_sum_dcd([library_to_dcd(_integrate(b, m)) for b in blocks]) if blocks else ((), (), ())
        ba, bb, bC = base
        if len(ba) > max(target) + max_border:
            continue
        for _ in range(budget):
            p = rng.randint(0, max_border)
            q = rng.randint(0 if p else 1, max_border)
            a = list(ba) + [rng.randrange(*exp_range) + m // 2 for _ in range(p)]
            b = list(bb) + [rng.randrange(*exp_range) + (m - m // 2) - 1 for _ in range(q)]
            M, N = len(a), len(b)
            C = [[0] * N for _ in range(M)]
            for i in range(len(ba)):
                for j in range(len(bb)):
                    C[i][j] = bC[i][j]
            for i in range(M):
                for j in range(N):
                    if i < len(ba) and j < len(bb):
                        continue
                    # entries of degree in [0, m) vanish from order m on and leave the tail alone
                    low = 0 <= a[i] + b[j] < m
                    if rng.random() < (p_low if low else p_high):
                        C[i][j] = rng.choice(entries)
            if rng.random() < 0.6 and M > 2:
                # make one border row (or column) a combination of two others: rank drops at
                # order 0 only, since the Hadamard factors of the orders >= 1 differ per row
                if p and (not q or rng.random() < 0.5):
                    i = rng.randrange(len(ba), M)
                    i1, i2 = rng.sample([x for x in range(M) if x != i], 2)
                    c1, c2 = rng.choice(entries), rng.choice(entries)
                    C[i] = [c1 * C[i1][j] + c2 * C[i2][j] for j in range(N)]
                elif q and N > 2:
                    j = rng.randrange(len(bb), N)
                    j1, j2 = rng.sample([x for x in range(N) if x != j], 2)
                    c1, c2 = rng.choice(entries), rng.choice(entries)
                    for i in range(M):
                        C[i][j] = c1 * C[i][j1] + c2 * C[i][j2]
            prof = _quick_profile(a, b, C, K)
            excess = [x - y for x, y in zip(prof, target)]
            if 0 < sum(excess) <= 3 and min(excess) >= 0:
                C = _repair(a, b, C, target, rng)
                if C is None:
                    continue
                prof = _quick_profile(a, b, C, K)
            if prof != target:
                continue
            if dcd_profile(a, b, C, K) == target:
                # zero rows and columns change no rank: drop them
                keep_r = [i for i in range(M) if any(C[i])]
                keep_c = [j for j in range(N) if any(C[i][j] for i in range(M))]
                return (
                    "dcd",
                    tuple(a[i] for i in keep_r),
                    tuple(b[j] for j in keep_c),
                    tuple(tuple(int(C[i][j]) for j in keep_c) for i in keep_r),
                )
    return None


def _transpose(C):
    return [list(col) for col in zip(*C)]


def _make_row_dependent(a, b, C, H, k, spots, rng, C_out=None):
    """Change the entries with exponent sum k of one row so that it joins the span of the others.

    ``H = C ∘ F_k``; only entries with ``a_i + b_j == k`` may change (they
    are invisible at every order above ``k``).  Solves ``H[i, fixed] = λ
    H[others, fixed]`` for ``λ`` and sets ``H[i, free] = λ H[others, free]``;
    the row of ``C`` is then rescaled to integers.  ``C_out`` receives the
    change transposed back when working on columns.  Returns True on success.
    """
    rows_with_spots = sorted({i for i, _ in spots})
    rng.shuffle(rows_with_spots)
    fk = math.factorial(k)
    for i in rows_with_spots:
        free = [j for (ii, j) in spots if ii == i]
        fixed = [j for j in range(len(b)) if j not in free]
        others = [r for r in range(len(a)) if r != i]
        if not others:
            continue
        lam = sp.symbols(f"l0:{len(others)}")
        eqs = [sum(lam[n] * H[r, j] for n, r in enumerate(others)) - H[i, j] for j in fixed]
        sol = sp.linsolve(eqs, lam) if eqs else sp.FiniteSet(tuple(0 for _ in lam))
        if not sol:
            continue
        vals = list(next(iter(sol)))
        vals = [v.subs({x: 0 for x in lam}) for v in vals]  # a particular solution
        new = {j: sum(vals[n] * H[r, j] for n, r in enumerate(others)) / fk for j in free}
        if all(v == C[i][j] for j, v in new.items()):
            continue
        row = [sp.Rational(c) for c in C[i]]
        for j, v in new.items():
            row[j] = sp.Rational(v)
        q = math.lcm(*[int(v.q) for v in row])
        row = [int(v * q) for v in row]
        if not any(row):
            continue
        C[i] = row
        if C_out is not None:
            for j in range(len(row)):
                C_out[j][i] = row[j]
        return True
    return False


def _repair(a, b, C, target, rng):
    """Lower too-high ranks order by order, from the top, by solving linear equations.

    An entry with exponent sum ``s = a_i + b_j`` in ``[0, K)`` appears in
    ``C ∘ F_k`` only for ``k <= s`` (``(s)_k = 0`` for ``k > s``).  So the
    rank at order ``k`` can be lowered by changing entries with ``s = k``
    without touching any higher order: the free entries of one row (or
    column) are set so that it lies in the span of the others, when the
    fixed entries allow it.  Orders are repaired from ``K - 1`` down to 0; a
    rank below its target cannot be raised this way, and gives None.
    """
    K = len(target)
    C = [list(row) for row in C]
    for k in range(K - 1, -1, -1):
        spots = [(i, j) for i in range(len(a)) for j in range(len(b)) if a[i] + b[j] == k]
        rng.shuffle(spots)
        for _ in range(4):
            H = sp.Matrix(_hadamard(a, b, C, k))
            r = H.rank()
            if r == target[k]:
                break
            if r < target[k]:
                return None
            done = _make_row_dependent(a, b, C, H, k, spots, rng) or _make_row_dependent(
                b, a, _transpose(C), H.T, k, [(j, i) for i, j in spots], rng, C_out=C
            )
            if not done:
                return None
        else:
            if sp.Matrix(_hadamard(a, b, C, k)).rank() != target[k]:
                return None
    return C
