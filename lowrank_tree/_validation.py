"""Input checks shared by the algorithm modules.

Every public entry point funnels its array arguments through these helpers so
that bad input fails early, with a message naming the argument and what was
expected, and before any object is modified.
"""

import cmath
import math
import numbers
import operator
from collections.abc import Sequence

from .backends import backend_name, device_of, get_func, is_array, library_of, namespace_for, namespace_of

#: Device libraries that accept NumPy input, copying it to the device (a host array is never
#: computed with there); every other mix of array libraries is refused.
_TAKES_NUMPY = frozenset({"cupy", "torch"})


def resolve_namespace(*arrays, names=None, backend=None):
    """Namespace of the array inputs, or of ``backend`` when given.

    Non-array inputs (lists, scalars) are accepted and later converted with the
    backend's ``asarray``.  With an explicit ``backend``, arrays from another
    library are moved there (NumPy -> CuPy, say) by :func:`as_array`.
    """
    if backend is not None:
        return namespace_for(backend)
    return namespace_of(*arrays, names=names)


def resolve_device(xp, device, name="device"):
    """``device`` as namespace ``xp`` spells it (``'cuda'`` becomes ``cuda:0``), or None.

    Raises ``ValueError`` naming ``name`` when ``xp``'s library has no such
    device (``'cuda'`` for NumPy arrays, or on a machine without CUDA).
    """
    if device is None:
        return None
    try:
        # an empty array costs no memory and makes the library parse (and place) the device
        return device_of(xp.empty((0,), device=device))
    except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
        raise ValueError(
            f"{name} must be a device of the {backend_name(xp)} backend (e.g. 'cpu'), got {device!r}: {exc}"
        ) from None


def same_device(x, device):
    """Whether array ``x`` lies on ``device`` (None: any device is fine)."""
    return device is None or str(device_of(x)) == str(device)


def open_matrices(mats, name, layout, backend=None):
    """Read a matrix-family argument: a 3-D array, a sequence or an iterator of 2-D arrays.

    Shared by the fit and the diagnostics, so that both accept the same inputs
    and refuse bad ones with the same words.  The items themselves (their
    shapes, dtypes, finiteness) are the caller's to check: an iterator is read
    lazily, one matrix at a time.

    Parameters
    ----------
    mats : array, sequence or iterable
        A 3-D array of shape ``layout``, a list or tuple of 2-D arrays, or any
        other iterable of them.
    name : str
        The argument's name, for error messages.
    layout : str
        The 3-D shape in the caller's words, e.g. ``'(K + 1, m, n)'``.
    backend : str, optional
        Backend to use instead of the inputs' library.

    Returns
    -------
    xp : module
        The namespace: of all items of a sequence, of the first item of an iterator.
    stack : array or None
        ``mats`` as a 3-D array of at least one matrix, when it is an array.
    items : iterator of array
        The matrices (slices of ``stack``, or the raw items).
    count : int or None
        The number of matrices; None for an iterator.

    Raises
    ------
    TypeError
        If ``mats`` is not an array, a sequence or an iterable (``None``, a string).
    ValueError
        If ``mats`` holds no matrix, or is an array that is not 3-D.
    """
    expected = f"{name} must be a 3-D array {layout}, a sequence of 2-D arrays or an iterator of 2-D arrays"
    if is_array(mats):
        xp = resolve_namespace(mats, names=(name,), backend=backend)
        stack = as_array(mats, xp, name)
        if stack.ndim != 3:
            raise ValueError(
                f"{name} must be a 3-D array {layout} or a sequence of 2-D arrays, got an "
                f"array of shape {tuple(stack.shape)}" + ("; pass [M] for a single matrix" if stack.ndim == 2 else "")
            )
        if stack.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one matrix, got shape {tuple(stack.shape)}")
        return xp, stack, (stack[k, ...] for k in range(stack.shape[0])), stack.shape[0]
    if isinstance(mats, (list, tuple)):
        if not mats:
            raise ValueError(f"{name} must hold at least one matrix, got an empty {type(mats).__name__}")
        names = [f"{name}[{k}]" for k in range(len(mats))]
        return resolve_namespace(*mats, names=names, backend=backend), None, iter(mats), len(mats)
    if mats is None or isinstance(mats, (str, bytes)):
        raise TypeError(f"{expected}, got {type(mats).__name__}")
    try:
        it = iter(mats)
    except TypeError:
        raise TypeError(f"{expected}, got {type(mats).__name__}") from None
    try:
        first = next(it)
    except StopIteration:
        raise ValueError(f"{name} must hold at least one matrix, got an empty iterator") from None
    xp = resolve_namespace(first, names=(f"{name}[0]",), backend=backend)
    return xp, None, _chain(first, it), None


