"""Modular linear algebra kernels for the generic-rank engine.

Everything here works over the prime field GF(p) with ``p < 2**31``, so that
a product of two residues fits in a signed 64-bit integer.  Each kernel has
two implementations with identical inputs and outputs (NumPy ``int64``
arrays):

* a Numba-compiled one, used when Numba is importable, and
* a pure-Python one working on Python ``int`` lists, used otherwise (and
  always available through ``backend="python"``, so that it is tested even
  where Numba is installed).

The kernels are

``rank_mod``
    Gaussian elimination: the rank of a matrix modulo ``p`` together with
    pivot rows and pivot columns whose square submatrix is nonsingular.
``eval_mod``
    Horner evaluation of a polynomial matrix at many points modulo ``p``.
``cramer_mod``
    For every evaluation point, ``det(M[rows, cols])`` and the Cramer numerators
    ``det(M[rows, cols]) * M[rows, cols]^{-1} (-M[rows, F])``.
``interpolate_mod``
    Newton interpolation of many value vectors at common nodes, returning
    monomial coefficients (lowest degree first).

Examples
--------
>>> import numpy as np
>>> from theory._modular import rank_mod
>>> M = np.array([[1, 2, 3], [2, 4, 6], [1, 0, 1]], dtype=np.int64)
>>> r, rows, cols = rank_mod(M, 101, backend="python")
>>> int(r), rows.tolist(), cols.tolist()
(2, [0, 2], [0, 1])
"""

from __future__ import annotations

import importlib.util
import random

import numpy as np

# Numba is optional and costs ~0.3 s to import: its kernels live in
# ``_modular_numba`` and are imported only when the Numba path first runs.
HAVE_NUMBA = importlib.util.find_spec("numba") is not None

__all__ = [
    "HAVE_NUMBA",
    "BACKENDS",
    "is_prime",
    "random_prime",
    "rank_mod",
    "eval_mod",
    "cramer_mod",
    "interpolate_mod",
]

BACKENDS = ("numba", "python") if HAVE_NUMBA else ("python",)

PRIME_LOW = 2**30
PRIME_HIGH = 2**31


