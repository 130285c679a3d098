"""The conjectured drop bound and the linear-family search for a counterexample.

Independent references: SymPy's own derivatives and DomainMatrix ranks over QQ(t) (and over QQ for the
constant coefficient matrices), next to the package's engine.
"""

import io
import random

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

from theory import design_profile, necessary_violations, rank_profile
from theory.cli import main
from theory.drop_search import (
    T,
    drop_bound_violation,
    drop_search,
    family_matrix,
    family_profile_mod,
)

NINE_OPEN = [
    (2, 3, 4, 1),
    (2, 3, 4, 5, 1),
    (2, 3, 5, 4, 1),
    (2, 4, 3, 5, 1),
    (3, 2, 4, 5, 1),
    (3, 4, 5, 1, 2),
    (4, 2, 3, 5, 1),
    (4, 3, 5, 1, 2),
    (5, 2, 3, 4, 1),
]

FIELD = sp.QQ.frac_field(T)


def dm_rank(M):
    """Rank over QQ(t) by SymPy's DomainMatrix alone."""
    if M.rows == 0 or M.cols == 0:
        return 0
    return DomainMatrix.from_Matrix(M.applyfunc(sp.cancel)).convert_to(FIELD).rank()


def dm_profile(M, orders):
    out, D = [], M
    for _ in range(orders):
        out.append(dm_rank(D))
        D = D.diff(T)
    return tuple(out)


def laurent(draw, shape, lo, hi):
    return {
        e: np.array(
            [[draw(st.sampled_from([0, 0, 1, -1, 2, -2])) for _ in range(shape[1])] for _ in range(shape[0])],
            dtype=np.int64,
        )
        for e in range(lo, hi + 1)
    }


def to_sympy(P, shape):
    return sp.Matrix(*shape, lambda i, j: sum(int(C[i, j]) * T**e for e, C in P.items()))


@st.composite
def families(draw):
    m = draw(st.integers(2, 4))
    r = draw(st.integers(1, min(2, m - 1)))
    q = draw(st.integers(1, min(2, m - 1)))
    k = draw(st.integers(0, 2))
    U = laurent(draw, (m, r), draw(st.integers(-1, 0)), draw(st.integers(0, 2)))
    lo = draw(st.integers(-2, 0))
    hi = draw(st.integers(lo, 3))
    W = laurent(draw, (r, q), lo, hi)
    return U, W, k, (lo, hi), (m, r, q)


@settings(max_examples=10, deadline=None)
@given(families())
def test_family_members_satisfy_the_definition(fam):
    """Every column g of the generic member has g^(k+1) in col (U W)^(k+1); its rank is at most rank U."""
    U, W, k, window, (m, r, q) = fam
    G = family_matrix(U, W, k, window)
    Us, Ws = to_sympy(U, (m, r)), to_sympy(W, (r, q))
    X = (Us * Ws).diff(T, k + 1)
    if G is None:  # an empty family: then even the columns of W are zero or fall outside the window
        assert Us.is_zero_matrix or Ws.is_zero_matrix or any(e < window[0] or e > window[1] for e in W)
        return
    assert G.rows == m
    assert dm_rank(sp.Matrix.hstack(X, G.diff(T, k + 1))) == dm_rank(X)
    assert dm_rank(G) <= dm_rank(Us)
    # the columns of U W lie in the family whenever W's exponents lie in the window
    if all(window[0] <= e <= window[1] for e in W):
        assert _in_rational_span(G, (Us * Ws).applyfunc(sp.expand))


def _coefficient_matrix(M):
    """The constant matrix stacking the coefficients of every power of t (rows), one column per column of M."""
    rows = []
    exps = set()
    polys = [[sp.Poly(sp.expand(M[i, j] * T**8), T) for j in range(M.cols)] for i in range(M.rows)]
    for row in polys:
        for p in row:
            exps |= {mon[0] for mon in p.monoms()}
    for e in sorted(exps):
        for i in range(M.rows):
            rows.append([polys[i][j].coeff_monomial(T**e) for j in range(M.cols)])
    return sp.Matrix(rows) if rows else sp.zeros(1, M.cols)


def _in_rational_span(G, B):
    """Do the columns of B lie in the Q-span (constant combinations) of the columns of G?"""
    CG = _coefficient_matrix(sp.Matrix.hstack(G, B))
    return CG[:, : G.cols].rank() == CG.rank()


@settings(max_examples=10, deadline=None)
@given(families(), st.integers(0, 2**31 - 1))
def test_modular_screen_equals_the_certified_profile(fam, seed):
    U, W, k, window, _ = fam
    screened = family_profile_mod(U, W, k, window, k + 3, seed=seed)
    G = family_matrix(U, W, k, window)
    if G is None:
        assert screened is None
        return
    cert = rank_profile(G, k + 2, var=T, seed=1)
    assert cert.certified
    assert screened == cert.ranks == dm_profile(G, k + 3)


