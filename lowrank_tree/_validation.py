"""Input checks shared by the algorithm modules.

Every public entry point funnels its array arguments through these helpers so
that bad input fails early, with a message naming the argument and what was
expected, and before any object is modified.
"""

import numbers

from .backends import backend_name, get_func, is_array, library_of, namespace_for, namespace_of


def resolve_namespace(*arrays, names=None, backend=None):
    """Namespace of the array inputs, or of ``backend`` when given.

    Non-array inputs (lists, scalars) are accepted and later converted with the
    backend's ``asarray``.  With an explicit ``backend``, arrays from another
    library are moved there (NumPy -> CuPy, say) by :func:`as_array`.
    """
    if backend is not None:
        return namespace_for(backend)
    return namespace_of(*arrays, names=names)


def as_array(x, xp, name, ndim=None, allow_1d=False):
    """``x`` as an array of namespace ``xp`` with a float or complex dtype.

    Integers are converted to the default floating dtype, like
    ``numpy.linalg`` does; booleans, strings and objects raise ``TypeError``.
    """
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    backend = backend_name(xp)
    if not is_array(x):
        try:
            x = get_func("asarray", backend)(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from None
    elif library_of(x) != backend:
        other = library_of(x)
        if backend == "cupy" and other == "numpy":
            x = get_func("asarray", backend)(x)
        else:
            raise TypeError(f"{name} is a {other} array but this object uses the {backend} backend; "
                            f"expected a {backend} array (mixing array libraries is not allowed)")
    dtype = x.dtype
    if xp.isdtype(dtype, "bool") or not xp.isdtype(dtype, "numeric"):
        raise TypeError(f"{name} must have a real or complex floating dtype, got {dtype}")
    if xp.isdtype(dtype, "integral"):
        x = xp.astype(x, xp.float64)
    if ndim is not None:
        ok = x.ndim == ndim or (allow_1d and x.ndim == 1)
        if not ok:
            want = f"{ndim}-D" + (" or 1-D" if allow_1d else "")
            raise ValueError(f"{name} must be a {want} array, got shape {tuple(x.shape)}")
    return x


def check_finite(x, xp, name):
    """Raise ``ValueError`` if ``x`` holds NaN or Inf."""
    if x.size and not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or Inf; expected finite values")


def check_int(value, name, low=None, high=None):
    """``value`` as a Python int in ``[low, high]`` (bounds inclusive, optional)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        try:
            if int(value) != value or isinstance(value, bool):
                raise TypeError
            value = int(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be an integer, got {value!r}") from None
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def check_tol(tol, name="tol"):
    """``tol`` as a float in ``[0, 1)`` (``None`` passes through)."""
    if tol is None:
        return None
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {tol!r}") from None
    if not (0.0 <= tol < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {tol}")
    return tol


def default_tol(xp, dtype, shape):
    """Lossless relative tolerance: ``max(m, n) * eps``, as ``numpy.linalg.matrix_rank``."""
    return max(shape) * float(xp.finfo(dtype).eps)


def count_above(s, threshold, xp):
    """Number of entries of the 1-D array ``s`` strictly above ``threshold`` (a host int)."""
    return int(xp.sum(xp.astype(s > threshold, xp.int64)))



def nbytes(a, xp):
    """Bytes held by array ``a`` (works for namespaces without ``.nbytes``)."""
    bits = xp.finfo(a.dtype).bits
    if xp.isdtype(a.dtype, "complex floating"):
        bits *= 2  # finfo of a complex dtype describes its real part
    return a.size * bits // 8
