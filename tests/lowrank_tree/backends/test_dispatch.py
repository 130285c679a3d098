"""Backend selection, dispatch and the portable core's contract (no array leaves the device)."""

import numpy as np
import pytest

import lowrank_tree as lrt
from lowrank_tree.backends import BACKENDS, get_func, namespace_for, unavailable_reason

GPU_MISSING = unavailable_reason("cupy")


def test_get_func_default_and_missing():
    assert get_func("merge_pairs", "numpy", default=len) is len
    assert get_func("merge_pairs", "numba", default=len) is not len  # Numba has its own kernel
    with pytest.raises(NotImplementedError, match="merge_pairs.*numpy"):
        get_func("merge_pairs", "numpy")


def test_unknown_backend_named_in_error():
    with pytest.raises(
        ValueError, match=r"backend must be one of \['array_api_strict', 'cupy', 'numba', 'numpy', 'torch'\]"
    ):
        lrt.LowRankSegmentTree(np.eye(2), backend="tensorflow")
    with pytest.raises(ValueError, match="backend must be one of"):
        lrt.cascade_fit(np.zeros((2, 2, 2)), backend="jax")
    assert sorted(BACKENDS) == ["array_api_strict", "cupy", "numba", "numpy", "torch"]


def test_numba_backend_uses_numpy_arrays_and_is_explicit():
    assert namespace_for("numba") is namespace_for("numpy")
    u = np.ones((3, 1))
    assert lrt.LowRankSegmentTree(np.eye(3), [(u, u)]).backend == "numpy"  # chosen by the arrays
    tree = lrt.LowRankSegmentTree(np.eye(3), [(u, u)], backend="numba")
    assert tree.backend == "numba" and type(tree.query(1, np.ones(3))) is np.ndarray
    casc = lrt.cascade_fit(np.stack([np.eye(3), 2 * np.eye(3)]), backend="numba")
    assert casc.backend == "numba" and casc.tree().backend == "numba"
    assert casc.tree(backend="numpy").backend == "numpy"


def test_mixed_libraries_rejected_on_numba():
    import array_api_strict as xps

    u = np.ones((3, 1))
    tree = lrt.LowRankSegmentTree(np.eye(3), [(u, u)], backend="numba")
    with pytest.raises(TypeError, match="array_api_strict array but this object uses the numpy backend"):
        tree.query(1, xps.ones((3, 2)))
    with pytest.raises(TypeError, match="mixed array libraries"):
        lrt.LowRankSegmentTree(np.eye(3), [(xps.ones((3, 1)), u)], backend=None)


@pytest.mark.skipif(GPU_MISSING is None, reason="a GPU is present: the no-GPU error cannot be observed")
def test_gpu_backend_without_gpu_is_a_clear_error():
    with pytest.raises(ImportError, match=r"cupy.*(lowrank-tree\[gpu\]|CUDA GPU)"):
        namespace_for("cupy")
    with pytest.raises(ImportError, match="cupy"):
        lrt.LowRankSegmentTree(np.eye(2), backend="cupy")
    with pytest.raises(ImportError, match="cupy"):
        lrt.cascade_fit(np.zeros((2, 2, 2)), backend="cupy")


@pytest.fixture
def no_device_to_host(monkeypatch):
    """array_api_strict stands in for a device library: exporting an array to NumPy raises.

    Scalar reads (``int``, ``float``, ``bool`` of 0-d arrays: ranks, norms,
    flags) stay allowed; CuPy does those as one small device sync each.
    """
    import array_api_strict

    cls = type(array_api_strict.asarray(0.0))

    def refuse(*_args, **_kwargs):
        raise AssertionError("an array was copied to the host")

    monkeypatch.setattr(cls, "__array__", refuse)
    monkeypatch.setattr(cls, "__dlpack__", refuse)


def test_core_keeps_arrays_on_device(no_device_to_host):
    import array_api_strict as xps

    rng = np.random.default_rng(0)
    m, n, K = 12, 9, 11
    mats = rng.standard_normal((K + 1, m, n))
    dev = xps.asarray(mats)
    for kwargs in (
        dict(ranks=2),
        dict(tol=1e-3),
        dict(ranks=3, method="randomized", seed=0),
        dict(tol=1e-2, method="randomized", seed=0),
    ):
        casc = lrt.cascade_fit(dev, **kwargs)
        tree = casc.tree()
        X = xps.asarray(rng.standard_normal((n, 4)))
        outs = [
            tree.query(K, X),
            tree.query(xps.asarray([0, 3, K, 7]), X),
            tree.range_query(2, 9, X),
            tree.all_orders(X),
            tree.matrix(5),
            casc.matrix(K),
        ]
        tree.update(3, (xps.ones((m, 1)), xps.ones((n, 1))))
        tree.append((xps.ones((m, 2)), xps.ones((n, 2))))
        outs.append(tree.query(K + 1, X))
        assert all(type(o) is type(dev) for o in outs)
