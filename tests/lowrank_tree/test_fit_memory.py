"""Memory the fit really holds: compact factors, honest ``nbytes``, a streaming peak of O(mn + Σ r(m+n)).

Buffer ownership (``ndarray.base``) and ``tracemalloc`` are NumPy notions, so
these tests run on NumPy arrays only.
"""

import tracemalloc

import numpy as np
import pytest

from lowrank_tree import cascade_fit

METHODS = ["auto", "exact", "randomized"]


def drifting(K, m, n, rank, seed):
    """Generator of ``M_0..M_K`` with rank-``rank`` steps, built one matrix at a time."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((m, n))
    yield M.copy()
    for _ in range(K):
        M = M + rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
        yield M.copy()


def stored_arrays(c):
    return [c._base] + [a for d in c._corrections for a in (d._U, d._V)]


def owned_bytes(c):
    """Bytes of the distinct buffers behind the cascade's arrays (the true memory held)."""
    owners = {}
    for a in stored_arrays(c):
        o = a
        while isinstance(o.base, np.ndarray):
            o = o.base
        owners[id(o)] = o.nbytes
    return sum(owners.values())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", [dict(tol=1e-8), dict(ranks=3), dict(budget=400), dict()])
@pytest.mark.parametrize("shape", [(40, 70), (70, 40)])
def test_every_stored_factor_owns_compact_memory(method, mode, shape):
    m, n = shape
    c = cascade_fit(drifting(6, m, n, 3, 0), method=method, seed=0, **mode)
    assert sum(c.ranks) > 0
    for a in stored_arrays(c):
        assert a.base is None or a.base.nbytes == a.nbytes, (a.shape, a.base.shape)
    expected = m * n * 8 + sum(c.ranks) * (m + n) * 8  # independent of nbytes: the closed form
    assert c.nbytes == owned_bytes(c) == expected


@pytest.mark.parametrize("method", ["exact", "randomized"])
def test_rescaled_orders_store_compact_factors_too(method):
    mats = [M * 2.0**-1060 for M in drifting(3, 50, 30, 2, 1)]  # norms below the safe range
    c = cascade_fit(mats, tol=1e-8, method=method, seed=0)
    assert sum(c.ranks) > 0
    assert c.nbytes == owned_bytes(c) == (50 * 30 + sum(c.ranks) * 80) * 8


@pytest.mark.parametrize("method", METHODS)
def test_streaming_fit_peak_memory_is_O_mn_plus_factors(method):
    # At its peak one order holds the running fit Ŵ_{k−1}, the new target M_k
    # (and the generator's own copy of it), R_k, Ŵ_k, the temporary M_k − Ŵ_k
    # of the error check and the SVD's factors of R_k (two more m×n at most):
    # about 8 m×n arrays, plus the base and the stored factors.  c = 12 leaves
    # room for the range finder's and LAPACK's small work arrays.  A fit that
    # kept every order's n×n SVD factor alive (views) exceeds it by K·n².
    K, m, n, rank = 40, 64, 64, 2
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        c = cascade_fit(drifting(K, m, n, rank, 2), tol=1e-9, method=method, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert c.ranks == [rank] * K  # the reference: each step has rank 2 exactly
    bound = 12 * m * n * 8 + sum(c.ranks) * (m + n) * 8
    assert peak <= bound, (peak, bound)
    assert K * n * n * 8 > bound  # the bound would catch pinned SVD factors


# ----------------------------------------------------------------------------
# Corrections that cost more factored than dense
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_full_rank_residuals_warn_with_the_true_storage_ratio(lib, method):
    import warnings

    from lowrank_tree.fit import DenseCorrectionWarning

    m, n, K = 12, 10, 3
    mats = np.random.default_rng(5).standard_normal((K + 1, m, n))  # independent: full-rank residuals
    with pytest.warns(DenseCorrectionWarning) as rec:
        c = cascade_fit(lib.asarray(mats), tol=1e-3, method=method, seed=0, **lib.kw)
    assert issubclass(DenseCorrectionWarning, UserWarning)
    # reference: the exact SVD of each residual needs rank 10 = min(m, n) at tol 1e-3
    assert c.ranks == [10, 10, 10]
    stored = m * n + 30 * (m + n)
    ratio = stored / ((K + 1) * m * n)  # 780 / 480
    assert f"{ratio:.2f}x" in str(rec[0].message) and "3 of 3 corrections" in str(rec[0].message)
    assert c.n_params == stored
    assert f"{stored / c.dense_params:.2f}x more" in c.summary()
    assert "3 of 3 corrections store more than dense" in c.summary()
    # a family with low-rank steps does not warn
    low = np.cumsum(
        np.concatenate([mats[:1], np.random.default_rng(6).standard_normal((K, m, 1)) * np.ones((1, 1, n))]), axis=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DenseCorrectionWarning)
        c = cascade_fit(lib.asarray(low), tol=1e-10, method=method, seed=0, **lib.kw)
    assert c.ranks == [1, 1, 1]
    assert "store more than dense" not in c.summary()


@pytest.mark.parametrize("shape, rank", [((30, 50), 2), ((50, 30), 0), ((40, 40), 40)])
def test_lowrank_from_dense_owns_compact_factors(shape, rank):
    from lowrank_tree import LowRank

    M = np.random.default_rng(3).standard_normal(shape)
    d = LowRank.from_dense(M, rank=rank)
    assert d.rank == rank
    for a in (d._U, d._V):
        assert a.base is None or a.base.nbytes == a.nbytes
    assert d.nbytes == rank * sum(shape) * 8


def test_default_auto_fit_is_reproducible():
    # the default method draws its sketches from a fixed seed when none is given
    from lowrank_tree import synthetic_evolution

    mats = synthetic_evolution(K=6, m=96, n=80, seed=0)
    a, b = cascade_fit(mats, tol=1e-6), cascade_fit(mats, tol=1e-6)
    assert a.method == "randomized"
    assert a.ranks == b.ranks and a.errors == b.errors
    for x, y in zip(a.corrections, b.corrections):
        np.testing.assert_array_equal(x.U, y.U)
    ref = cascade_fit(mats, tol=1e-6, seed=0)
    np.testing.assert_array_equal(ref.corrections[-1].V, a.corrections[-1].V)
