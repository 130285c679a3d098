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


def make_rng(seed):
    """A random generator from ``seed`` (None, int or ``numpy.random.Generator``)."""
    return np.random.default_rng(seed)


def standard_normal(rng, shape, dtype, like=None):
    """Standard normal samples of ``dtype``; complex dtypes get unit-variance complex samples."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        real = np.finfo(dtype).dtype
        z = rng.standard_normal(shape, dtype=real) + 1j * rng.standard_normal(shape, dtype=real)
        return (z / np.sqrt(2)).astype(dtype)
    return rng.standard_normal(shape, dtype=dtype)


def linear_operator(shape, dtype, matvec, rmatvec, matmat):
    """A :class:`scipy.sparse.linalg.LinearOperator`."""
    from scipy.sparse.linalg import LinearOperator

    return LinearOperator(shape, matvec=matvec, rmatvec=rmatvec, matmat=matmat, dtype=dtype)
