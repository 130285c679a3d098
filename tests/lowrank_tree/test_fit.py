"""cascade_fit / Cascade against dense NumPy references."""

import gc
import itertools
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank_tree._randomized import adaptive_qb, fixed_rank_qb
from lowrank_tree.backends import get_func, namespace_for
from lowrank_tree.fit import Cascade, cascade_fit


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def family(rng, K, m, n, decay=0.6, dtype=np.float64, scale=1.0):
    """M_0 random, each increment full rank with geometrically decaying spectrum."""
    cplx = np.dtype(dtype).kind == "c"

    def randn(*shape):
        z = rng.standard_normal(shape)
        return z + 1j * rng.standard_normal(shape) if cplx else z

    W = randn(m, n)
    mats = [W]
    r = min(m, n)
    for _ in range(K):
        U, _ = np.linalg.qr(randn(m, r))
        V, _ = np.linalg.qr(randn(n, r))
        W = W + scale * (U * decay ** np.arange(r)) @ V.T
        mats.append(W)
    return np.stack(mats).astype(dtype)


def reference_cascade(mats, ranks):
    """Textbook cascade with numpy.linalg.svd: R_k = M_k - What_{k-1}, truncated SVD."""
    W = mats[0].astype(np.result_type(mats[0], np.float64 if mats[0].dtype.kind != "c" else mats[0]))
    fitted, errors = [W], [0.0]
    for k, r in enumerate(ranks, start=1):
        R = mats[k] - W
        P, s, Wh = np.linalg.svd(R, full_matrices=False)
        W = W + (P[:, :r] * s[:r]) @ Wh[:r]
        fitted.append(W)
        nm = np.linalg.norm(mats[k])
        errors.append(np.linalg.norm(W - mats[k]) / (nm if nm > 0 else 1.0))
    return fitted, errors


def true_errors(c, mats, to_numpy=np.asarray):
    out = []
    for k in range(c.max_order + 1):
        W = np.asarray(to_numpy(c.matrix(k)), dtype=np.complex128 if np.iscomplexobj(mats) else np.float64)
        M = np.asarray(mats[k], dtype=W.dtype)
        nm = np.linalg.norm(M)
        out.append(np.linalg.norm(W - M) / (nm if nm > 0 else 1.0))
    return out


shapes = st.tuples(st.integers(0, 3), st.integers(1, 7), st.integers(1, 7), st.integers(0, 2**32 - 1))


# --------------------------------------------------------------------------
# exactness and the cascade recursion
# --------------------------------------------------------------------------
@given(shapes)
def test_full_ranks_and_default_reproduce_inputs(args):
    K, m, n, seed = args
    mats = family(np.random.default_rng(seed), K, m, n)
    for c in (cascade_fit(mats, ranks=min(m, n)), cascade_fit(mats)):
        assert c.max_order == K and len(c.ranks) == K and len(c.errors) == K + 1
        assert c.shape == (m, n) and c.errors[0] == 0.0
        np.testing.assert_array_equal(c.base, mats[0])
        for k in range(K + 1):
            W = c.matrix(k)
            assert np.linalg.norm(W - mats[k]) <= 1e-10 * np.linalg.norm(mats[k])
        assert max(c.errors) <= 1e-10
        assert c.n_params == m * n + sum(c.ranks) * (m + n)
        assert c.dense_params == (K + 1) * m * n


