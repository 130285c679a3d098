"""The rank-one-order search (theory.rank_one_search) and the antiderivative lift.

Every block the search or the lift returns is re-checked here by SymPy's
DomainMatrix over Q(t) on the matrix ``C_ij t^(a_i + b_j)`` itself, not only
by the package's exact Hadamard ranks.
"""

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

from theory.dcd import dcd_matrix, dcd_profile
from theory.rank_one_search import _Candidate, integrate_block, rank_one_search

t = sp.Symbol("t")

# the polynomial realisation of (2, 3, 4, 1) quoted in docs/theory.md
POLY_2341 = sp.Matrix(
    [
        [0, 45, 20 * t**3, 35 * t**4],
        [21, 6 * t, 5 * t**4, 14 * t**5],
        [14 * t, t**2, 2 * t**5, 7 * t**6],
        [9 * t**2, 0, t**6, 4 * t**7],
    ]
)


def domainmatrix_profile(A, K):
    """Generic ranks of A, A', ..., A^(K-1) by SymPy alone (over QQ(t))."""
    field = sp.QQ.frac_field(t)
    return tuple(DomainMatrix.from_Matrix(sp.Matrix(A).diff(t, k)).convert_to(field).rank() for k in range(K))


def _falling(s, k):
    out = 1
    for i in range(k):
        out *= s - i
    return out


def test_polynomial_2341_by_an_independent_rank():
    assert domainmatrix_profile(POLY_2341, 5) == (2, 3, 4, 1, 2)
    assert all(sp.Poly(x, t).degree() <= 7 for x in POLY_2341 if x != 0)
    # A''' is t^2 times a rank-one constant-coefficient matrix in disguise: x y^T with x, y polynomial
    D3 = POLY_2341.diff(t, 3)
    assert D3.rank() == 1


def test_the_polynomial_2341_is_a_dcd_matrix():
    a, b = (0, 1, 2, 3), (-1, 0, 3, 4)
    C = [[0, 45, 20, 35], [21, 6, 5, 14], [14, 1, 2, 7], [9, 0, 1, 4]]
    assert sp.Matrix(dcd_matrix(a, b, C, t)) == POLY_2341
    assert dcd_profile(a, b, C, 5) == (2, 3, 4, 1, 2)
    # the proof on the theory page: column relations, and every row of C ∘ F_3 is (0, 0, 120, 840)
    M = sp.Matrix(C)
    assert M[:, 0] == -7 * M[:, 2] + 4 * M[:, 3] and M[:, 1] == 4 * M[:, 2] - M[:, 3]
    F3 = sp.Matrix(4, 4, lambda i, j: C[i][j] * _falling(a[i] + b[j], 3))
    assert all(F3[i, :] == sp.Matrix([[0, 0, 120, 840]]) for i in range(4))


def test_candidate_at_the_polynomial_exponents_solves_and_pins_exactly():
    """Numerical solve of the rank system, then pinning: the result is exact and polynomial."""
    rng = np.random.default_rng(0)
    cand = _Candidate(
        (2, 3, 4, 1), 3, np.array([0, 1, 2, 3]), np.array([-1, 0, 3, 4]), np.arange(4), np.array([2, 3]), rng
    )
    assert cand.feasible()
    assert len(cand.free) == 6  # exponent sums 0, 1, 2 off I x J
    got = cand.solve(rng.standard_normal(6), {}, rng)
    assert got is not None
    f, dirs = got
    assert dirs.shape[1] == 2  # the solution set is a surface (two scalings of the free columns)
    blk = cand.rational(f, dirs, rng)
    assert blk is not None and blk[0] == "dcd"
    _, a, b, C = blk
    assert dcd_profile(a, b, C, 4) == (2, 3, 4, 1)
    A = sp.Matrix(dcd_matrix(a, b, C, t))
    assert domainmatrix_profile(A, 4) == (2, 3, 4, 1)
    assert all(x == 0 or sp.Poly(x, t).degree() >= 0 for x in A)  # no negative powers: polynomial
    assert all(not C[i][j] or a[i] + b[j] >= 0 for i in range(len(a)) for j in range(len(b)))


