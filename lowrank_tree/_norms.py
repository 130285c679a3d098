"""Scale-safe norms, tail sums and rescaling (array-API only).

A plain sum of squares under- or overflows long before the data do: in
float64 every entry below about 1e-154 squares to a subnormal or to zero and
every entry above about 1e+154 squares to infinity (float32: 1e-19 and
1e+19).  Every threshold derived from such a sum is then wrong, and so is
every rank chosen with it.  The helpers here keep the common case as cheap
as the naive computation and fall back to scaled arithmetic only when the
naive result cannot be trusted, as LAPACK's ``nrm2`` (Blue's algorithm,
Anderson's 2017 rewrite) reasons:

* :func:`fro_norm` -- one naive pass; only when its result is zero, too small
  for the squares to have been exact, or not finite, a second pass scaled by
  a power of two near ``max |x|``.
* :func:`tail_rank` -- rank choice from a squared tail
  ``res² + Σ_{i>=r} s_i² <= thr²`` evaluated after dividing by the largest
  of ``s_0``, ``res`` and ``thr`` (no square of a raw singular value).
* :func:`pow2_exponent`, :func:`scale_pow2`, :func:`comfortable` -- exact
  rescaling by powers of two, used to bring data whose norm lies outside the
  range where sums of squares and products are safe back to unit scale
  (multiplying by ``2**e`` is exact unless it under- or overflows, so a
  rescaled computation is the unit-scale computation, bit for bit).

Norms are returned as Python floats (float64), so a float32 array's norm
never overflows on the host side.
"""

import functools
import math

from .backends import backend_name, get_func

__all__ = [
    "comfortable",
    "fro_norm",
    "largest_term",
    "max_abs",
    "pow2_exponent",
    "scale_pow2",
    "tail_rank",
    "tail_ranks",
]


def _size(x):
    n = 1
    for d in x.shape:
        n *= int(d)
    return n


def _sum_of_squares(x, xp):
    """Portable ``Σ |x_i|²`` (backends override it: one BLAS dot, no warnings)."""
    v = xp.reshape(x, (-1,))
    return float(xp.real(xp.vecdot(v, v)))


@functools.lru_cache(maxsize=64)
def _norm_plan(xp, dtype):
    """``(sum of squares of one array, smallest_normal / eps)`` for arrays of ``xp`` and ``dtype``.

    Looked up once per namespace and dtype: a norm is taken several times per
    order of a fit, and the backend lookup and ``finfo`` cost more than the
    dot product itself on small matrices.
    """
    fn = get_func("sum_of_squares", backend_name(xp), default=_sum_of_squares)
    if fn is _sum_of_squares:
        fn = functools.partial(_sum_of_squares, xp=xp)
    fi = xp.finfo(dtype)
    return fn, float(fi.smallest_normal) / float(fi.eps)


def _plan(xp, dtype):
    try:
        return _norm_plan(xp, dtype)
    except TypeError:  # an unhashable dtype object: no caching
        return _norm_plan.__wrapped__(xp, dtype)


def _naive_norm(x, xp):
    ss = _plan(xp, x.dtype)[0](x)
    return math.sqrt(ss) if ss < math.inf else math.inf


def _safe_low(xp, dtype, size):
    """Smallest naive norm whose sum of squares lost nothing to underflow.

    Each square that underflows loses at most ``smallest_normal`` in absolute
    terms, so the sum of ``size`` squares is exact to ``eps`` relative once
    it is at least ``size · smallest_normal / eps``.
    """
    return math.sqrt(max(size, 1) * _plan(xp, dtype)[1])


def max_abs(x, xp):
    """``max |x|`` as a Python float (0.0 for an empty array)."""
    if _size(x) == 0:
        return 0.0
    return float(xp.max(xp.abs(x)))


def fro_norm(x, xp):
    """Frobenius norm (2-norm of the entries) of an array, scale-safe, as a Python float.

    One naive pass when it is trustworthy; otherwise (zero, subnormal-risky
    or non-finite result) the norm of ``x · 2**-e`` for ``2**e`` near
    ``max |x|``, scaled back in float64.  The result is accurate to a few
    ulps of the array's dtype for every finite input; it is ``inf`` only when
    the true norm exceeds the float64 range, ``nan`` when ``x`` holds NaN.

    Parameters
    ----------
    x : array, any shape
    xp : module
        Array namespace of ``x``.

    Returns
    -------
    float
        0.0 for an empty array.
    """
    size = _size(x)
    if size == 0:
        return 0.0
    sos, low2 = _plan(xp, x.dtype)
    ss = sos(x)
    # trustworthy: finite and at least _safe_low (NaN fails both tests)
    if size * low2 <= ss < math.inf:
        return math.sqrt(ss)
    amax = max_abs(x, xp)
    if amax == 0.0 or not math.isfinite(amax):
        return amax
    e = pow2_exponent(amax)
    # entries of x·2**-e lie in [0, 1]: no square overflows, and the ones
    # that underflow are below eps relative to the largest
    y = _naive_norm(scale_pow2(x, -e, xp), xp)
    try:
        return math.ldexp(y, e)
    except OverflowError:
        return math.inf