@given(shapes, st.data())
def test_fixed_ranks_match_truncated_svd_of_cascade_residual(args, data):
    K, m, n, seed = args
    mats = family(np.random.default_rng(seed), K, m, n)
    ranks = data.draw(st.lists(st.integers(0, min(m, n)), min_size=K, max_size=K))
    c = cascade_fit(mats, ranks=ranks, method="exact")
    fitted, ref_err = reference_cascade(mats, ranks)
    assert c.ranks == ranks  # generic data: numerical rank is full, nothing trimmed
    np.testing.assert_allclose(c.errors, ref_err, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(c.errors, true_errors(c, mats), rtol=1e-9, atol=1e-13)
    for k in range(K + 1):
        np.testing.assert_allclose(c.matrix(k), fitted[k], rtol=0, atol=1e-10 * (1 + np.abs(mats[k]).max()))
        if k:
            U, V = c.corrections[k - 1].U, c.corrections[k - 1].V
            assert U.shape == (m, ranks[k - 1]) and V.shape == (n, ranks[k - 1])


@given(shapes, st.sampled_from([0.3, 0.1, 1e-2, 1e-4]))
def test_tol_exact_reports_true_errors_and_minimal_ranks(args, tol):
    K, m, n, seed = args
    mats = family(np.random.default_rng(seed), K, m, n, scale=3.0)
    c = cascade_fit(mats, tol=tol, method="exact")
    truth = true_errors(c, mats)
    np.testing.assert_allclose(c.errors, truth, rtol=1e-9, atol=1e-14)
    assert max(c.errors) <= tol
    # Minimality: one rank less misses the tolerance on the same residual.
    for k, r in enumerate(c.ranks, start=1):
        if r:
            s = np.linalg.svd(mats[k] - c.matrix(k - 1), compute_uv=False)
            assert np.sqrt(np.sum(s[r - 1 :] ** 2)) > tol * np.linalg.norm(mats[k])


def test_cascade_corrects_earlier_truncation():
    # M_1 = M_2 = A (rank 2).  With ranks (1, 1), R_2 = M_2 - What_1 is the second
    # singular triplet of A, so order 2 is exact; fitting M_2 - M_1 = 0 instead
    # (the uncorrected scheme) would leave sigma_2 there.
    rng = np.random.default_rng(3)
    u, _ = np.linalg.qr(rng.standard_normal((5, 2)))
    v, _ = np.linalg.qr(rng.standard_normal((4, 2)))
    A = (u * [3.0, 1.0]) @ v.T
    c = cascade_fit([np.zeros((5, 4)), A, A], ranks=[1, 1])
    assert c.errors[1] == pytest.approx(1.0 / np.sqrt(10.0), rel=1e-12)
    assert c.errors[2] < 1e-14
    np.testing.assert_allclose(c.corrections[1].to_dense(), (u[:, 1:] * 1.0) @ v[:, 1:].T, atol=1e-14)


def test_k_zero_single_matrix():
    M = np.arange(12.0).reshape(3, 4)
    for mats in ([M], M[None], (x for x in [M])):
        c = cascade_fit(mats, ranks=2)
        assert c.max_order == 0 and c.corrections == [] and c.ranks == [] and c.errors == [0.0]
        np.testing.assert_array_equal(c.matrix(0), M)
        assert c.n_params == 12 and c.dense_params == 12
    assert cascade_fit([M], budget=100).ranks == []


def test_zero_ranks_and_zero_matrices():
    rng = np.random.default_rng(0)
    mats = family(rng, 3, 5, 3)
    c = cascade_fit(mats, ranks=[0, 2, 0])
    assert c.ranks == [0, 2, 0]
    assert c.corrections[0].U.shape == (5, 0) and c.corrections[0].V.shape == (3, 0)
    np.testing.assert_allclose(c.errors, true_errors(c, mats), rtol=1e-12)
    # All-zero family: absolute errors, all ranks 0.
    z = np.zeros((3, 4, 2))
    c = cascade_fit(z, tol=0.1)
    assert c.ranks == [0, 0] and c.errors == [0.0, 0.0, 0.0]
    # Noise-level residual (M_2 = M_1) gives rank 0 losslessly.
    c = cascade_fit([mats[0], mats[1], mats[1]])
    assert c.ranks[1] == 0


def test_integer_inputs_become_float64_and_mixed_dtypes_promote():
    c = cascade_fit([np.eye(3, dtype=np.int64), 2 * np.eye(3, dtype=np.int64)])
    assert c.dtype == np.float64 and c.ranks == [3]
    c = cascade_fit([np.eye(3, dtype=np.float32), np.eye(3) + 1e-12])
    assert c.dtype == np.float64 and c.base.dtype == np.float64
    assert c.corrections[0].U.dtype == np.float64
    c = cascade_fit([[[1, 2], [3, 4]], [[1, 2], [3, 5]]])  # nested lists
    assert c.ranks == [1] and max(c.errors) < 1e-15


# --------------------------------------------------------------------------
# input forms and streaming
# --------------------------------------------------------------------------
def test_list_array_generator_agree():
    mats = family(np.random.default_rng(1), 4, 6, 5)
    results = [cascade_fit(x, tol=0.05) for x in (mats, list(mats), tuple(mats), (M for M in mats), iter(list(mats)))]
    for c in results[1:]:
        assert c.ranks == results[0].ranks
        assert c.errors == results[0].errors
        for a, b in zip(c.corrections, results[0].corrections):
            np.testing.assert_array_equal(a.U, b.U)
            np.testing.assert_array_equal(a.V, b.V)


def test_generator_is_consumed_lazily():
    mats = family(np.random.default_rng(2), 6, 8, 7)
    refs, alive = [], []

    def gen():
        for M in mats:
            gc.collect()
            alive.append(sum(r() is not None for r in refs))
            A = M.copy()  # a fresh object per order, so its lifetime is observable
            refs.append(weakref.ref(A))
            yield A
            del A

    c = cascade_fit(gen(), ranks=3)
    # When M_k is produced, no earlier target is still held (the base is a copy).
    assert alive == [0] * 7
    assert c.max_order == 6
    np.testing.assert_allclose(c.errors, reference_cascade(mats, [3] * 6)[1], rtol=1e-10)


def test_generator_interleaves_with_fitting():
    # Each target is requested only after the previous correction was fitted:
    # the generator sees the errors list grow (through a side channel: time order).
    mats = family(np.random.default_rng(4), 3, 4, 4)
    log = []

    def gen():
        for k, M in enumerate(mats):
            log.append(("yield", k))
            yield M

    import lowrank_tree.fit as fit_mod

    original = fit_mod._fit_order

    def spy(M, W, *a, **kw):
        log.append(("fit",))
        return original(M, W, *a, **kw)

    fit_mod._fit_order = spy
    try:
        cascade_fit(gen())
    finally:
        fit_mod._fit_order = original
    assert log == [("yield", 0), ("yield", 1), ("fit",), ("yield", 2), ("fit",), ("yield", 3), ("fit",)]


def test_budget_materialises_generator():
    mats = family(np.random.default_rng(5), 3, 5, 4)
    c1 = cascade_fit((M for M in mats), budget=40)
    c2 = cascade_fit(mats, budget=40)
    assert c1.ranks == c2.ranks and c1.errors == c2.errors


# --------------------------------------------------------------------------
# randomized path
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big():
    # large enough that the ranks these tests need stay under the min(m, n) / 2
    # at which the randomized path falls back to the full SVD
    return family(np.random.default_rng(7), 2, 320, 160, decay=0.8, scale=5.0)


@pytest.mark.parametrize("tol", [1e-2, 1e-6])
def test_tol_randomized_true_errors(big, tol, monkeypatch):
    import lowrank_tree.fit as fit_mod

    found = []  # the adaptive range finder's results (None: it gave up, full SVD instead)

    def spy(*args, **kwargs):
        found.append(adaptive_qb(*args, **kwargs))
        return found[-1]

    monkeypatch.setattr(fit_mod, "adaptive_qb", spy)
    c = cascade_fit(big, tol=tol, method="randomized", seed=0)
    assert c.method == "randomized"
    # the sketch path, every order: once without power iterations, and again
    # with them where the first rank could not be proven minimal
    assert 2 <= len(found) <= 4 and all(qb is not None for qb in found)
    truth = true_errors(c, big)
    np.testing.assert_allclose(c.errors, truth, rtol=1e-8, atol=1e-15)
    assert max(c.errors) <= tol
    exact = cascade_fit(big, tol=tol, method="exact")
    # Near-optimal ranks: the truncation of Q B recovers the optimal rank up to a couple.
    assert all(re <= rx + 2 for re, rx in zip(c.ranks, exact.ranks))
    assert all(re >= rx for re, rx in zip(c.ranks, exact.ranks))


def test_fixed_rank_randomized_near_optimal_and_reproducible(big):
    ranks = [8, 20]
    c = cascade_fit(big, ranks=ranks, method="randomized", seed=11)
    ref = cascade_fit(big, ranks=ranks, method="exact")
    assert c.ranks == ranks
    np.testing.assert_allclose(c.errors, true_errors(c, big), rtol=1e-8, atol=1e-15)
    for e, x in zip(c.errors[1:], ref.errors[1:]):
        assert x <= e <= x * 1.01
    again = cascade_fit(big, ranks=ranks, method="randomized", seed=11)
    for a, b in zip(c.corrections, again.corrections):
        np.testing.assert_array_equal(a.U, b.U)
        np.testing.assert_array_equal(a.V, b.V)
    t1 = cascade_fit(big, tol=1e-4, method="randomized", seed=np.random.default_rng(3))
    t2 = cascade_fit(big, tol=1e-4, method="randomized", seed=np.random.default_rng(3))
    assert t1.errors == t2.errors


def test_auto_method_switches_at_512():
    rng = np.random.default_rng(0)
    small = np.stack([np.eye(6), np.eye(6) + np.outer(np.ones(6), np.arange(6.0))])
    assert cascade_fit(small).method == "exact"
    W = rng.standard_normal((520, 513))
    mats = [W, W + np.outer(rng.standard_normal(520), rng.standard_normal(513))]
    c = cascade_fit(mats, tol=1e-10, seed=0)
    assert c.method == "randomized" and c.ranks == [1]
    assert c.errors[1] <= 1e-10


def test_randomized_fallback_to_exact_when_rank_large():
    mats = family(np.random.default_rng(8), 1, 40, 30, decay=0.99)
    c = cascade_fit(mats, tol=1e-12, method="randomized", seed=0)
    ref = cascade_fit(mats, tol=1e-12, method="exact")
    assert c.ranks == ref.ranks and max(c.errors) <= 1e-12
    c = cascade_fit(mats, ranks=25, method="randomized", seed=0)
    np.testing.assert_allclose(c.errors, cascade_fit(mats, ranks=25, method="exact").errors, rtol=1e-10)


@pytest.mark.parametrize("rel", [1e-6, 3e-9, 1e-9])
def test_adaptive_qb_meets_bound_when_indicator_cancels(rel, monkeypatch):
    # Spectrum 1 .. 1e-10: for rel² below eps the indicator ‖A‖² − ‖B‖² is
    # pure cancellation and claims convergence too early; the explicit
    # residual check must catch it and the loop go on to the true bound.
    import lowrank_tree._randomized as rnd

    xp = namespace_for("numpy")
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((300, 60)))
    V, _ = np.linalg.qr(rng.standard_normal((200, 60)))
    A = (U * np.logspace(0, -10, 60)) @ V.T
    thr = rel * np.linalg.norm(A)
    checks = []
    real = rnd.fro_norm

    def spy(x, xp):
        value = real(x, xp)
        if x.shape == A.shape:
            checks.append(value)
        return value

    monkeypatch.setattr(rnd, "fro_norm", spy)
    Q, B, res = adaptive_qb(A, thr, xp, get_func("make_rng", "numpy")(0), "numpy", block=4, power_iters=1)
    measured = np.linalg.norm(A - Q @ B)
    assert measured <= thr
    assert abs(measured - res) <= 1e-6 * res
    np.testing.assert_allclose(Q.T @ Q, np.eye(Q.shape[1]), atol=1e-12)
    # ‖A‖ once, then one explicit residual per claimed convergence.
    if rel < 1e-8:
        assert len(checks) >= 3 and checks[1] > thr  # the indicator lied at least once
    else:
        assert len(checks) == 2


