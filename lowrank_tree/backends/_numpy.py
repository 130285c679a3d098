"""NumPy backend: the operations the array API standard leaves out."""

import numpy as np


def namespace():
    import array_api_compat.numpy as xp

    return xp


def asarray(x, dtype=None):
    """Convert ``x`` (any array or nested sequence) to a NumPy array."""
    if hasattr(x, "__array_namespace__") and not isinstance(x, np.ndarray):
        x = to_numpy(x)
    return np.asarray(x, dtype=dtype)


def to_numpy(x):
    """Host NumPy copy (or view) of ``x``."""
    if hasattr(x, "get") and not isinstance(x, np.ndarray):  # CuPy array
        return x.get()
    return np.asarray(x)


def read_only(a):
    """A read-only view of ``a`` (no copy): what objects hand out of their own arrays."""
    view = a.view()
    view.flags.writeable = False
    return view


def make_rng(seed):
    """A random generator from ``seed`` (None, int or ``numpy.random.Generator``)."""
    return np.random.default_rng(seed)


def standard_normal(rng, shape, dtype):
    """Standard normal samples of ``dtype``; complex dtypes get unit-variance complex samples."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        real = np.finfo(dtype).dtype
        z = rng.standard_normal(shape, dtype=real) + 1j * rng.standard_normal(shape, dtype=real)
        return (z / np.sqrt(2)).astype(dtype)
    return rng.standard_normal(shape, dtype=dtype)


def sum_of_squares(x):
    """``Σ |x_i|²`` over all entries, as a Python float, in ``x``'s precision.

    One BLAS dot product (no temporary for contiguous input).  Under- and
    overflow are not reported: the caller (``lowrank_tree._norms.fro_norm``)
    checks the result and recomputes with scaling when it cannot be trusted.
    """
    v = np.ravel(x)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        ss = np.vdot(v, v)
    return float(ss.real)


def linear_operator(shape, dtype, matvec, rmatvec, matmat):
    """A :class:`scipy.sparse.linalg.LinearOperator`."""
    from scipy.sparse.linalg import LinearOperator

    return LinearOperator(shape, matvec=matvec, rmatvec=rmatvec, matmat=matmat, dtype=dtype)


def prefix_sum(first, C):
    """``out[0] = first``, ``out[k + 1] = out[k] + C[k]``: shape (K + 1,) + first.shape.

    NumPy's ``cumsum`` along a leading axis walks the array with large strides
    and runs an order of magnitude slower than K contiguous in-place adds.
    """
    out = np.empty((C.shape[0] + 1,) + first.shape, dtype=np.result_type(first, C))
    out[0] = first
    for k in range(C.shape[0]):
        np.add(out[k], C[k], out=out[k + 1])
    return out
