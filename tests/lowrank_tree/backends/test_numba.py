"""The Numba kernels against dense NumPy references, and the numba tree against the numpy tree."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("numba", reason="the numba backend needs Numba (pip install 'lowrank-tree[numba]')")

from lowrank_tree import LowRankSegmentTree  # noqa: E402
from lowrank_tree._portable import recompress_pairs  # noqa: E402
from lowrank_tree.backends import NodePair, _numba, _numba_kernels, namespace_for  # noqa: E402
from lowrank_tree.factor import recompress  # noqa: E402

XP = namespace_for("numpy")
DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


def tol_of(dtype):
    return 1e-4 if np.finfo(dtype).bits <= 32 else 1e-10


def randn(rng, shape, dtype):
    z = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        z = z + 1j * rng.standard_normal(shape)
    return z.astype(dtype)


@st.composite
def tall(draw):
    """A tall matrix, full rank or with a planted rank deficiency (the Householder fallback)."""
    m = draw(st.integers(1, 40))
    w = draw(st.integers(1, m))
    rank = draw(st.integers(0, w))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    B = (randn(rng, (m, rank), dtype) @ randn(rng, (rank, w), dtype)).astype(dtype)
    return B, rank


@given(tall())
def test_qr_reconstructs_with_orthonormal_q(case):
    B, _ = case
    Q, R = _numba_kernels._qr(B)
    eps = tol_of(B.dtype)
    scale = max(np.linalg.norm(B), 1.0)
    assert np.linalg.norm(Q @ R - B) <= eps * scale
    # CholeskyQR2 results are verified orthonormal; Householder's always are
    assert np.linalg.norm(Q.conj().T @ Q - np.eye(Q.shape[1])) <= eps * 10
    assert np.allclose(np.tril(R, -1), 0)


def test_qr_falls_back_on_rank_deficient_input():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((30, 2)) @ rng.standard_normal((2, 6))  # rank 2 of 6 columns
    Q, R = _numba_kernels._qr(B)
    assert np.allclose(Q @ R, B, atol=1e-12)
    np.testing.assert_allclose(Q.T @ Q, np.eye(6), atol=1e-12)


@st.composite
def node_pairs(draw):
    """Pairs of nodes as the tree holds them: leaves (arbitrary factors) or recompressed
    nodes (orthogonal columns), possibly sharing subspaces, possibly wider than the matrix."""
    m = draw(st.integers(1, 24))
    n = draw(st.integers(1, 24))
    dtype = draw(st.sampled_from(DTYPES))
    shared = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A, B = randn(rng, (m, 3), dtype), randn(rng, (n, 3), dtype)
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        pair = []
        for _side in range(2):
            r = draw(st.integers(1, max(1, min(m, n))))
            if shared:
                U, V = A @ randn(rng, (3, r), dtype), B @ randn(rng, (3, r), dtype)
            else:
                U, V = randn(rng, (m, r), dtype), randn(rng, (n, r), dtype)
            orth = draw(st.booleans())
            if orth:
                U, V, _ = recompress(U, V, XP)
                if U.shape[1] == 0:
                    U, V, orth = randn(rng, (m, 1), dtype), randn(rng, (n, 1), dtype), False
            pair += [U, V, orth]
        pairs.append(NodePair(*pair))
    return pairs, m, n, dtype


@given(node_pairs())
def test_merge_pairs_matches_dense_sum_and_rank(case):
    pairs, m, n, dtype = case
    tol = max(m, n) * np.finfo(dtype).eps
    got = _numba._merge_pairs_kernel(pairs, tol)
    portable = recompress_pairs(pairs, tol, XP)
    for (Ua, Va, _, Ub, Vb, _), (U, V, D, r), (_, _, Dp, rp) in zip(pairs, got, portable, strict=True):
        S = Ua.astype(np.complex128) @ Va.T + Ub.astype(np.complex128) @ Vb.T
        scale = np.linalg.norm(Ua) * np.linalg.norm(Va) + np.linalg.norm(Ub) * np.linalg.norm(Vb)
        rel = tol_of(dtype) * 10
        # numerical rank with the tree's threshold, against the singular values of the dense sum
        s = np.linalg.svd(S, compute_uv=False)
        slack = 50 * np.finfo(dtype).eps * scale
        assert np.sum(s > tol * s[0] + slack) <= r <= np.sum(s > tol * s[0] - slack)
        assert (D is None) == (Dp is None) or abs(r - rp) <= 1  # the same dense decision up to a tie
        if D is not None:
            assert r * (m + n) >= m * n
            assert np.linalg.norm(D - S) <= rel * scale
        else:
            assert r * (m + n) < m * n and U.shape == (m, r) and V.shape == (n, r)
            assert U.dtype == dtype and V.dtype == dtype
            assert np.linalg.norm(U @ V.T - S) <= rel * scale
            # the invariant the next merge relies on: orthogonal U columns, orthonormal V
            G = U.conj().T @ U
            assert np.linalg.norm(G - np.diag(np.diag(G))) <= rel * max(1.0, np.linalg.norm(G))
            np.testing.assert_allclose(V.conj().T @ V, np.eye(r), atol=rel * 10)


def test_small_single_pairs_take_the_portable_path():
    rng = np.random.default_rng(2)
    pair = NodePair(
        rng.standard_normal((20, 2)),
        rng.standard_normal((16, 2)),
        False,
        rng.standard_normal((20, 3)),
        rng.standard_normal((16, 3)),
        False,
    )
    ((U, V, D, r),) = _numba.merge_pairs([pair], 1e-12)
    ((Up, Vp, Dp, rp),) = recompress_pairs([pair], 1e-12, XP)
    assert D is None and Dp is None and r == rp == 5
    np.testing.assert_array_equal(U, Up)  # bit for bit: the same code ran
    np.testing.assert_array_equal(V, Vp)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("b", [1, 16, 37])
def test_accumulate_orders_matches_running_sum(dtype, b):
    rng = np.random.default_rng(5)
    K, m, r = 9, 13, 3
    Y0, U, Z = randn(rng, (m, b), dtype), randn(rng, (K, m, r), dtype), randn(rng, (K, r, b), dtype)
    out = _numba.accumulate_orders(Y0, U, Z)
    fused = _numba_kernels.all_orders(Y0, U, Z, 2)  # the kernel itself, whatever the size
    assert fused.dtype == dtype
    np.testing.assert_allclose(fused, out, rtol=tol_of(dtype), atol=tol_of(dtype) * 10)
    ref = [Y0.astype(np.complex128)]
    for k in range(K):
        ref.append(ref[-1] + U[k] @ Z[k])
    assert out.shape == (K + 1, m, b) and out.dtype == dtype
    np.testing.assert_allclose(out, np.stack(ref), rtol=tol_of(dtype), atol=tol_of(dtype) * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numba_tree_equals_numpy_tree(dtype, rel_err):
    rng = np.random.default_rng(7)
    m, n, K = 30, 20, 37
    base = randn(rng, (m, n), dtype)
    deltas = [(randn(rng, (m, 2), dtype), randn(rng, (n, 2), dtype)) for _ in range(K)]
    a = LowRankSegmentTree(base, deltas, backend="numpy")
    b = LowRankSegmentTree(base, deltas, backend="numba")
    assert b.backend == "numba" and isinstance(b.base, np.ndarray)
    assert [(x.level, x.index, x.rank, x.dense) for x in a.nodes()] == [
        (x.level, x.index, x.rank, x.dense) for x in b.nodes()
    ]
    X = randn(rng, (n, 24), dtype)
    ref = np.stack([a.matrix(k).astype(np.complex128) @ X for k in range(K + 1)])
    out = b.all_orders(X)
    assert out.dtype == dtype and rel_err(out, ref) <= tol_of(dtype)
    b.update(5, (randn(rng, (m, 1), dtype), randn(rng, (n, 1), dtype)))
    b.append((randn(rng, (m, 3), dtype), randn(rng, (n, 3), dtype)))
    dense = [a.matrix(0).astype(np.complex128)]
    for c in b.corrections:
        dense.append(dense[-1] + c.U @ c.V.T)
    for k in (0, 4, 5, 17, K, K + 1):
        assert rel_err(b.query(k, X), dense[k] @ X) <= tol_of(dtype)


# Run in a fresh interpreter: call two kernels, report their dispatchers' cache statistics.
_CACHE_PROBE = """
import json
import numpy as np
from lowrank_tree.backends import _numba_kernels as k
x = np.array([3.0, 4.0])
values = [float(k._nrm2(x)), bool(k._all_finite(np.ones((2, 2)))), bool(k._all_finite(np.array([[np.inf]])))]
stats = {name: [sum(getattr(k, name).stats.cache_hits.values()), sum(getattr(k, name).stats.cache_misses.values())]
         for name in ("_nrm2", "_all_finite")}