def _chain(first, it):
    yield first
    del first  # the caller keeps what it needs of the first matrix; do not pin the original
    yield from it


#: Dtypes every backend computes in; anything else is converted or refused (see ``as_array``).
_NATIVE_DTYPES = ("float32", "float64", "complex64", "complex128")


def as_array(x, xp, name, ndim=None, allow_1d=False, device=None, move=False):
    """``x`` as an array of namespace ``xp`` with a float or complex dtype, on ``device``.

    The dtype rule, the same for every array argument of the library:

    * float32, float64, complex64, complex128: used as they are;
    * float16 and bfloat16: converted to float32 (exact; LAPACK has no half
      precision, SciPy's ``linalg`` does the same), and results are float32;
    * integers: converted to float64, like ``numpy.linalg`` and SciPy;
    * bool, object, strings, dates: ``TypeError`` (a boolean array is far more
      often a mask passed by mistake than a 0/1 matrix; convert explicitly);
    * longdouble / clongdouble wider than float64 / complex128: ``TypeError``
      (LAPACK cannot use the extra precision, and silently dropping it would
      hand back less than was asked for); where ``longdouble`` is float64
      (Windows, ARM macOS) it is converted losslessly.

    Masked arrays (``numpy.ma``) raise ``TypeError``: computing with the data
    under the mask would be a wrong answer.  Other NumPy subclasses
    (``numpy.matrix``) become plain arrays.  Tensors that require gradients
    raise ``TypeError``: the objects here do not differentiate, and detaching
    silently would drop what the caller asked to track.

    ``device`` (normalised by :func:`resolve_device`, or None for "where
    ``x`` is"): non-arrays and NumPy input to a device library are put
    there; an array of ``xp``'s library on another device raises
    ``TypeError``, or with ``move=True`` (an explicit ``device=`` argument)
    is copied there.
    """
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    if _requires_grad(x) or (isinstance(x, (list, tuple)) and any(_requires_grad(a) for a in x)):
        raise TypeError(
            f"{name} is a tensor that requires grad; these objects do not differentiate and would "
            f"not track it: pass {name}.detach() to compute without gradients, or train with "
            f"lowrank_tree.torch.CascadedLinear (a differentiable cascaded layer)"
        )
    if _is_masked(x) or (isinstance(x, (list, tuple)) and any(_is_masked(a) for a in x)):
        raise TypeError(
            f"{name} is a masked array; expected a plain array (fill the masked entries, "
            f"e.g. with .filled(), or drop them first: computing with the hidden values "
            f"would give a wrong answer)"
        )
    backend = backend_name(xp)
    if not is_array(x):
        try:
            x = get_func("asarray", backend)(x, device=device)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from None
    elif library_of(x) != backend:
        other = library_of(x)
        if backend in _TAKES_NUMPY and other == "numpy":
            # the dtype rule first, on the host, where NumPy's dtypes (longdouble, ...) are understood
            x = get_func("asarray", backend)(_floating(x, namespace_for("numpy"), name), device=device)
        else:
            raise TypeError(
                f"{name} is a {other} array but this object uses the {backend} backend; "
                f"expected a {backend} array (mixing array libraries is not allowed)"
            )
    elif not same_device(x, device):
        if not move:
            raise TypeError(
                f"{name} is on device {device_of(x)} but this object's arrays are on {device}; "
                f"expected an array on {device} (move it there first)"
            )
        x = get_func("asarray", backend)(x, device=device)
    elif backend == "numpy" and type(x).__name__ != "ndarray":
        x = get_func("asarray", backend)(x)  # np.matrix and friends: their operators mean other things
    x = _floating(x, xp, name)
    if ndim is not None:
        ok = x.ndim == ndim or (allow_1d and x.ndim == 1)
        if not ok:
            want = f"{ndim}-D" + (" or 1-D" if allow_1d else "")
            raise ValueError(f"{name} must be a {want} array, got shape {tuple(x.shape)}")
    return x


def _is_masked(x):
    return any(cls.__module__.startswith("numpy.ma") for cls in type(x).__mro__)


def _requires_grad(x):
    return getattr(x, "requires_grad", False) is True


