"""Mixed-order batches (one order per column): every strategy against dense per-column references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank_tree import LowRankSegmentTree

STRATEGIES = ["grouped", "segmented", "masked"]


@st.composite
def trees_and_batches(draw):
    m, n = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    K = draw(st.integers(0, 12))
    ranks = draw(st.lists(st.integers(0, 3), min_size=K, max_size=K))
    b = draw(st.integers(0, 9))
    few = draw(st.booleans())  # few distinct orders (repeated) or any orders
    if few and K >= 0:
        pool = draw(st.lists(st.integers(0, K), min_size=1, max_size=3))
        orders = draw(st.lists(st.sampled_from(pool), min_size=b, max_size=b))
    else:
        orders = draw(st.lists(st.integers(0, K), min_size=b, max_size=b))
    seed = draw(st.integers(0, 2**16))
    return m, n, ranks, orders, seed


def _build(lib, m, n, ranks, seed):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, r)), rng.standard_normal((n, r))) for r in ranks]
    tree = LowRankSegmentTree(
        lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], backend=lib.name
    )
    prefixes = [base]
    for U, V in deltas:
        prefixes.append(prefixes[-1] + U @ V.T)
    return tree, prefixes, rng


def _reference(prefixes, orders, X):
    """Column j is W_{k_j} X[:, j], each W_k a dense NumPy matrix."""
    m = prefixes[0].shape[0]
    out = np.zeros((m, len(orders)))
    for j, k in enumerate(orders):
        out[:, j] = prefixes[k] @ X[:, j]
    return out


def _close(Y, ref):
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    np.testing.assert_allclose(Y, ref, rtol=0, atol=1e-12 * scale * 100)


@settings(max_examples=25, deadline=None)
@given(data=trees_and_batches())
def test_every_strategy_matches_dense_per_column(lib, data):
    m, n, ranks, orders, seed = data
    tree, prefixes, rng = _build(lib, m, n, ranks, seed)
    X = rng.standard_normal((n, len(orders)))
    ref = _reference(prefixes, orders, X)
    for strategy in STRATEGIES + [None]:
        tree.clear_cache()
        for _ in range(2):  # cold, then with the entries a grouped pass cached
            Y = tree._mixed_query(orders, lib.asarray(X), strategy)
            assert tuple(Y.shape) == (m, len(orders))
            _close(lib.to_numpy(Y), ref)
    _close(lib.to_numpy(tree.query(orders, lib.asarray(X))), ref)
    tree._check()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_dense_nodes_edge_orders_and_b1(lib, strategy):
    # r (m + n) >= m n from level 1 up: the upper nodes are dense, the leaves factored
    m, n, ranks = 4, 3, [2, 1, 2, 2, 0, 2, 1, 2, 2]
    tree, prefixes, rng = _build(lib, m, n, ranks, 7)
    assert any(nd.dense for nd in tree.nodes())
    K = len(ranks)
    cases = [[0], [K], [3], [0, K, 0, K], [K] * 5, [0] * 4, [5, 5, 1, 9, 5, 0, 1], list(range(K, -1, -1))]
    for orders in cases:
        X = rng.standard_normal((n, len(orders)))
        tree.clear_cache()
        Y = tree._mixed_query(orders, lib.asarray(X), strategy)
        _close(lib.to_numpy(Y), _reference(prefixes, orders, X))
    tree._check()


def test_empty_batch(lib):
    tree, _, _ = _build(lib, 3, 2, [1, 2, 0], 1)
    for strategy in STRATEGIES + [None]:
        Y = tree._mixed_query([], lib.asarray(np.zeros((2, 0))), strategy)
        assert tuple(Y.shape) == (3, 0)
    assert tuple(tree.query([], lib.asarray(np.zeros((2, 0)))).shape) == (3, 0)


def test_plan_picks_each_strategy():
    """The cost model's choice follows the work: cached few orders, many orders, a short leaf prefix."""
    rng = np.random.default_rng(0)
    n, K, r = 64, 64, 8  # the nodes of 8 leaves and more are dense
    deltas = [(rng.standard_normal((n, r)), rng.standard_normal((n, r))) for _ in range(K)]
    tree = LowRankSegmentTree(rng.standard_normal((n, n)), deltas)

    plan = tree._mixed_strategy

    X = rng.standard_normal((n, 1))
    tree.query(63, X)  # cached
    assert plan([63] * 32) == "grouped"
    assert plan([1, 2] * 16) == "masked"
    assert plan([int(v) for v in rng.integers(0, K + 1, 256)]) == "segmented"