def test_adaptive_qb_gives_up_past_max_cols():
    xp = namespace_for("numpy")
    A = np.random.default_rng(1).standard_normal((100, 80))
    out = adaptive_qb(A, 1e-3 * np.linalg.norm(A), xp, get_func("make_rng", "numpy")(0), "numpy", block=8, max_cols=40)
    assert out is None


def test_fixed_rank_qb_complex():
    xp = namespace_for("numpy")
    rng = np.random.default_rng(1)
    A = (rng.standard_normal((50, 3)) + 1j * rng.standard_normal((50, 3))) @ (
        rng.standard_normal((3, 40)) + 1j * rng.standard_normal((3, 40))
    )
    Q, B = fixed_rank_qb(A, 3, xp, get_func("make_rng", "numpy")(0), "numpy", oversample=2)
    assert Q.dtype == np.complex128
    np.testing.assert_allclose(Q @ B, A, atol=1e-11 * np.abs(A).max())


# --------------------------------------------------------------------------
# dtypes and backends
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["exact", "randomized"])
def test_float32_stays_float32(method):
    rng = np.random.default_rng(9)
    m, n = (120, 90) if method == "exact" else (320, 160)
    mats = family(rng, 2, m, n, decay=0.5, scale=2.0, dtype=np.float32)
    c = cascade_fit(mats, tol=1e-3, method=method, seed=0)
    assert c.dtype == np.float32 and c.base.dtype == np.float32
    assert all(d.U.dtype == np.float32 and d.V.dtype == np.float32 for d in c.corrections)
    assert c.matrix(2).dtype == np.float32
    truth = true_errors(c, mats)
    np.testing.assert_allclose(c.errors, truth, rtol=1e-3, atol=1e-6)
    assert max(truth) <= 1e-3 * 1.01
    full = cascade_fit(mats, method=method, seed=0)
    assert max(true_errors(full, mats)) <= 1e-4


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex(dtype):
    rng = np.random.default_rng(10)
    mats = family(rng, 3, 7, 5, dtype=dtype)
    c = cascade_fit(mats, ranks=[2, 0, 5])
    assert c.dtype == dtype and c.corrections[0].U.dtype == dtype
    fitted, ref_err = reference_cascade(mats.astype(np.complex128), [2, 0, 5])
    tol = 1e-10 if dtype == np.complex128 else 1e-4
    np.testing.assert_allclose(c.errors, ref_err, rtol=tol, atol=tol)
    # Δ = U @ V.T with a plain transpose
    for k in range(4):
        np.testing.assert_allclose(c.matrix(k), fitted[k], atol=tol * 10)
    c = cascade_fit(mats, tol=1e-2)
    assert max(true_errors(c, mats)) <= 1e-2 * (1 + tol)