@pytest.mark.slow
def test_rank_one_search_finds_2341_by_itself():
    blk = rank_one_search((2, 3, 4, 1), seed=1, tries=3000)
    assert blk is not None
    _, a, b, C = blk
    assert dcd_profile(a, b, C, 4) == (2, 3, 4, 1)
    assert domainmatrix_profile(sp.Matrix(dcd_matrix(a, b, C, t)), 4) == (2, 3, 4, 1)


def test_rank_one_search_finds_3412_and_is_deterministic():
    first = rank_one_search((3, 4, 1, 2), seed=0, tries=300)
    assert first is not None
    _, a, b, C = first
    assert domainmatrix_profile(sp.Matrix(dcd_matrix(a, b, C, t)), 4) == (3, 4, 1, 2)
    assert rank_one_search((3, 4, 1, 2), seed=0, tries=300) == first


def test_rank_one_search_refuses_targets_without_a_rank_one_order():
    with pytest.raises(ValueError, match="rank-one order"):
        rank_one_search((2, 3, 2))
    with pytest.raises(ValueError, match="rank-one order"):
        rank_one_search((1, 2))  # order 0 does not count: C itself would be rank one
    with pytest.raises(ValueError, match="nonnegative"):
        rank_one_search((2, -1, 1))


@settings(max_examples=30, deadline=None)
@given(
    target=st.lists(st.integers(0, 3), min_size=1, max_size=3)
    .map(lambda r: (2,) + tuple(r))
    .filter(lambda r: 1 in r[1:])
    | st.lists(st.integers(0, 3), min_size=1, max_size=3).map(lambda r: (1,) + tuple(r)).filter(lambda r: 1 in r[1:]),
    seed=st.integers(0, 3),
    polynomial=st.booleans(),
)
def test_rank_one_search_small_targets(target, seed, polynomial):
    """Edge cases (nothing rank-deficient below the rank-one order, zero orders, 1 x 1): no error, and
    whatever comes back has the target profile by DomainMatrix and is polynomial when asked."""
    blk = rank_one_search(target, seed=seed, tries=40, polynomial=polynomial)
    if blk is None:
        return
    _, a, b, C = blk
    assert domainmatrix_profile(sp.Matrix(dcd_matrix(a, b, C, t)), len(target)) == target
    if polynomial:
        assert all(not C[i][j] or a[i] + b[j] >= 0 for i in range(len(a)) for j in range(len(b)))


def test_rank_one_search_when_every_free_entry_gets_pinned():
    """(2, 1): no order below the rank-one order is rank-deficient, so pinning ends with nothing to solve."""
    blk = rank_one_search((2, 1), seed=0, tries=200)
    assert blk is not None
    assert domainmatrix_profile(sp.Matrix(dcd_matrix(*blk[1:], t)), 2) == (2, 1)


def test_rank_one_search_reports_progress():
    calls = []
    rank_one_search((2, 3, 4, 5, 1), seed=0, tries=2001, progress=calls.append)
    assert calls == [1000, 2000]


def test_rank_one_search_can_come_back_empty():
    assert rank_one_search((2, 3, 4, 1), seed=0, tries=5) is None


