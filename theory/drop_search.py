"""Linear families for the drop bound ``ρ(k) <= ρ(0) + ρ(k+1)`` (false: see :mod:`theory.poles`).

When this module was written the bound was unproved, and the six rows then
open in the K <= 5 designer table were exactly the permutations that pass
every proved condition and violate it.  This module searches for a
counterexample in a way that covers whole linear families at once instead of
single random matrices.  It found none in the families it drew; the
counterexamples came from :mod:`theory.poles` and
:mod:`theory.rank_one_search`.

The family of ``(U, W, k)``.  Let ``U`` be an ``m × r`` and ``W`` an ``r × q``
matrix of Laurent polynomials, and ``X = (U W)^{(k+1)}``.  The vectors ``v``
of Laurent polynomials with exponents in a window ``[lo, hi]`` such that

    (U v)^{(k+1)}  lies in the column space of X over ℚ(t)

form a ℚ-vector space ``N`` (the condition is linear in the coefficients of
``v``: with pivot rows ``I`` and pivot columns ``J`` of ``X``, it says
``det(X_IJ) w_j = X_jJ adj(X_IJ) w_I`` for ``w = (U v)^{(k+1)}`` and every
row ``j`` outside ``I``).  The *generic member* of the family is
``G = U [v_1 … v_N]`` for a basis ``v_1 … v_N`` of ``N``. Then

* ``rank G <= rank U`` and ``rank G^{(k+1)} <= rank X <= q``;
* every matrix ``B`` whose columns are ``U v`` with ``v ∈ N`` is ``G C`` for a
  constant matrix ``C``, so ``rank B^{(j)} <= rank G^{(j)}`` at every order.

Hence if some Laurent-polynomial matrix ``A`` violated the bound at order
``k``, so would the generic member of the family with ``U = A``,
``W = (e_j)_{j ∈ J}`` for columns ``J`` whose ``(k+1)``-th derivatives span
those of ``A``, and a window containing ``0``:
``ρ_G(k) >= ρ_A(k) > ρ_A(0) + ρ_A(k+1) >= ρ_G(0) + ρ_G(k+1)``.  A search over
``(U, W, k, window)`` therefore searches, for each draw, every matrix of the
family at once.  :func:`drop_search` draws families with sparse random integer
coefficients, screens the generic member's profile with ranks modulo a 31-bit
prime at a random point, and re-checks any violation exactly
(:func:`family_matrix` and the certified engine).

Examples
--------
>>> import numpy as np
>>> U = {0: np.array([[1], [0]]), 1: np.array([[0], [1]])}   # u = (1, t)
>>> W = {0: np.array([[1]]), 1: np.array([[1]])}            # w = 1 + t
>>> G = family_matrix(U, W, k=1, window=(0, 2))   # v'' = 0: v in {1, t}
>>> G
Matrix([
[1,    t],
[t, t**2]])
>>> from theory import rank_profile
>>> rank_profile(G, 3).ranks
(1, 2, 1, 0)
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ._typing import Matrix, Symbol

__all__ = ["DropSearchResult", "drop_bound_violation", "drop_search", "family_matrix", "family_profile_mod"]

_P = 2147483629  # a prime below 2**31: a product of two residues fits in int64

T = sp.Symbol("t")

LaurentMatrix = Mapping[int, Any]  # exponent -> integer matrix (array_like)


def _falling(s, k):
    out = 1
    for i in range(k):
        out *= s - i
    return out


def drop_bound_violation(profile) -> int | None:
    """First order ``n >= 1`` with ``ρ(n) > ρ(n+1) + min_{j<n} ρ(j)``, or None.

    The drop bound, once conjectured, says there is none; :mod:`theory.poles` shows it false.

    Examples
    --------
    >>> drop_bound_violation((2, 3, 4, 1)), drop_bound_violation((1, 2, 1, 0))
    (2, None)
    """
    p = tuple(profile)
    for n in range(1, len(p) - 1):
        if p[n] > p[n + 1] + min(p[:n]):
            return n
    return None


# ---------------------------------------------------------------------------
# Laurent-polynomial matrices as {exponent: matrix}; exact (Python ints in
# object arrays) when mod is None, else reduced modulo the prime mod.
# ---------------------------------------------------------------------------
def _as_laurent(P, name):
    if not isinstance(P, Mapping) or not P:
        raise TypeError(f"{name} must be a non-empty dict {{exponent: integer matrix}}, got {type(P).__name__}")
    out, shape = {}, None
    for e, C in P.items():
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)):
            raise TypeError(f"{name}: exponents must be ints, got {e!r}")
        arr = np.asarray(C)
        if arr.ndim != 2 or arr.dtype.kind not in "iu":
            raise TypeError(f"{name}[{e}] must be a 2-D integer matrix, got dtype {arr.dtype} and shape {arr.shape}")
        if shape is not None and arr.shape != shape:
            raise ValueError(f"{name}: every coefficient must have shape {shape}, got {arr.shape} at exponent {e}")
        shape = arr.shape
        out[int(e)] = arr.astype(object)
    return out, shape


def _reduce(P, mod):
    if mod is None:
        return {e: C for e, C in P.items() if any(x != 0 for x in C.flat)}
    out = {}
    for e, C in P.items():
        R = (np.asarray(C, dtype=object) % mod).astype(np.int64)
        if R.any():
            out[e] = R
    return out


def _mul(P, Q, mod):
    out: dict[int, Any] = {}
    for a, A in P.items():
        for b, B in Q.items():
            prod = A.dot(B) if mod is None else (A.astype(object).dot(B.astype(object)) % mod).astype(np.int64)
            out[a + b] = prod if a + b not in out else out[a + b] + prod
    return _reduce(out, mod)


def _deriv(P, k, mod):
    out = {}
    for s, C in P.items():
        c = _falling(s, k)
        if c:
            out[s - k] = C * c if mod is None else (C.astype(object) * c) % mod
    return _reduce(out, mod)


def _det(M, mod):
    """Determinant of a small square matrix of Laurent polynomials (Laplace expansion)."""
    n = len(M)
    if n == 1:
        return M[0][0]
    out: dict[int, Any] = {}
    for j in range(n):
        minor = [row[:j] + row[j + 1 :] for row in M[1:]]
        term = _mul(M[0][j], _det(minor, mod), mod)
        for e, C in term.items():
            C = C if j % 2 == 0 else -C
            out[e] = C if e not in out else out[e] + C
    return _reduce(out, mod)


def _entry(P, i, j):
    return {e: C[i : i + 1, j : j + 1] for e, C in P.items() if C[i, j] != 0}


def _eval_mod(P, t0, shape):
    t0inv = pow(t0, _P - 2, _P)
    out = np.zeros(shape, dtype=object)
    for e, C in P.items():
        out = out + C.astype(object) * (pow(t0, e, _P) if e >= 0 else pow(t0inv, -e, _P))
    return (out % _P).astype(np.int64)


def _add_entry(L, shape, e, i, j, val, mod):
    if e not in L:
        L[e] = np.zeros(shape, dtype=object if mod is None else np.int64)
    L[e][i, j] = L[e][i, j] + val


def _left_kernel_rows(X, m, q, mod, rng):
    """Laurent rows ``L`` with ``L w = 0 ⇔ w ∈ col X`` over ℚ(t); ``[]`` when ``col X`` is everything.

    With pivot rows ``I`` and pivot columns ``J`` of ``X`` (rank ``s``), the
    conditions are ``det(X_IJ) w_j − X_jJ adj(X_IJ) w_I = 0`` for every row
    ``j ∉ I``.  The pivots come from a rank at a random point; the rows are
    then checked exactly (``L X = 0``), and another point is tried if a
    point was unlucky.
    """
    from ._modular import rank_mod

    if not X:  # X = 0: the condition is w = 0
        return {0: np.eye(m, dtype=object if mod is None else np.int64)}
    for _ in range(8):
        s, prow, pcol = rank_mod(_eval_mod(X, rng.randrange(2, _P - 1), (m, q)), _P)
        piv_rows, piv_cols = sorted(int(i) for i in prow), sorted(int(j) for j in pcol)
        if s == m:
            return []
        ent = [[_entry(X, i, j) for j in piv_cols] for i in piv_rows]
        det = _det(ent, mod) if s else {}
        one = {0: np.ones((1, 1), dtype=object if mod is None else np.int64)}
        # adj[l][i] = (-1)^(i+l) det(X_IJ without row i and column l)
        adj = [[one if s == 1 else None for _ in range(s)] for _ in range(s)]
        if s > 1:
            for i in range(s):
                for col in range(s):
                    d = _det([[ent[a][b] for b in range(s) if b != col] for a in range(s) if a != i], mod)
                    adj[col][i] = {e: (C if (i + col) % 2 == 0 else -C) for e, C in d.items()}
        others = [j for j in range(m) if j not in piv_rows]
        L: dict[int, Any] = {}
        for idx, j in enumerate(others):
            if s == 0:
                _add_entry(L, (len(others), m), 0, idx, j, 1, mod)
                continue
            for e, C in det.items():
                _add_entry(L, (len(others), m), e, idx, j, C[0, 0], mod)
            for pos in range(s):  # - X_jJ adj(X_IJ), placed at the pivot rows
                for lcol in range(s):
                    for e, C in _mul(_entry(X, j, piv_cols[lcol]), adj[lcol][pos], mod).items():
                        _add_entry(L, (len(others), m), e, idx, piv_rows[pos], -C[0, 0], mod)
        L = _reduce(L, mod)
        if L and not _mul(L, X, mod):  # exact: every column of X satisfies the conditions
            return L
    raise RuntimeError("could not find pivots of X at 8 random points")  # pragma: no cover - probability ~ 0


def _family_system(U, L, k, window, r, mod):
    """Integer matrix of the linear conditions ``L (U v)^{(k+1)} = 0`` on the coefficients of v."""
    lo, hi = window
    exps = list(range(lo, hi + 1))
    LU = {}
    for b, Lb in L.items():
        for a, Ua in U.items():
            P = Lb.dot(Ua) if mod is None else (Lb.astype(object).dot(Ua.astype(object)) % mod)
            LU[(b, a)] = P
    rows_per = next(iter(L.values())).shape[0] if L else 0
    out_exps = sorted({b + a + e - k - 1 for (b, a) in LU for e in exps})
    where = {c: i for i, c in enumerate(out_exps)}
    M = np.zeros((rows_per * len(out_exps), r * len(exps)), dtype=object)
    for (b, a), P in LU.items():
        for ei, e in enumerate(exps):
            c = _falling(a + e, k + 1)
            if c:
                i0 = where[b + a + e - k - 1] * rows_per
                M[i0 : i0 + rows_per, ei * r : (ei + 1) * r] += c * P
    return M if mod is None else (M % mod).astype(np.int64)


def _nullspace_mod(M, p):
    M = M.copy() % p
    nrows, ncols = M.shape
    piv, r = [], 0
    for c in range(ncols):
        if r == nrows:
            break
        nz = np.nonzero(M[r:, c])[0]
        if not len(nz):
            continue
        i = r + int(nz[0])
        if i != r:
            M[[r, i]] = M[[i, r]]
        M[r] = (M[r] * pow(int(M[r, c]), p - 2, p)) % p
        f = M[:, c].copy()
        f[r] = 0
        nzr = np.nonzero(f)[0]
        if len(nzr):
            M[nzr] = (M[nzr] - (f[nzr, None] * M[r][None, :]) % p) % p
        piv.append(c)
        r += 1
    free = [c for c in range(ncols) if c not in set(piv)]
    basis = np.zeros((len(free), ncols), dtype=np.int64)
    for idx, fc in enumerate(free):
        basis[idx, fc] = 1
        for i, pc in enumerate(piv):
            basis[idx, pc] = (-M[i, fc]) % p
    return basis


def _nullspace_exact(M):
    from sympy.polys.matrices import DomainMatrix

    nrows, ncols = M.shape
    if nrows == 0:
        return [[sp.Integer(int(i == j)) for i in range(ncols)] for j in range(ncols)]
    dm = DomainMatrix([[sp.ZZ(int(x)) for x in row] for row in M], (nrows, ncols), sp.ZZ).to_field()
    ns = dm.nullspace().to_Matrix()
    return [list(ns.row(i)) for i in range(ns.rows)]


def _family(U, W, k, window, mod, rng):
    """(G as {exponent: matrix}, number of columns N, number of rows m), or None for an empty family."""
    Uc, (m, r) = _as_laurent(U, "U")
    Wc, (r2, q) = _as_laurent(W, "W")
    if r2 != r:
        raise ValueError(f"W must have {r} rows to match U's {r} columns, got {r2}")
    if not (isinstance(k, int) and k >= 0):
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    lo, hi = window
    if not (isinstance(lo, int) and isinstance(hi, int) and lo <= hi):
        raise ValueError(f"window must be (lo, hi) with ints lo <= hi, got {window!r}")
    Um, Wm = _reduce(Uc, mod), _reduce(Wc, mod)
    if not Um:
        return None
    X = _deriv(_mul(Um, Wm, mod), k + 1, mod) if Wm else {}
    L = _left_kernel_rows(X, m, q, mod, rng)
    exps = list(range(lo, hi + 1))
    if L == []:
        basis = [np.eye(r * len(exps), dtype=np.int64)[i] for i in range(r * len(exps))]
    else:
        Msys = _family_system(Um, L, k, window, r, mod)
        basis = list(_nullspace_mod(Msys, mod)) if mod is not None else _nullspace_exact(Msys)
    if not len(basis):
        return None
    N = len(basis)
    G: dict[int, Any] = {}
    for ei, e in enumerate(exps):
        V = np.array([[b[ei * r + row] for b in basis] for row in range(r)], dtype=object)
        if mod is not None:
            V = V.astype(np.int64)
        for a, Ua in Um.items():
            P = Ua.astype(object).dot(V.astype(object))
            if mod is not None:
                P = (P % mod).astype(np.int64)
            G[a + e] = P if a + e not in G else G[a + e] + P
    return _reduce(G, mod), N, m


def family_matrix(
    U: LaurentMatrix, W: LaurentMatrix, k: int, window: tuple[int, int], *, var: Symbol = T
) -> Matrix | None:
    """The generic member ``G = U [v_1 … v_N]`` of the family of ``(U, W, k)``, exactly.

    Parameters
    ----------
    U : dict {int: integer matrix of shape (m, r)}
        Laurent polynomial ``U = Σ_e U[e] var^e``.
    W : dict {int: integer matrix of shape (r, q)}
        Laurent polynomial ``W``; ``X = (U W)^{(k+1)}`` (of any rank).
    k : int
        Order: the family's members ``B`` have ``rank B^{(k+1)} <= rank X <= q``.
    window : (int, int)
        Exponent range ``[lo, hi]`` of the vectors ``v``.
    var : sympy.Symbol

    Returns
    -------
    sympy.Matrix of shape (m, N), or None
        None if the family is empty (only ``v = 0``).  The
        columns are ``U v_j`` for a basis ``v_j`` of the ℚ-space of ``v``
        with ``(U v)^{(k+1)} ∈ col X`` (exact rational arithmetic).

    Raises
    ------
    TypeError, ValueError
        For malformed ``U``, ``W``, ``k`` or ``window``.
    """
    out = _family(U, W, k, window, None, random.Random(0))
    if out is None:
        return None
    G, N, m = out
    return sp.Matrix(m, N, lambda i, j: sp.Add(*[sp.sympify(C[i, j]) * var**e for e, C in G.items()]))


def family_profile_mod(
    U: LaurentMatrix, W: LaurentMatrix, k: int, window: tuple[int, int], orders: int, *, seed: int = 0
) -> tuple[int, ...] | None:
    """Profile of the family's generic member at orders ``0..orders-1``, screened modulo a prime.

    Ranks of ``G^{(j)}(t₀)`` modulo ``p = 2147483629`` at a random point
    ``t₀``: lower bounds of the generic ranks, equal to them except with
    small probability (an unlucky prime or point).  :func:`family_matrix`
    and :func:`theory.rank_profile` give the certified profile.

    Returns
    -------
    tuple of int, or None
        None if the family is empty.

    Examples
    --------
    >>> import numpy as np
    >>> U = {0: np.array([[1], [0]]), 1: np.array([[0], [1]])}
    >>> W = {0: np.array([[1]]), 1: np.array([[1]])}
    >>> family_profile_mod(U, W, 1, (0, 2), 4)
    (1, 2, 1, 0)
    """
    rng = random.Random(seed)
    out = _family(U, W, k, window, _P, rng)
    if out is None:
        return None
    G, _, _ = out
    from ._modular import rank_mod

    t0 = rng.randrange(2, _P - 1)
    t0inv = pow(t0, _P - 2, _P)
    prof = []
    for j in range(orders):
        D = _deriv(G, j, _P)
        if not D:
            prof.append(0)
            continue
        M = None
        for e, C in D.items():
            w = pow(t0, e, _P) if e >= 0 else pow(t0inv, -e, _P)
            term = (C.astype(object) * w % _P).astype(np.int64)
            M = term if M is None else (M + term) % _P
        prof.append(int(rank_mod(M, _P)[0]))
    return tuple(prof)


@dataclass
class DropSearchResult:
    """Outcome of :func:`drop_search`.

    Attributes
    ----------
    families : int
        Non-empty families screened.
    profiles : collections.Counter
        Screened profiles (orders ``0..k+2``) of the generic members.
    tight : int
        Families whose generic member meets the bound with equality at some
        order (``ρ(n) = ρ(n+1) + min_{j<n} ρ(j)`` with ``ρ(n) > ρ(n+1)``).
    counterexample : sympy.Matrix or None
        A matrix whose *certified* profile violates the bound, if one was found.
    profile : tuple of int or None
        Its certified profile.
    seconds : float
    """

    families: int = 0
    profiles: Counter = field(default_factory=Counter)
    tight: int = 0
    counterexample: Matrix | None = None
    profile: tuple | None = None
    seconds: float = 0.0


def _random_laurent(rng, shape, lo, hi, density):
    return {
        e: np.array(
            [
                [rng.choice((-2, -1, 1, 2)) if rng.random() < density else 0 for _ in range(shape[1])]
                for _ in range(shape[0])
            ],
            dtype=np.int64,
        )
        for e in range(lo, hi + 1)
    }


def _random_family(rng):
    m = rng.randint(3, 7)
    r = rng.randint(1, min(4, m - 1))
    q = rng.choice((1, 1, 1, 2))
    k = rng.randint(1, 4)
    density = rng.choice((0.3, 0.6, 1.0))
    ulo = rng.randint(-2, 0)
    U = _random_laurent(rng, (m, r), ulo, rng.randint(ulo, 3), density)
    if rng.random() < 0.25:  # one exponent per row: U = D_a Z, the row factor of a D_a C D_b matrix
        mono = {e: np.zeros((m, r), dtype=np.int64) for e in U}
        for i in range(m):
            e = rng.choice(sorted(U))
            mono[e][i] = [rng.choice((-2, -1, 0, 1, 2)) for _ in range(r)]
        U = mono
    lo = rng.randint(-3, 0)
    hi = rng.randint(max(lo, k - 1), k + 3)
    W = _random_laurent(rng, (r, q), lo, hi, 0.7)
    return U, W, k, (lo, hi)


def drop_search(families: int = 1000, *, seed: int = 0, seconds: float | None = None) -> DropSearchResult:
    """Screen random families for a violation of the drop bound.

    Each draw: ``m ∈ [3, 7]``, ``r ∈ [1, min(4, m−1)]``, ``q ∈ {1, 2}``,
    ``k ∈ [1, 4]``, sparse ``U`` and ``W`` with entries in ``{±1, ±2}`` and
    exponents in ``[−2, 3]`` and ``[−3, k+3]``, the window of ``W``'s
    exponents; in a quarter of the draws every row of ``U`` is a single
    monomial, ``U = D_a Z``: the family then holds every ``D_a C D_b``
    matrix with ``C = Z Y``, column exponents ``b`` in the window and
    ``(k+1)``-th derivative in ``col (U W)^{(k+1)}``.  The generic member's profile at orders ``0..k+2`` is
    screened modulo a prime (:func:`family_profile_mod`); a screened
    violation is rebuilt exactly (:func:`family_matrix`) and certified with
    :func:`theory.rank_profile` before it is reported.

    Parameters
    ----------
    families : int
        Number of non-empty families to screen.
    seed : int
    seconds : float, optional
        Stop earlier once this much wall-clock time has passed.

    Returns
    -------
    DropSearchResult

    Examples
    --------
    >>> res = drop_search(20, seed=1)
    >>> res.families, res.counterexample is None
    (20, True)
    """
    if isinstance(families, bool) or not isinstance(families, int) or families < 0:
        raise ValueError(f"families must be a non-negative int, got {families!r}")
    rng = random.Random(seed)
    res = DropSearchResult()
    t_start = time.perf_counter()
    while res.families < families:
        if seconds is not None and time.perf_counter() - t_start > seconds:
            break
        U, W, k, window = _random_family(rng)
        prof = family_profile_mod(U, W, k, window, k + 3, seed=rng.randrange(2**31))
        if prof is None:
            continue
        res.families += 1
        res.profiles[prof] += 1
        if any(prof[n] > prof[n + 1] and prof[n] == prof[n + 1] + min(prof[:n]) for n in range(1, len(prof) - 1)):
            res.tight += 1
        if drop_bound_violation(prof) is not None:
            from .profiles import rank_profile

            G = family_matrix(U, W, k, window)
            certified = rank_profile(G, k + 2, var=T, seed=0) if G is not None else None
            if certified is not None and certified.certified and drop_bound_violation(certified.ranks) is not None:
                res.counterexample, res.profile = G, certified.ranks
                break
    res.seconds = time.perf_counter() - t_start
    return res
