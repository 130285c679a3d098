"""C1 — monotone rank profiles under linear decomposability.

Statement
---------
Let ``A(t) = Σ_i φ_i(t) M_i`` with scalar ``φ_i ∈ ℚ(t)`` and constant
rational ``m x n`` matrices ``M_i``.

* If the column spaces ``col(M_i)`` form a direct sum, then for every k

      ρ_A(k) = dim Σ_{i ∈ S_k} row(M_i),   S_k = {i : φ_i^{(k)} ≢ 0}.

* If the row spaces form a direct sum, the same holds with ``col`` in place
  of ``row``.

Since ``φ^{(k)} ≡ 0`` implies ``φ^{(k+1)} ≡ 0``, the sets ``S_k`` shrink
and the profile is non-increasing.  The same statement, with the same proof,
holds for forward differences of a matrix sequence ``A(j) = Σ φ_i(j) M_i``
(``Δ^k φ ≡ 0`` implies ``Δ^{k+1} φ ≡ 0``).

Proof (column case).  ``A^{(k)} = Σ_{i∈S_k} φ_i^{(k)} M_i``.  A vector
``x ∈ ℚ(t)^n`` is in its kernel iff ``Σ φ_i^{(k)} (M_i x) = 0``; the summands
lie in the subspaces ``col(M_i) ⊗ ℚ(t)``, which are still in direct sum
after extending scalars, so each summand vanishes, i.e. ``M_i x = 0`` for
all ``i ∈ S_k`` (``φ_i^{(k)} ≠ 0``).  Hence ``ker A^{(k)} = ∩_{S_k} ker M_i``
and ``rank = n - dim ∩ ker M_i = dim Σ row(M_i)``.  The row case is the
transpose.  Note that the rank is *not* ``Σ rank M_i`` in general: with
``M_1 = e1 e1ᵀ``, ``M_2 = e2 e1ᵀ`` the column spaces are independent but
``M_1 + M_2`` has rank 1.

Examples
--------
>>> import sympy as sp
>>> t = sp.Symbol("t")
>>> phis = [t**2, t, 1]
>>> E = lambda i, j: sp.Matrix(3, 2, lambda a, b: int((a, b) == (i, j)))
>>> Ms = [E(0, 0), E(1, 0), E(2, 1)]       # column spaces e1, e2, e3: direct
>>> decomposable_family(phis, Ms).T
Matrix([
[t**2, t, 0],
[   0, 0, 1]])
>>> predicted_profile(phis, Ms, 3, var=t)
(2, 1, 1, 0)
>>> check_monotonicity(phis, Ms, 3, var=t).passed
True
"""

from __future__ import annotations

import random

import sympy as sp

from ._claims import ClaimResult, const_rank, timed
from ._convert import RationalMatrix
from .profiles import difference_profile, is_nonincreasing, rank_profile

__all__ = [
    "decomposable_family",
    "direct_sum_side",
    "predicted_profile",
    "check_monotonicity",
    "random_decomposable",
    "check",
]


def _validate(phis, Ms):
    if len(phis) != len(Ms) or not Ms:
        raise ValueError(f"phis and Ms must be non-empty and of equal length, got {len(phis)} and {len(Ms)}")
    Ms = [sp.Matrix(M) for M in Ms]
    shape = Ms[0].shape
    for i, M in enumerate(Ms):
        if M.shape != shape:
            raise ValueError(f"Ms[{i}] has shape {M.shape}, expected {shape} like Ms[0]")
        if M.free_symbols:
            raise ValueError(f"Ms[{i}] must be constant, it contains {sorted(map(str, M.free_symbols))}")
    return [sp.sympify(f) for f in phis], Ms