@settings(max_examples=40, deadline=None)
@given(
    a=st.lists(st.integers(-3, 4), min_size=1, max_size=4),
    b=st.lists(st.integers(-3, 4), min_size=1, max_size=4),
    k1=st.integers(1, 3),
    data=st.data(),
)
def test_structure_of_a_rank_one_order(a, b, k1, data):
    """C = R + F as in the module docstring has rank(C ∘ F_k1) <= 1 and fixed higher orders (exact, Fractions)."""
    m, n = len(a), len(b)
    u = [data.draw(st.sampled_from([0, 1, -2, 3])) for _ in range(m)]
    v = [data.draw(st.sampled_from([0, 1, 2, -1])) for _ in range(n)]
    C = [[Fraction(0)] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            s = a[i] + b[j]
            if 0 <= s < k1:
                C[i][j] = Fraction(data.draw(st.integers(-3, 3)))  # free: killed from order k1 on
            elif u[i] and v[j]:
                C[i][j] = Fraction(u[i] * v[j], _falling(s, k1))
    # u_i v_j must vanish on the free positions for the structure to apply
    if any(u[i] and v[j] and 0 <= a[i] + b[j] < k1 for i in range(m) for j in range(n)):
        return
    for k in range(k1, k1 + 3):
        M = sp.Matrix(m, n, lambda i, j: C[i][j] * _falling(a[i] + b[j], k))
        expected = sp.Matrix(m, n, lambda i, j: u[i] * v[j] * _falling(a[i] + b[j] - k1, k - k1))
        assert M == expected
        if k == k1:
            assert M.rank() <= 1
    assert dcd_profile(a, b, C, k1 + 1)[k1] == (1 if any(u) and any(v) else 0)


def test_integrate_block_lifts_2341_to_52341():
    a, b = (0, 1, 2, 3), (-1, 0, 3, 4)
    C = ((0, 45, 20, 35), (21, 6, 5, 14), (14, 1, 2, 7), (9, 0, 1, 4))
    lifted = integrate_block(("dcd", a, b, C), (5, 2, 3, 4, 1), seed=0)
    assert lifted is not None
    _, a2, b2, C2 = lifted
    A = sp.Matrix(dcd_matrix(a2, b2, C2, t))
    assert A.shape == (5, 5)
    assert domainmatrix_profile(A, 5) == (5, 2, 3, 4, 1)
    assert all(not C2[i][j] or a2[i] + b2[j] >= 0 for i in range(5) for j in range(5))  # polynomial
    # its derivative is the tail construction, up to one scalar and zero padding
    B = POLY_2341
    D = A.diff(t)
    nz = [(i, j) for i in range(5) for j in range(5) if D[i, j] != 0]
    rows = sorted({i for i, _ in nz})
    cols = sorted({j for _, j in nz})
    assert len(rows) == 4 and len(cols) == 4
    block = D.extract(rows, cols)
    ratio = sp.cancel(block[1, 2] / B[1, 2])
    assert ratio.is_number and ratio != 0
    assert (block - ratio * B).applyfunc(sp.expand) == sp.zeros(4, 4)


def test_integrate_block_refuses_a_log():
    with pytest.raises(ValueError, match="t\\^-1"):
        integrate_block(("dcd", (0,), (-1,), ((1,),)), (2, 1))
    with pytest.raises(ValueError, match="dcd"):
        integrate_block(("monomial", 2), (2, 1))


@settings(max_examples=25, deadline=None)
@given(e=st.integers(0, 4), size=st.integers(1, 3))
def test_integrate_block_monomial(e, size):
    """t^e lifts to (size, 1, ..., 1, 0): t^(e+1)/(e+1) plus constants of rank size - 1 (closed form)."""
    target = (size,) + (1,) * (e + 1) + (0,)
    lifted = integrate_block(("dcd", (e,), (0,), ((1,),)), target, seed=1)
    assert lifted is not None
    _, a2, b2, C2 = lifted
    assert domainmatrix_profile(sp.Matrix(dcd_matrix(a2, b2, C2, t)), len(target)) == target


def _shipped(target):
    from theory._constructions import DATA

    (row,) = [r for r in DATA["constructions"] if tuple(r["target"]) == target]
    (block,) = row["blocks"]
    return block["a"], block["b"], block["C"]


def test_shipped_2341_is_the_documented_polynomial_transposed():
    """The designer's (2, 3, 4, 1) is POLY_2341ᵀ with its rows scaled (Aᵀ has the profile of A)."""
    a, b, C = _shipped((2, 3, 4, 1))
    A = sp.Matrix(dcd_matrix(a, b, C, t))
    P = POLY_2341.T
    for i in range(4):
        j = next(j for j in range(4) if P[i, j] != 0)
        ratio = sp.cancel(A[i, j] / P[i, j])
        assert ratio.is_number and ratio != 0
        assert (A[i, :] - ratio * P[i, :]).applyfunc(sp.expand) == sp.zeros(1, 4)


@pytest.mark.parametrize("target", [(2, 3, 4, 1), (3, 4, 5, 1, 2), (5, 2, 3, 4, 1)])
def test_the_designer_uses_polynomial_constructions(target):
    from theory.designer import design_profile

    r = design_profile(target)
    assert r.status == "constructed" and r.profile.certified and r.profile.ranks == target
    assert "found by python -m theory search" in r.reason
    assert all(x == 0 or sp.Poly(x, t).degree() >= 0 and sp.denom(x) == 1 for x in r.matrix)
    assert domainmatrix_profile(r.matrix, len(target)) == target


def test_shipped_52341_is_the_lift_of_the_shipped_2341():
    """Its derivative is the (2, 3, 4, 1) matrix (times a constant) padded with a zero row and column."""
    A = sp.Matrix(dcd_matrix(*_shipped((5, 2, 3, 4, 1)), t))
    B = sp.Matrix(dcd_matrix(*_shipped((2, 3, 4, 1)), t))
    D = A.diff(t)
    assert D[4, :] == sp.zeros(1, 5) and D[:, 4] == sp.zeros(5, 1)
    ratio = sp.cancel(D[0, 1] / B[0, 1])
    assert ratio.is_number and (D[:4, :4] - ratio * B).applyfunc(sp.expand) == sp.zeros(4, 4)


@pytest.mark.slow
def test_search_constructions_finds_the_k4_rows_without_data():
    """No shipped data, no border search: the split and rank-one searches realise both K = 4 rows."""
    from theory.designer import block_matrix, search_constructions

    lines = []
    out = search_constructions(4, K_min=4, border=False, seeds=[0], rank_one_tries=3000, progress=lines.append)
    assert lines == ["searching (2, 3, 4, 1)", "searching (3, 4, 1, 2)"]
    assert out["open"] == []
    assert [row["target"] for row in out["constructions"]] == [[2, 3, 4, 1], [3, 4, 1, 2]]
    for row in out["constructions"]:
        parts = [
            ("dcd", tuple(b["a"]), tuple(b["b"]), tuple(map(tuple, b["C"])))
            if b["kind"] == "dcd"
            else tuple(b["block"])
            for b in row["blocks"]
        ]
        A = sp.diag(*[block_matrix(p) for p in parts])
        assert domainmatrix_profile(A, 4) == tuple(row["target"])


def test_lift_step_of_the_search():
    """search_constructions' lift: a tail found in the same run, a shipped tail, and a tail with a t^-1 entry."""
    from theory.designer import _lift_tail

    a, b, C = _shipped((2, 3, 4, 1))
    tail = ("dcd", tuple(a), tuple(b), tuple(map(tuple, C)))
    for found_here in ({(2, 3, 4, 1): [tail]}, {}):
        (blk,) = _lift_tail((5, 2, 3, 4, 1), found_here, "extended", [0])
        assert dcd_profile(*blk[1:], 5) == (5, 2, 3, 4, 1)
    pole = ("dcd", (0, 1, 2, 3), (-3, -2, 0, -1), ((1, 3, 1, 0), (5, 24, -4, -18), (0, -1, 1, 2), (-1, -4, 0, 2)))
    assert _lift_tail((5, 2, 3, 4, 1), {(2, 3, 4, 1): [pole]}, "extended", [0]) is None
    # a library tail: (3, 1, 2) = ∫^1 H_2 is polynomial, so (3, 3, 1, 2) lifts
    (blk,) = _lift_tail((3, 3, 1, 2), {}, "extended", [0, 1, 2])
    assert dcd_profile(*blk[1:], 4) == (3, 3, 1, 2)
