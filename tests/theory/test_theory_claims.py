"""Claims C1, C1', C2, C3a, C3b against closed forms and independent references."""

import itertools
import random

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

from theory import (
    antiderivative_hankel,
    design_profile,
    difference_profile,
    hankel,
    hankel_formula,
    newton_design,
    pointwise_ranks,
    rank_profile,
    taylor_design,
)
from theory.boundary import OVERLAPPING_PROFILE, coefficient_decomposition, counterexamples, overlapping_example
from theory.designer import block_matrix, format_table, library, necessary_violations, permutation_table
from theory.leibniz import (
    bound_violations,
    check_leibniz,
    doubling_violations,
    persistence_violations,
    tight_example,
)
from theory.monotonicity import direct_sum_side, predicted_profile, random_decomposable
from theory.profiles import is_nonincreasing

t = sp.Symbol("t")
j = sp.Symbol("j", integer=True)


def ref_rank(M, var):
    M = sp.Matrix(M)
    return DomainMatrix.from_Matrix(M).convert_to(sp.QQ.frac_field(var)).rank() if M.rows and M.cols else 0


# ---------------------------------------------------------------- profiles
def test_profiles_against_sympy_diff_and_reference_rank():
    A = sp.Matrix([[t**3, 1 / (t + 2)], [t, t**2 + 1], [1, t]])
    P = rank_profile(A, 4)
    assert P.ranks == tuple(ref_rank(A.diff(t, k) if k else A, t) for k in range(5))
    assert P.certified and P.verify()
    S = A.subs(t, j)
    D = difference_profile(S, 4)
    mats = [S]
    for _ in range(4):
        mats.append((mats[-1].subs(j, j + 1) - mats[-1]).applyfunc(sp.cancel))
    assert D.ranks == tuple(ref_rank(M, j) for M in mats)
    assert D.kind == "difference" and len(D) == 5 and list(D) == list(D.ranks)


def test_profile_argument_errors():
    with pytest.raises(ValueError, match="max_order must be a non-negative int"):
        rank_profile(sp.Matrix([[t]]), -1)
    with pytest.raises(ValueError, match="max_order must be a non-negative int"):
        rank_profile(sp.Matrix([[t]]), 2.0)
    with pytest.raises(ValueError, match=r"seq\[0, 0\] = exp\(j\)"):
        difference_profile(sp.Matrix([[sp.exp(j)]]), 2)


def test_difference_profile_accepts_callables_and_binomials():
    P = difference_profile(lambda jj: sp.Matrix([[sp.binomial(jj, 3), sp.factorial(2)]]), 4)
    assert P.ranks == (1, 1, 1, 1, 0)


# ---------------------------------------------------------------- C1
@settings(max_examples=15, deadline=None)
@given(
    st.integers(0, 10**6),
    st.sampled_from(["col", "row"]),
    st.sampled_from(["derivative", "difference"]),
    st.integers(2, 4),
    st.integers(2, 4),
    st.integers(1, 4),
)
def test_c1_decomposable_families_follow_the_formula(seed, side, kind, m, n, s):
    rng = random.Random(seed)
    var = t if kind == "derivative" else j
    phis, Ms = random_decomposable(rng, var, m=m, n=n, s=s, maxdeg=3, side=side, rational=(kind == "derivative"))
    assert direct_sum_side(Ms) is not None
    A = sum((f * M for f, M in zip(phis, Ms)), sp.zeros(m, n))
    prof = (rank_profile if kind == "derivative" else difference_profile)(A, 4, var=var, seed=seed)
    assert prof.ranks == predicted_profile(phis, Ms, 4, var=var, kind=kind)
    assert is_nonincreasing(prof.ranks)


def test_c1_formula_is_dim_of_row_sum_not_sum_of_ranks():
    # col(M1) = span(e1), col(M2) = span(e2): a direct sum, yet M1 + M2 has rank 1
    M1, M2 = sp.Matrix([[1, 0], [0, 0]]), sp.Matrix([[0, 0], [1, 0]])
    assert direct_sum_side([M1, M2]) == "col"
    assert predicted_profile([t, 1], [M1, M2], 2, var=t) == (1, 1, 0)
    assert rank_profile(t * M1 + M2, 2).ranks == (1, 1, 0)


