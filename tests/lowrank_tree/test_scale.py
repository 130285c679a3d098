"""Scale safety: every norm, tolerance and rank decision over the whole normal range.

A fit, a tree or a diagnostic of ``s * data`` must decide exactly what it
decides for ``data`` (same ranks, same relative errors) for every ``s`` that
keeps the data finite and normal, in float32 and float64, on every backend.
References are computed on the host in float64 after undoing the scale
(``2**-e`` is exact), never with a norm of the scaled data.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank_tree import (
    LowRankSegmentTree,
    cascade_fit,
    direct_sum_check,
    numerical_difference_profile,
)
from lowrank_tree._norms import fro_norm, largest_term, tail_rank
from lowrank_tree._randomized import adaptive_qb
from lowrank_tree.backends import get_func, namespace_for
from lowrank_tree.fit import PrecisionFloorWarning

DTYPES = [np.float32, np.float64]
FEW = settings(max_examples=12, deadline=None)


def rel(a, b):
    """Relative Frobenius error of ``a`` against ``b``, both already at unit scale (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def exponent_range(data, dtype, headroom=0):
    """Exponents ``e`` for which ``2**e * data`` stays finite and normal in ``dtype``.

    ``headroom`` bits are kept below the top so that results built from the
    data (sums over a dimension, singular values) are representable too.
    """
    fi = np.finfo(dtype)
    a = np.abs(np.asarray(data, np.float64))
    amin, amax = a[a > 0].min(), a.max()
    lo = math.ceil(math.log2(float(fi.tiny) / amin))
    hi = math.floor(math.log2(float(fi.max) / amax)) - headroom
    return lo, hi


def family(dtype, K=3, m=12, n=9, seed=0):
    """Base plus rank-2 steps plus small noise: a clear, non-trivial tolerance spectrum."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(1, 2, (m, n)) * rng.choice([-1, 1], (m, n))
    mats = [W]
    for _ in range(K):
        W = (
            W
            + rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
            + 1e-3 * rng.uniform(0.5, 1, (m, n)) * rng.choice([-1, 1], (m, n))
        )
        mats.append(W)
    return np.stack(mats).astype(dtype)


def scaled(x, e):
    return np.ldexp(x, e).astype(x.dtype)


# --------------------------------------------------------------------------
# the helpers themselves
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_fro_norm_is_exact_at_every_scale(dtype, data):
    x = np.random.default_rng(1).standard_normal((7, 5)).astype(dtype)
    x[0, 0] = 0
    lo, hi = exponent_range(x, dtype, headroom=3)
    e = data.draw(st.integers(lo, hi))
    ref = math.ldexp(float(np.linalg.norm(x.astype(np.float64))), e)
    got = fro_norm(scaled(x, e), namespace_for("numpy"))
    assert math.isclose(got, ref, rel_tol=8 * float(np.finfo(dtype).eps))


def test_fro_norm_common_case_is_the_naive_norm():
    x = np.random.default_rng(2).standard_normal((30, 20))
    assert fro_norm(x, namespace_for("numpy")) == float(np.linalg.norm(x))


@pytest.mark.parametrize("e", [-1010, -600, 0, 600, 1000])
def test_tail_rank_and_largest_term_are_scale_free(e):
    xp = namespace_for("numpy")
    s = np.array([4.0, 2.0, 1.0, 0.5, 0.25])
    # tails sqrt(Σ_{i>=r} s_i²): r=3 leaves sqrt(0.3125) = 0.559 <= 0.6, r=2 leaves 1.146
    ref = tail_rank(s, 0.0, 0.6, xp)
    assert ref == 3
    assert tail_rank(np.ldexp(s, e), 0.0, math.ldexp(0.6, e), xp) == ref
    assert tail_rank(np.ldexp(s, e), math.ldexp(1.0, e), math.ldexp(1.1, e), xp) == 4
    U = np.array([[3.0, 0.0], [4.0, 1.0]])
    V = np.array([[1.0, 2.0], [0.0, 0.0]])
    assert math.isclose(
        largest_term(np.ldexp(U, e // 2), np.ldexp(V, e - e // 2), xp), math.ldexp(5.0, e), rel_tol=1e-15
    )


@pytest.mark.parametrize("e", [-1000, -530, 530, 1000])
def test_adaptive_qb_meets_bound_at_extreme_scales(e):
    xp = namespace_for("numpy")
    rng = np.random.default_rng(3)
    A1 = (rng.standard_normal((60, 5)) * np.logspace(0, -6, 5)) @ rng.standard_normal((5, 40))
    thr1 = 1e-4 * np.linalg.norm(A1)
    A = np.ldexp(A1, e)
    Q, B, res = adaptive_qb(
        A, math.ldexp(thr1, e), xp, get_func("make_rng", "numpy")(0), "numpy", block=2, power_iters=1
    )
    measured = np.linalg.norm(A1 - np.ldexp(Q @ B, -e))
    assert measured <= thr1 and Q.shape[1] in (3, 4)
    assert math.isclose(math.ldexp(res, -e), measured, rel_tol=1e-6)


# --------------------------------------------------------------------------
# the fit
# --------------------------------------------------------------------------
MODES = [{"ranks": 2}, {"tol": 1e-2}, {"budget": 6 * 21}, {}]


def check_fit_invariant(lib, dtype, e, method, mode):
    mats = family(dtype)
    ref = cascade_fit(lib.asarray(mats), method=method, seed=0, **mode, **lib.kw)
    c = cascade_fit(lib.asarray(scaled(mats, e)), method=method, seed=0, **mode, **lib.kw)
    assert c.ranks == ref.ranks
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(c.errors, ref.errors, rtol=64 * eps, atol=64 * eps)
    # and the reported errors are the true ones, measured at unit scale on the host
    for k in range(len(mats)):
        fitted = np.ldexp(lib.to_numpy(c.matrix(k)).astype(np.float64), -e)
        true = rel(fitted, mats[k].astype(np.float64))
        assert abs(true - c.errors[k]) <= 1e-3 * true + 1e3 * eps


# array_api_strict (NumPy underneath) reports the overflow of the naive sum of
# squares that the norm then recomputes scaled; NumPy's own path is silent
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("method", ["exact", "randomized"])
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_fit_of_scaled_family_has_same_ranks_and_errors(lib, dtype, method, data):
    lo, hi = exponent_range(family(dtype), dtype, headroom=8)
    e = data.draw(st.integers(lo, hi), label="e")
    mode = data.draw(st.sampled_from(MODES), label="mode")
    check_fit_invariant(lib, dtype, e, method, mode)


@pytest.mark.parametrize(
    "dtype, s",
    [
        (np.float64, 1e-160),
        (np.float64, 1e160),
        (np.float64, 1e-300),
        (np.float64, 1e300),
        (np.float32, 1e-20),
        (np.float32, 1e20),
        (np.float32, 1e-30),
        (np.float32, 1e30),
    ],
)
@pytest.mark.parametrize("mode", MODES[:3], ids=["ranks", "tol", "budget"])
def test_fit_at_powers_of_ten_reports_true_errors(dtype, s, mode):
    # the reported errors were 0.0 (or NaN) and the ranks 0 here, true errors ~0.5
    mats = family(np.float64)
    ref = cascade_fit(mats.astype(dtype), **mode)
    c = cascade_fit((mats * s).astype(dtype), **mode)
    assert c.ranks == ref.ranks and min(c.ranks) > 0
    for k in range(1, len(mats)):
        true = rel(c.matrix(k).astype(np.float64) / s, mats[k])
        assert 1e-4 < c.errors[k] < 2e-2 and math.isclose(true, c.errors[k], rel_tol=1e-2)


def test_fit_at_the_top_of_float64_difference_near_overflow():
    # entries near the largest float64: M_k - W_{k-1} overflows unless rescaled first
    mats = family(np.float64, m=6, n=5)
    e = exponent_range(mats, np.float64)[1]
    c = cascade_fit(scaled(mats, e), ranks=2)
    ref = cascade_fit(mats, ranks=2)
    assert c.ranks == ref.ranks
    np.testing.assert_allclose(c.errors, ref.errors, rtol=1e-12)


# --------------------------------------------------------------------------
# precision floor
# --------------------------------------------------------------------------
def test_float32_fit_warns_when_tol_is_below_its_floor():
    mats = family(np.float32)
    with pytest.warns(PrecisionFloorWarning, match=r"tol=1e-09 .*float32.*relative tolerance of up to"):
        c = cascade_fit(mats, tol=1e-9)
    assert issubclass(PrecisionFloorWarning, UserWarning)
    # the fit itself is the lossless one
    assert c.ranks == cascade_fit(mats).ranks


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-3), (np.float64, 1e-9), (np.float32, 0.0), (np.float32, None)])
def test_no_precision_warning_when_tol_is_resolvable(dtype, tol):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionFloorWarning)
        cascade_fit(family(dtype), tol=tol)


# --------------------------------------------------------------------------
# the tree
# --------------------------------------------------------------------------
def tree_data(dtype, K=8, m=14, n=10, r=2, seed=5):
    rng = np.random.default_rng(seed)
    base = rng.uniform(1, 2, (m, n)).astype(dtype)
    deltas = [
        (
            rng.uniform(1, 2, (m, r)).astype(dtype) * rng.choice([-1, 1], (m, r)).astype(dtype),
            rng.uniform(1, 2, (n, r)).astype(dtype),
        )
        for _ in range(K)
    ]
    return base, deltas


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_tree_of_scaled_factors_gives_scaled_queries_and_same_ranks(lib, dtype, data):
    base, deltas = tree_data(dtype)
    K, n = len(deltas), base.shape[1]
    lo, hi = exponent_range(np.concatenate([base.ravel()] + [u.ravel() for u, _ in deltas]), dtype, headroom=8)
    e = data.draw(st.integers(lo, hi), label="e")
    ref = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(u), lib.asarray(v)) for u, v in deltas], **lib.kw)
    tree = LowRankSegmentTree(
        lib.asarray(scaled(base, e)), [(lib.asarray(scaled(u, e)), lib.asarray(v)) for u, v in deltas], **lib.kw
    )
    assert [(x.rank, x.dense) for x in tree.nodes()] == [(x.rank, x.dense) for x in ref.nodes()]
    X = np.random.default_rng(0).uniform(-1, 1, (n, 3)).astype(dtype)
    dense = base.astype(np.float64)
    eps = float(np.finfo(dtype).eps)
    for k in range(K + 1):
        if k:
            dense = dense + deltas[k - 1][0].astype(np.float64) @ deltas[k - 1][1].T.astype(np.float64)
        got = np.ldexp(lib.to_numpy(tree.query(k, lib.asarray(X))).astype(np.float64), -e)
        assert rel(got, dense @ X) <= 50 * eps


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["bottom", "top"])
def test_tree_at_the_ends_of_the_range(lib, dtype, where):
    # factors ~1e-200 dropped directions on numba; ~1e+160 raised SystemError
    base, deltas = tree_data(dtype)
    lo, hi = exponent_range(np.concatenate([base.ravel()] + [u.ravel() for u, _ in deltas]), dtype, headroom=8)
    e = lo if where == "bottom" else hi
    tree = LowRankSegmentTree(
        lib.asarray(scaled(base, e)), [(lib.asarray(scaled(u, e)), lib.asarray(v)) for u, v in deltas], **lib.kw
    )
    X = np.random.default_rng(0).uniform(-1, 1, (base.shape[1], 2)).astype(dtype)
    dense = base.astype(np.float64) + sum(u.astype(np.float64) @ v.T.astype(np.float64) for u, v in deltas)
    got = np.ldexp(lib.to_numpy(tree.query(len(deltas), lib.asarray(X))).astype(np.float64), -e)
    assert rel(got, dense @ X) <= 50 * float(np.finfo(dtype).eps)
    ref = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(u), lib.asarray(v)) for u, v in deltas], **lib.kw)
    assert [x.rank for x in tree.nodes()] == [x.rank for x in ref.nodes()]


# --------------------------------------------------------------------------
# cancelling corrections
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("e", [-120, 0, 120])
def test_cancelling_pairs_give_rank_zero_nodes(lib, dtype, e):
    # Δ_2 = −Δ_1 (and Δ_4 = −Δ_3 up to rounding): the sums are zero, the nodes rank 0
    rng = np.random.default_rng(9)
    m, n, r = 16, 11, 3
    U1, V1 = rng.standard_normal((m, r)).astype(dtype), rng.standard_normal((n, r)).astype(dtype)
    U3, V3 = rng.standard_normal((m, r)).astype(dtype), rng.standard_normal((n, r)).astype(dtype)
    U3b = ((-U3 * dtype(3.0)) / dtype(3.0)).astype(dtype)  # -U3 up to rounding
    if dtype == np.float32:
        e = e // 4
    deltas = [(U1, V1), (-U1, V1), (U3, V3), (U3b, V3)]
    base = rng.standard_normal((m, n)).astype(dtype)
    tree = LowRankSegmentTree(
        lib.asarray(scaled(base, e)), [(lib.asarray(scaled(u, e)), lib.asarray(v)) for u, v in deltas], **lib.kw
    )
    ranks = {(x.level, x.index): x.rank for x in tree.nodes()}
    assert ranks[(1, 0)] == 0 and ranks[(1, 1)] == 0 and ranks[(2, 0)] == 0
    X = rng.standard_normal((n, 2)).astype(dtype)
    exact = [base.astype(np.float64) @ X, None, base.astype(np.float64) @ X]
    for k in (2, 4):
        got = np.ldexp(lib.to_numpy(tree.query(k, lib.asarray(X))).astype(np.float64), -e)
        assert rel(got, exact[0]) <= 50 * float(np.finfo(dtype).eps)


def test_nearly_cancelling_pair_keeps_its_genuine_part(lib):
    # Δ_2 = −Δ_1 + a rank-1 term of relative size 1e-6: the node has rank 1, not 0 and not 6
    rng = np.random.default_rng(10)
    m, n = 15, 12
    U, V = rng.standard_normal((m, 3)), rng.standard_normal((n, 3))
    u, v = 1e-6 * rng.standard_normal((m, 1)), rng.standard_normal((n, 1))
    deltas = [(U, V), (np.hstack([-U, u]), np.hstack([V, v]))]
    tree = LowRankSegmentTree(
        lib.asarray(np.zeros((m, n))), [(lib.asarray(a), lib.asarray(b)) for a, b in deltas], **lib.kw
    )
    assert tree.nodes()[-1].rank == 1
    X = rng.standard_normal((n, 2))
    assert rel(lib.to_numpy(tree.query(2, lib.asarray(X))), u @ (v.T @ X)) <= 1e-8


# --------------------------------------------------------------------------
# diagnostics
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_diagnostics_of_scaled_sequence_give_same_answers(array_lib, dtype, data):
    rng = np.random.default_rng(4)
    A = np.array([[[1.0, j], [j, j * j]] for j in range(6)]).astype(dtype) / 32
    B = (rng.standard_normal((5, 8, 3)) @ rng.standard_normal((5, 3, 6))).astype(dtype)
    lo, hi = exponent_range(np.concatenate([A.ravel(), B.ravel()]), dtype, headroom=8)
    e = data.draw(st.integers(lo, hi), label="e")
    for X in (A, B):
        ref = numerical_difference_profile(array_lib.asarray(X))
        p = numerical_difference_profile(array_lib.asarray(scaled(X, e)))
        assert p.rank_table == ref.rank_table
        assert tuple(p.column_direct_sum) == tuple(ref.column_direct_sum)
        assert tuple(p.row_direct_sum) == tuple(ref.row_direct_sum)
        assert math.isclose(p.scale, math.ldexp(ref.scale, e), rel_tol=1e-5)
        for side in ("column", "row"):
            assert tuple(direct_sum_check(array_lib.asarray(scaled(X, e)), side=side)) == tuple(
                direct_sum_check(array_lib.asarray(X), side=side)
            )
    assert numerical_difference_profile(array_lib.asarray(scaled(A, e))).ranks == [1, 2, 1, 0, 0, 0]


# --------------------------------------------------------------------------
# BLAS threads
# --------------------------------------------------------------------------
def test_small_blas_limits_and_restores_even_when_users_overlap():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from lowrank_tree._threads import small_blas

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    a, b = small_blas(True), small_blas(True)
    a.__enter__()
    assert all(t == 1 for t in blas_threads())
    b.__enter__()
    a.__exit__(None, None, None)  # interleaved exits: the limit stays while b is inside
    assert all(t == 1 for t in blas_threads())
    b.__exit__(None, None, None)
    assert blas_threads() == before
    with small_blas(False):
        assert blas_threads() == before


@pytest.mark.parametrize("e", [-1000, -530, 0, 530, 1000])
def test_benchmark_relative_error_is_scale_free(e):
    # the demo and the CLI report query errors with it
    from lowrank_tree.benchmark import relative_error

    b = np.random.default_rng(6).standard_normal((8, 5))
    a = b + 1e-3 * np.random.default_rng(7).standard_normal((8, 5))
    ref = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    assert math.isclose(relative_error(np.ldexp(a, e), np.ldexp(b, e)), ref, rel_tol=1e-12)


def test_portable_sum_of_squares_is_what_backends_without_a_kernel_use():
    # CuPy and array_api_strict have no sum_of_squares kernel: the array-API version runs there
    import array_api_strict as xs

    from lowrank_tree._norms import _sum_of_squares

    z = (np.arange(6.0) + 1j).reshape(2, 3)
    assert _sum_of_squares(xs.asarray(z), xs) == pytest.approx(float(np.vdot(z, z).real))
    assert _sum_of_squares(xs.asarray(z.real), xs) == pytest.approx(55.0)
