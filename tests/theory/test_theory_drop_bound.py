"""The drop bound (false: theory.poles) and the linear-family search for a counterexample.

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
from theory.designer import discrete_status
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


THREE_TERM = [(2, 4, 3, 5, 1), (4, 2, 3, 5, 1), (4, 3, 5, 1, 2)]
# constructed since: (2, 3, 4, 1) (theory.poles, then a polynomial one), (3, 4, 5, 1, 2) and
# (5, 2, 3, 4, 1) (theory.rank_one_search)
CONSTRUCTED_SINCE = [(2, 3, 4, 1), (3, 4, 5, 1, 2), (5, 2, 3, 4, 1)]
THREE_OPEN = [p for p in NINE_OPEN if p not in THREE_TERM and p not in CONSTRUCTED_SINCE]


@pytest.mark.parametrize("target", THREE_OPEN)
def test_three_rows_stay_open(target):
    """They pass every proved condition and violate the drop bound, which is false (theory.poles)."""
    assert not necessary_violations(target)
    r = design_profile(target, library_kind="extended")
    assert r.status == "open"
    assert "violates the drop bound (false in general: see (2, 3, 4, 1))" in r.reason


@pytest.mark.parametrize("target", CONSTRUCTED_SINCE)
def test_the_drop_bound_is_false_over_Qt(target):
    """These violate it and are constructed: polynomial D_a C D_b matrices, certified, checked by DomainMatrix."""
    assert drop_bound_violation(target) is not None
    r = design_profile(target, library_kind="extended")
    assert r.status == "constructed"
    assert dm_profile(r.matrix, len(target)) == target
    assert all(sp.denom(sp.cancel(x)).free_symbols == set() for x in r.matrix)  # no poles: polynomial


@pytest.mark.parametrize("target", THREE_TERM)
def test_three_rows_are_impossible_by_three_term_rigidity(target):
    """2 r_{k+2} >= 3 r_{k+1} - 4 r_k fails at (3, 5, 1); proved for derivatives only."""
    r = design_profile(target, library_kind="extended")
    assert r.status == "impossible"
    assert r.reason == "three-term rigidity: " + r.reason.split("three-term rigidity: ")[1]
    i = next(k for k in range(len(target) - 2) if target[k : k + 3] == (3, 5, 1))
    assert f"2*r_{i + 2} >= 3*r_{i + 1} - 4*r_{i} = 3, but 2*r_{i + 2} = 2" in r.reason
    assert not necessary_violations(target, differences=True)
    assert discrete_status(r) == "open"


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


# --- proved partial results: where the weaker form decides the bound; rank one up to order 3 ---

# the three open rows, (2, 3, 4, 1) and (5, 2, 3, 4, 1)
FIVE_LAST_DROP = [p for p in NINE_OPEN if p not in THREE_TERM and p[-1] == 1]


def test_five_rows_can_only_continue_with_rank_two():
    """Their violating drop goes into the last order, of rank 1: rho(K) <= 1 is excluded, rho(K) = 2 is not."""
    assert len(FIVE_LAST_DROP) == 5
    for p in FIVE_LAST_DROP:
        n = len(p) - 2
        assert drop_bound_violation(p) == n and p[n + 1] == 1
        for nxt in (0, 1):
            # with rho(K) <= 1 the column (or row) space of the rank-1 order K-1 is closed under
            # differentiation (rank-one persistence), and then the bound holds at n: it fails here
            assert p[n] > min(p[: n + 1]) + p[n + 1]
            assert nxt == 0 or not necessary_violations(p + (nxt,))  # the older conditions do not see it
        assert not necessary_violations(p + (2,))
        assert necessary_violations(p + (3,))  # C2 bound
        # doubling rigidity then forces rho(K+1) >= 1
        assert any("doubling rigidity" in v for v in necessary_violations(p + (2, 0)))


@st.composite
def dstable_instances(draw):
    """A = G [R; P]: R arbitrary Laurent rows, P polynomial rows of degree <= k, G constant invertible.

    Then the column space of A^(k+1) lies in the constant span of the first s columns of G.
    """
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    p_rows = draw(st.integers(1, 3))
    n = draw(st.integers(2, 4))
    q = draw(st.integers(1, 2))
    coef = st.sampled_from([0, 0, 1, -1, 2])
    R = sp.Matrix(s, n, lambda *_: sum(draw(coef) * T**e for e in range(-2, k + 3)))
    L = sp.Matrix(p_rows, q, lambda *_: sum(draw(coef) * T**e for e in range(0, k // 2 + 1)))
    Rt = sp.Matrix(q, n, lambda *_: sum(draw(coef) * T**e for e in range(0, k - k // 2 + 1)))
    m = s + p_rows
    G = sp.Matrix(m, m, lambda *_: draw(st.integers(-2, 2)))
    return k, s, G, sp.Matrix.vstack(R, L * Rt)


@settings(max_examples=12, deadline=None)
@given(dstable_instances())
def test_bound_holds_when_the_column_space_is_closed_under_differentiation(inst):
    k, s, G, M = inst
    if G.det() == 0:
        return
    A = (G * M).applyfunc(sp.expand)
    prof = dm_profile(A, k + 2)
    # the hypothesis of the statement, checked independently: col A^(k+1) inside the constant span of G[:, :s]
    X = A.diff(T, k + 1)
    assert dm_rank(sp.Matrix.hstack(G[:, :s], X)) == dm_rank(G[:, :s]) == s
    assert all(prof[k] <= prof[j] + prof[k + 1] for j in range(k + 1))
    # the step the proof rests on: the rows of G^-1 A below s are polynomials of degree <= k,
    # and the rank of their top coefficient is at most their rank
    P = (G.inv() * A).applyfunc(sp.expand)[s:, :]
    assert all(sp.degree(x, T) <= k for x in P if x != 0)
    top = P.applyfunc(lambda x: sp.expand(x).coeff(T, k))
    assert top.rank() <= dm_rank(P)


def _companion_coordinates(gamma, count):
    """Coordinates of u, u', u'', ... in the basis (u, u', u'') when u''' = g0 u + g1 u' + g2 u''."""
    out = [sp.Matrix([1, 0, 0]), sp.Matrix([0, 1, 0]), sp.Matrix([0, 0, 1])]
    while len(out) < count:
        c = out[-1]
        # (c0 u + c1 u' + c2 u'')' = c' . (u, u', u'') + c0 u' + c1 u'' + c2 u'''
        out.append(c.diff(T) + sp.Matrix([0, c[0], c[1]]) + c[2] * sp.Matrix(gamma))
    return out