def test_c1_refuses_overlapping_decompositions():
    phis, Ms = coefficient_decomposition(overlapping_example(t), var=t)
    with pytest.raises(ValueError, match="C1 does not apply"):
        predicted_profile(phis, Ms, 3, var=t)


# ---------------------------------------------------------------- C1'
def test_c1_prime_overlapping_example():
    assert rank_profile(overlapping_example(t), 3).ranks == OVERLAPPING_PROFILE == (1, 2, 1, 0)
    assert difference_profile(overlapping_example(j), 3).ranks == (1, 2, 1, 0)
    _, Ms = coefficient_decomposition(overlapping_example(t), var=t)
    assert direct_sum_side(Ms) is None


def test_c1_prime_generator():
    for A, prof in counterexamples(seed=5, count=3, size=(2, 4)):
        assert prof.ranks[:2] == (1, 2)
        assert ref_rank(A, t) == 1 and ref_rank(A.diff(t), t) == 2
        assert direct_sum_side(coefficient_decomposition(A, var=t)[1]) is None
    with pytest.raises(ValueError, match="size"):
        next(counterexamples(size=(1, 3)))


# ---------------------------------------------------------------- C2
@pytest.mark.parametrize("d", range(7))
def test_c2_hankel_formula_derivatives_and_differences(d):
    want = hankel_formula(d, 2 * d + 2)
    assert want == tuple(max(0, min(k + 1, 2 * d + 1 - k)) for k in range(2 * d + 3))
    assert rank_profile(hankel(d, t), 2 * d + 2).ranks == want
    assert difference_profile(hankel(d, j), 2 * d + 2).ranks == want
    assert all(want[k] < want[k + 1] for k in range(d))  # strictly increasing up to d


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6))
def test_c2_random_products_respect_bound_and_persistence(seed):
    rng = random.Random(seed)
    m, s, n = rng.randint(1, 4), rng.randint(1, 3), rng.randint(1, 4)
    entry = lambda *_: sum(rng.randint(-2, 2) * t**e for e in range(rng.randint(1, 4)))  # noqa: E731
    B, C = sp.Matrix(m, s, entry), sp.Matrix(s, n, entry)
    prof = rank_profile((B * C).applyfunc(sp.expand), 6, seed=seed)
    assert bound_violations(prof.ranks) == []
    assert persistence_violations(prof.ranks) == []
    assert doubling_violations(prof.ranks) == []
    D = difference_profile((B * C).subs(t, j).applyfunc(sp.expand), 6, seed=seed)
    assert bound_violations(D.ranks) == [] and persistence_violations(D.ranks) == []


def test_c2_leibniz_identities():
    B = sp.Matrix([[t**2, 1 / (t + 1)], [t, 3]])
    C = sp.Matrix([[t, 1], [t**3, 1 / t]])
    for k in range(4):
        assert check_leibniz(B, C, k, var=t)
        assert check_leibniz(B.subs(t, j), C.subs(t, j), k, var=j, kind="difference")
    # a wrong rule (no binomial weights) fails, so the check has teeth
    lhs = (B * C).diff(t, 2)
    wrong = B.diff(t, 2) * C + B.diff(t) * C.diff(t) + B * C.diff(t, 2)
    assert not (lhs - wrong).applyfunc(sp.cancel).is_zero_matrix


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6))
def test_doubling_rigidity_on_sums_of_rank_one_products(seed):
    """Matrices U V with U, V random of inner size r: profiles that double keep rank r next."""
    rng = random.Random(seed)
    r = rng.randint(1, 2)
    m, n = rng.randint(2 * r, 5), rng.randint(2 * r, 5)
    entry = lambda *_: sum(rng.randint(-2, 2) * t**e for e in range(rng.randint(1, 3)))  # noqa: E731
    A = (sp.Matrix(m, r, entry) * sp.Matrix(r, n, entry)).applyfunc(sp.expand)
    prof = rank_profile(A, 5, seed=seed)
    assert doubling_violations(prof.ranks) == []
    assert bound_violations(prof.ranks) == []


@pytest.mark.parametrize("k, jj, r", [(0, 1, 1), (0, 3, 1), (1, 2, 2), (2, 1, 3)])
def test_c2_bound_is_attained(k, jj, r):
    prof = rank_profile(tight_example(k, jj, r, t), k + jj)
    assert prof.ranks[k] == r and prof.ranks[k + jj] == (jj + 1) * r