def decomposable_family(phis, Ms):
    """The matrix function ``Σ_i φ_i M_i``.

    Parameters
    ----------
    phis : sequence of sympy expressions
        Scalar functions (rational in the variable).
    Ms : sequence of constant matrices
        Same shape.

    Returns
    -------
    sympy.Matrix

    Raises
    ------
    ValueError
        On length or shape mismatch, or non-constant ``Ms``.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> decomposable_family([1, t], [sp.eye(2), sp.Matrix([[0, 1], [0, 0]])])
    Matrix([
    [1, t],
    [0, 1]])
    """
    phis, Ms = _validate(phis, Ms)
    A = sp.zeros(*Ms[0].shape)
    for f, M in zip(phis, Ms):
        A += f * M
    return A


def direct_sum_side(Ms):
    """Which hypothesis of C1 holds: ``"col"``, ``"row"``, or None.

    The column spaces form a direct sum iff ``rank [M_1 | ... | M_s] = Σ rank
    M_i`` (exact ranks over ℚ); likewise for row spaces with vertical
    stacking.

    Parameters
    ----------
    Ms : sequence of constant matrices

    Returns
    -------
    {"col", "row", None}
        ``"col"`` is preferred when both hold.

    Examples
    --------
    >>> import sympy as sp
    >>> direct_sum_side([sp.Matrix([[1, 0], [0, 0]]), sp.Matrix([[0, 1], [1, 0]])]) is None
    True
    """
    Ms = [sp.Matrix(M) for M in Ms]
    total = sum(const_rank(M) for M in Ms)
    if const_rank(sp.Matrix.hstack(*Ms)) == total:
        return "col"
    if const_rank(sp.Matrix.vstack(*Ms)) == total:
        return "row"
    return None


def _vanishes(phi, k, var, kind):
    R = RationalMatrix.from_sympy(sp.Matrix([[phi]]), var, name="phi")
    for _ in range(k):
        R = R.diff() if kind == "derivative" else R.forward_difference()
    return R.is_zero()


def predicted_profile(phis, Ms, max_order, *, var, kind="derivative"):
    """The C1 formula ``dim Σ_{φ_i^{(k)} ≢ 0} row(M_i)`` (or col), k = 0..max_order.

    Parameters
    ----------
    phis, Ms : sequences
        The decomposition ``A = Σ φ_i M_i``.
    max_order : int
        Highest order.
    var : sympy.Symbol
        The variable.
    kind : {"derivative", "difference"}
        Operator.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        If neither direct-sum hypothesis holds (the formula is then not a
        theorem; see :mod:`theory.boundary`), or on bad arguments.

    Examples
    --------
    >>> import sympy as sp
    >>> j = sp.Symbol("j", integer=True)
    >>> predicted_profile([j**2, 1], [sp.Matrix([[1, 1]]), sp.Matrix([[0, 0]])], 3, var=j, kind="difference")
    (1, 1, 1, 0)
    """
    if kind not in ("derivative", "difference"):
        raise ValueError(f"kind must be 'derivative' or 'difference', got {kind!r}")
    phis, Ms = _validate(phis, Ms)
    side = direct_sum_side(Ms)
    if side is None:
        raise ValueError("neither the column spaces nor the row spaces of Ms form a direct sum: C1 does not apply")
    out = []
    for k in range(max_order + 1):
        active = [M for f, M in zip(phis, Ms) if not _vanishes(f, k, var, kind)]
        if not active:
            out.append(0)
        elif side == "col":
            out.append(const_rank(sp.Matrix.vstack(*active)))
        else:
            out.append(const_rank(sp.Matrix.hstack(*active)))
    return tuple(out)