def test_complex_randomized():
    rng = np.random.default_rng(12)
    W = rng.standard_normal((600, 100)) + 1j * rng.standard_normal((600, 100))
    L = (rng.standard_normal((600, 4)) + 1j * rng.standard_normal((600, 4))) @ (
        rng.standard_normal((4, 100)) + 1j * rng.standard_normal((4, 100))
    )
    mats = [W, W + L, W + L + 1e-3 * L.conj()]
    for method in ("randomized", "exact"):
        c = cascade_fit(mats, tol=1e-9, method=method, seed=0)
        assert c.ranks == [4, 4]
        np.testing.assert_allclose(c.errors, true_errors(c, np.stack(mats)), rtol=1e-7, atol=1e-16)
        assert max(c.errors) <= 1e-9
        c = cascade_fit(mats, ranks=4, method=method, seed=0)
        assert max(c.errors) <= 1e-12


@pytest.mark.parametrize(
    "kwargs",
    [dict(ranks=[1, 3, 0]), dict(tol=0.05), dict(budget=30), dict(), dict(ranks=2, method="randomized", seed=4)],
)
def test_array_api_strict_same_numbers_as_numpy(kwargs):
    lib = namespace_for("array_api_strict")
    to_numpy = get_func("to_numpy", "array_api_strict")
    mats = family(np.random.default_rng(13), 3, 30, 24)
    strict = get_func("asarray", "array_api_strict")(mats)
    c_np = cascade_fit(mats, **kwargs)
    for inp in (strict, [strict[k, ...] for k in range(4)]):
        c = cascade_fit(inp, **kwargs)
        assert c.xp is lib
        assert c.ranks == c_np.ranks
        np.testing.assert_allclose(c.errors, c_np.errors, rtol=1e-9, atol=1e-15)
        for k in range(4):
            np.testing.assert_allclose(to_numpy(c.matrix(k)), c_np.matrix(k), atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.complex128, np.complex64])
