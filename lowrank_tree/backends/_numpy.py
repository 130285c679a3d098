"""NumPy backend: the operations the array API standard leaves out."""

import numpy as np


def namespace():
    import array_api_compat.numpy as xp

    return xp


def asarray(x, dtype=None, device=None):
    """Convert ``x`` (any array or nested sequence) to a NumPy array (``device``: None or ``'cpu'``)."""
    _check_cpu(device)
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


def make_rng(seed, device=None):
    """A random generator from ``seed`` (None, int or ``numpy.random.Generator``); ``device``: None or ``'cpu'``."""
    _check_cpu(device)
    return np.random.default_rng(seed)


def _check_cpu(device):
    if device is not None and device != "cpu":
        raise ValueError(f"device must be None or 'cpu' for NumPy arrays, got {device!r}")


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
    if v.dtype.char in _LAPACK_CHARS:
        # BLAS ?dot/?dotc: never sets NumPy's floating-point error flags, so no errstate (a few µs a call)
        return float(np.vdot(v, v).real)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        ss = np.vdot(v, v)
    return float(ss.real)


#: dtype characters of float32, float64, complex64 and complex128: the ones BLAS and LAPACK take
_LAPACK_CHARS = "fdFD"
_lapack_cache: dict = {}


def _lapack(names, dtype_char):
    """SciPy's LAPACK wrappers ``names`` for one dtype, looked up once."""
    key = (names, dtype_char)
    funcs = _lapack_cache.get(key)
    if funcs is None:
        from scipy.linalg import lapack

        funcs = _lapack_cache[key] = lapack.get_lapack_funcs(names, dtype=np.dtype(dtype_char))
    return funcs


def orth_columns(Y, xp=None):
    """``Q`` of a Householder QR of ``Y`` (m, k), ``m >= k``: orthonormal columns, shape (m, k).

    LAPACK's ``?geqrf`` and ``?orgqr``/``?ungqr`` called directly: the same
    factorisation as ``numpy.linalg.qr``, without computing and copying the
    ``R`` factor it would throw away (a 256×16 QR: about 15 µs instead of 60).
    """
    Y = np.asarray(Y)
    char = Y.dtype.char
    if char not in _LAPACK_CHARS or Y.ndim != 2 or Y.shape[0] < Y.shape[1] or Y.shape[1] == 0:
        return np.linalg.qr(Y)[0]
    geqrf, orgqr = _lapack(("geqrf", "ungqr" if char in "FD" else "orgqr"), char)
    qr, tau, _, info = geqrf(Y)
    if info != 0:  # pragma: no cover - only for illegal arguments, which the checks above exclude
        return np.linalg.qr(Y)[0]
    q, _, info = orgqr(qr, tau, overwrite_a=1)
    if info != 0:  # pragma: no cover
        return np.linalg.qr(Y)[0]
    return q


def svd_wide(B, xp=None):
    """Thin SVD ``(P, s, Wh)`` of ``B`` (l, n), ``l <= n``: ``B = P diag(s) Wh``.

    ``?gesdd`` on the tall transpose ``Bᵀ = X S Yᴴ`` (a Fortran-ordered view
    of a C-ordered ``B``: no copy into LAPACK's layout), so ``P = (Yᴴ)ᵀ`` and
    ``Wh = Xᵀ``; NumPy's ``svd`` on the wide ``B`` costs two to four times as
    much at the range finder's sizes.  Falls back to ``numpy.linalg.svd`` if
    ``?gesdd`` does not converge.
    """
    B = np.asarray(B)
    char = B.dtype.char
    if char not in _LAPACK_CHARS or B.ndim != 2 or B.shape[0] > B.shape[1] or B.shape[0] == 0:
        return np.linalg.svd(B, full_matrices=False)
    (gesdd,) = _lapack(("gesdd",), char)
    u, s, vt, info = gesdd(B.T, compute_uv=1, full_matrices=0)
    if info != 0:
        return np.linalg.svd(B, full_matrices=False)
    return vt.T, s, u.T


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


def accumulate_orders(Y0, U, Z, xp=None):
    """``out[0] = Y0``, ``out[k + 1] = out[k] + U[k] @ Z[k]``, accumulated in the output.

    ``Y0`` (m, b), ``U`` (K, m, r), ``Z`` (K, r, b) -> (K + 1, m, b).  Each
    product is written straight into its slot of the output and the previous
    order added to it while both are still in cache: no (K, m, b)
    intermediate (peak memory is the output), and the output is streamed to
    memory about once.
    """
    dtype = np.result_type(Y0.dtype, U.dtype, Z.dtype)
    K = U.shape[0]
    out = np.empty((K + 1,) + Y0.shape, dtype=dtype)
    out[0] = Y0
    if Y0.size < _INPLACE_SLICE_MIN:
        # small slices: one batched GEMM costs fewer calls than K small ones
        np.matmul(U, Z, out=out[1:])
        for k in range(K):
            np.add(out[k + 1], out[k], out=out[k + 1])
        return out
    for k in range(K):
        np.matmul(U[k], Z[k], out=out[k + 1])
        np.add(out[k + 1], out[k], out=out[k + 1])
    return out


#: Orders of at least this many entries (m b) are multiplied one at a time, each
#: added to the previous order while still in cache; smaller ones in one batch.
_INPLACE_SLICE_MIN = 2**14