def _M(j, cu, cv):
    return sum((sp.binomial(j, i) * cu[i] * cv[j - i].T for i in range(j + 1)), sp.zeros(3, 3))


def test_rank_one_order_three_identity():
    """(e3 + e4)/6 - e1'/24 - (g2 + d2) e1/24 = -(5/9) det M_3 for arbitrary coefficient functions."""
    g = [sp.Function(f"g{i}")(T) for i in range(3)]
    d = [sp.Function(f"d{i}")(T) for i in range(3)]
    cu, cv = _companion_coordinates(g, 5), _companion_coordinates(d, 5)
    assert list(cu[4]) == [
        sp.expand(x)
        for x in (g[0].diff(T) + g[2] * g[0], g[0] + g[1].diff(T) + g[2] * g[1], g[1] + g[2].diff(T) + g[2] ** 2)
    ]
    M3, M4 = _M(3, cu, cv), _M(4, cu, cv)
    assert M4[2, 2] == 6
    e1 = M4.extract([1, 2], [1, 2]).det()
    e3 = M4.extract([0, 2], [1, 2]).det()
    e4 = M4.extract([1, 2], [0, 2]).det()
    lhs = (e3 + e4) / 6 - e1.diff(T) / 24 - (g[2] + d[2]) * e1 / 24
    assert sp.expand(lhs + sp.Rational(5, 9) * M3.det()) == 0


def test_rank_one_coordinates_agree_with_sympy_derivatives():
    """A^(j) = W_u M_j W_v^T for u = (1, t, 1/t), v = (1, t^2, t^-1) (each solves a third-order equation)."""
    u = sp.Matrix([1, T, 1 / T])
    v = sp.Matrix([1, T**2, 1 / T])

    def gamma(w):
        W = sp.Matrix.hstack(w, w.diff(T), w.diff(T, 2))
        return list((W.inv() * w.diff(T, 3)).applyfunc(sp.cancel))

    cu, cv = _companion_coordinates(gamma(u), 6), _companion_coordinates(gamma(v), 6)
    Wu = sp.Matrix.hstack(u, u.diff(T), u.diff(T, 2))
    Wv = sp.Matrix.hstack(v, v.diff(T), v.diff(T, 2))
    A = u * v.T
    for j in range(6):
        assert (Wu * _M(j, cu, cv) * Wv.T - A.diff(T, j)).applyfunc(sp.cancel).is_zero_matrix
    prof = dm_profile(A, 6)
    assert prof == rank_profile(A, 5, var=T).ranks
    assert all(prof[k + 1] >= prof[k] - 1 for k in range(4))


# --- three-term rigidity: 2 rho(k+2) >= 3 rho(k+1) - 4 rho(k) (derivatives) ---


def _fn_matrix(name, rows, cols):
    return sp.Matrix(rows, cols, lambda i, j: sp.Function(f"{name}{i}{j}")(T))


