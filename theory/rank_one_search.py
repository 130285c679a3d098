"""Search ``D_a C D_b`` realisations of profiles that have a rank-one order.

Let ``A = D_a C D_b`` (see :mod:`theory.dcd`), ``E_ij = a_i + b_j`` and
suppose the target has ``ρ(k₁) = 1``.  Then ``C ∘ (E)_{k₁} = u vᵀ`` for
vectors ``u, v`` (``(E)_k`` is the entrywise falling factorial), and reading
this entry by entry pins ``C`` down almost completely:

* where ``(E_ij)_{k₁} ≠ 0``, i.e. ``E_ij ∉ {0, …, k₁−1}``:
  ``C_ij = u_i v_j / (E_ij)_{k₁}``;
* where ``E_ij ∈ {0, …, k₁−1}``: ``u_i v_j = 0`` and ``C_ij`` is *free* (the
  factor ``(E_ij)_k`` kills it at every order ``k ≥ k₁``).

Scaling the rows and columns of ``C`` changes no rank, so ``u`` and ``v`` may
be taken to be the indicator vectors of their supports ``I`` and ``J``:

    C = R + F,   R_ij = 1 / (E_ij)_{k₁} on I × J (zero elsewhere),
                 F supported on {E ∈ {0, …, k₁−1}},

with ``E_ij ∉ {0, …, k₁−1}`` on ``I × J``.  For ``k > k₁`` the profile is
then fixed by the exponents alone (``C ∘ (E)_k = [(E_ij − k₁)_{k−k₁}]`` on
``I × J``), and each order ``k < k₁`` asks that the affine matrix
``(R + F) ∘ (E)_k`` have rank ``ρ(k)`` — a polynomial system in the free
entries.  This is the structure of every ``D_a C D_b`` matrix with a
rank-one order; random searches over ``C`` miss such matrices because the
zeros outside ``I × J`` and the relations among the free entries have
measure zero.

:func:`rank_one_search` draws exponents and supports ``(a, b, I, J)``,
solves the rank conditions numerically (one kernel block per rank-deficient
order, ``(C ∘ (E)_k) N_k = 0``, by :func:`scipy.optimize.least_squares`),
pins the free entries one by one to small rationals while the solution
survives, and returns an integer ``C`` only after
:func:`theory.dcd.dcd_profile` has confirmed the profile exactly over ℚ.
The numerics only *find* candidates; nothing numerical is ever returned.

It found the polynomial realisation of ``(2, 3, 4, 1)`` (exponents
``a = (0, 1, 2, 3)``, ``b = (−1, 0, 3, 4)``; every entry of the matrix is a
polynomial) and ``(3, 4, 5, 1, 2)``; :func:`integrate_block` lifts a
polynomial realisation of a tail to ``(n, tail)``, e.g. ``(5, 2, 3, 4, 1)``
from ``(2, 3, 4, 1)``.

Examples
--------
>>> blk = rank_one_search((3, 4, 1, 2), seed=0, tries=300)
>>> from theory.dcd import dcd_profile
>>> dcd_profile(*blk[1:], 4)
(3, 4, 1, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

__all__ = ["integrate_block", "rank_one_search"]

# small rationals tried, in this order, when pinning a free entry
_NICE = (1, -1, 2, -2, 3, -3, Fraction(1, 2), Fraction(-1, 2), 4, -4, 5, -5, 6, -6)


def _falling(x, k):
    """Entrywise falling factorial of an integer array, as floats (``theory.dcd._falling`` is the exact one)."""
    out = np.ones_like(x, dtype=float)
    for i in range(k):
        out = out * (x - i)
    return out


def _numeric_rank(M):
    sv = np.linalg.svd(M, compute_uv=False)
    if sv[0] < 1e-10:
        return 0
    return int((sv > 1e-8 * sv[0]).sum())


def _structural_rank(mask):
    """Largest matching in the bipartite graph of the nonzero pattern (an upper bound on the rank)."""
    match = [-1] * mask.shape[1]

    def augment(i, seen):
        for j in np.flatnonzero(mask[i]):
            if not seen[j]:
                seen[j] = True
                if match[j] < 0 or augment(match[j], seen):
                    match[j] = i
                    return True
        return False

    return sum(augment(i, [False] * mask.shape[1]) for i in range(mask.shape[0]))


class _Candidate:
    """The rank system of one choice of exponents and supports ``(a, b, I, J)``."""

    def __init__(self, target, k1, a, b, rows, cols, rng):
        self.target, self.k1 = target, k1
        self.a, self.b = a, b
        n = len(a)
        E = np.add.outer(a, b)
        self.F_k = [_falling(E, k) for k in range(len(target))]
        self.R = np.zeros((n, n))
        self.R[np.ix_(rows, cols)] = 1.0 / self.F_k[k1][np.ix_(rows, cols)]
        self.free = np.argwhere((E >= 0) & (E < k1))
        self.deficient = [(k, n - target[k]) for k in range(k1) if target[k] < n]
        # kernel blocks N_k = Q_k [I; Z_k]: a random rotation makes the normalisation generic
        self.Q = [np.linalg.qr(rng.standard_normal((n, n)))[0] for _ in self.deficient]

    def feasible(self):
        """Orders >= k1 right, and every lower order structurally able to reach its rank."""
        for k in range(self.k1, len(self.target)):
            if _numeric_rank(self.R * self.F_k[k]) != self.target[k]:
                return False
        support = self.R != 0
        support[self.free[:, 0], self.free[:, 1]] = True
        return all(_structural_rank(support & (self.F_k[k] != 0)) >= self.target[k] for k in range(self.k1))

    def C(self, f):
        C = self.R.copy()
        C[self.free[:, 0], self.free[:, 1]] = f
        return C

    def solve(self, f0, fixed, rng, max_nfev=2000):
        """Least-squares solve with the entries in ``fixed`` pinned: ``(f, free_dirs)`` or None.

        ``free_dirs`` is an orthonormal basis (columns) of the directions in
        which the free entries can still move along the solution set (the
        null space of the Jacobian, projected to ``f``).
        """
        from scipy.optimize import least_squares

        n, s = len(self.a), len(self.free)
        mobile = [i for i in range(s) if i not in fixed]
        nz = [(n - d) * d for _, d in self.deficient]

        def unpack(z):
            f = np.array(f0, dtype=float)
            for i, v in fixed.items():
                f[i] = float(v)
            f[mobile] = z[: len(mobile)]
            pos, Ns = len(mobile), []
            for (_, d), Q, m in zip(self.deficient, self.Q, nz):
                Ns.append(Q @ np.vstack([np.eye(d), z[pos : pos + m].reshape(n - d, d)]))
                pos += m
            return f, Ns

        def residual(z):
            f, Ns = unpack(z)
            C = self.C(f)
            # the trailing 0 keeps the residual non-empty when no order below k1 is rank-deficient
            return np.concatenate([((C * self.F_k[k]) @ N).ravel() for (k, _), N in zip(self.deficient, Ns)] + [[0.0]])

        z0 = np.concatenate([np.asarray(f0, dtype=float)[mobile], rng.standard_normal(sum(nz))])
        if len(z0):
            sol = least_squares(residual, z0, method="trf", max_nfev=max_nfev, xtol=1e-15, ftol=1e-15, gtol=1e-15)
            z, jac = sol.x, np.atleast_2d(sol.jac)
        else:  # every free entry pinned and nothing rank-deficient: nothing left to solve
            z, jac = z0, np.zeros((1, 0))
        if np.abs(residual(z)).max() > 1e-10:
            return None
        f, _ = unpack(z)
        ranks = tuple(_numeric_rank(self.C(f) * self.F_k[k]) for k in range(len(self.target)))
        if ranks != self.target:
            return None
        _, sv, Vt = np.linalg.svd(jac)
        n_range = int((sv > 1e-7 * sv[0]).sum()) if len(sv) and sv[0] > 0 else 0
        null = Vt[n_range:].T[: len(mobile)]
        dirs = np.zeros((s, null.shape[1]))
        dirs[mobile] = null
        if dirs.size:
            u, dsv, _ = np.linalg.svd(dirs, full_matrices=False)
            dirs = u[:, dsv > 1e-7]
        return f, dirs

    def rational(self, f, dirs, rng):
        """Pin free entries to small rationals along the solution set; an exact integer block or None.

        The entries pinned are those the solution set can move (a pivoted
        choice from ``dirs``); once none can move, the rest are determined
        and recovered as fractions, and the profile is checked exactly.
        """
        from scipy.linalg import qr

        from .dcd import _falling as falling_exact
        from .dcd import dcd_profile

        fixed: dict[int, Fraction] = {}
        while dirs.shape[1]:
            _, _, piv = qr(dirs.T, pivoting=True)
            i = int(piv[0])
            nice = sorted(_NICE, key=lambda v: abs(float(v) - f[i]))[:6]
            for v in nice:
                got = self.solve(f, {**fixed, i: Fraction(v)}, rng, max_nfev=400)
                if got is not None:
                    fixed[i] = Fraction(v)
                    f, dirs = got
                    break
            else:
                return None
        exact = [fixed.get(i, Fraction(float(x)).limit_denominator(10**6)) for i, x in enumerate(f)]
        n = len(self.a)
        C = [[Fraction(0)] * n for _ in range(n)]
        for i in range(n):
            for j in range(n):
                if self.R[i, j]:
                    C[i][j] = Fraction(1, falling_exact(int(self.a[i] + self.b[j]), self.k1))
        for (i, j), x in zip(self.free, exact):
            C[i][j] = x
        if dcd_profile(self.a.tolist(), self.b.tolist(), C, len(self.target)) != self.target:
            return None
        return _integer_block(self.a.tolist(), self.b.tolist(), C)


def _supports(allowed, rng):
    """Random rows ``I`` and columns ``J`` with ``allowed[I × J]`` all true (or None, None)."""
    n = allowed.shape[0]
    n_rows = n if rng.random() < 0.5 else int(rng.integers(1, n + 1))
    rows = np.sort(rng.choice(n, n_rows, replace=False))
    cols_ok = np.flatnonzero(allowed[rows].all(axis=0))
    if not len(cols_ok):
        return None, None
    n_cols = min(len(cols_ok), 2) if rng.random() < 0.5 else int(rng.integers(1, len(cols_ok) + 1))
    return rows, np.sort(rng.choice(cols_ok, n_cols, replace=False))


def _integer_block(a, b, C):
    """``("dcd", a, b, C)`` with ``C`` scaled to coprime integers, zero rows and columns dropped."""
    den = math.lcm(*[x.denominator for row in C for x in row])
    Ci = [[int(x * den) for x in row] for row in C]
    g = math.gcd(*[x for row in Ci for x in row]) or 1
    keep_r = [i for i in range(len(a)) if any(Ci[i])]
    keep_c = [j for j in range(len(b)) if any(Ci[i][j] for i in range(len(a)))]
    return (
        "dcd",
        tuple(int(a[i]) for i in keep_r),
        tuple(int(b[j]) for j in keep_c),
        tuple(tuple(Ci[i][j] // g for j in keep_c) for i in keep_r),
    )


def rank_one_search(
    target: Sequence[int],
    *,
    seed: int = 0,
    tries: int = 20000,
    max_exponent: int = 5,
    polynomial: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple | None:
    """Search a ``D_a C D_b`` realisation of a target with a rank-one order.

    Parameters
    ----------
    target : sequence of int
        ``(r_0, …, r_{K-1})`` with some ``r_{k₁} = 1``, ``k₁ >= 1`` (the
        first such order is used); the matrix is ``n × n``, ``n = max(target)``.
    seed : int
        The search is deterministic for a given seed.
    tries : int
        Number of ``(a, b, I, J)`` draws.  Most are rejected by exact
        structural tests before any numerical work.
    max_exponent : int
        ``a`` is drawn from ``[0, max_exponent]`` (shifting ``a`` up and ``b``
        down changes nothing), ``b`` from ``[-max_exponent, max_exponent]``.
    polynomial : bool, default False
        Only polynomial matrices: ``u_i v_j`` may be nonzero only where
        ``a_i + b_j >= k₁`` (the free entries already have exponents in
        ``[0, k₁)``), so no entry has a negative power of ``t``.
    progress : callable, optional
        Called with the number of draws made, every 1000 draws.

    Returns
    -------
    tuple or None
        ``("dcd", a, b, C)`` with integer ``C`` whose exact profile
        (:func:`theory.dcd.dcd_profile`) is ``target``, or None.

    Raises
    ------
    ValueError
        If ``target`` has a negative rank or no rank-one order after order 0.

    Examples
    --------
    >>> from theory.dcd import dcd_profile
    >>> kind, a, b, C = rank_one_search((3, 4, 1, 2), seed=1, tries=300)
    >>> dcd_profile(a, b, C, 4)
    (3, 4, 1, 2)
    """
    target = tuple(int(r) for r in target)
    if any(r < 0 for r in target):
        raise ValueError(f"target must have nonnegative ranks, got {target}")
    if 1 not in target[1:]:
        raise ValueError(f"target must have a rank-one order k >= 1, got {target}")
    k1 = target.index(1, 1)
    n = max(target)
    rng = np.random.default_rng(seed)
    for trial in range(tries):
        if progress is not None and trial and trial % 1000 == 0:
            progress(trial)
        if rng.random() < 0.5:  # distinct row exponents are the common case among the hits
            a = np.sort(rng.choice(max_exponent + 1, n, replace=False)) if n <= max_exponent + 1 else None
        else:
            a = np.sort(rng.integers(0, max_exponent + 1, n))
        if a is None:
            continue
        a = a - a[0]
        b = np.sort(rng.integers(-max_exponent, max_exponent + 1, n))
        E = np.add.outer(a, b)
        allowed = (E >= k1) if polynomial else (E < 0) | (E >= k1)  # where u_i v_j may be nonzero
        # the hits so far have u v^T supported on all rows (or all columns) and few columns (rows)
        if rng.random() < 0.5:
            rows, cols = _supports(allowed, rng)
        else:
            cols, rows = _supports(allowed.T, rng)
        if rows is None:
            continue
        cand = _Candidate(target, k1, a, b, rows, cols, rng)
        if not cand.feasible():
            continue
        for _ in range(2):
            got = cand.solve(rng.standard_normal(len(cand.free)), {}, rng)
            if got is not None:
                f, dirs = got
                block = cand.rational(f, dirs, rng)
                if block is not None:
                    return block
    return None


def integrate_block(block: tuple, target: Sequence[int], *, seed: int = 0, tries: int = 200) -> tuple | None:
    """Lift a polynomial ``D_a C D_b`` block with profile ``target[1:]`` to one with profile ``target``.

    If ``B = D_a C D_b`` has no entry ``t^{-1}`` (``C_ij = 0`` wherever
    ``a_i + b_j = −1``), its antiderivative is ``D_{a+1} C' D_b`` with
    ``C'_ij = C_ij / (a_i + b_j + 1)``, and ``(∫B)^{(k+1)} = B^{(k)}``.  Adding
    constants — entries at the positions with ``a_i + 1 + b_j = 0``, which
    every derivative kills — can then raise the rank at order 0 alone.  New
    rows ``t^{α}`` and columns ``t^{β}`` are added with ``α = −b_j`` and
    ``β = −(a_i + 1)`` or ``β = −α`` so that such positions exist, until the matrix is
    ``target[0] × target[0]`` (or larger, when ``B`` is).

    Parameters
    ----------
    block : tuple
        ``("dcd", a, b, C)`` whose profile at orders ``0..K-2`` is
        ``target[1:]``.
    target : sequence of int
        ``(r_0, …, r_{K-1})``; ``r_0`` is the rank wanted at order 0.
    seed, tries : int
        New exponents and random small integers for the constants are
        drawn ``tries`` times; the first draw whose exact profile is
        ``target`` is returned.

    Returns
    -------
    tuple or None
        ``("dcd", a', b', C')`` with exact profile ``target``, or None.

    Raises
    ------
    ValueError
        If the block has a ``t^{-1}`` entry (its antiderivative is not
        rational) or is not a ``dcd`` block.

    Examples
    --------
    >>> from theory.dcd import dcd_profile
    >>> blk = integrate_block(("dcd", (1,), (0,), ((1,),)), (2, 1, 1))   # t  ->  t²/2, plus constants
    >>> dcd_profile(*blk[1:], 3)
    (2, 1, 1)
    """
    from .dcd import dcd_profile

    if block[0] != "dcd":
        raise ValueError(f"block must be a ('dcd', a, b, C) block, got {block[0]!r}")
    a, b, C = list(block[1]), list(block[2]), [list(r) for r in block[3]]
    if any(C[i][j] and a[i] + b[j] == -1 for i in range(len(a)) for j in range(len(b))):
        raise ValueError("block has a t^-1 entry: its antiderivative is not rational")
    target = tuple(int(r) for r in target)
    size = target[0]
    a1 = [x + 1 for x in a]
    base = [[Fraction(C[i][j], a1[i] + b[j]) if C[i][j] else Fraction(0) for j in range(len(b))] for i in range(len(a))]
    rng = np.random.default_rng(seed)
    m0, n0 = len(a1), len(b)
    for _ in range(tries):
        rows = list(a1) + [int(-rng.choice(b)) for _ in range(max(0, size - m0))]
        # a new column meets an old row or a new one at a constant
        cols = list(b) + [int(-rng.choice(a1 + rows[m0:])) for _ in range(max(0, size - n0))]
        Cn = [[base[i][j] if i < m0 and j < n0 else Fraction(0) for j in range(len(cols))] for i in range(len(rows))]
        for i in range(len(rows)):
            for j in range(len(cols)):
                if rows[i] + cols[j] == 0:
                    Cn[i][j] = Fraction(int(rng.integers(1, 4)) * (1 if rng.random() < 0.5 else -1))
        if dcd_profile(rows, cols, Cn, len(target)) == target:
            return _integer_block(rows, cols, Cn)
    return None
