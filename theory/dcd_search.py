"""Column search for ``D_a C D_b`` blocks, and library-plus-block splits.

A ``D_a C D_b`` matrix with a rank-``r`` core ``C = X Yᵀ`` has, at order
``k``, the constant matrix ``C ∘ F_k`` whose column ``j`` is
``diag((a_i + b_j)_k) X y_j`` (see :mod:`theory.dcd`).  With the rows
``(a_i, X_i)`` fixed, every candidate column ``(b_j, y_j)`` therefore
contributes one fixed vector per order, and the profile of a set of columns
is the list of the ranks of those vectors, order by order.  Adding a column
never lowers a rank, so a depth-first search over columns can stop as soon
as one order exceeds its target: :func:`column_search` draws random rows and
runs that search over a small alphabet of columns, with exact ranks modulo a
31-bit prime, and confirms a hit over ℚ with :func:`theory.dcd.dcd_profile`.

:func:`split_search` uses it on what is left of a target after taking out
one or two library blocks (block-diagonal sums add profiles), e.g.
``(4, 3, 5, 2, 1) = (2, 1, 2, 1, 0) + (2, 2, 3, 1, 1)`` with ``∫^1 H_1`` and
a searched ``D_a C D_b`` block.

Examples
--------
>>> blk = column_search((2, 2, 3, 1, 1), seed=16, tries=1, node_budget=500)
>>> from theory.dcd import dcd_profile
>>> dcd_profile(blk[1], blk[2], blk[3], 5)
(2, 2, 3, 1, 1)
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from .dcd import dcd_profile

__all__ = ["column_search", "drop_bound_holds", "split_search"]

_P = 2147483629  # a prime below 2**31: exact ranks of small integer matrices with high probability


def _falling(s, k):
    out = 1
    for i in range(k):
        out *= s - i
    return out


def _directions(r):
    """Nonzero integer r-vectors with entries in [-2, 2], at most two of them nonzero, up to sign."""
    out = set()
    for v in itertools.product(range(-2, 3), repeat=r):
        nz = [x for x in v if x]
        if not nz or len(nz) > 2:
            continue
        out.add(v if nz[0] > 0 else tuple(-x for x in v))
    return sorted(out)


def _reduce(basis, v):
    """Reduce v against an echelon basis mod p; the new basis vector, or None if v is in the span."""
    v = list(v)
    for piv, b in basis:
        c = v[piv]
        if c:
            v = [(x - c * y) % _P for x, y in zip(v, b)]
    for i, x in enumerate(v):
        if x:
            inv = pow(x, _P - 2, _P)
            return i, [(y * inv) % _P for y in v]
    return None


def _dfs_columns(target, a, X, options, max_cols, node_budget):
    """Columns (b, y) whose profile with rows (a, X) is exactly target, or None."""
    K = len(target)
    vecs = []
    for b, y in options:
        base = [sum(p * q for p, q in zip(x, y)) for x in X]
        if any(base):
            vecs.append(((b, y), [[(_falling(a[i] + b, k) * base[i]) % _P for i in range(len(a))] for k in range(K)]))
    nodes = [0]

    def go(start, bases, chosen):
        nodes[0] += 1
        if nodes[0] > node_budget:
            return None
        if all(len(bases[k]) == target[k] for k in range(K)):
            return list(chosen)
        if len(chosen) >= max_cols:
            return None
        for idx in range(start, len(vecs)):
            col, vs = vecs[idx]
            new, grew = [], False
            for k in range(K):
                red = _reduce(bases[k], vs[k])
                if red is None:
                    new.append(bases[k])
                elif len(bases[k]) == target[k]:
                    break  # this order would exceed its target: ranks never drop when columns are added
                else:
                    new.append(bases[k] + [red])
                    grew = True
            else:
                if grew:
                    chosen.append(col)
                    found = go(idx + 1, new, chosen)
                    if found is not None:
                        return found
                    chosen.pop()
                    if nodes[0] > node_budget:
                        return None
        return None

    return go(0, [[] for _ in range(K)], [])


def column_search(
    target: Sequence[int],
    *,
    seed: int = 0,
    tries: int = 200,
    node_budget: int = 4000,
    exponents: tuple[int, int] = (-3, 4),
    extra_rows: int = 1,
) -> tuple | None:
    """Search a ``D_a C D_b`` block with profile ``target`` (any non-negative profile).

    Parameters
    ----------
    target : sequence of int
        ``(r_0, ..., r_{K-1})`` with ``r_0 >= 1``.
    seed : int
        Seed of the random rows.
    tries : int
        Number of random row sets.
    node_budget : int
        Search nodes per row set.
    exponents : (int, int)
        Inclusive range of the row and column exponents.
    extra_rows : int
        Rows beyond ``max(target)`` (drawn between 0 and this many).

    Returns
    -------
    tuple or None
        ``("dcd", a, b, C)`` with integer ``C = X Yᵀ`` (zero rows and
        columns removed), whose exact profile (:func:`theory.dcd.dcd_profile`)
        is ``target``; None if nothing was found.

    Raises
    ------
    ValueError
        If ``target`` is empty, negative or starts with 0.
    """
    target = tuple(target)
    if not target or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in target) or not target[0]:
        raise ValueError(f"target must be non-negative ints with target[0] >= 1, got {target!r}")
    rng = random.Random(seed)
    r = target[0]
    D = _directions(r)
    lo, hi = exponents
    options = [(b, y) for b in range(lo, hi + 1) for y in D]
    m0 = max(target)
    for _ in range(tries):
        m = m0 + rng.randint(0, extra_rows)
        a = [rng.randint(lo, hi) for _ in range(m)]
        X = [rng.choice(D) for _ in range(m)]
        cols = _dfs_columns(target, a, X, options, m0 + 2, node_budget)
        if cols is None:
            continue
        b = [c[0] for c in cols]
        C = [[sum(p * q for p, q in zip(X[i], y)) for _, y in cols] for i in range(m)]
        keep = [i for i in range(m) if any(C[i])]
        a, C = [a[i] for i in keep], [C[i] for i in keep]
        if dcd_profile(a, b, C, len(target)) == target:  # exact over ℚ (the screen was modulo p)
            return ("dcd", tuple(a), tuple(b), tuple(tuple(row) for row in C))
    return None


def drop_bound_holds(profile: Sequence[int]) -> bool:
    """The drop bound ``ρ(n) <= ρ(n+1) + min_{k<n} ρ(k)``, ``n >= 1`` (false in general: :mod:`theory.poles`).

    Used only to order the search (remainders that satisfy it are tried
    first), never to call a target impossible.

    Examples
    --------
    >>> drop_bound_holds((2, 3, 4, 1)), drop_bound_holds((4, 3, 5, 2, 1))
    (False, True)
    """
    p = tuple(profile)
    return all(p[n] <= p[n + 1] + min(p[:n]) for n in range(1, len(p) - 1))


def split_search(
    target: Sequence[int],
    lib: Sequence[tuple[tuple, tuple[int, ...]]],
    feasible: Callable[[tuple[int, ...]], bool],
    *,
    seed: int = 0,
    rounds: int = 4,
    tries: int = 10,
    max_library_blocks: int = 2,
) -> list | None:
    """Realise ``target`` as library blocks ⊕ one searched ``D_a C D_b`` block.

    Every remainder ``target - (library profiles)`` that passes ``feasible``
    is a candidate; candidates are visited in rounds (those satisfying the
    drop bound first, then by size), each visit a few
    :func:`column_search` tries with a fresh seed.

    Parameters
    ----------
    target : sequence of int
    lib : list of (block, profile)
        Library blocks with their profiles (:func:`theory.designer.library`).
    feasible : callable
        Returns False for a remainder that cannot be a generic profile (the
        designer's necessary conditions); such remainders are skipped.
    seed : int
    rounds, tries : int
        Visits per remainder, and :func:`column_search` row sets per visit.
    max_library_blocks : int
        Library blocks taken out (0 to this many).

    Returns
    -------
    list of blocks or None
        Library blocks followed by one ``("dcd", a, b, C)`` block; the
        profiles add up to ``target`` exactly.
    """
    target = tuple(target)
    lib = [(b, p) for b, p in lib if any(p) and all(x <= y for x, y in zip(p, target))]
    cands: dict[tuple[int, ...], tuple[int, ...]] = {}
    for n_lib in range(max_library_blocks + 1):
        for combo in itertools.combinations_with_replacement(range(len(lib)), n_lib):
            rest = list(target)
            for idx in combo:
                rest = [x - y for x, y in zip(rest, lib[idx][1])]
            rest_t = tuple(rest)
            if min(rest_t) >= 0 and rest_t[0] and rest_t not in cands and feasible(rest_t):
                cands[rest_t] = combo
    order = sorted(cands, key=lambda p: (not drop_bound_holds(p), sum(p), len(cands[p])))
    for rnd in range(rounds):
        for rest_t in order:
            blk = column_search(rest_t, seed=seed * 7919 + rnd, tries=tries, node_budget=500)
            if blk is not None:
                return [lib[idx][0] for idx in cands[rest_t]] + [blk]
    return None