@pytest.mark.parametrize("kwargs", [dict(tol=1e-3), dict(ranks=3, method="randomized", seed=1)])
def test_array_api_strict_dtypes(dtype, kwargs):
    to_numpy = get_func("to_numpy", "array_api_strict")
    mats = family(np.random.default_rng(15), 2, 40, 30, dtype=dtype)
    c = cascade_fit(get_func("asarray", "array_api_strict")(mats), **kwargs)
    c_np = cascade_fit(mats, **kwargs)
    assert to_numpy(c.base).dtype == dtype and to_numpy(c.corrections[0].U).dtype == dtype
    assert c.ranks == c_np.ranks
    np.testing.assert_allclose(c.errors, c_np.errors, rtol=1e-5)
    np.testing.assert_allclose(c.errors, true_errors(c, mats, to_numpy), rtol=1e-4, atol=1e-7)


def test_backend_argument_converts_lists():
    c = cascade_fit([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 1.0]]], backend="array_api_strict")
    assert c.xp is namespace_for("array_api_strict") and c.ranks == [1]


# --------------------------------------------------------------------------
# budget
# --------------------------------------------------------------------------
@given(shapes, st.integers(0, 200))
def test_budget_never_exceeded(args, budget):
    K, m, n, seed = args
    mats = family(np.random.default_rng(seed), K, m, n)
    c = cascade_fit(mats, budget=budget)
    assert sum(c.ranks) * (m + n) <= budget
    assert c.n_params - m * n <= budget
    np.testing.assert_allclose(c.errors, true_errors(c, mats), rtol=1e-9, atol=1e-13)


