"""Internal invariants of :class:`~lowrank_tree.LowRankSegmentTree`, checked on host NumPy copies.

Used by the tests (``tree._check()``): a reference implementation in NumPy,
independent of the array library the tree runs on.
"""

import numpy as np

from .backends import get_func
from .tree import _prefix_index


def check_tree(tree):
    """Raise ``AssertionError`` naming the first broken invariant of ``tree`` (see ``tree._check``)."""
    host = get_func("to_numpy", tree._backend)
    xp, (m, n) = tree._xp, tree.shape

    def arr(a):
        return np.asarray(host(a)).astype(np.result_type(host(a).dtype, np.float64))

    def mat(node):
        return arr(node.D) if node.dense else arr(node.U) @ arr(node.V).T

    eps = float(xp.finfo(tree._dtype).eps)
    rounding = 64 * max(m, n) * eps
    tol = tree._effective_tol()
    with tree._lock:
        K, levels = tree._K, tree._levels
        assert tree._base.shape == (m, n) and tree._base.dtype == tree._dtype, "base shape/dtype"
        cap = len(levels[0])
        assert cap == 1 << max(K - 1, 0).bit_length(), f"capacity {cap} for K = {K}"
        assert len(levels) == cap.bit_length(), f"{len(levels)} levels for capacity {cap}"
        for h, level in enumerate(levels):
            assert len(level) == cap >> h, f"level {h} has {len(level)} nodes, expected {cap >> h}"
        for h, level in enumerate(levels):
            for j, node in enumerate(level):
                where = f"node (level {h}, index {j})"
                if j << h >= K:
                    assert node is tree._empty, f"{where} covers no correction but is not the padding"
                    continue
                assert 0 <= node.rank <= min(m, n), f"{where}: rank {node.rank} > min(m, n)"
                if node.dense:
                    assert node.U is None and node.V is None, f"{where}: dense with factors"
                    assert node.D.shape == (m, n) and node.D.dtype == tree._dtype, f"{where}: dense shape"
                else:
                    assert node.U.shape == (m, node.rank) and node.V.shape == (n, node.rank), (
                        f"{where}: factor shapes {node.U.shape}, {node.V.shape} for rank {node.rank}"
                    )
                    assert node.U.dtype == tree._dtype and node.V.dtype == tree._dtype, f"{where}: dtype"
                if node.tail:
                    assert not node.dense and not node.orth and 0 < node.tail < node.rank, (
                        f"{where}: tail of {node.tail} columns on a node of rank {node.rank} (orth={node.orth})"
                    )
                    M = mat(node)
                    amax = np.abs(M).max() if M.size else 0.0
                    true = amax * np.linalg.norm(M / amax) if amax > 0 else 0.0  # no squares under- or overflow
                    assert node.low is not None and node.low <= true * (1 + rounding) + rounding * node.low, (
                        f"{where}: norm lower bound {node.low} > the norm {true}"
                    )
                # the recompressed part: every column of an orth node, the head of one with a tail
                head = node.rank - node.tail if (node.orth or node.tail) and not node.dense else 0
                if head:
                    U, V = arr(node.U)[:, :head], arr(node.V)[:, :head]
                    gv = V.conj().T @ V
                    assert np.linalg.norm(gv - np.eye(head)) <= rounding * head, (
                        f"{where}: V claimed orthonormal, ||V^H V - I|| = {np.linalg.norm(gv - np.eye(head))}"
                    )
                    size = np.linalg.norm(U, 2)
                    Un = U / size if size > 0 else U  # scale-free: U^H U over- or underflows at extreme scales
                    gu = Un.conj().T @ Un
                    off = gu - np.diag(np.diag(gu))
                    assert np.linalg.norm(off) <= rounding * head, f"{where}: U claimed to have orthogonal columns"
                if h == 0:
                    assert not node.dense, f"{where}: a leaf is dense"
                    continue
                a, b = levels[h - 1][2 * j], levels[h - 1][2 * j + 1]
                if a is tree._empty or (not a.dense and a.rank == 0):
                    assert node is b, f"{where}: left child is empty but the node is not the right child"
                    continue
                if b is tree._empty or (not b.dense and b.rank == 0):
                    assert node is a, f"{where}: right child is empty but the node is not the left child"
                    continue
                A, B, N = mat(a), mat(b), mat(node)
                scale = np.linalg.norm(A) + np.linalg.norm(B)
                err = np.linalg.norm(N - (A + B))
                bound = (tol * np.sqrt(min(m, n)) + rounding) * scale
                assert err <= bound, f"{where}: differs from the sum of its children by {err:.3e} > {bound:.3e}"
                if a.dense or b.dense:
                    assert node.dense, f"{where}: a child is dense but the node is factored"
                else:
                    costly = node.rank * (m + n) >= m * n
                    assert node.dense == costly, (
                        f"{where}: dense={node.dense} but rank {node.rank} factors cost {'more' if costly else 'less'}"
                    )
        used = 0
        for k, entry in tree._cache.items():
            assert 0 <= k <= K, f"cache entry for order {k} > K = {K}"
            fresh = tree._assemble([levels[h][j] for h, j in _prefix_index(k)], tree._base)
            if entry.folded:  # the factors were folded into the dense part: compare the sum
                assert fresh.dense is not None and entry.U.shape[1] == 0, f"cache entry {k}: folded layout"
                want = host(fresh.dense) + host(fresh.U) @ host(fresh.V).T
                assert np.allclose(host(entry.dense), want, rtol=0, atol=rounding * np.abs(want).max()), (
                    f"cache entry {k} (folded) is not the current nodes"
                )
                used += entry.nbytes
                continue
            assert entry.nbytes == fresh.nbytes and entry.n_dense == fresh.n_dense, f"cache entry {k}: layout"
            for got, want in ((entry.dense, fresh.dense), (entry.U, fresh.U), (entry.V, fresh.V)):
                assert (got is None) == (want is None), f"cache entry {k}: dense part"
                if got is not None:
                    assert np.array_equal(host(got), host(want)), f"cache entry {k} is not the current nodes"
            used += entry.nbytes
        assert used == tree._cache_used, f"cache byte counter {tree._cache_used} != {used}"
        assert used <= tree._cache_limit, f"cache holds {used} bytes > cache_bytes = {tree._cache_limit}"
        if tree._stacks is not None:
            fresh = tree._build_stacks(levels[0][:K])
            for got, want in zip(tree._stacks, fresh):
                assert np.array_equal(host(got), host(want)), "all-orders stacks are not the current leaves"
