"""The CuPy backend on a real GPU: arrays stay on the device, answers match NumPy.

Skipped, with the reason shown by ``pytest -ra``, on machines without CuPy and
a CUDA GPU; the behavioural suite's ``cupy`` parametrisation covers the rest.
"""

import numpy as np
import pytest

import lowrank_tree as lrt
from lowrank_tree.backends import unavailable_reason

GPU_MISSING = unavailable_reason("cupy")

pytestmark = pytest.mark.skipif(GPU_MISSING is not None, reason=f"needs CuPy and a CUDA GPU ({GPU_MISSING})")


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


def test_tree_from_cupy_answers_with_cupy(cp):
    rng = np.random.default_rng(0)
    m, n, K = 40, 30, 13
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, 2)), rng.standard_normal((n, 2))) for _ in range(K)]
    tree = lrt.LowRankSegmentTree(cp.asarray(base), [(cp.asarray(U), cp.asarray(V)) for U, V in deltas])
    assert tree.backend == "cupy"
    X = rng.standard_normal((n, 5))
    Y = tree.query(K, cp.asarray(X))
    assert isinstance(Y, cp.ndarray)
    ref = (base + sum(U @ V.T for U, V in deltas)) @ X
    np.testing.assert_allclose(cp.asnumpy(Y), ref, rtol=1e-10, atol=1e-10)
    A = tree.all_orders(cp.asarray(X))
    assert isinstance(A, cp.ndarray) and A.shape == (K + 1, m, 5)
    op = tree.operator(K)
    np.testing.assert_allclose(cp.asnumpy(op.matvec(cp.asarray(X[:, 0]))), ref[:, 0], rtol=1e-10, atol=1e-10)


def test_backend_cupy_moves_numpy_input(cp):
    rng = np.random.default_rng(1)
    mats = rng.standard_normal((5, 20, 16))
    casc = lrt.cascade_fit(mats, ranks=3, backend="cupy")
    assert isinstance(casc.base, cp.ndarray) and casc.backend == "cupy"
    ref = lrt.cascade_fit(mats, ranks=3)
    np.testing.assert_allclose(casc.errors, ref.errors, rtol=1e-8)
    tree = lrt.LowRankSegmentTree(mats[0], [(np.ones((20, 1)), np.ones((16, 1)))], backend="cupy")
    assert isinstance(tree.base, cp.ndarray)


def test_float32_and_complex_on_gpu(cp):
    rng = np.random.default_rng(2)
    for dtype, tol in ((np.float32, 1e-4), (np.complex128, 1e-10)):
        z = rng.standard_normal((3, 8, 6)) + (1j * rng.standard_normal((3, 8, 6)) if dtype == np.complex128 else 0)
        tree = lrt.cascade_fit(cp.asarray(z.astype(dtype)), ranks=6).tree()
        assert tree.dtype == dtype
        X = z[0, 0, :].astype(dtype)
        np.testing.assert_allclose(cp.asnumpy(tree.query(2, cp.asarray(X))), z[2].astype(dtype) @ X, rtol=tol, atol=tol)


def test_save_load_round_trip_on_gpu(cp, tmp_path):
    rng = np.random.default_rng(3)
    tree = lrt.LowRankSegmentTree(
        cp.asarray(rng.standard_normal((6, 5))),
        [(cp.asarray(rng.standard_normal((6, 1))), cp.asarray(rng.standard_normal((5, 1))))],
    )
    again = lrt.load(lrt.save(tree, tmp_path / "t.npz"), backend="cupy")
    assert again.backend == "cupy" and bool(cp.all(again.base == tree.base))


def test_mixing_cupy_and_strict_rejected(cp):
    import array_api_strict as xps

    with pytest.raises(TypeError, match="mixed array libraries"):
        lrt.LowRankSegmentTree(cp.eye(3), [(xps.ones((3, 1)), xps.ones((3, 1)))])
