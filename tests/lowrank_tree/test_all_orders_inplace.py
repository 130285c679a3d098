"""All orders accumulated in the output, and hot orders folded into one dense GEMM, against dense references."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowrank_tree import LowRankSegmentTree
from lowrank_tree.backends import _numpy


def _dense_orders(base, deltas):
    out = [base]
    for U, V in deltas:
        out.append(out[-1] + U @ V.T)
    return np.stack(out)


@given(
    K=st.integers(0, 6),
    m=st.integers(1, 7),
    n=st.integers(1, 7),
    b=st.integers(1, 4),
    r=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    exp=st.integers(-200, 200),
)
def test_all_orders_matches_dense(lib, K, m, n, b, r, seed, exp):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((m, n)) * 2.0**exp
    deltas = [(rng.standard_normal((m, r)) * 2.0**exp, rng.standard_normal((n, r))) for _ in range(K)]
    tree = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], **lib.kw)
    X = rng.standard_normal((n, b))
    got = lib.to_numpy(tree.all_orders(lib.asarray(X)))
    ref = _dense_orders(base, deltas) @ X
    assert got.shape == (K + 1, m, b)
    scale = (np.abs(_dense_orders(base, deltas)).max() if K else np.abs(base).max()) * np.abs(X).sum(0).max()
    assert np.abs(got - ref).max() <= 64 * (K + 1) * (n + r) * np.finfo(float).eps * max(scale, 1e-300)


@pytest.mark.parametrize("K, m, b", [(64, 96, 32), (6, 300, 64)])  # batched and one-order-at-a-time paths
def test_numpy_accumulate_orders_in_place_peak_memory(K, m, b):
    """The NumPy kernel allocates the output and nothing of its size besides."""
    rng = np.random.default_rng(0)
    r = 3
    assert (m * b < _numpy._INPLACE_SLICE_MIN) == (K == 64)
    Y0, U, Z = rng.standard_normal((m, b)), rng.standard_normal((K, m, r)), rng.standard_normal((K, r, b))
    tracemalloc.start()
    out = _numpy.accumulate_orders(Y0, U, Z)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ref = np.concatenate([Y0[None], Y0[None] + np.cumsum(U @ Z, axis=0)])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    assert peak <= out.nbytes * 1.05 + 2**16


def _tree_with_dense_nodes(lib, rng, m=72, n=64, K=8, r=9):
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, r)), rng.standard_normal((n, r))) for _ in range(K)]
    tree = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], **lib.kw)
    return tree, base, deltas


def test_hot_order_is_folded_and_exact(lib):
    """A hot order with a dense canonical node is folded: one dense matrix, less cache, same answers."""
    rng = np.random.default_rng(1)
    tree, base, deltas = _tree_with_dense_nodes(lib, rng)
    k = 7  # canonical nodes [1..4] (rank 36: dense), [5, 6] (rank 18), [7] (rank 9)
    info = tree.canonical_nodes(k)
    assert any(nd.dense for nd in info) and any(not nd.dense for nd in info)
    ref = _dense_orders(base, deltas)[k]
    X = rng.standard_normal((64, 4))
    for _ in range(2):  # the first use applies the nodes one by one, the second caches the entry
        got = lib.to_numpy(tree.query(k, lib.asarray(X)))
        np.testing.assert_allclose(got, ref @ X, rtol=1e-12, atol=1e-12 * np.abs(ref @ X).max())
    before = tree.cache_nbytes
    assert not tree._cache[k].folded
    for _ in range(10):  # enough columns to pay for the fold: Σ b >= m n / (m + n)
        got = lib.to_numpy(tree.query(k, lib.asarray(X)))
        np.testing.assert_allclose(got, ref @ X, rtol=1e-12, atol=1e-12 * np.abs(ref @ X).max())
    entry = tree._cache[k]
    assert entry.folded and entry.U.shape[1] == 0
    assert tree.cache_nbytes < before
    assert tree.cache_nbytes == 72 * 64 * 8
    np.testing.assert_allclose(lib.to_numpy(tree.matrix(k)), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    tree._check()
    # a change drops the folded entry with the others; answers follow the new state
    U, V = rng.standard_normal((72, 2)), rng.standard_normal((64, 2))
    tree.update(2, (lib.asarray(U), lib.asarray(V)))
    deltas[1] = (U, V)
    ref = _dense_orders(base, deltas)[k]
    got = lib.to_numpy(tree.query(k, lib.asarray(X)))
    np.testing.assert_allclose(got, ref @ X, rtol=1e-12, atol=1e-12 * np.abs(ref @ X).max())
    tree._check()


def test_cold_queries_and_single_columns_do_not_fold():
    """A few narrow queries never pay the fold; an order without a dense node never folds."""
    rng = np.random.default_rng(2)

    class Np:
        kw = {"backend": "numpy"}
        asarray = staticmethod(np.asarray)
        to_numpy = staticmethod(np.asarray)

    tree, base, deltas = _tree_with_dense_nodes(Np, rng)
    x = rng.standard_normal(64)
    for _ in range(3):
        tree.query(7, x)
    assert not tree._cache[7].folded
    for _ in range(200):
        tree.query(3, rng.standard_normal((64, 8)))  # [1, 2] + [3]: low-rank only
    assert not tree._cache[3].folded and tree._cache[3].dense is None
    np.testing.assert_allclose(tree.query(3, x), _dense_orders(base, deltas)[3] @ x, rtol=1e-12)
    tree._check()


def test_small_matrices_never_fold():
    """Below the size threshold, repeated queries of one state answer bit for bit the same."""
    rng = np.random.default_rng(4)
    base = rng.standard_normal((6, 5))
    deltas = [(rng.standard_normal((6, 3)), rng.standard_normal((5, 3))) for _ in range(4)]
    tree = LowRankSegmentTree(base, deltas)
    X = rng.standard_normal((5, 16))
    first = tree.query(3, X)
    for _ in range(50):
        np.testing.assert_array_equal(tree.query(3, X), first)
    assert not tree._cache[3].folded