def largest_term(U, V, xp):
    """``max_j ‖U[:, j]‖ ‖V[:, j]‖``: the size of the largest rank-one term of ``U @ V.T``.

    Parameters
    ----------
    U : array, shape (a, r)
    V : array, shape (b, r)
        Usually the small triangular factors of a QR of the stacked factors
        (their column norms are the factors').
    xp : module

    Returns
    -------
    float
        0.0 when ``r == 0``; the column norms are taken after scaling each
        array by a power of two near its largest entry.
    """
    if U.shape[1] == 0:
        return 0.0
    eu = _unit_exponent(U, xp)
    ev = _unit_exponent(V, xp)
    if eu is None or ev is None:
        return 0.0
    nu = xp.linalg.vector_norm(scale_pow2(U, -eu, xp), axis=0)
    nv = xp.linalg.vector_norm(scale_pow2(V, -ev, xp), axis=0)
    t = float(xp.max(nu * nv))
    try:
        return math.ldexp(t, eu + ev)
    except OverflowError:
        return math.inf


def _unit_exponent(x, xp):
    amax = max_abs(x, xp)
    if amax == 0.0 or not math.isfinite(amax):
        return None
    return pow2_exponent(amax)


def pow2_exponent(value):
    """``e`` with ``2**(e-1) <= value < 2**e`` for a positive finite float (``frexp``)."""
    return math.frexp(value)[1]


def scale_pow2(x, e, xp):
    """``x · 2**e``, exact unless an entry under- or overflows.

    ``2**e`` itself need not be representable in ``x``'s dtype: the factor
    is applied in steps that are.
    """
    if e == 0:
        return x
    fi = xp.finfo(x.dtype)
    # largest power of two usable as one factor in this dtype, both ways
    step = min(pow2_exponent(float(fi.max)) - 1, -pow2_exponent(float(fi.smallest_normal)) + 1)
    y = x
    while e:
        k = max(-step, min(step, e))
        y = y * math.ldexp(1.0, k)
        e -= k
    # the Python-float factor must not promote a float32 array
    return xp.astype(y, x.dtype, copy=False) if y.dtype != x.dtype else y


def comfortable(norm, xp, dtype, size):
    """Whether data of Frobenius norm ``norm`` sits where naive arithmetic is safe.

    ``True`` for ``norm == 0`` and for norms between :func:`_safe_low` (sums
    of squares exact) and the square root of the dtype's largest value
    divided by ``16 · size`` (no sum of squares, no product with an
    orthonormal or Gaussian sketch, no difference of two such matrices
    overflows).
    """
    if norm == 0.0:
        return True
    if not math.isfinite(norm):
        return False
    fi = xp.finfo(dtype)
    high = math.sqrt(float(fi.max)) / (16.0 * max(size, 1))
    return _safe_low(xp, dtype, size) <= norm <= high


def tail_rank(s, res, thr, xp):
    """Smallest ``r`` with ``sqrt(res² + Σ_{i>=r} s_i²) <= thr``, scale-safe.

    Parameters
    ----------
    s : array, shape (L,)
        Singular values, descending (any real floating dtype; the tail is
        summed in float64, small-first).
    res : float
        Norm of what the singular values do not cover (0 when they are the
        full spectrum).
    thr : float
        Absolute tolerance, ``>= 0``.
    xp : module

    Returns
    -------
    int
        In ``[0, L]``.

    Notes
    -----
    Everything is divided by ``c = max(s_0, res, thr)`` before squaring, so
    no square overflows, and a term that underflows is below
    ``eps² · c²``, far under the threshold it is compared with whenever
    ``thr / c`` is above ``sqrt(smallest_normal)``.
    """
    L = s.shape[0]
    s0 = float(s[0]) if L else 0.0
    c = max(s0, float(res), float(thr))
    if c == 0.0:
        return 0
    t = xp.astype(s, xp.float64) / c
    r2 = (float(res) / c) ** 2
    thr2 = (float(thr) / c) ** 2
    if L == 0:
        return 0
    tail = xp.flip(xp.cumulative_sum(xp.flip(t * t))) + r2
    return int(xp.sum(xp.astype(tail > thr2, xp.int32)))


def tail_ranks(s, res, thr, xp):
    """``(tail_rank(s, res, thr), tail_rank(s, 0, thr))`` from one tail sum.

    The second is a lower bound on the rank any method needs when ``s`` are
    the singular values of a projection ``Q^H A`` of ``A`` (``Q``
    orthonormal): ``s_i <= σ_i(A)``, so a rank below it leaves at least the
    tail of ``s`` it excludes, more than ``thr``.  When the two agree, the
    first is minimal.

    Parameters
    ----------
    s, res, thr, xp
        As in :func:`tail_rank`.

    Returns
    -------
    (int, int)
    """
    L = s.shape[0]
    if 0 < L <= 64 and backend_name(xp) == "numpy":
        # a sketch's few singular values, already on the host: Python floats cost
        # less than a dozen array calls (other backends keep theirs on the device)
        vals = s.tolist()
        c = max(vals[0], float(res), float(thr))
        if c == 0.0:
            return 0, 0
        r2 = (float(res) / c) ** 2
        thr2 = (float(thr) / c) ** 2
        above = above0 = 0
        tail = 0.0
        for i in range(L - 1, -1, -1):  # small first, as the array version sums
            t = vals[i] / c
            tail += t * t
            if not above and tail + r2 > thr2:
                above = i + 1
            if tail > thr2:
                above0 = i + 1
                break
        return max(above, above0), above0
    s0 = float(s[0]) if L else 0.0
    c = max(s0, float(res), float(thr))
    if c == 0.0 or L == 0:
        return 0, 0
    t = xp.astype(s, xp.float64) / c
    r2 = (float(res) / c) ** 2
    thr2 = (float(thr) / c) ** 2
    tail = xp.flip(xp.cumulative_sum(xp.flip(t * t)))
    above = int(xp.sum(xp.astype(tail + r2 > thr2, xp.int32)))
    above0 = int(xp.sum(xp.astype(tail > thr2, xp.int32))) if r2 else above
    return above, above0