def test_strategy_name_is_checked():
    tree = LowRankSegmentTree(np.eye(2), [(np.ones((2, 1)), np.ones((2, 1)))])
    with pytest.raises(ValueError, match="strategy"):
        tree._mixed_query([0, 1], np.ones((2, 2)), "gather")


def test_whole_batch_answers_for_one_state_under_concurrent_updates():
    """A writer toggles one leaf between two values; every mixed answer matches one state, all columns."""
    import threading

    rng = np.random.default_rng(3)
    m, n, K = 5, 4, 8
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, 2)), rng.standard_normal((n, 2))) for _ in range(K)]
    alt = (rng.standard_normal((m, 2)), rng.standard_normal((n, 2)))
    states = []
    for leaf3 in (deltas[2], alt):
        ds = deltas[:2] + [leaf3] + deltas[3:]
        prefixes = [base]
        for U, V in ds:
            prefixes.append(prefixes[-1] + U @ V.T)
        states.append(prefixes)
    tree = LowRankSegmentTree(base, deltas)
    orders = [0, 8, 3, 2, 5, 3, 7, 1]
    X = rng.standard_normal((n, len(orders)))
    refs = [_reference(p, orders, X) for p in states]
    stop, failures = threading.Event(), []

    def writer():
        i = 0
        while not stop.is_set():
            tree.update(3, alt if i % 2 == 0 else deltas[2])
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for rep in range(150):
            Y = tree._mixed_query(orders, X, STRATEGIES[rep % 3])
            if not any(np.allclose(Y, ref, rtol=1e-10, atol=1e-10) for ref in refs):
                failures.append(rep)
    finally:
        stop.set()
        t.join()
    assert failures == []
    tree._check()


@given(k=st.integers(0, 8), b=st.integers(1, 6), calls=st.integers(1, 12), seed=st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_a_batch_of_one_order_is_the_plain_query(k, b, calls, seed):
    """Every column at the same order: the same answers and the same cache state as ``query(k, X)``.

    64×64 with rank-8 corrections: the nodes of 4 leaves are dense, so a cold
    query applies its nodes directly (no cache entry) and a hot one folds.
    Two identical trees, one queried with the order per column, one with the
    plain order, call by call (cold, then cached, then folded).
    """
    rng = np.random.default_rng(seed)
    m = n = 64
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, 8)), rng.standard_normal((n, 8))) for _ in range(8)]
    mixed, plain = LowRankSegmentTree(base, deltas), LowRankSegmentTree(base, deltas)
    W = base + sum(U @ V.T for U, V in deltas[:k])
    for _ in range(calls):
        X = rng.standard_normal((n, b))
        got, want = mixed.query([k] * b, X), plain.query(k, X)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got, W @ X, rtol=0, atol=1e-11 * np.abs(W).sum(1).max() * np.abs(X).max())
        assert mixed.cache_nbytes == plain.cache_nbytes
    mixed._check()


@given(
    orders=st.lists(st.integers(0, 8), min_size=2, max_size=12),
    calls=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=25, deadline=None)
def test_grouped_batch_caches_like_per_order_queries(orders, calls, seed):
    """The grouped strategy: answers against dense, and the cache filled as one ``query`` per distinct order.

    A cold order applies its nodes directly (no entry), its second use builds
    the entry, as a cold ``query(k, X)`` does.
    """
    rng = np.random.default_rng(seed)
    m = n = 64
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, 8)), rng.standard_normal((n, 8))) for _ in range(8)]
    mixed, plain = LowRankSegmentTree(base, deltas), LowRankSegmentTree(base, deltas)
    W = [base]
    for U, V in deltas:
        W.append(W[-1] + U @ V.T)
    ks = np.array(orders)
    for _ in range(calls):
        X = rng.standard_normal((n, len(orders)))
        got = mixed._mixed_query(ks, X, strategy="grouped")
        for k in sorted(set(orders)):
            cols = np.flatnonzero(ks == k)
            want = W[k] @ X[:, cols]
            np.testing.assert_allclose(got[:, cols], want, rtol=0, atol=1e-11 * np.abs(W[k]).sum(1).max())
            plain.query(k, X[:, cols])
        assert mixed.cache_nbytes == plain.cache_nbytes
        assert sorted(mixed._cache) == sorted(plain._cache)
    mixed._check()