print(json.dumps({"values": values, "stats": stats}))
"""


@pytest.mark.slow
def test_kernels_are_loaded_from_the_disk_cache(tmp_path):
    # cache=True: a second process loads the machine code the first one wrote
    # instead of compiling again (the first call in a new session is then fast)
    import json
    import os
    import pathlib
    import subprocess
    import sys

    for name in ("merge_pairs", "merge_pair_serial", "all_orders", "_qr", "_stacked_basis"):
        assert type(getattr(_numba_kernels, name)._cache).__name__ == "FunctionCache", name
    root = pathlib.Path(__file__).resolve().parents[3]
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }

    def probe():
        out = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = probe(), probe()
    assert first["values"] == second["values"] == [5.0, True, False]
    # the empty cache directory: every signature compiled (and written)
    assert all(hits == 0 and misses >= 1 for hits, misses in first["stats"].values()), first
    assert any(tmp_path.rglob("*.nbi")), "no index file written to the cache directory"
    # the same signatures, now read back: hits, no compilation
    assert all(hits >= 1 and misses == 0 for hits, misses in second["stats"].values()), second


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_extreme_scales_fall_back_safely(scale, rel_err):
    # the Gram matrices of CholeskyQR under- or overflow here: the Householder fallback must take over
    rng = np.random.default_rng(11)
    m, n, K = 12, 10, 6
    deltas = [(scale * rng.standard_normal((m, 2)), rng.standard_normal((n, 2))) for _ in range(K)]
    tree = LowRankSegmentTree(np.zeros((m, n)), deltas, backend="numba")
    ref = LowRankSegmentTree(np.zeros((m, n)), deltas, backend="numpy")
    assert [x.rank for x in tree.nodes()] == [x.rank for x in ref.nodes()]
    X = rng.standard_normal((n, 3))
    dense = sum(U @ V.T for U, V in deltas)
    assert rel_err(tree.query(K, X), dense @ X) <= 1e-10