def test_generic_member_dominates_every_member():
    """A matrix A lies in the family of (U = A, W = unit columns, window (0, 0)): the generic member has A's profile."""
    rng = random.Random(7)
    checked = 0
    while checked < 4:
        m, n, r = rng.randint(2, 3), rng.randint(2, 4), rng.randint(1, 2)
        Bf = sp.Matrix(m, r, lambda *_: sum(rng.choice([0, 1, -1, 2]) * T**e for e in range(-1, 3)))
        Cf = sp.Matrix(r, n, lambda *_: sum(rng.choice([0, 1, -1]) * T**e for e in range(0, 3)))
        A = (Bf * Cf).applyfunc(sp.expand)
        k = rng.randint(0, 2)
        D = A.diff(T, k + 1)
        q = dm_rank(D)
        if q == 0:
            continue
        # columns J of A whose (k+1)-th derivatives span those of all columns
        J = []
        for j in range(n):
            if dm_rank(D[:, J + [j]]) > len(J):
                J.append(j)
        lo = min(sp.Poly(sp.expand(x * T**4), T).monoms()[-1][0] - 4 for x in A if x != 0)
        hi = max(sp.degree(sp.expand(x * T**4), T) - 4 for x in A if x != 0)
        U = {
            e: np.array([[int(sp.expand(A[i, j] * T**4).coeff(T, e + 4)) for j in range(n)] for i in range(m)])
            for e in range(lo, hi + 1)
        }
        W = {0: np.eye(n, dtype=np.int64)[:, J]}
        G = family_matrix(U, W, k, (0, 0))
        assert G is not None
        assert dm_profile(G, k + 3) == dm_profile(A, k + 3)
        assert _in_rational_span(G, A) and _in_rational_span(A, G)
        checked += 1


def test_drop_search_small_run():
    res = drop_search(40, seed=3)
    assert res.families == 40 == sum(res.profiles.values())
    assert res.counterexample is None and res.profile is None
    assert all(drop_bound_violation(p) is None for p in res.profiles)  # evidence, not a proof
    tight = sum(
        n
        for p, n in res.profiles.items()
        if any(p[i] > p[i + 1] and p[i] == p[i + 1] + min(p[:i]) for i in range(1, len(p) - 1))
    )
    assert res.tight == tight
    assert drop_search(0).families == 0


def test_drop_bound_violation_is_the_documented_inequality():
    for p in NINE_OPEN:
        n = drop_bound_violation(p)
        assert n is not None and p[n] > p[n + 1] + min(p[:n])
        assert all(p[i] <= p[i + 1] + min(p[:i]) for i in range(1, n))
    for p in [(1,), (1, 2), (1, 2, 1, 0), (3, 1, 2), (4, 3, 5, 2, 1), (2, 3, 1)]:
        assert drop_bound_violation(p) is None


@pytest.mark.parametrize("target", NINE_OPEN)
def test_the_nine_rows_stay_open(target):
    """They pass every proved condition; only the unproved bound would exclude them."""
    assert not necessary_violations(target)
    r = design_profile(target, library_kind="extended")
    assert r.status == "open"
    assert "violates the conjectured (unproved) drop bound" in r.reason


def test_bad_input():
    U = {0: np.array([[1], [0]])}
    with pytest.raises(TypeError, match="U must be a non-empty dict"):
        family_matrix([[1]], {0: np.array([[1]])}, 1, (0, 1))
    with pytest.raises(ValueError, match="W must have 1 rows"):
        family_matrix(U, {0: np.array([[1], [1]])}, 1, (0, 1))
    with pytest.raises(ValueError, match="window"):
        family_matrix(U, {0: np.array([[1]])}, 1, (2, 1))
    with pytest.raises(ValueError, match="k must be"):
        family_matrix(U, {0: np.array([[1]])}, -1, (0, 1))
    with pytest.raises(TypeError, match="integer matrix"):
        family_matrix({0: np.array([[0.5], [0.0]])}, {0: np.array([[1]])}, 1, (0, 1))
    with pytest.raises(ValueError, match="families"):
        drop_search(-1)


def test_cli_dropsearch(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr("sys.stdout", buf)
    assert main(["dropsearch", "--families", "25", "--seed", "2"]) == 0
    out = buf.getvalue()
    assert out.startswith("25 families screened") and "no violation" in out


def test_the_bound_fails_at_a_point():
    """The documented example: the derivatives at t = 0 of a rank-2 product break the bound, its generic profile not."""
    U = sp.Matrix([[-(T**2), 1], [T**2, -T], [1 - T**2, 0], [0, T]])
    V = sp.Matrix([[-T, 0, 1, 1 - T**2], [-1 + T**2, T, 0, 1]])
    A = (U * V).applyfunc(sp.expand)
    at_zero = tuple(A.diff(T, k).subs(T, 0).rank() for k in range(6))
    assert at_zero == (2, 3, 4, 1, 1, 0) and drop_bound_violation(at_zero) == 2
    generic = dm_profile(A, 6)
    assert generic == rank_profile(A, 5, var=T).ranks == (2, 4, 4, 2, 1, 0)
    assert drop_bound_violation(generic) is None


def test_the_kernel_route_fails():
    """The documented example: A^(4) maps the kernel of A^(5) onto more than rank A dimensions."""
    u = sp.Matrix([1, T**-2, T**3])
    v = sp.Matrix([1 / T, T, T**-3, T**-2])
    A = u * v.T
    assert dm_profile(A, 7) == rank_profile(A, 6, var=T).ranks == (1, 2, 3, 3, 3, 2, 2)
    A4, A5 = A.diff(T, 4), A.diff(T, 5)
    N = DomainMatrix.from_Matrix(A5.applyfunc(sp.cancel)).convert_to(FIELD).nullspace().to_Matrix().T
    assert N.shape[1] == 2 and dm_rank(A5 * N) == 0
    assert dm_rank(A4 * N) == 2 > dm_rank(A)