def _floating(x, xp, name):
    """``x`` in a dtype LAPACK computes in, by the rule of :func:`as_array`."""
    dtype = x.dtype
    if any(dtype == getattr(xp, d) for d in _NATIVE_DTYPES):
        return x
    if xp.isdtype(dtype, "bool"):
        raise TypeError(
            f"{name} must have a real or complex floating dtype (or an integer one), got bool; "
            f"convert it with .astype(float) if 0/1 values are meant"
        )
    if xp.isdtype(dtype, "integral"):
        return xp.astype(x, xp.float64)
    # Dtypes outside the array API standard (float16, bfloat16, longdouble, ...): sized by itemsize.
    kind, size = _kind(dtype, xp), getattr(dtype, "itemsize", 0)
    if kind == "f" and size < 4:
        return xp.astype(x, xp.float32)
    if kind == "c" and size < 8:  # torch's complex32: halves, like float16
        return xp.astype(x, xp.complex64)
    if (kind == "f" and size == 8) or (kind == "c" and size == 16):
        return xp.astype(x, xp.float64 if kind == "f" else xp.complex128)
    if kind in ("f", "c"):
        raise TypeError(
            f"{name} has dtype {dtype} (extended precision), which LAPACK cannot compute in; "
            f"expected float32, float64, complex64 or complex128: convert it with "
            f".astype(numpy.float64) (or complex128) knowing that the extra digits are lost"
        )
    raise TypeError(f"{name} must have a real or complex floating dtype (or an integer one), got {dtype}")


def _kind(dtype, xp):
    """NumPy's dtype kind (``'f'``, ``'c'``, ...), also for libraries whose dtypes have none (torch)."""
    kind = getattr(dtype, "kind", None)
    if kind is None:
        if xp.isdtype(dtype, "real floating"):
            return "f"
        if xp.isdtype(dtype, "complex floating"):
            return "c"
    return kind


def check_finite(x, xp, name):
    """Raise ``ValueError`` if ``x`` holds NaN or Inf."""
    if _size(x) and not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or Inf; expected finite values")


def check_int(value, name, low=None, high=None):
    """``value`` as a Python int in ``[low, high]`` (bounds inclusive, optional).

    Integers only, as NumPy indexes: Python and NumPy integers and 0-d integer
    arrays (anything with ``__index__``); ``bool`` and floats (even ``2.0``)
    raise ``TypeError``.
    """
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        raise TypeError(f"{name} must be an integer, got the bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        kind = "a float; round it explicitly" if isinstance(value, numbers.Real) else type(value).__name__
        raise TypeError(f"{name} must be an integer, got {value!r} ({kind})") from None
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def is_single_order(k):
    """Whether ``k`` is one order (a scalar) rather than one order per column.

    Arrays with ``ndim >= 1`` and sequences (list, tuple, range) are per-column
    orders; everything else is treated as one order and validated by
    :func:`check_int` (so ``'3'`` or ``{1, 2}`` are refused by name).
    """
    if isinstance(k, (str, bytes)):
        return True
    if isinstance(k, Sequence):
        return False
    return getattr(k, "ndim", 0) == 0


def check_orders(k, b, K, xp, backend, name="k", device=None):
    """One order per column: ``k`` as an int64 array of shape ``(b,)`` with values in ``[0, K]``.

    Parameters
    ----------
    k : array or sequence of int
        Integer dtype (bool and floats refused) or a list/tuple/range of integers.
    b : int
        Number of columns of the batch.
    K : int
        Highest order.
    xp : module
        Namespace of the result.
    backend : str
        Backend name (for the conversion of arrays).
    name : str
        The argument's name, for error messages.
    device : optional
        Device of the result (None: that of ``k``, or the default).
    """
    want = f"{name} must be an int or have shape ({b},) (one order per column of X)"
    if isinstance(k, Sequence) and not is_array(k):
        if len(k) != b:
            raise ValueError(f"{want}, got a sequence of length {len(k)}")
        values = [check_int(v, f"{name}[{j}]") for j, v in enumerate(k)]
        if values and (min(values) < 0 or max(values) > K):
            raise ValueError(f"{name} must be in [0, {K}], got values in [{min(values)}, {max(values)}]")
        return xp.asarray(values, dtype=xp.int64, device=device)
    try:
        ks = get_func("asarray", backend)(k, device=device)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{name} must be an int or an integer array, got {type(k).__name__}") from None
    if ks.ndim != 1 or ks.shape[0] != b:
        raise ValueError(f"{want}, got shape {tuple(ks.shape)}")
    if not xp.isdtype(ks.dtype, "integral"):
        raise TypeError(f"{name} must hold integers, got dtype {ks.dtype}")
    if ks.shape[0]:
        # bounds in the array's own dtype: a cast first would wrap uint64 values to negatives
        try:
            lo, hi = int(xp.min(ks)), int(xp.max(ks))
        except (NotImplementedError, RuntimeError):
            # torch has no min/max for uint32/uint64 (the orders cross to the host: a mixed batch's
            # distinct orders do anyway)
            host = get_func("to_numpy", backend)(ks)
            lo, hi = int(host.min()), int(host.max())
        if lo < 0 or hi > K:
            raise ValueError(f"{name} must be in [0, {K}], got values in [{lo}, {hi}]")
    return xp.astype(ks, xp.int64)


def check_seed(seed, name="seed", backend=None):
    """``seed`` if it is None, a non-negative integer, a sequence of them, or a random generator.

    Generators and seed sequences of ``numpy.random`` (or ``cupy.random``)
    pass through, and so does a ``torch.Generator`` where ``backend`` is
    ``'torch'`` or not yet known (None); anything else raises
    ``TypeError``/``ValueError`` naming ``name``.
    """
    if seed is None:
        return None
    if type(seed).__module__.split(".")[0] in ("numpy", "cupy") and ".random" in type(seed).__module__:
        return seed
    if type(seed).__module__.split(".")[0] == "torch" and type(seed).__name__ == "Generator":
        if backend not in (None, "torch"):
            raise TypeError(
                f"{name} is a torch.Generator, which only the torch backend draws from, but the arrays "
                f"are {backend}'s; pass an int seed (or a numpy.random.Generator)"
            )
        return seed  # the torch backend draws from it (on its device)
    if isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
        return [check_int(s, f"{name}[{j}]", 0) for j, s in enumerate(seed)]
    try:
        return check_int(seed, name, 0)
    except TypeError:
        raise TypeError(
            f"{name} must be None, a non-negative integer or a random generator (numpy.random.Generator), got {seed!r}"
        ) from None


def check_real(value, name, low=None, allow_nan=False):
    """``value`` as a finite Python float ``>= low`` (NaN passes with ``allow_nan``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value):
        if allow_nan:
            return value
        raise ValueError(f"{name} must be a finite real number, got nan")
    if math.isinf(value) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise ValueError(f"{name} must be a finite real number{bound}, got {value}")
    return value


def check_sequence(value, name, what):
    """``value`` as a list; ``None``, strings and non-iterables raise ``TypeError`` naming ``name``."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of {what}, got {type(value).__name__}")
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of {what}, got {type(value).__name__}") from None