def _independent_family(vals_per_order, base_diag):
    """Diagonal family, each D_k on its own coordinates (orthogonal orders)."""
    n = len(base_diag)
    mats = [np.diag(base_diag)]
    pos = 0
    for vals in vals_per_order:
        d = np.zeros(n)
        d[pos : pos + len(vals)] = vals
        pos += len(vals)
        mats.append(mats[-1] + np.diag(d))
    return np.stack(mats)


@settings(max_examples=30)
@given(
    st.lists(st.lists(st.floats(0.1, 10.0), min_size=1, max_size=2), min_size=1, max_size=3),
    st.floats(0.1, 10.0),
    st.integers(0, 6),
)
def test_budget_matches_brute_force_on_independent_orders(vals, base_scale, units):
    n = sum(len(v) for v in vals) + 1
    mats = _independent_family(vals, base_scale * np.linspace(1.0, 2.0, n))
    K = len(vals)
    budget = units * 2 * n
    c = cascade_fit(mats, budget=budget)
    assert sum(c.ranks) * 2 * n <= budget
    obj = sum(e**2 for e in c.errors)
    best = min(
        sum(e**2 for e in cascade_fit(mats, ranks=list(r)).errors)
        for r in itertools.product(range(n + 1), repeat=K)
        if sum(r) <= units
    )
    assert obj <= best * (1 + 1e-9) + 1e-15