def check_monotonicity(phis, Ms, max_order, *, var, kind="derivative", seed=None):
    """Check C1 on one decomposition: certified profile == formula, non-increasing.

    Parameters
    ----------
    phis, Ms : sequences
        ``A = Σ φ_i M_i`` with a direct-sum hypothesis.
    max_order : int
        Highest order.
    var : sympy.Symbol
        The variable.
    kind : {"derivative", "difference"}
    seed : int, optional
        Seed for the rank certificates.

    Returns
    -------
    ClaimResult

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> check_monotonicity([t, 1], [sp.Matrix([[1, 0]]), sp.Matrix([[0, 0]])], 2, var=t).details
    ['ok   profile (1, 1, 0) == formula (1, 1, 0), non-increasing']
    """
    res = ClaimResult(f"C1 monotonicity ({kind})")
    with timed(res):
        A = decomposable_family(phis, Ms)
        want = predicted_profile(phis, Ms, max_order, var=var, kind=kind)
        prof = rank_profile if kind == "derivative" else difference_profile
        P = prof(A, max_order, var=var, seed=seed)
        ok = P.certified and P.ranks == want and is_nonincreasing(P.ranks)
        res.record(
            ok, f"profile {P.ranks} == formula {want}, non-increasing" if ok else f"profile {P.ranks} vs formula {want}"
        )
    return res


def _random_poly(rng, var, maxdeg):
    d = rng.randint(0, maxdeg)
    f = sum(rng.randint(-3, 3) * var**e for e in range(d))
    return f + rng.choice([-2, -1, 1, 2]) * var**d


def random_decomposable(rng, var, *, m=4, n=4, s=3, maxdeg=3, side="col", rational=False):
    """A random decomposition satisfying a direct-sum hypothesis.

    ``M_i = U_i V_i`` where the ``U_i`` are disjoint column blocks of a random
    invertible matrix (so the column spaces are independent), the ``V_i``
    random; ``side="row"`` transposes the construction.

    Parameters
    ----------
    rng : random.Random
    var : sympy.Symbol
    m, n, s : int
        Shape and number of terms.
    maxdeg : int
        Maximal degree of the polynomial ``φ_i``.
    side : {"col", "row"}
    rational : bool
        If True, some ``φ_i`` are divided by a linear factor (never vanish
        under differentiation).

    Returns
    -------
    phis, Ms : lists

    Examples
    --------
    >>> import random, sympy as sp
    >>> phis, Ms = random_decomposable(random.Random(1), sp.Symbol("t"))
    >>> direct_sum_side(Ms)
    'col'
    """
    if side not in ("col", "row"):
        raise ValueError(f"side must be 'col' or 'row', got {side!r}")
    if side == "row":
        phis, Ms = random_decomposable(rng, var, m=n, n=m, s=s, maxdeg=maxdeg, side="col", rational=rational)
        return phis, [M.T for M in Ms]
    while True:
        U = sp.Matrix(m, m, lambda i, j: rng.randint(-2, 2))
        if U.det() != 0:
            break
    cuts = sorted(rng.sample(range(m + 1), min(s - 1, m + 1))) if s > 1 else []
    bounds = [0] + cuts + [m]
    phis, Ms = [], []
    for i in range(s):
        a, b = bounds[i], bounds[i + 1]
        Ui = U[:, a:b]
        V = sp.Matrix(b - a, n, lambda *_: rng.randint(-2, 2))
        Ms.append(Ui * V if b > a else sp.zeros(m, n))
        f = _random_poly(rng, var, maxdeg)
        if rational and rng.random() < 0.3:
            f = f / (var + rng.randint(1, 5))
        phis.append(f)
    return phis, Ms


def check(seed=0, *, n_instances=6):
    """Default instances of C1 for ``python -m theory``.

    Returns
    -------
    list of ClaimResult
        One for derivatives, one for differences.

    Examples
    --------
    >>> all(r.passed for r in check(n_instances=1))
    True
    """
    rng = random.Random(seed)
    out = []
    for kind, var in (("derivative", sp.Symbol("t")), ("difference", sp.Symbol("j", integer=True))):
        res = ClaimResult(f"C1 monotonicity ({kind}s)")
        with timed(res):
            for i in range(n_instances):
                side = "col" if i % 2 == 0 else "row"
                phis, Ms = random_decomposable(rng, var, side=side, rational=(kind == "derivative"))
                sub = check_monotonicity(phis, Ms, 4, var=var, kind=kind, seed=seed + i)
                res.record(sub.passed, f"[{side}] " + sub.details[0][5:])
        out.append(res)
    return out
