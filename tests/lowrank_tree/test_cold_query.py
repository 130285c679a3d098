"""Cold queries: the first use of an order may apply its nodes one by one; the entry comes on the second use."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank_tree import LowRankSegmentTree
from lowrank_tree.tree import _prefix_index


def _family(rng, m, n, K, r, scale=1.0):
    base = scale * rng.standard_normal((m, n))
    deltas = [(scale * rng.standard_normal((m, r)), rng.standard_normal((n, r))) for _ in range(K)]
    return base, deltas


def _reference(base, deltas, k):
    W = base.copy()
    for U, V in deltas[:k]:
        W = W + U @ V.T
    return W


def _tree(lib, base, deltas, **kw):
    return LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], **lib.kw, **kw)


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * max(np.abs(want).max(), 1e-300))


@settings(max_examples=15, deadline=None)
@given(
    m=st.integers(1, 24),
    n=st.integers(1, 24),
    K=st.integers(0, 9),
    r=st.integers(0, 6),
    b=st.sampled_from([1, 2, 7]),
    scale=st.sampled_from([1.0, 1e-60, 1e60]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_cold_then_cached_equal_dense_reference(lib, m, n, K, r, b, scale, seed, data):
    """Every query of an order, cold or cached, equals the dense ``W_k X``; the entry exists after the second use."""
    rng = np.random.default_rng(seed)
    base, deltas = _family(rng, m, n, K, r, scale)
    tree = _tree(lib, base, deltas)
    k = data.draw(st.integers(0, K), label="k")
    X = rng.standard_normal((n, b))
    want = _reference(base, deltas, k) @ X
    for use in range(3):
        _close(lib.to_numpy(tree.query(k, lib.asarray(X))), want)
        if use >= 1:  # built on the first use at the latest when assembling is cheaper, else on the second
            assert k in tree._cache
        tree._check()
    _close(lib.to_numpy(tree.query(k, lib.asarray(X[:, 0]))), want[:, 0])


def test_first_use_applies_the_nodes_second_use_caches(lib):
    """An order used once is answered from its nodes (nothing assembled or cached); the second use builds the entry."""
    rng = np.random.default_rng(3)
    m, n, K, r = 96, 64, 12, 6  # the node of eight leaves is dense: rank 48 >= m n / (m + n) = 38.4
    base, deltas = _family(rng, m, n, K, r)
    tree = _tree(lib, base, deltas)
    k = 11  # canonical nodes [1..8] (dense), [9, 10], [11]
    info = tree.canonical_nodes(k)
    assert any(nd.dense for nd in info) and any(not nd.dense for nd in info)
    x = rng.standard_normal(n)
    want = _reference(base, deltas, k) @ x
    _close(lib.to_numpy(tree.query(k, lib.asarray(x))), want)
    assert k not in tree._cache and tree.cache_nbytes == 0
    tree._check()
    _close(lib.to_numpy(tree.query(k, lib.asarray(x))), want)
    assert k in tree._cache
    entry = tree._cache[k]
    assert tree.cache_nbytes == entry.nbytes == tree._entry_nbytes([tree._levels[h][j] for h, j in _prefix_index(k)])
    tree._check()
    # clearing the cache forgets the use: the next query is cold again
    tree.clear_cache()
    _close(lib.to_numpy(tree.query(k, lib.asarray(x))), want)
    assert k not in tree._cache
    # a change drops entries; the order was used, so its next query caches the new state
    tree.query(k, lib.asarray(x))
    U, V = rng.standard_normal((m, 2)), rng.standard_normal((n, 2))
    tree.update(10, (lib.asarray(U), lib.asarray(V)))
    deltas[9] = (U, V)
    want = _reference(base, deltas, k) @ x
    _close(lib.to_numpy(tree.query(k, lib.asarray(x))), want)
    assert k in tree._cache
    tree._check()


def test_entry_too_large_for_the_cache_is_never_assembled_when_direct_is_cheaper(lib):
    """With no room in the cache, narrow queries keep applying the nodes; answers stay exact."""
    rng = np.random.default_rng(4)
    base, deltas = _family(rng, 96, 64, 12, 6)
    tree = _tree(lib, base, deltas, cache_bytes=0)
    x = rng.standard_normal(64)
    want = _reference(base, deltas, 11) @ x
    calls = []
    assemble = tree._assemble
    tree._assemble = lambda *args: calls.append(1) or assemble(*args)
    for _ in range(3):
        _close(lib.to_numpy(tree.query(11, lib.asarray(x))), want)
    assert not calls and tree.cache_nbytes == 0
    tree._check()


def test_blocked_dense_sum_is_the_whole_matrix_sum_bit_for_bit():
    """The one-pass blocked sum adds the same terms in the same order as whole-matrix adds."""
    rng = np.random.default_rng(5)
    base, deltas = _family(rng, 3, 2, 1, 1)
    tree = LowRankSegmentTree(base, deltas, backend="numpy")
    for m, n in [(1, 1), (1, 5000), (300, 257), (37, 1)]:
        terms = [rng.standard_normal((m, n)) * 10.0 ** rng.integers(-8, 8) for _ in range(4)]
        want = terms[0] + terms[1]
        for t in terms[2:]:
            want += t
        for count in (2, 3, 4):
            want_c = terms[0] + terms[1]
            for t in terms[2:count]:
                want_c += t
            assert np.array_equal(tree._sum_dense(terms[:count]), want_c)


@settings(max_examples=10, deadline=None)
@given(b=st.sampled_from([1, 3, 40, 90]), k=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_nodes_applied_without_entry_equal_dense_reference(lib, b, k, seed):
    """Both forms of the entry-free product (a GEMM per dense node, or their one-pass sum) equal ``W_k X``."""
    rng = np.random.default_rng(seed)
    base, deltas = _family(rng, 96, 64, 12, 6)
    tree = _tree(lib, base, deltas)
    X = rng.standard_normal((64, b))
    nodes = [tree._levels[h][j] for h, j in _prefix_index(k)]
    got = lib.to_numpy(tree._apply_nodes(nodes, lib.asarray(X), tree._base))
    _close(got, _reference(base, deltas, k) @ X)
    assert tree.cache_nbytes == 0