@pytest.mark.parametrize("d, m", [(d, m) for d in range(4) for m in range(4)])
def test_antiderivative_hankel_profile_matches_design_statement(d, m):
    """DESIGN: (d+1) repeated m times, then 1, 2, ..., d+1, ..., 1, 0."""
    G = antiderivative_hankel(d, m, t)
    assert (G.diff(t, m) if m else G) == hankel(d, t)
    K = m + 2 * d + 1
    want = (d + 1,) * m + hankel_formula(d, 2 * d + 1)
    assert rank_profile(G, K).ranks == want


# ---------------------------------------------------------------- C3a
@pytest.mark.parametrize("perm", list(itertools.permutations(range(1, 6))))
def test_c3a_every_permutation_of_1_to_5_pointwise(perm):
    A = taylor_design(perm, t, t0=sp.Rational(-1, 3))
    assert pointwise_ranks(A, 4, var=t, at=sp.Rational(-1, 3)) == perm
    B = newton_design(perm, j)
    assert pointwise_ranks(B, 4, var=j, kind="difference") == perm
    # A^(k)(t0) is exactly M_k: independent check with plain SymPy diff/subs
    k = perm.index(5)
    assert (A.diff(t, k) if k else A).subs(t, sp.Rational(-1, 3)).rank() == 5


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=5), st.integers(0, 10**6))
def test_c3a_random_targets_random_matrices(target, seed):
    rng = random.Random(seed)
    A = taylor_design(target, t, shape=(4, 5), t0=2, rng=rng)
    assert pointwise_ranks(A, len(target) - 1, var=t, at=2) == tuple(target)
    B = newton_design(target, j, shape=(5, 4), rng=rng)
    assert pointwise_ranks(B, len(target) - 1, var=j, kind="difference") == tuple(target)


def test_c3a_errors():
    with pytest.raises(ValueError, match="exceeds min"):
        taylor_design((1, 3), t, shape=(2, 2))
    with pytest.raises(ValueError, match=r"target\[1\]"):
        newton_design((1, -1), j)


# ---------------------------------------------------------------- C3b
def test_c3b_table_is_consistent_and_complete():
    rows = permutation_table(4, library_kind="extended")
    assert len(rows) == 1 + 2 + 6 + 24
    for r in rows:
        viol = necessary_violations(r.target)
        if r.status == "constructed":
            assert not viol
            assert r.profile.certified and r.profile.ranks == r.target
            # independent re-check with SymPy's own rank over QQ(t)
            A = r.matrix
            assert tuple(ref_rank(A.diff(t, k) if k else A, t) for k in range(len(r.target))) == r.target
        elif r.status == "impossible":
            assert viol and r.reason
        else:
            assert r.status == "open" and not viol
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1


def test_c3b_known_answers():
    assert design_profile((1, 3, 2)).status == "impossible"
    assert "C2 bound" in design_profile((2, 1, 3)).reason
    assert design_profile((1, 1, 2)).reason.startswith("rank-one persistence")
    assert design_profile((1, 0, 1)).reason.startswith("zero absorption")
    assert design_profile((3, 1, 2)).status == "constructed"
    assert design_profile((0, 0)).status == "constructed"
    assert design_profile((3, 2, 4, 1)).reason.startswith("doubling rigidity")
    assert design_profile((1, 2, 0)).status == "impossible"
    for target in [(2, 3, 4, 1), (3, 4, 1, 2)]:  # no sum of library blocks realises them
        assert design_profile(target, library_kind="extended", use_data=False).status == "open"
    with pytest.raises(ValueError, match="non-negative ints"):
        design_profile((1, -2))


def test_c3b_library_profiles_are_engine_computed():
    lib = library(3, 3)
    # the standard library's candidates: t^e and the m-fold antiderivatives of H_d, d < max_rank
    candidates = [("monomial", e) for e in range(3)] + [("hankel_anti", d, m) for d in (1, 2) for m in range(3)]
    expected = []
    for block in candidates:
        A = block_matrix(block, t)
        # independent reference: SymPy's rank over Q(t) of each derivative
        ref = tuple(ref_rank(A.diff(t, k) if k else A, t) for k in range(3))
        if max(ref) <= 3:
            expected.append((block, ref))
    assert lib == expected
    for block, prof in lib:
        if block[0] == "monomial":  # t^e: rank 1 up to order e, then 0
            assert prof == tuple(int(k <= block[1]) for k in range(3))