def test_budget_accounts_for_propagation():
    # sigma(D_1) = 5, sigma(D_2) = 6, one rank to spend.  The plain greedy takes
    # the 6 at order 2 and leaves 5 in both orders (25 + 25); spending it at
    # order 1 leaves only 36 at order 2, which is better.
    mats = _independent_family([[5.0], [6.0]], 100.0 * np.ones(3))
    c = cascade_fit(mats, budget=6)
    assert c.ranks == [1, 0]
    worse = cascade_fit(mats, ranks=[0, 1])
    assert sum(e**2 for e in c.errors) < sum(e**2 for e in worse.errors)


# --------------------------------------------------------------------------
# Cascade object
# --------------------------------------------------------------------------
def test_cascade_object_reporting_and_tree():
    mats = family(np.random.default_rng(14), 3, 6, 5)
    c = cascade_fit(mats, ranks=[1, 2, 3])
    r = repr(c)
    assert "max_order=3" in r and "(6, 5)" in r and "ranks=[1, 2, 3]" in r and "exact" in r
    table = c.summary().splitlines()
    assert table[1].split() == ["order", "rank", "rel.", "error"]
    assert [row.split()[1] for row in table[2:6]] == ["base", "1", "2", "3"]
    assert float(table[5].split()[2]) == pytest.approx(c.errors[3], rel=1e-3)
    assert c.nbytes == 8 * (30 + 6 * 11)
    W = c.matrix(0)
    W[0, 0] += 1.0  # matrix(k) returns a copy, never the base itself
    np.testing.assert_array_equal(c.base, mats[0])
    with pytest.raises(ValueError, match=r"k must be in \[0, 3\]"):
        c.matrix(4)
    with pytest.raises(ValueError, match=r"k must be in \[0, 3\]"):
        c.matrix(-1)
    # a plain import: a broken tree module must fail this test, not skip it
    from lowrank_tree.tree import LowRankSegmentTree

    t = c.tree()
    assert isinstance(t, LowRankSegmentTree)
    X = np.random.default_rng(0).standard_normal((5, 3))
    for k in range(4):
        np.testing.assert_allclose(t.query(k, X), c.matrix(k) @ X, atol=1e-12)


def test_cascade_constructor():
    c = Cascade(
        np.eye(3),
        [(np.ones((3, 1)), np.ones((3, 1))), (np.zeros((3, 0)), np.zeros((3, 0)))],
        errors=[0.0, 0.5, 0.25],
        method="exact",
    )
    assert c.ranks == [1, 0] and c.errors == [0.0, 0.5, 0.25]
    np.testing.assert_array_equal(c.matrix(2), np.eye(3) + 1.0)
    with pytest.raises(ValueError, match=r"corrections\[0\] must have shape \(3, 3\)"):
        Cascade(np.eye(3), [(np.ones((2, 1)), np.ones((3, 1)))])
    with pytest.raises(ValueError, match="errors must have length"):
        Cascade(np.eye(3), [], errors=[0.0, 1.0])


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
_RNG = np.random.default_rng(0)
_MATS = [_RNG.standard_normal((3, 4)) for _ in range(3)]


def _with(k, value):
    """``_MATS`` with entry ``k`` replaced by ``value``."""
    return [value if j == k else M for j, M in enumerate(_MATS)]


def _nonfinite(value):
    bad = _MATS[2].copy()
    bad[1, 1] = value
    return bad


