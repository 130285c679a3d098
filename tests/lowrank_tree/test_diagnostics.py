"""numerical_difference_profile and direct_sum_check against independent references.

References: differences formed explicitly by the binomial formula (not the
recursive differencing of the implementation), ranks from
``numpy.linalg.matrix_rank``, and closed forms for families with polynomial
coefficients.  Integer-valued data keeps every difference exact in float64, so
the reference needs no tolerance of its own.
"""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lowrank_tree import LowRank
from lowrank_tree.diagnostics import DifferenceProfile, DirectSumCheck, direct_sum_check, numerical_difference_profile


def binomial_difference(A, k, j):
    """Δ^k A(j) = Σ_i (-1)^(k-i) C(k, i) A(j+i), straight from the definition."""
    return sum((-1) ** (k - i) * math.comb(k, i) * A[j + i] for i in range(k + 1))


def reference_table(A, max_order):
    L = len(A)
    return [
        [int(np.linalg.matrix_rank(binomial_difference(A, k, j))) for j in range(L - k)] for k in range(max_order + 1)
    ]


@st.composite
def integer_sequences(draw, max_L=6, max_dim=5):
    """L integer-valued matrices of random (low) ranks, shapes m x n with m != n allowed."""
    L = draw(st.integers(1, max_L))
    m = draw(st.integers(1, max_dim))
    n = draw(st.integers(1, max_dim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mats = []
    for _ in range(L):
        r = int(rng.integers(0, min(m, n) + 1))
        mats.append((rng.integers(-3, 4, (m, r)) @ rng.integers(-3, 4, (r, n))).astype(np.float64))
    return np.stack(mats)


@given(integer_sequences(), st.data())
def test_ranks_match_matrix_rank_of_explicit_differences(array_lib, A, data):
    L = A.shape[0]
    max_order = data.draw(st.one_of(st.none(), st.integers(0, L - 1)))
    p = numerical_difference_profile(array_lib.asarray(A), max_order=max_order)
    K = L - 1 if max_order is None else max_order
    ref = reference_table(A, K)
    assert p.rank_table == ref
    assert p.ranks == [max(row) for row in ref]
    assert len(p.ranks) == K + 1 and p.max_order == K
    assert p.nonincreasing == all(b <= a for a, b in zip(p.ranks, p.ranks[1:]))
    assert p.shape == A.shape


@given(integer_sequences())
def test_list_input_equals_stacked_input(array_lib, A):
    p_stack = numerical_difference_profile(array_lib.asarray(A))
    p_list = numerical_difference_profile([array_lib.asarray(M) for M in A])
    assert p_list == p_stack


# -- closed-form families ---------------------------------------------------
def poly_difference(coeffs, k, j):
    """Δ^k p(j) for the integer polynomial p(x) = Σ c_e x^e, exactly (Python ints)."""
    p = lambda x: sum(c * x**e for e, c in enumerate(coeffs))  # noqa: E731
    return sum((-1) ** (k - i) * math.comb(k, i) * p(j + i) for i in range(k + 1))


@st.composite
def direct_sum_families(draw):
    """A(j) = Σ_i p_i(j) M_i, col(M_i) in direct sum, deg p_i = d_i (integer data).

    ``M_i = P_i Q_i^T`` with ``[P_1 | P_2 | ...]`` of full column rank.  Enough
    samples that every order reaches its generic rank somewhere.
    """
    blocks = draw(st.integers(1, 3))
    ranks = draw(st.lists(st.integers(1, 2), min_size=blocks, max_size=blocks))
    degrees = draw(st.lists(st.integers(0, 3), min_size=blocks, max_size=blocks))
    R = sum(ranks)
    m = draw(st.integers(R, R + 2))
    n = draw(st.integers(max(ranks), 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    P = rng.integers(-2, 3, (m, R))
    assume(np.linalg.matrix_rank(P) == R)  # column spaces of the M_i in direct sum
    Ms, Qs, start = [], [], 0
    for r in ranks:
        Q = rng.integers(-2, 3, (n, r))
        Ms.append(P[:, start : start + r] @ Q.T)
        Qs.append(Q)
        start += r
    coeffs = []
    for d in degrees:
        c = [int(v) for v in rng.integers(-2, 3, d + 1)]
        c[d] = int(rng.choice([-2, -1, 1, 2]))
        coeffs.append(c)
    L = sum(degrees) + max(degrees) + 2
    A = np.stack(
        [sum(sum(c * j**e for e, c in enumerate(cs)) * M for cs, M in zip(coeffs, Ms)) for j in range(L)]
    ).astype(np.float64)
    return A, Qs, degrees, coeffs


def row_sum_dim(Qs):
    """dim Σ_i row(M_i) = rank [Q_1 | Q_2 | ...] (0 for no terms)."""
    return int(np.linalg.matrix_rank(np.hstack(Qs))) if Qs else 0


@given(direct_sum_families())
def test_closed_form_profile_of_direct_sum_family(array_lib, fam):
    # C1: with the column spaces in direct sum, rank Δ^k A(j) is the dimension
    # of the sum of the row spaces of the M_i whose coefficient Δ^k p_i(j) != 0,
    # and generically (over Q(j)) of those with deg p_i >= k: non-increasing.
    A, Qs, degrees, coeffs = fam
    L = A.shape[0]
    p = numerical_difference_profile(array_lib.asarray(A))
    expected = [row_sum_dim([Q for Q, d in zip(Qs, degrees) if d >= k]) for k in range(L)]
    assert p.ranks == expected
    assert p.nonincreasing and p.increases == []
    for k in range(L):
        for j in range(L - k):
            active = [Q for Q, cs in zip(Qs, coeffs) if poly_difference(cs, k, j) != 0]
            assert p.rank_table[k][j] == row_sum_dim(active)


@given(direct_sum_families())
def test_closed_form_sum_of_ranks_when_both_sides_direct(fam):
    # with the row spaces also independent the profile is Σ_{d_i >= k} rank M_i
    A, Qs, degrees, _ = fam
    assume(row_sum_dim(Qs) == sum(Q.shape[1] for Q in Qs))
    p = numerical_difference_profile(A)
    assert p.ranks == [sum(Q.shape[1] for Q, d in zip(Qs, degrees) if d >= k) for k in range(len(A))]


def test_c1_prime_boundary_example(array_lib):
    for L in (4, 7):
        A = np.array([[[1.0, j], [j, j * j]] for j in range(L)])
        p = numerical_difference_profile(array_lib.asarray(A))
        assert p.ranks == [1, 2, 1, 0] + [0] * (L - 4)
        assert p.rank_table[0] == [1] * L
        assert p.rank_table[1] == [2] * (L - 1)
        assert p.rank_table[2] == [1] * (L - 2)
        assert not p.nonincreasing and p.increases == [1]
        # every first difference [[0, 1], [1, 2j+1]] spans the whole plane: shared
        assert p.column_direct_sum == (False, 2 * (L - 1), 2)
        assert p.row_direct_sum == (False, 2 * (L - 1), 2)


def test_exhausted_differences_are_zero_under_data_scaled_tolerance():
    # Δ^3 of a quadratic family is rounding noise; a tolerance relative to σ_max
    # of that noise (matrix_rank's default) calls it full rank, ours calls it 0.
    rng = np.random.default_rng(7)
    M = rng.standard_normal((3, 5, 4))
    A = np.stack([M[0] + j * M[1] + j * j * M[2] for j in np.linspace(0.0, 3.0, 9)])
    p = numerical_difference_profile(A)
    assert p.ranks[:3] == [4, 4, 4]
    assert p.ranks[3:] == [0] * 6
    noise = binomial_difference(A, 3, 0)
    assert 0 < np.abs(noise).max() < 1e-12
    assert np.linalg.matrix_rank(noise) == 4


def test_float32_exhausted_differences(array_lib):
    rng = np.random.default_rng(3)
    M = rng.standard_normal((2, 4, 4)).astype(np.float32)
    A = np.stack([M[0] + np.float32(j) * M[1] for j in range(6)])
    p = numerical_difference_profile(array_lib.asarray(A))
    assert p.ranks[:2] == [4, 4] and p.ranks[2:] == [0] * 4
    assert p.rtol == pytest.approx(4 * np.finfo(np.float32).eps)


def test_user_tol_is_relative_accuracy_of_the_samples(array_lib):
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal((6, 1)), rng.standard_normal((5, 1))
    clean = np.stack([(j + 1.0) * (u @ v.T) for j in range(4)])
    noisy = clean + 1e-9 * rng.standard_normal(clean.shape)
    assert numerical_difference_profile(array_lib.asarray(noisy)).ranks[0] == 5
    p = numerical_difference_profile(array_lib.asarray(noisy), rtol=1e-6)
    assert p.ranks == [1, 1, 0, 0]
    scale = max(np.linalg.norm(M, 2) for M in noisy)
    assert p.scale == pytest.approx(scale)
    assert p.thresholds == pytest.approx([1e-6 * 2**k * scale for k in range(4)])


def test_complex_and_integer_input(array_lib):
    A = np.array([[[1 + 1j, 2], [0, 1j * j]] for j in range(3)])
    p = numerical_difference_profile(array_lib.asarray(A))
    assert p.rank_table == reference_table(A, 2)
    ints = np.arange(12).reshape(3, 2, 2)
    assert numerical_difference_profile(array_lib.asarray(ints)).ranks == [2, 1, 0]  # ΔA = 4·ones


# -- edge cases ---------------------------------------------------------------
def test_single_sample(array_lib):
    A = np.array([[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]])
    p = numerical_difference_profile(array_lib.asarray(A))
    assert p.ranks == [1] and p.rank_table == [[1]] and p.nonincreasing
    assert p.column_direct_sum == (True, 0, 0) and p.row_direct_sum == (True, 0, 0)


def test_max_order_zero_keeps_direct_sum_of_first_differences(array_lib):
    e = np.eye(3)
    A = np.stack([np.zeros((3, 3)), np.outer(e[0], e[0]), np.outer(e[0], e[0]) + np.outer(e[1], e[2])])
    p = numerical_difference_profile(array_lib.asarray(A), max_order=0)
    assert p.rank_table == [[0, 1, 2]] and p.ranks == [2]
    assert p.column_direct_sum == (True, 2, 2)
    assert p.row_direct_sum == (True, 2, 2)


def test_zero_sequence(array_lib):
    p = numerical_difference_profile(array_lib.asarray(np.zeros((3, 2, 4))))
    assert p.ranks == [0, 0, 0] and p.scale == 0.0
    assert p.column_direct_sum == (True, 0, 0)


def test_result_is_frozen_and_prints_a_table():
    A = np.array([[[1.0, j], [j, j * j]] for j in range(4)])
    p = numerical_difference_profile(A)
    assert isinstance(p, DifferenceProfile)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.rtol = 1.0
    text = str(p)
    assert text == p.summary()
    assert "L = 4 samples of 2 x 2" in text
    assert "INCREASES at k = 0->1" in text
    assert "NOT a direct sum" in text
    lines = text.splitlines()
    assert lines[2].split()[:2] == ["0", "1"]
    assert lines[3].split()[:2] == ["1", "2"]
    long = numerical_difference_profile(np.zeros((30, 1, 1)))
    assert "..." in long.summary(max_columns=5)


# -- direct_sum_check -----------------------------------------------------------
@st.composite
def factor_families(draw):
    """p factor pairs (P_j, Q_j); a flag decides whether the column spaces overlap."""
    p = draw(st.integers(1, 4))
    ranks = draw(st.lists(st.integers(0, 2), min_size=p, max_size=p))
    m = draw(st.integers(1, 7))
    n = draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mats = [rng.integers(-3, 4, (m, r)) @ rng.integers(-3, 4, (r, n)) for r in ranks]
    return np.stack(mats).astype(np.float64)


@given(factor_families(), st.sampled_from(["column", "row"]))
def test_direct_sum_check_matches_matrix_rank(array_lib, B, side):
    res = direct_sum_check(array_lib.asarray(B), side=side)
    ranks = [int(np.linalg.matrix_rank(M)) for M in B]
    cat = np.hstack(list(B)) if side == "column" else np.vstack(list(B))
    rank_cat = int(np.linalg.matrix_rank(cat)) if cat.any() else 0
    assert isinstance(res, DirectSumCheck)
    assert res.sum_of_ranks == sum(ranks)
    assert res.rank_of_concatenation == rank_cat
    assert res.is_direct == (rank_cat == sum(ranks))
    assert bool(res) == res.is_direct


def test_direct_sum_true_and_false(array_lib):
    rng = np.random.default_rng(5)
    m, n = 8, 6
    P = rng.standard_normal((m, 5))
    Q = [rng.standard_normal((n, r)) for r in (2, 3)]
    independent = [P[:, :2] @ Q[0].T, P[:, 2:] @ Q[1].T]
    assert direct_sum_check([array_lib.asarray(M) for M in independent]) == (True, 5, 5)
    # the second column space inside the first: shared
    shared = [independent[0], independent[0] @ rng.standard_normal((n, n))]
    res = direct_sum_check([array_lib.asarray(M) for M in shared])
    assert res == (False, 4, 2) and not res
    # rows: generic 2 + 3 dimensional subspaces of R^6 are independent
    assert direct_sum_check(array_lib.asarray(np.stack(independent)), side="row") == (True, 5, 5)
    # rows shared: left-multiplying keeps the row space
    rows_shared = [independent[1], rng.standard_normal((m, m)) @ independent[1]]
    assert direct_sum_check(rows_shared, side="row") == (False, 6, 3)


def test_direct_sum_check_accepts_low_rank(array_lib):
    rng = np.random.default_rng(2)
    U = array_lib.asarray(rng.standard_normal((6, 2)))
    V1, V2 = array_lib.asarray(rng.standard_normal((4, 2))), array_lib.asarray(rng.standard_normal((4, 2)))
    corr = [LowRank(U, V1), LowRank(U, V2)]
    assert direct_sum_check(corr) == (False, 4, 2)
    assert direct_sum_check(corr, side="row") == (True, 4, 4)


def test_nearly_parallel_subspaces_count_as_shared():
    u = np.array([1.0, 0.0, 0.0])
    w = np.array([1.0, 1e-16, 0.0])
    B = [np.outer(u, [1.0, 2.0]), np.outer(w, [3.0, 1.0])]
    assert direct_sum_check(B) == (False, 2, 1)
    assert direct_sum_check(B, rtol=0.0) == (True, 2, 2)


def test_profile_direct_sum_uses_first_differences(array_lib):
    # A(j) = Σ_{i<=j} E_i: the first differences are E_1, E_2, ... -> direct sum
    e = np.eye(4)
    E = [np.outer(e[i], e[(i + 1) % 4]) for i in range(4)]
    A = np.stack([sum(E[:j], np.zeros((4, 4))) for j in range(5)])
    p = numerical_difference_profile(array_lib.asarray(A))
    assert p.column_direct_sum == (True, 4, 4)
    assert p.row_direct_sum == (True, 4, 4)
    assert p.column_direct_sum == direct_sum_check(array_lib.asarray(A[1:] - A[:-1]), rtol=2 * p.rtol)


# -- bad input -------------------------------------------------------------------
def test_bad_inputs(array_lib):
    ok = array_lib.asarray(np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match="mats must hold at least one matrix"):
        numerical_difference_profile([])
    with pytest.raises(ValueError, match="mats must hold at least one matrix"):
        numerical_difference_profile(array_lib.asarray(np.ones((0, 2, 2))))
    with pytest.raises(ValueError, match="mats must be a 3-D array"):
        numerical_difference_profile(array_lib.asarray(np.ones((2, 2))))
    with pytest.raises(ValueError, match=r"mats\[2\] must have shape \(2, 2\)"):
        numerical_difference_profile([np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 3))])
    with pytest.raises(ValueError, match=r"mats\[0\] must be a 2-D"):
        numerical_difference_profile([np.ones(3)])
    with pytest.raises(ValueError, match="at least one row and one column"):
        numerical_difference_profile(array_lib.asarray(np.ones((2, 0, 3))))
    bad = np.ones((3, 2, 2))
    bad[1, 0, 1] = np.nan
    with pytest.raises(ValueError, match=r"mats\[1\] contains NaN or Inf"):
        numerical_difference_profile(array_lib.asarray(bad))
    bad[1, 0, 1] = np.inf
    with pytest.raises(ValueError, match=r"mats\[1\] contains NaN or Inf"):
        numerical_difference_profile([array_lib.asarray(M) for M in bad])
    with pytest.raises(ValueError, match=r"max_order must be in \[0, 2\], got 3"):
        numerical_difference_profile(ok, max_order=3)
    with pytest.raises(ValueError, match="max_order"):
        numerical_difference_profile(ok, max_order=-1)
    with pytest.raises(TypeError, match="max_order must be an integer"):
        numerical_difference_profile(ok, max_order=1.5)
    with pytest.raises(ValueError, match=r"rtol must be in \[0, 1\)"):
        numerical_difference_profile(ok, rtol=-1e-3)
    with pytest.raises(TypeError, match="rtol must be a real number"):
        numerical_difference_profile(ok, rtol="small")
    with pytest.raises(TypeError, match="mats must have a real or complex floating dtype"):
        numerical_difference_profile(array_lib.asarray(np.ones((2, 2, 2), dtype=bool)))
    with pytest.raises(TypeError, match="mats must be a 3-D array"):
        numerical_difference_profile(None)
    with pytest.raises(TypeError, match="mats must be a 3-D array"):
        numerical_difference_profile(3.0)
    with pytest.raises(ValueError, match="side must be 'column' or 'row'"):
        direct_sum_check(ok, side="diagonal")
    with pytest.raises(ValueError, match=r"mats\[1\] must have shape"):
        direct_sum_check([np.ones((2, 2)), np.ones((3, 2))])


def test_mixed_libraries_rejected():
    from lowrank_tree.backends import get_func

    strict = get_func("asarray", "array_api_strict")(np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"mixed array libraries.*mats\[1\]"):
        numerical_difference_profile([np.ones((2, 2)), strict])
