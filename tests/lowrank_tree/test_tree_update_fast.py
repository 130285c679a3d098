"""Incremental updates of the tree's ancestors (``old + A Bᵀ``) against dense references and rebuilds."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowrank_tree import LowRankSegmentTree
from lowrank_tree._portable import update_node
from lowrank_tree.backends import namespace_for
from lowrank_tree.factor import recompress
from lowrank_tree.tree import _DRIFT_LIMIT, _TAIL_FRACTION


def _pair(rng, m, n, r, scale=1.0):
    return rng.standard_normal((m, r)) * scale, rng.standard_normal((n, r))


def _dense_orders(base, deltas):
    out = [base]
    for U, V in deltas:
        out.append(out[-1] + U @ V.T)
    return np.stack(out)


def _size(node, host=np.asarray):
    """``‖node‖_F``, computed on host NumPy copies."""
    if node.dense:
        return float(np.linalg.norm(host(node.D)))
    return float(np.linalg.norm(host(node.U) @ host(node.V).T))


def _all_nodes(tree):
    return [node for level in tree._levels[1:] for node in level if node is not tree._empty]


@pytest.mark.parametrize("m, n, K, r", [(12, 10, 16, 3), (9, 14, 13, 2)])
def test_many_random_updates_match_dense_and_rebuild(lib, m, n, K, r):
    """200 random updates and appends: every order against the dense sum and a freshly built tree."""
    rng = np.random.default_rng(7 + m)
    base = rng.standard_normal((m, n))
    deltas = [_pair(rng, m, n, r) for _ in range(K)]
    tree = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], **lib.kw)
    X = rng.standard_normal((n, 3))
    incremental = 0
    for step in range(200):
        if step % 50 == 49:
            U, V = _pair(rng, m, n, int(rng.integers(0, r + 1)))
            deltas.append((U, V))
            tree.append((lib.asarray(U), lib.asarray(V)))
        else:
            i = int(rng.integers(1, len(deltas) + 1))
            # mixed scales and ranks, rank 0 included
            U, V = _pair(rng, m, n, int(rng.integers(0, r + 1)), scale=10.0 ** rng.integers(-3, 4))
            deltas[i - 1] = (U, V)
            tree.update(i, (lib.asarray(U), lib.asarray(V)))
        incremental += sum(node.drift > 0 for node in _all_nodes(tree))
        if step % 25 == 0:
            tree._check()
    tree._check()
    assert incremental > 0, "the incremental path was never taken"
    budget = tree._drift_budget()
    assert all(node.drift <= budget * _size(node, lib.to_numpy) * (1 + 1e-9) for node in _all_nodes(tree))
    ref = _dense_orders(base, deltas) @ X
    rebuilt = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], **lib.kw)
    got = lib.to_numpy(tree.all_orders(lib.asarray(X)))
    fresh = lib.to_numpy(rebuilt.all_orders(lib.asarray(X)))
    scale = max(1.0, float(np.abs(ref).max()))
    eps = np.finfo(np.float64).eps
    assert np.abs(got - ref).max() <= 1e4 * eps * scale
    assert np.abs(got - fresh).max() <= 1e4 * eps * scale
    for k in range(len(deltas) + 1):
        q = lib.to_numpy(tree.query(k, lib.asarray(X)))  # reads the updated internal nodes
        assert np.abs(q - ref[k]).max() <= 1e4 * eps * scale
        assert np.abs(q - lib.to_numpy(rebuilt.query(k, lib.asarray(X)))).max() <= 1e4 * eps * scale
        np.testing.assert_allclose(
            lib.to_numpy(tree.matrix(k)), _dense_orders(base, deltas[:k])[-1], atol=1e4 * eps * scale, rtol=0
        )


def test_dense_ancestor_drift_is_bounded():
    """A dense ancestor updated many times stays within its rounding budget of the exact sum of its children."""
    rng = np.random.default_rng(3)
    m = n = 8
    r = 1
    deltas = [_pair(rng, m, n, r) for _ in range(8)]  # level 2 (rank 4) and up are dense, level 1 is not
    tree = LowRankSegmentTree(np.zeros((m, n)), deltas)
    assert tree._levels[2][0].dense and not tree._levels[1][0].dense
    incremental = refreshed = 0
    eps = np.finfo(float).eps
    for step in range(200):
        i = int(rng.integers(1, 5))
        # mostly similar sizes, sometimes a large term replaced by a small one (cancellation)
        deltas[i - 1] = _pair(rng, m, n, r, scale=10.0 ** (3 * (step % 7 == 0) - 3 * (step % 7 == 1)))
        tree.update(i, deltas[i - 1])
        node = tree._levels[2][0]
        exact = sum(U @ V.T for U, V in deltas[:4])
        size = np.linalg.norm(exact)
        assert tree._drift_budget() == _DRIFT_LIMIT  # small matrices: the smallest budget
        assert node.drift <= _DRIFT_LIMIT * np.linalg.norm(node.D) * (1 + 1e-12)
        # the carried rounding is what the budget says, relative to the node's current size
        assert (
            np.linalg.norm(node.D - exact)
            <= 4 * _DRIFT_LIMIT * eps * size
            + 8 * r * eps * np.abs(np.stack([U @ V.T for U, V in deltas[:4]])).sum(0).max() * m
        )
        incremental += node.drift > 0
        refreshed += node.drift == 0
    assert incremental > 50 and refreshed > 5
    tree._check()


@given(
    m=st.integers(2, 12),
    n=st.integers(2, 12),
    r=st.integers(1, 5),
    p=st.integers(0, 4),
    complex_=st.booleans(),
    seed=st.integers(0, 2**16),
    scale_exp=st.integers(-150, 150),
)
def test_update_node_matches_dense(m, n, r, p, complex_, seed, scale_exp):
    """The portable ``update_node`` equals the dense ``U Vᵀ + A Bᵀ`` (numpy and array_api_strict)."""
    r = min(r, min(m, n) - 1)
    p = min(p, min(m, n) - r)
    rng = np.random.default_rng(seed)
    dtype = np.complex128 if complex_ else np.float64

    def rand(*shape):
        x = rng.standard_normal(shape)
        return (x + 1j * rng.standard_normal(shape)).astype(dtype) if complex_ else x

    scale = 2.0**scale_exp
    U0, V0 = rand(m, r) * scale, rand(n, r)
    U, V, _ = recompress(U0, V0, namespace_for("numpy"))  # a recompressed node: orthogonal columns
    A, B = rand(m, p) * scale, rand(n, p)
    want = U @ V.T + A @ B.T
    for name in ("numpy", "array_api_strict"):
        xp = namespace_for(name)
        node = update_node(*(xp.asarray(a) for a in (U, V, A, B)), float(8 * max(m, n) * np.finfo(float).eps), xp)
        got = np.asarray(node.D) if node.D is not None else np.asarray(node.U) @ np.asarray(node.V).T
        ref = max(np.abs(U) @ np.abs(V).T + np.abs(A) @ np.abs(B).T, key=lambda a: a.max()).max()
        assert np.abs(got - want).max() <= 200 * max(m, n) * np.finfo(float).eps * ref
        if node.D is None:
            Vn = np.asarray(node.V)
            np.testing.assert_allclose(Vn.conj().T @ Vn, np.eye(node.rank), atol=1e-12)
            assert node.rank <= r + p


def test_failed_update_leaves_tree_unchanged(monkeypatch):
    """An error in the incremental kernel (after some new nodes exist) changes nothing."""
    rng = np.random.default_rng(5)
    m, n, r, K = 40, 30, 2, 8
    deltas = [_pair(rng, m, n, r) for _ in range(K)]
    tree = LowRankSegmentTree(rng.standard_normal((m, n)), deltas)
    X = rng.standard_normal((n, 2))
    before = tree.all_orders(X)
    levels = [list(level) for level in tree._levels]
    version = tree._version

    class Failing:
        def __init__(self, ops):
            self._ops = ops

        def __getattr__(self, name):
            if name == "update_node":

                def fail(*args):
                    raise FloatingPointError("injected")

                return fail
            return getattr(self._ops, name)

    monkeypatch.setattr(tree, "_ops", Failing(tree._ops))
    with pytest.raises(FloatingPointError):
        tree.update(3, _pair(rng, m, n, r))
    assert tree._version == version
    assert all(a is b for la, lb in zip(levels, tree._levels) for a, b in zip(la, lb))
    np.testing.assert_array_equal(tree.all_orders(X), before)


def test_lossy_rtol_merges_children_instead():
    """With a lossy rtol no low-rank node is updated incrementally (truncations would add up)."""
    rng = np.random.default_rng(11)
    m, n, r, K = 30, 30, 2, 8
    deltas = [_pair(rng, m, n, r) for _ in range(K)]
    tree = LowRankSegmentTree(np.zeros((m, n)), deltas, rtol=1e-6)
    for _ in range(20):
        i = int(rng.integers(1, K + 1))
        deltas[i - 1] = _pair(rng, m, n, r)
        tree.update(i, deltas[i - 1])
        assert all(node.drift == 0 for node in _all_nodes(tree) if not node.dense)
    tree._check()
    ref = _dense_orders(np.zeros((m, n)), deltas)
    np.testing.assert_allclose(tree.matrix(K), ref[-1], atol=1e-4 * np.abs(ref[-1]).max())


def _tail_seen(tree):
    return any(node.tail for node in _all_nodes(tree))


def test_thousand_random_updates_with_appended_columns_match_dense_and_rebuild(lib):
    """1,000 random updates (mixed scales, rank 0 included) where ancestors defer their recompression.

    m = 64, n = 48, r = 1: the ancestors of rank 8 and 16 take changes by
    appending columns, which a later change recompresses; every order is
    checked against the dense sum and against a tree rebuilt from the same
    corrections, through the internal nodes (query, matrix) and the leaves
    (all_orders).
    """
    rng = np.random.default_rng(2024)
    m, n, r, K = 64, 48, 1, 32
    base = rng.standard_normal((m, n))
    deltas = [_pair(rng, m, n, r) for _ in range(K)]
    tree = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], **lib.kw)
    tails = recompressed = 0
    for step in range(1000 if lib.name == "numpy" else 250):  # the other backends: the same code paths
        i = int(rng.integers(1, K + 1))
        U, V = _pair(rng, m, n, int(rng.integers(0, r + 1)), scale=10.0 ** rng.integers(-3, 4))
        deltas[i - 1] = (U, V)
        had_tail = {(h, j) for h, level in enumerate(tree._levels) for j, node in enumerate(level) if node.tail}
        tree.update(i, (lib.asarray(U), lib.asarray(V)))
        tails += _tail_seen(tree)
        # drift > 0 and no tail: recompressed from the appended columns, not merged afresh
        recompressed += any(tree._levels[h][j].orth and tree._levels[h][j].drift > 0 for h, j in had_tail)
        if step % 200 == 0:
            tree._check()
    tree._check()
    assert tails > 50, "ancestors never deferred a recompression"
    assert recompressed > 5, "no appended columns were ever recompressed"
    budget = tree._drift_budget()
    assert all(node.drift <= budget * _size(node, lib.to_numpy) * (1 + 1e-9) for node in _all_nodes(tree))
    X = rng.standard_normal((n, 4))
    ref = _dense_orders(base, deltas) @ X
    rebuilt = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], **lib.kw)
    scale = float(np.abs(ref).max())
    eps = np.finfo(np.float64).eps
    got = lib.to_numpy(tree.all_orders(lib.asarray(X)))
    assert np.abs(got - ref).max() <= 1e3 * eps * scale
    for k in range(K + 1):
        q = lib.to_numpy(tree.query(k, lib.asarray(X)))
        q_fresh = lib.to_numpy(rebuilt.query(k, lib.asarray(X)))
        assert np.abs(q - ref[k]).max() <= 1e3 * eps * scale
        assert np.abs(q - q_fresh).max() <= 1e3 * eps * scale
    W = _dense_orders(base, deltas)[-1]
    np.testing.assert_allclose(lib.to_numpy(tree.matrix(K)), W, rtol=0, atol=1e3 * eps * np.abs(W).max())


def test_change_cancelling_a_node_with_appended_columns_is_exact_at_the_new_scale():
    """Large corrections replaced one by one by tiny ones: the result is accurate at the tiny scale.

    Appending a change is exact, but the node's earlier rounding is relative to
    its earlier (large) size; the lower bound of the node's norm makes such a
    node recompute instead of carrying that rounding into a much smaller sum.
    """
    rng = np.random.default_rng(9)
    m = n = 64
    K, r = 16, 1
    big = [_pair(rng, m, n, r, scale=1e6) for _ in range(K)]
    tree = LowRankSegmentTree(np.zeros((m, n)), big)
    deltas = list(big)
    saw_tail = False
    for _ in range(3):  # update every correction a few times at the large scale: tails and drift
        for i in range(1, K + 1):
            deltas[i - 1] = _pair(rng, m, n, r, scale=1e6)
            tree.update(i, deltas[i - 1])
            saw_tail |= _tail_seen(tree)
    assert saw_tail
    for i in range(1, K + 1):
        deltas[i - 1] = _pair(rng, m, n, r, scale=1e-6)
        tree.update(i, deltas[i - 1])
    tree._check()
    W = _dense_orders(np.zeros((m, n)), deltas)
    eps = np.finfo(float).eps
    for k in range(K + 1):
        got = tree.matrix(k)
        assert np.abs(got - W[k]).max() <= 1e3 * eps * max(np.abs(W[k]).max(), 1e-300), k


@given(
    m=st.integers(1, 40),
    n=st.integers(1, 40),
    r=st.integers(0, 3),
    K=st.integers(1, 24),
    updates=st.integers(1, 30),
    seed=st.integers(0, 2**16),
    scale_exp=st.integers(-300, 300),
)
def test_random_updates_match_dense_and_rebuild(m, n, r, K, updates, seed, scale_exp):
    """Shapes, ranks, orders and scales over the dtype's range: updates and appends against the dense sum."""
    rng = np.random.default_rng(seed)
    scale = 2.0**scale_exp

    def pair():
        U, V = _pair(rng, m, n, int(rng.integers(0, r + 1)))
        return U * scale, V

    base = rng.standard_normal((m, n)) * scale
    deltas = [pair() for _ in range(K)]
    tree = LowRankSegmentTree(base, deltas)
    for step in range(updates):
        if step % 7 == 6:
            deltas.append(pair())
            tree.append(deltas[-1])
        else:
            i = int(rng.integers(1, len(deltas) + 1))
            deltas[i - 1] = pair()
            tree.update(i, deltas[i - 1])
    tree._check()
    W = _dense_orders(base, deltas)
    terms = np.abs(base) + sum(np.abs(U) @ np.abs(V).T for U, V in deltas)
    eps = np.finfo(float).eps
    rebuilt = LowRankSegmentTree(base, deltas)
    for k in (0, len(deltas) // 2, len(deltas)):
        got = tree.matrix(k)
        assert np.all(np.abs(got - W[k]) <= 1e3 * max(m, n) * eps * terms.max()), k
        assert np.all(np.abs(got - rebuilt.matrix(k)) <= 1e3 * max(m, n) * eps * terms.max()), k


def test_tail_stays_within_its_fraction_of_the_node():
    """A node never carries more appended columns than a quarter of its recompressed rank."""
    rng = np.random.default_rng(4)
    m, n, r, K = 96, 80, 1, 32
    deltas = [_pair(rng, m, n, r) for _ in range(K)]
    tree = LowRankSegmentTree(rng.standard_normal((m, n)), deltas)
    widest = 0
    for _ in range(120):
        i = int(rng.integers(1, K + 1))
        tree.update(i, _pair(rng, m, n, r))
        for node in _all_nodes(tree):
            if node.tail:
                assert node.tail <= (node.rank - node.tail) // _TAIL_FRACTION
                assert node.rank * (m + n) < m * n
                widest = max(widest, node.tail)
    assert widest >= 4  # two changes of 2 columns deferred at once