# One case per bad input, each its own test: a regression in one message
# does not hide the others.
BAD_INPUTS = {
    "shape mismatch, list": (
        lambda: cascade_fit(_with(1, np.ones((4, 3)))),
        ValueError,
        r"mats\[1\] must have shape \(3, 4\)",
    ),
    "shape mismatch, iterator": (
        lambda: cascade_fit(iter(_with(2, np.ones((3, 5))))),
        ValueError,
        r"mats\[2\] must have shape \(3, 4\)",
    ),
    "1-D item": (lambda: cascade_fit(_MATS[:1] + [np.ones(12)]), ValueError, r"mats\[1\] must be a 2-D array"),
    "NaN": (lambda: cascade_fit(_with(2, _nonfinite(np.nan))), ValueError, r"mats\[2\] contains NaN or Inf"),
    "Inf, budget": (
        lambda: cascade_fit(np.stack(_with(2, _nonfinite(np.inf))), budget=10),
        ValueError,
        r"mats\[2\] contains NaN or Inf",
    ),
    "rank too large": (lambda: cascade_fit(_MATS, ranks=4), ValueError, r"ranks must be in \[0, 3\], got 4"),
    "ranks[1] too large": (
        lambda: cascade_fit(_MATS, ranks=[1, 5]),
        ValueError,
        r"ranks\[1\] must be in \[0, 3\], got 5",
    ),
    "negative rank": (lambda: cascade_fit(_MATS, ranks=[-1, 1]), ValueError, r"ranks\[0\] must be in \[0, 3\], got -1"),
    "ranks too long": (lambda: cascade_fit(_MATS, ranks=[1, 1, 1]), ValueError, r"ranks must have length K = 2"),
    "ranks too short, iterator": (lambda: cascade_fit(iter(_MATS), ranks=[1]), ValueError, r"ranks must have length K"),
    "ranks too long, iterator": (
        lambda: cascade_fit(iter(_MATS), ranks=[1, 1, 1]),
        ValueError,
        r"ranks must have length K = 2",
    ),
    "float rank": (lambda: cascade_fit(_MATS, ranks=[1.5, 1]), TypeError, "ranks"),
    "ranks and tol": (
        lambda: cascade_fit(_MATS, ranks=1, tol=0.1),
        ValueError,
        "at most one of ranks, tol, budget; got ranks and tol",
    ),
    "tol and budget": (lambda: cascade_fit(_MATS, tol=0.1, budget=10), ValueError, "got tol and budget"),
    "tol >= 1": (lambda: cascade_fit(_MATS, tol=1.5), ValueError, r"tol must be in \[0, 1\)"),
    "negative budget": (lambda: cascade_fit(_MATS, budget=-1), ValueError, r"budget must be in \[0, inf\]"),
    "unknown method": (
        lambda: cascade_fit(_MATS, method="svd"),
        ValueError,
        "method must be one of 'auto', 'exact', 'randomized'",
    ),
    "negative oversample": (lambda: cascade_fit(_MATS, oversample=-1), ValueError, "oversample"),
    "2-D mats": (lambda: cascade_fit(_MATS[0]), ValueError, "3-D array"),
    "empty list": (lambda: cascade_fit([]), ValueError, "at least one matrix"),
    "empty iterator": (lambda: cascade_fit(iter([])), ValueError, "at least one matrix"),
    "empty stack": (lambda: cascade_fit(np.zeros((0, 3, 4))), ValueError, "at least one matrix"),
    "scalar mats": (lambda: cascade_fit(5), TypeError, "mats must be"),
    "bool item": (lambda: cascade_fit(_with(1, np.ones((3, 4), dtype=bool))), TypeError, r"mats\[1\].*floating"),
    "positional ranks": (lambda: cascade_fit(_MATS, [1, 1]), TypeError, "positional argument"),
}


@pytest.mark.parametrize("call, exc, match", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_cascade_is_read_only():
    c = cascade_fit(np.stack(_MATS), ranks=1)
    for name in ("base", "corrections", "errors", "ranks", "method", "max_order", "shape", "dtype"):
        with pytest.raises(AttributeError):
            setattr(c, name, None)
    assert c.max_order == 2 and c.method == "exact" and len(c.errors) == c.max_order + 1


def test_mixed_array_libraries():
    strict = get_func("asarray", "array_api_strict")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    with pytest.raises(TypeError, match=r"mixed array libraries.*mats\[1\]"):
        cascade_fit([a, strict(b)])
    with pytest.raises(TypeError, match=r"mats\[1\] is a array_api_strict array"):
        cascade_fit(iter([a, strict(b)]))
    with pytest.raises(TypeError, match=r"mats\[1\] is a numpy array"):
        cascade_fit(iter([strict(a), b]))