def check_scalar(alpha, name="alpha"):
    """A finite number (Python or NumPy scalar) as a Python int, float or complex.

    ``bool`` and non-numbers give ``None`` (the caller returns
    ``NotImplemented``); NaN, Inf and integers too large for a float raise
    ``ValueError`` naming ``name``.
    """
    if isinstance(alpha, bool) or type(alpha).__name__ in ("bool", "bool_") or not isinstance(alpha, numbers.Complex):
        return None
    try:
        if isinstance(alpha, numbers.Integral):
            value = int(alpha)
            float(value)  # OverflowError beyond the float range
        elif isinstance(alpha, numbers.Real):
            value = float(alpha)
        else:
            value = complex(alpha)
    except (OverflowError, TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number representable as a float, got {alpha!r}") from None
    if not cmath.isfinite(value):
        raise ValueError(f"{name} must be finite, got {alpha!r}")
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


def lossless_fit_tol(xp, dtype, shape):
    """Relative level below which a fit treats singular values and tails as rounding noise."""
    # default_tol (max(m, n)·eps) is too tight for tiny matrices: forming
    # W + U V^T alone costs a few eps, which would then be refitted as "signal".
    return max(default_tol(xp, dtype, shape), 32 * float(xp.finfo(dtype).eps))


def count_above(s, threshold, xp):
    """Number of entries of the 1-D array ``s`` strictly above ``threshold`` (a host int)."""
    return int(xp.sum(xp.astype(s > threshold, xp.int64)))


def nbytes(a, xp):
    """Bytes held by array ``a`` (works for namespaces without ``.nbytes``)."""
    bits = xp.finfo(a.dtype).bits
    if xp.isdtype(a.dtype, "complex floating"):
        bits *= 2  # finfo of a complex dtype describes its real part
    return _size(a) * bits // 8


def _size(a):
    """Number of entries (``a.size`` is a method on torch tensors, not the standard's attribute)."""
    n = 1
    for d in a.shape:
        n *= int(d)
    return n