# ---------------------------------------------------------------------------
# primes
# ---------------------------------------------------------------------------
def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin primality test for ``n < 3.3e24``.

    Parameters
    ----------
    n : int
        Integer to test.

    Returns
    -------
    bool
        Whether ``n`` is prime.

    Raises
    ------
    ValueError
        If ``n`` is too large for the deterministic witness set.

    Examples
    --------
    >>> is_prime(2**31 - 1), is_prime(2**31 + 1)
    (True, False)
    """
    n = int(n)
    if n >= 3317044064679887385961981:
        raise ValueError(f"n={n} is beyond the deterministic Miller-Rabin range")
    if n < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    for q in small:
        if n % q == 0:
            return n == q
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in small:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def random_prime(rng: random.Random, low: int = PRIME_LOW, high: int = PRIME_HIGH) -> int:
    """Uniformly random prime in ``[low, high)`` (rejection sampling).

    Parameters
    ----------
    rng : random.Random
        Source of randomness.
    low, high : int
        Half-open range; ``high`` must not exceed ``2**31``.

    Returns
    -------
    int
        A prime ``p`` with ``low <= p < high``.

    Raises
    ------
    ValueError
        If the range is empty or ``high > 2**31``.

    Examples
    --------
    >>> import random
    >>> p = random_prime(random.Random(0))
    >>> 2**30 <= p < 2**31 and is_prime(p)
    True
    """
    if not (2 <= low < high <= PRIME_HIGH):
        raise ValueError(f"need 2 <= low < high <= 2**31, got low={low}, high={high}")
    while True:
        n = rng.randrange(low, high) | 1
        if n < high and is_prime(n):
            return n


# ---------------------------------------------------------------------------
# pure-Python kernels
# ---------------------------------------------------------------------------
def _rank_py(M, p):
    a = [[int(x) % p for x in row] for row in M]
    m = len(a)
    n = len(a[0]) if m else 0
    rowidx = list(range(m))
    prow, pcol = [], []
    r = 0
    for c in range(n):
        if r == m:
            break
        piv = -1
        for i in range(r, m):
            if a[i][c]:
                piv = i
                break
        if piv < 0:
            continue
        a[r], a[piv] = a[piv], a[r]
        rowidx[r], rowidx[piv] = rowidx[piv], rowidx[r]
        inv = pow(a[r][c], p - 2, p)
        ar = a[r]
        for i in range(r + 1, m):
            ai = a[i]
            f = ai[c] * inv % p
            if f:
                for j in range(c, n):
                    ai[j] = (ai[j] - f * ar[j]) % p
        prow.append(rowidx[r])
        pcol.append(c)
        r += 1
    return r, prow, pcol


def _eval_py(C, xs, p):
    m, n = len(C), len(C[0]) if C else 0
    out = []
    for x in xs:
        x = int(x)
        E = []
        for i in range(m):
            row = []
            for j in range(n):
                acc = 0
                for c in C[i][j]:
                    acc = (acc * x + c) % p
                row.append(acc)
            E.append(row)
        out.append(E)
    return out


def _cramer_one_py(M, rows, cols, F, p):
    r, k = len(rows), len(F)
    # augmented system [M[rows, cols] | -M[rows, F]]
    a = [[M[i][j] % p for j in cols] + [(-M[i][f]) % p for f in F] for i in rows]
    det = 1
    for c in range(r):
        piv = -1
        for i in range(c, r):
            if a[i][c]:
                piv = i
                break
        if piv < 0:
            return 0, [[0] * k for _ in range(r)]
        if piv != c:
            a[c], a[piv] = a[piv], a[c]
            det = -det
        det = det * a[c][c] % p
        inv = pow(a[c][c], p - 2, p)
        ac = a[c]
        for j in range(c, r + k):
            ac[j] = ac[j] * inv % p
        for i in range(r):
            if i != c:
                ai = a[i]
                f = ai[c]
                if f:
                    for j in range(c, r + k):
                        ai[j] = (ai[j] - f * ac[j]) % p
    det %= p
    X = [[a[i][r + q] * det % p for q in range(k)] for i in range(r)]
    return det, X


def _interp_py(xs, Y, p):
    npts = len(xs)
    q = len(Y[0]) if npts else 0
    xs = [int(x) % p for x in xs]
    out = []
    for col in range(q):
        dd = [int(Y[i][col]) % p for i in range(npts)]
        for lvl in range(1, npts):
            for i in range(npts - 1, lvl - 1, -1):
                den = (xs[i] - xs[i - lvl]) % p
                dd[i] = (dd[i] - dd[i - 1]) * pow(den, p - 2, p) % p
        # Newton form -> monomial (lowest degree first)
        coef = [0] * npts
        for i in range(npts - 1, -1, -1):
            # coef = coef * (x - xs[i]) + dd[i]
            new = [0] * npts
            for d in range(npts - 1):
                if coef[d]:
                    new[d + 1] = (new[d + 1] + coef[d]) % p
                    new[d] = (new[d] - coef[d] * xs[i]) % p
            new[0] = (new[0] + dd[i]) % p
            coef = new
        out.append(coef)
    return [[out[col][d] for col in range(q)] for d in range(npts)]


# ---------------------------------------------------------------------------
# public dispatchers
# ---------------------------------------------------------------------------
def _nb():
    from . import _modular_numba

    return _modular_numba


def _check_backend(backend):
    if backend == "auto":
        return "numba" if HAVE_NUMBA else "python"
    if backend not in ("numba", "python"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'python', got {backend!r}")
    if backend == "numba" and not HAVE_NUMBA:
        raise ValueError("backend='numba' requested but numba is not importable")
    return backend


def _check_prime(p):
    if not (isinstance(p, (int, np.integer)) and 2 <= int(p) < PRIME_HIGH):
        raise ValueError(f"p must be a prime below 2**31, got {p!r}")
    return int(p)


def rank_mod(M, p, backend="auto"):
    """Rank of an integer matrix modulo a prime, with a nonsingular pivot block.

    Parameters
    ----------
    M : array_like of int, shape (m, n)
        Matrix entries (any integers; reduced modulo ``p``).
    p : int
        Prime below ``2**31``.
    backend : {"auto", "numba", "python"}
        Implementation to use.

    Returns
    -------
    rank : int
        Rank of ``M`` over GF(p).
    rows, cols : ndarray of int64, shape (rank,)
        Pivot rows and columns; ``M[rows][:, cols]`` is nonsingular mod ``p``.

    Raises
    ------
    ValueError
        For a bad backend, a bad prime or a non-2-D ``M``.

    Examples
    --------
    >>> import numpy as np
    >>> rank_mod(np.eye(3, dtype=np.int64), 7)[0]
    3
    """
    p = _check_prime(p)
    backend = _check_backend(backend)
    A = np.asarray(M, dtype=np.int64) if not isinstance(M, np.ndarray) else M
    if A.ndim != 2:
        raise ValueError(f"M must be a 2-D matrix, got shape {A.shape}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        e = np.zeros(0, np.int64)
        return 0, e, e
    if backend == "numba":
        r, rows, cols = _nb().rank(np.ascontiguousarray(A, dtype=np.int64), p)
        return int(r), rows, cols
    r, rows, cols = _rank_py(A.tolist(), p)
    return r, np.array(rows, np.int64), np.array(cols, np.int64)


def eval_mod(C, xs, p, backend="auto"):
    """Evaluate a polynomial matrix at several points modulo ``p``.

    Parameters
    ----------
    C : ndarray of int64, shape (m, n, L)
        Coefficients, highest degree first, already reduced to ``[0, p)``.
    xs : array_like of int
        Evaluation points.
    p : int
        Prime below ``2**31``.
    backend : {"auto", "numba", "python"}

    Returns
    -------
    ndarray of int64, shape (len(xs), m, n)
        ``C(x)`` modulo ``p`` for every point.

    Examples
    --------
    >>> import numpy as np
    >>> C = np.array([[[1, 0, 1]]], dtype=np.int64)   # t**2 + 1
    >>> eval_mod(C, [0, 2, 3], 7).ravel().tolist()
    [1, 5, 3]
    """
    p = _check_prime(p)
    backend = _check_backend(backend)
    xs = np.asarray(xs, dtype=np.int64) % p
    if backend == "numba":
        return _nb().evaluate(np.ascontiguousarray(C, dtype=np.int64), xs, p)
    out = _eval_py(np.asarray(C).tolist(), xs.tolist(), p)
    return np.array(out, dtype=np.int64).reshape(len(xs), C.shape[0], C.shape[1])


def cramer_mod(E, rows, cols, F, p, backend="auto"):
    """Determinants and Cramer numerators of ``M[rows, cols] X = -M[rows, F]`` mod ``p``.

    Parameters
    ----------
    E : ndarray of int64, shape (npts, m, n)
        Matrices (for example ``eval_mod`` output).
    rows, cols : sequence of int, length r
        Rows and columns of the square block.
    F : sequence of int, length k
        Right-hand-side columns.
    p : int
        Prime below ``2**31``.
    backend : {"auto", "numba", "python"}

    Returns
    -------
    dets : ndarray of int64, shape (npts,)
        ``det M[rows, cols]`` modulo ``p`` (0 where singular).
    nums : ndarray of int64, shape (npts, r, k)
        ``det * M[rows, cols]^{-1} (-M[rows, F])`` modulo ``p`` (0 where singular).

    Examples
    --------
    >>> import numpy as np
    >>> E = np.array([[[2, 0, 4], [0, 1, 1]]], dtype=np.int64)
    >>> d, X = cramer_mod(E, [0, 1], [0, 1], [2], 11)
    >>> int(d[0]), (X[0].ravel() * pow(int(d[0]), -1, 11) % 11).tolist()
    (2, [9, 10])
    """
    p = _check_prime(p)
    backend = _check_backend(backend)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    F = np.asarray(F, dtype=np.int64)
    if len(rows) != len(cols):
        raise ValueError(f"rows and cols must have equal length, got {len(rows)} and {len(cols)}")
    if backend == "numba":
        return _nb().cramer(np.ascontiguousarray(E, dtype=np.int64), rows, cols, F, p)
    El = np.asarray(E).tolist()
    dets, nums = [], []
    for M in El:
        d, X = _cramer_one_py(M, rows.tolist(), cols.tolist(), F.tolist(), p)
        dets.append(d)
        nums.append(X)
    return (
        np.array(dets, dtype=np.int64),
        np.array(nums, dtype=np.int64).reshape(len(El), len(rows), len(F)),
    )


def interpolate_mod(xs, Y, p, backend="auto"):
    """Interpolating polynomials through common nodes, modulo ``p``.

    Parameters
    ----------
    xs : array_like of int, shape (npts,)
        Distinct nodes modulo ``p``.
    Y : array_like of int, shape (npts, q)
        Values; column ``c`` holds the values of polynomial ``c``.
    p : int
        Prime below ``2**31``.
    backend : {"auto", "numba", "python"}

    Returns
    -------
    ndarray of int64, shape (npts, q)
        Row ``d`` holds the coefficients of ``t**d`` (lowest degree first).

    Raises
    ------
    ValueError
        If the nodes are not distinct modulo ``p``.

    Examples
    --------
    >>> import numpy as np
    >>> xs = [0, 1, 2]
    >>> Y = np.array([[1], [2], [5]])        # t**2 + 1
    >>> interpolate_mod(xs, Y, 13).ravel().tolist()
    [1, 0, 1]
    """
    p = _check_prime(p)
    backend = _check_backend(backend)
    xs = np.asarray(xs, dtype=np.int64) % p
    if len(set(xs.tolist())) != len(xs):
        raise ValueError("interpolation nodes xs must be distinct modulo p")
    Y = np.asarray(Y, dtype=np.int64) % p
    if Y.ndim != 2 or Y.shape[0] != len(xs):
        raise ValueError(f"Y must have shape (len(xs), q), got {Y.shape}")
    if backend == "numba":
        return _nb().interpolate(xs, np.ascontiguousarray(Y), p)
    return np.array(_interp_py(xs.tolist(), Y.tolist(), p), dtype=np.int64).reshape(Y.shape)