def test_three_term_normal_form_recursion():
    """With P' = P N, Q' = K Q and X_j = P^-1 A^(j) Q^-1: X_1 and X_2 are the documented blocks."""
    r, s, q = 2, 2, 1
    al, bt, bh = _fn_matrix("a", r, r), _fn_matrix("b", s, r), _fn_matrix("c", r, q)
    N = sp.BlockMatrix([[sp.zeros(r, r), sp.zeros(r, s)], [bt, sp.zeros(s, s)]]).as_explicit()
    K = sp.BlockMatrix([[al, bh], [sp.zeros(q, r), sp.zeros(q, q)]]).as_explicit()
    X = sp.diag(sp.eye(r), sp.zeros(s, q))
    X1 = X.diff(T) + N * X + X * K
    X2 = X1.diff(T) + N * X1 + X1 * K
    assert X1 == sp.BlockMatrix([[al, bh], [bt, sp.zeros(s, q)]]).as_explicit()
    expected = sp.BlockMatrix(
        [[al.diff(T) + al * al, bh.diff(T) + al * bh], [bt.diff(T) + 2 * bt * al, 2 * bt * bh]]
    ).as_explicit()
    assert (X2 - expected).applyfunc(sp.expand).is_zero_matrix


def test_three_term_derivative_identity():
    """(l bt bh m)' = l'(bt bh)m + l(bt bh)m' + [l(bt' + 2 bt al)] bh m + l bt [(bh' + al bh) m] - 3 l bt al bh m."""
    r, s = 3, 2
    al, bt, bh = _fn_matrix("a", r, r), _fn_matrix("b", s, r), _fn_matrix("c", r, s)
    ell, mu = _fn_matrix("l", 1, s), _fn_matrix("m", s, 1)
    lhs = (ell * bt * bh * mu).diff(T)
    rhs = (
        ell.diff(T) * bt * bh * mu
        + ell * bt * bh * mu.diff(T)
        + ell * (bt.diff(T) + 2 * bt * al) * bh * mu
        + ell * bt * (bh.diff(T) + al * bh) * mu
        - 3 * ell * bt * al * bh * mu
    )
    assert sp.expand(lhs[0] - rhs[0]) == 0


def test_three_term_normal_form_on_a_concrete_matrix():
    """U = [I; W(t)], V = [I, Z(t)] are in normal form (E, F constant, alpha = 0): the blocks give the profile."""
    rng = random.Random(3)
    r, s = 2, 2
    W = sp.Matrix(s, r, lambda *_: sum(rng.choice([0, 1, -1, 2]) * T**e for e in range(1, 4)))
    Z = sp.Matrix(r, s, lambda *_: sum(rng.choice([0, 1, -1, 2]) * T**e for e in range(-2, 3) if e))
    U, V = sp.Matrix.vstack(sp.eye(r), W), sp.Matrix.hstack(sp.eye(r), Z)
    A = U * V
    P = sp.Matrix.hstack(U, sp.Matrix.vstack(sp.zeros(r, s), sp.eye(s)))
    Q = sp.Matrix.vstack(V, sp.Matrix.hstack(sp.zeros(s, r), sp.eye(s)))
    bt, bh = W.diff(T), Z.diff(T)  # U' = E bt, V' = bh F
    X1 = (P.inv() * A.diff(T) * Q.inv()).applyfunc(sp.cancel)
    X2 = (P.inv() * A.diff(T, 2) * Q.inv()).applyfunc(sp.cancel)
    assert (
        (X1 - sp.BlockMatrix([[sp.zeros(r, r), bh], [bt, sp.zeros(s, s)]]).as_explicit())
        .applyfunc(sp.cancel)
        .is_zero_matrix
    )
    expected = sp.BlockMatrix([[sp.zeros(r, r), bh.diff(T)], [bt.diff(T), 2 * bt * bh]]).as_explicit()
    assert (X2 - expected).applyfunc(sp.cancel).is_zero_matrix
    prof = dm_profile(A, 3)
    assert prof == (dm_rank(U * V), dm_rank(X1), dm_rank(X2))
    assert 2 * prof[2] >= 3 * prof[1] - 4 * prof[0]


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_three_term_rigidity_on_random_products(r, seed):
    """Evidence next to the proof: random sparse products, profile by DomainMatrix and by the engine."""
    rng = random.Random(seed)
    m, n = rng.randint(r, 5), rng.randint(r, 5)
    Bf = sp.Matrix(m, r, lambda *_: sum(rng.choice([0, 0, 1, -1]) * T**e for e in range(-1, 4)))
    Cf = sp.Matrix(r, n, lambda *_: sum(rng.choice([0, 0, 1, -1, 2]) * T**e for e in range(0, 4)))
    A = (Bf * Cf).applyfunc(sp.expand)
    prof = dm_profile(A, 4)
    assert prof == rank_profile(A, 3, var=T).ranks
    assert all(2 * prof[k + 2] >= 3 * prof[k + 1] - 4 * prof[k] for k in range(2))
