"""LowRankSegmentTree against dense NumPy references."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowrank_tree import LowRank, LowRankSegmentTree

TOL64 = 1e-10
#: Backends on NumPy arrays: the tests below that build from NumPy data run on both.
NUMPY_BACKENDS = ["numpy", "numba"]


@st.composite
def families(draw, max_K=9, max_dim=7, max_rank=3, min_K=0):
    """A random base, corrections and batch; ranks may be 0, K may be 0 (unless ``min_K > 0``)."""
    K = draw(st.integers(min_K, max_K))
    m = draw(st.integers(1, max_dim))
    n = draw(st.integers(1, max_dim))
    ranks = draw(st.lists(st.integers(0, max_rank), min_size=K, max_size=K))
    b = draw(st.integers(1, 4))
    vector = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, r)), rng.standard_normal((n, r))) for r in ranks]
    X = rng.standard_normal(n) if vector else rng.standard_normal((n, b))
    return base, deltas, X, rng


def dense_orders(base, deltas):
    """W_0..W_K materialised with NumPy (the independent reference)."""
    W = [np.asarray(base).astype(np.result_type(base, np.float64))]
    for U, V in deltas:
        W.append(W[-1] + np.asarray(U) @ np.asarray(V).T)
    return W


def build(lib, base, deltas, **kw):
    return LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], **lib.kw, **kw)


@given(families())
def test_query_every_order(lib, rel_err, fam):
    base, deltas, X, _ = fam
    tree = build(lib, base, deltas)
    W = dense_orders(base, deltas)
    Xl = lib.asarray(X)
    for k in range(len(deltas) + 1):
        Y = lib.to_numpy(tree.query(k, Xl))
        assert Y.shape == (W[k] @ X).shape
        assert rel_err(Y, W[k] @ X) <= TOL64


@given(families())
def test_range_query_every_interval(lib, rel_err, fam):
    base, deltas, X, _ = fam
    tree = build(lib, base, deltas)
    Xl = lib.asarray(X)
    K = len(deltas)
    for first in range(1, K + 1):
        for last in range(first, K + 1):
            ref = sum(U @ V.T for U, V in deltas[first - 1 : last]) @ X
            got = tree.range_query(first=first, last=last, X=Xl)
            assert rel_err(lib.to_numpy(got), ref) <= TOL64


@given(families())
def test_all_orders_matches_each_order(lib, rel_err, fam):
    base, deltas, X, _ = fam
    tree = build(lib, base, deltas)
    W = dense_orders(base, deltas)
    out = lib.to_numpy(tree.all_orders(lib.asarray(X)))
    ref = np.stack([Wk @ X for Wk in W])
    assert out.shape == ref.shape
    assert rel_err(out, ref) <= TOL64


@given(families(), st.data())
def test_mixed_order_batch(lib, rel_err, fam, data):
    base, deltas, X, rng = fam
    if X.ndim == 1:
        X = X[:, None]
    K, b = len(deltas), X.shape[1]
    ks = np.array(data.draw(st.lists(st.integers(0, K), min_size=b, max_size=b)))
    tree = build(lib, base, deltas)
    W = dense_orders(base, deltas)
    ref = np.stack([W[k] @ X[:, j] for j, k in enumerate(ks)], axis=1)
    out = lib.to_numpy(tree.query(lib.asarray(ks), lib.asarray(X)))
    assert rel_err(out, ref) <= TOL64
    # a plain Python list of orders works too
    assert rel_err(lib.to_numpy(tree.query(ks.tolist(), lib.asarray(X))), ref) <= TOL64


@given(families(min_K=1), st.data())
def test_update_then_query(lib, rel_err, fam, data):
    # K >= 1 in every example (there is nothing to update at K = 0; that
    # refusal is tested with the other bad inputs)
    base, deltas, X, rng = fam
    K = len(deltas)
    assert K >= 1
    tree = build(lib, base, deltas)
    tree.all_orders(lib.asarray(X))  # fill the caches that update must invalidate
    for _ in range(3):
        i = data.draw(st.integers(1, K))
        r = data.draw(st.integers(0, 3))
        new = (rng.standard_normal((base.shape[0], r)), rng.standard_normal((base.shape[1], r)))
        tree.query(K, lib.asarray(X))
        tree.update(i, (lib.asarray(new[0]), lib.asarray(new[1])))
        deltas[i - 1] = new
        W = dense_orders(base, deltas)
        for k in range(K + 1):
            assert rel_err(lib.to_numpy(tree.query(k, lib.asarray(X))), W[k] @ X) <= TOL64
        assert rel_err(lib.to_numpy(tree.all_orders(lib.asarray(X))), np.stack([w @ X for w in W])) <= TOL64


@given(families(max_K=3), st.integers(1, 12))
def test_append_then_query(lib, rel_err, fam, extra):
    base, deltas, X, rng = fam
    tree = build(lib, base, deltas)
    m, n = base.shape
    for _ in range(extra):
        r = int(rng.integers(0, 3))
        new = (rng.standard_normal((m, r)), rng.standard_normal((n, r)))
        tree.query(tree.max_order, lib.asarray(X))  # cached prefix must stay valid
        tree.append((lib.asarray(new[0]), lib.asarray(new[1])))
        deltas.append(new)
    assert tree.max_order == len(deltas)
    W = dense_orders(base, deltas)
    for k in range(len(deltas) + 1):
        assert rel_err(lib.to_numpy(tree.query(k, lib.asarray(X))), W[k] @ X) <= TOL64
    assert rel_err(lib.to_numpy(tree.all_orders(lib.asarray(X))), np.stack([w @ X for w in W])) <= TOL64


@given(families(max_K=20, max_dim=12, max_rank=4))
def test_query_inner_dimension_bound(fam):
    base, deltas, _, _ = fam
    tree = LowRankSegmentTree(base, deltas)
    K = len(deltas)
    m, n = base.shape
    depth = max(1, math.ceil(math.log2(K))) if K else 0
    for k in range(K + 1):
        cost = tree.query_cost(k)
        canonical = tree.canonical_nodes(k)
        assert len(canonical) <= depth
        assert cost["inner_dim"] <= sum(len(V.T) for _, V in deltas[:k])
        # every canonical node, factored or dense, costs at most min(m, n) columns
        assert cost["inner_dim"] + cost["dense_nodes"] * min(m, n) <= min(m, n) * depth
        assert all(c.rank <= min(m, n) for c in canonical)


@pytest.mark.parametrize("backend", NUMPY_BACKENDS)
@given(st.integers(2, 16), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_shared_subspaces_compress_to_rank_of_dense_sum(backend, K, s, seed):
    rng = np.random.default_rng(seed)
    m, n = 40, 30
    A, B = rng.standard_normal((m, s)), rng.standard_normal((n, s))
    # every correction lives in the same s-dimensional column and row spaces
    deltas = [(A @ rng.standard_normal((s, 2)), B @ rng.standard_normal((s, 2))) for _ in range(K)]
    tree = LowRankSegmentTree(np.zeros((m, n)), deltas, backend=backend)
    for node in tree.nodes():
        if node.first == node.last:  # a leaf, or a node that only passes one leaf up
            continue
        terms = deltas[node.first - 1 : node.last]
        dense_sum = sum(U @ V.T for U, V in terms)
        # the terms may cancel, so rounding noise scales with the terms, not with the sum
        scale = sum(np.linalg.norm(U, 2) * np.linalg.norm(V, 2) for U, V in terms)
        reference = np.linalg.matrix_rank(dense_sum, tol=max(m, n) * np.finfo(float).eps * scale)
        assert not node.dense
        assert node.rank == reference <= s


@pytest.mark.parametrize("backend", NUMPY_BACKENDS)
def test_independent_corrections_keep_full_rank_until_dense(backend):
    rng = np.random.default_rng(0)
    m = n = 16
    deltas = [(rng.standard_normal((m, 2)), rng.standard_normal((n, 2))) for _ in range(8)]
    tree = LowRankSegmentTree(np.zeros((m, n)), deltas, backend=backend)
    by_level = {}
    for node in tree.nodes():
        by_level.setdefault(node.level, set()).add((node.rank, node.dense))
    assert by_level[1] == {(4, False)}
    # rank 8 would need 8 * 32 = 256 >= 16 * 16 numbers: kept dense
    assert by_level[2] == {(8, True)}
    assert by_level[3] == {(16, True)}


@pytest.mark.parametrize("backend", NUMPY_BACKENDS)
def test_memory_within_log_bound(backend):
    rng = np.random.default_rng(1)
    m = n = 64
    K, r = 100, 2
    deltas = [(rng.standard_normal((m, r)), rng.standard_normal((n, r))) for _ in range(K)]
    tree = LowRankSegmentTree(rng.standard_normal((m, n)), deltas, backend=backend)
    raw = sum(U.nbytes + V.nbytes for U, V in deltas)
    assert tree.nbytes <= (math.ceil(math.log2(K)) + 1) * raw + m * n * 8
    assert tree.nbytes >= raw + m * n * 8


@pytest.mark.parametrize(
    "dtype,tol", [(np.float32, 1e-4), (np.float64, TOL64), (np.complex64, 1e-4), (np.complex128, TOL64)]
)
def test_dtypes(lib, rel_err, dtype, tol):
    rng = np.random.default_rng(3)
    m, n, K = 9, 7, 6

    def draw(*shape):
        z = rng.standard_normal(shape)
        if np.dtype(dtype).kind == "c":
            z = z + 1j * rng.standard_normal(shape)
        return z.astype(dtype)

    base = draw(m, n)
    deltas = [(draw(m, 2), draw(n, 2)) for _ in range(K)]
    tree = build(lib, base, deltas)
    X = draw(n, 3)
    W = dense_orders(base.astype(np.complex128), deltas)
    for k in range(K + 1):
        Y = lib.to_numpy(tree.query(k, lib.asarray(X)))
        assert Y.dtype == dtype
        assert rel_err(Y, W[k] @ X) <= tol
    assert lib.to_numpy(tree.all_orders(lib.asarray(X))).dtype == dtype


def test_operator_matches_dense(rel_err):
    rng = np.random.default_rng(4)
    m, n = 12, 9
    base = rng.standard_normal((m, n)) + 1j * rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, 2)) + 1j, rng.standard_normal((n, 2))) for _ in range(5)]
    tree = LowRankSegmentTree(base, deltas)
    W = dense_orders(base, deltas)
    for k in (0, 3, 5):
        op = tree.operator(k)
        x, y = rng.standard_normal(n), rng.standard_normal(m)
        assert op.shape == (m, n)
        assert rel_err(op.matvec(x), W[k] @ x) <= TOL64
        assert rel_err(op.rmatvec(y), W[k].conj().T @ y) <= TOL64
        assert rel_err(op.matmat(np.eye(n)), W[k]) <= TOL64


def test_matrix_and_corrections_roundtrip(rel_err):
    rng = np.random.default_rng(5)
    deltas = [(rng.standard_normal((5, 1)), rng.standard_normal((4, 1))) for _ in range(3)]
    tree = LowRankSegmentTree(np.ones((5, 4)), deltas)
    W = dense_orders(np.ones((5, 4)), deltas)
    for k in range(4):
        assert rel_err(tree.matrix(k), W[k]) <= TOL64
    for (U, V), leaf in zip(deltas, tree.corrections):
        assert isinstance(leaf, LowRank)
        np.testing.assert_array_equal(leaf.U, U)
        np.testing.assert_array_equal(leaf.V, V)
    assert tree.ranks == [1, 1, 1]


def test_dense_and_lowrank_corrections_accepted(rel_err):
    rng = np.random.default_rng(6)
    m, n = 6, 5
    D = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
    L = LowRank(rng.standard_normal((m, 1)), rng.standard_normal((n, 1)))
    wide = (rng.standard_normal((m, 9)), rng.standard_normal((n, 9)))
    tree = LowRankSegmentTree(np.zeros((m, n)), [D, L, wide])
    assert tree.ranks == [2, 1, 5]  # the dense one factorised, the too-wide one recompressed
    X = rng.standard_normal((n, 2))
    ref = (D + L.to_dense() + wide[0] @ wide[1].T) @ X
    assert rel_err(tree.query(3, X), ref) <= TOL64


def test_cache_can_be_disabled_and_is_bounded(rel_err):
    rng = np.random.default_rng(7)
    deltas = [(rng.standard_normal((8, 1)), rng.standard_normal((8, 1))) for _ in range(10)]
    X = rng.standard_normal((8, 2))
    W = dense_orders(np.eye(8), deltas)
    off = LowRankSegmentTree(np.eye(8), deltas, cache_bytes=0)
    small = LowRankSegmentTree(np.eye(8), deltas, cache_bytes=600)
    for k in range(11):
        assert rel_err(off.query(k, X), W[k] @ X) <= TOL64
        assert rel_err(small.query(k, X), W[k] @ X) <= TOL64
    assert off.cache_nbytes == 0
    assert small.cache_nbytes <= 600
    small.all_orders(X)
    small.clear_cache()
    assert small.cache_nbytes == 0
    assert rel_err(small.query(10, X), W[10] @ X) <= TOL64


def test_lossy_tolerance_bounds_error(rel_err):
    rng = np.random.default_rng(8)
    m = n = 30
    A = rng.standard_normal((m, 3))
    deltas = [(A + 1e-9 * rng.standard_normal((m, 3)), rng.standard_normal((n, 3))) for _ in range(8)]
    lossless = LowRankSegmentTree(np.zeros((m, n)), deltas)
    lossy = LowRankSegmentTree(np.zeros((m, n)), deltas, rtol=1e-6)
    assert max(nd.rank for nd in lossy.nodes()) < max(nd.rank for nd in lossless.nodes())
    W = dense_orders(np.zeros((m, n)), deltas)
    assert rel_err(lossy.matrix(8), W[8]) <= 1e-5


# ----------------------------------------------------------------------------
# bad input, and failed modifications leave the tree unchanged
# ----------------------------------------------------------------------------
def snapshot(tree, X):
    return (
        tree.max_order,
        tree.nodes(),
        [(c.U.copy(), c.V.copy()) for c in tree.corrections],
        tree.all_orders(X).copy(),
    )


def assert_same(a, b):
    assert a[0] == b[0]
    assert [n[:6] for n in a[1]] == [n[:6] for n in b[1]]
    for (U1, V1), (U2, V2) in zip(a[2], b[2]):
        np.testing.assert_array_equal(U1, U2)
        np.testing.assert_array_equal(V1, V2)
    np.testing.assert_array_equal(a[3], b[3])


@pytest.fixture(params=NUMPY_BACKENDS)
def small_tree(request):
    rng = np.random.default_rng(9)
    deltas = [(rng.standard_normal((4, 1)), rng.standard_normal((3, 1))) for _ in range(5)]
    return (LowRankSegmentTree(rng.standard_normal((4, 3)), deltas, backend=request.param), rng.standard_normal((3, 2)))


@pytest.mark.parametrize(
    "bad,exc,match",
    [
        ((np.ones((5, 1)), np.ones((3, 1))), ValueError, "4x3 correction"),
        ((np.ones((4, 1)), np.ones((3, 2))), ValueError, "same number of columns"),
        ((np.full((4, 1), np.nan), np.ones((3, 1))), ValueError, "NaN or Inf"),
        ((np.ones((4, 1)), np.full((3, 1), np.inf)), ValueError, "NaN or Inf"),
        ((np.ones((4, 1)) * 1j, np.ones((3, 1))), TypeError, "complex"),
        ((np.ones((4, 1), dtype=bool), np.ones((3, 1))), TypeError, "dtype"),
        (np.ones((3, 3)), ValueError, r"shape \(4, 3\)"),
        ("abc", TypeError, "dtype"),
    ],
)
def test_failed_update_and_append_leave_tree_unchanged(small_tree, bad, exc, match):
    tree, X = small_tree
    before = snapshot(tree, X)
    with pytest.raises(exc, match=match):
        tree.update(2, bad)
    assert_same(before, snapshot(tree, X))
    with pytest.raises(exc, match=match):
        tree.append(bad)
    assert_same(before, snapshot(tree, X))


def test_mixed_libraries_rejected(small_tree):
    import array_api_strict as xps

    tree, X = small_tree
    before = snapshot(tree, X)
    with pytest.raises(TypeError, match="array_api_strict"):
        tree.update(1, (xps.ones((4, 1)), xps.ones((3, 1))))
    with pytest.raises(TypeError, match="array_api_strict"):
        tree.query(1, xps.ones((3, 2)))
    with pytest.raises(TypeError, match="mixed array libraries"):
        LowRankSegmentTree(np.ones((4, 3)), [(xps.ones((4, 1)), xps.ones((3, 1)))])
    assert_same(before, snapshot(tree, X))


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda t, X: t.query(6, X), ValueError, r"k must be in \[0, 5\]"),
        (lambda t, X: t.query(-1, X), ValueError, r"k must be in"),
        (lambda t, X: t.query(1.5, X), TypeError, "k must be an integer"),
        (lambda t, X: t.query(1, X[:2]), ValueError, "X must have 3 rows"),
        (lambda t, X: t.query(1, np.full((3, 2), np.nan)), ValueError, "X contains NaN"),
        (lambda t, X: t.query(1, np.ones((3, 2, 2))), ValueError, "X must be a 2-D"),
        (lambda t, X: t.query([0, 1, 2], X), ValueError, r"k must be an int or have shape \(2,\)"),
        (lambda t, X: t.query([0, 9], X), ValueError, r"k must be in \[0, 5\]"),
        (lambda t, X: t.query(np.array([0.5, 1.0]), X), TypeError, "integers"),
        (lambda t, X: t.range_query(0, 2, X), ValueError, r"first must be in \[1, 5\]"),
        (lambda t, X: t.range_query(3, 2, X), ValueError, r"last must be in \[3, 5\]"),
        (lambda t, X: t.update(0, (np.ones((4, 1)), np.ones((3, 1)))), ValueError, r"i must be in \[1, 5\]"),
        (lambda t, X: t.operator(7), ValueError, "k must be in"),
    ],
)
def test_bad_arguments(small_tree, call, exc, match):
    tree, X = small_tree
    with pytest.raises(exc, match=match):
        call(tree, X)


@pytest.mark.parametrize(
    "base,exc,match",
    [
        (np.ones(3), ValueError, "base must be a 2-D"),
        (np.zeros((0, 3)), ValueError, "at least one row"),
        (np.array([[np.nan]]), ValueError, "base contains NaN"),
        (np.array([["a"]]), TypeError, "base must have a real or complex"),
    ],
)
def test_bad_base(base, exc, match):
    with pytest.raises(exc, match=match):
        LowRankSegmentTree(base)


def test_empty_tree_and_growth_from_zero(rel_err):
    rng = np.random.default_rng(10)
    base = rng.standard_normal((3, 4))
    tree = LowRankSegmentTree(base)
    X = rng.standard_normal(4)
    assert tree.max_order == 0
    assert rel_err(tree.query(0, X), base @ X) <= TOL64
    assert tree.all_orders(X).shape == (1, 3)
    with pytest.raises(ValueError, match=r"i must be in \[1, 0\]"):  # nothing to update yet
        tree.update(1, (np.ones((3, 1)), np.ones((4, 1))))
    W = base.copy()
    for k in range(1, 18):
        U, V = rng.standard_normal((3, 1)), rng.standard_normal((4, 1))
        tree.append(LowRank(U, V))
        W = W + U @ V.T
        assert rel_err(tree.query(k, X), W @ X) <= TOL64
