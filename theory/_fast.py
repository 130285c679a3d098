"""Exact integer and modular linear algebra on BLAS: the engine's fast paths.

Three pieces of the generic-rank engine are matrix products in disguise, and
this module runs them as float64 matrix products that are *exact*: every
operand is split into limbs small enough that no sum of products exceeds
``2**53`` (the integers a float64 represents exactly), so BLAS returns the
exact integer result, and the limbs are recombined in ``int64``.

:func:`matmul_mod`
    ``A @ B`` modulo a prime ``p < 2**31``: 16-bit halves, four products.
:func:`interpolate_mod`
    Interpolation at common nodes as one product with the inverse
    Vandermonde matrix (built in ``O(npts**2)`` from the nodes' master
    polynomial), instead of one Newton recurrence per value column.
:func:`poly_product_is_zero`
    The exact test ``P N == 0`` of an integer polynomial matrix ``P`` and a
    kernel ``N`` with big coefficients: ``N``'s coefficients are cut into
    16- or 32-bit limbs, ``P``'s into 16-bit limbs, and each
    (coefficient degree, limb) slice of ``P`` multiplies all of ``N`` at
    once; an entry of ``P N`` is zero iff every coefficient of ``t`` is,
    and a coefficient, a signed sum of limbs times powers of two, is zero
    iff its carries cancel exactly (checked in ``int64``).

:class:`Garner`
    Chinese remaindering in mixed radix with symmetric digits: the residues
    modulo ``q_0 ... q_k`` are kept as ``int64`` digits, the reconstruction
    is stable exactly when the newest digit is zero, and Python integers
    are built once, at the end.

Coefficient order here is **lowest degree first** unless a docstring says
otherwise.

Examples
--------
>>> import numpy as np
>>> A = np.array([[2**30, 3], [5, 7]]); B = np.array([[2**30 + 1, 1], [0, 2**29]])
>>> p = 2**31 - 1
>>> bool((matmul_mod(A, B, p) == (A.astype(object) @ B.astype(object)) % p).all())
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["Garner", "interpolate_mod", "matmul_mod", "poly_product_is_zero", "vandermonde_inverse_mod"]

#: Largest magnitude that every partial sum of a float64 product may reach
#: and still be an exact integer.
_EXACT = 2**53

#: Memory (bytes) of the limb array of one chunk of kernel columns in
#: :func:`poly_product_is_zero`; larger kernels are checked chunk by chunk.
CHUNK_BYTES = 8 * 2**20


#: Work (multiply-adds) above which the engine's BLAS products run on one
#: BLAS thread: they come in long sequences of medium-sized products, where
#: threads that wait for busy cores cost far more than they gain.
ONE_THREAD_WORK = 10**7


def one_blas_thread(work):
    """Context manager: BLAS on one thread while ``work`` exceeds ``ONE_THREAD_WORK`` (needs threadpoolctl)."""
    import contextlib

    if work < ONE_THREAD_WORK:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with the numba extra
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ---------------------------------------------------------------------------
# modular products
# ---------------------------------------------------------------------------
def matmul_mod(A, B, p):
    """``A @ B`` modulo ``p``, exactly, with four float64 BLAS products.

    Parameters
    ----------
    A : ndarray of int, shape (m, k)
        Entries in ``[0, p)``.
    B : ndarray of int, shape (k, n)
        Entries in ``[0, p)``.
    p : int
        Modulus below ``2**31``.

    Returns
    -------
    ndarray of int64, shape (m, n)
        Entries in ``[0, p)``.

    Notes
    -----
    Each operand is split as ``hi * 2**16 + lo`` with ``hi < 2**15``,
    ``lo < 2**16``; a product of limbs is below ``2**32`` and a sum of
    ``k < 2**21`` of them below ``2**53``, so each float64 product is exact.
    Longer inner dimensions are summed in chunks.
    """
    A = np.asarray(A, dtype=np.int64)
    B = np.asarray(B, dtype=np.int64)
    m, k = A.shape
    n = B.shape[1]
    out = np.zeros((m, n), dtype=np.int64)
    step = 2**20
    s16, s32 = (1 << 16) % p, (1 << 32) % p
    for start in range(0, max(k, 1), step):
        a, b = A[:, start : start + step], B[start : start + step]
        ah, al = (a >> 16).astype(np.float64), (a & 0xFFFF).astype(np.float64)
        bh, bl = (b >> 16).astype(np.float64), (b & 0xFFFF).astype(np.float64)
        hh = (ah @ bh).astype(np.int64) % p
        mid = ((ah @ bl).astype(np.int64) + (al @ bh).astype(np.int64)) % p
        ll = (al @ bl).astype(np.int64) % p
        out = (out + hh * s32 % p + mid * s16 % p + ll) % p
    return out


def vandermonde_inverse_mod(xs, p):
    """Matrix ``W`` with ``W @ y`` = coefficients of the interpolant of ``y`` at ``xs``, mod ``p``.

    ``W[d, i]`` is the coefficient of ``t**d`` in the Lagrange basis
    polynomial ``l_i(t) = prod_{j != i} (t - x_j) / (x_i - x_j)``; all of
    them come from the master polynomial ``M(t) = prod_j (t - x_j)`` by
    synthetic division by ``t - x_i``, vectorised over ``i``:
    ``O(npts**2)`` operations.

    Parameters
    ----------
    xs : array_like of int, shape (npts,)
        Nodes, distinct modulo ``p``.
    p : int
        Prime below ``2**31``.

    Returns
    -------
    ndarray of int64, shape (npts, npts)
        Row ``d`` belongs to ``t**d`` (lowest degree first).
    """
    x = np.asarray(xs, dtype=np.int64) % p
    n = len(x)
    # master polynomial, highest degree first: M = prod (t - x_j)
    M = np.zeros(n + 1, dtype=np.int64)
    M[0] = 1
    for j in range(n):
        # M <- M * (t - x_j): coefficient c_i becomes c_i - x_j c_{i-1}
        M[1 : j + 2] = (M[1 : j + 2] - x[j] * M[0 : j + 1]) % p
    # Q_i = M / (t - x_i), highest first: q_0 = M_0, q_d = M_d + x_i q_{d-1}
    Q = np.empty((n, n), dtype=np.int64)  # Q[d, i], highest first
    acc = np.full(n, M[0], dtype=np.int64)
    Q[0] = acc
    for d in range(1, n):
        acc = (M[d] + x * acc) % p
        Q[d] = acc
    # weights w_i = Q_i(x_i) = prod_{j != i} (x_i - x_j)
    w = np.zeros(n, dtype=np.int64)
    for d in range(n):
        w = (w * x + Q[d]) % p
    inv = np.array([pow(int(v), p - 2, p) for v in w], dtype=np.int64)
    return (Q[::-1] * inv[None, :]) % p


def interpolate_mod(xs, Y, p):
    """Interpolating polynomials through common nodes, modulo ``p``.

    The same contract as :func:`theory._modular.interpolate_mod`: row ``d``
    of the result holds the coefficients of ``t**d``.

    Parameters
    ----------
    xs : array_like of int, shape (npts,)
        Nodes, distinct modulo ``p``.
    Y : ndarray of int, shape (npts, q)
        Values in ``[0, p)``.
    p : int
        Prime below ``2**31``.

    Returns
    -------
    ndarray of int64, shape (npts, q)
    """
    return matmul_mod(vandermonde_inverse_mod(xs, p), np.asarray(Y, dtype=np.int64) % p, p)


# ---------------------------------------------------------------------------
# Chinese remaindering
# ---------------------------------------------------------------------------
class Garner:
    """Mixed-radix Chinese remaindering with symmetric digits.

    After primes ``q_0, ..., q_k`` the represented integers are
    ``X = v_0 + v_1 q_0 + v_2 q_0 q_1 + ...`` with digits
    ``|v_i| <= (q_i - 1)/2``; then ``X`` is the symmetric residue (in
    ``[-(Q-1)/2, (Q-1)/2]``, ``Q = q_0 ... q_k``) of the data, and it equals
    the reconstruction from one prime fewer exactly when the newest digit is
    zero.

    Examples
    --------
    >>> import numpy as np
    >>> g = Garner()
    >>> for q in (101, 103, 107):
    ...     _ = g.add(np.array([-12345 % q, 7]), q)
    >>> g.integers().tolist()
    [-12345, 7]
    """

    def __init__(self, backend="auto"):
        from . import _modular

        self.primes = []  # list of int
        self.digits = []  # list of int64 arrays, the data's shape
        self.modulus = 1
        self._numba = _modular._check_backend(backend) == "numba"
        self._buffer = None  # digits as rows of one (capacity, size) array

    def add(self, residues, q):
        """Add the residues modulo a new prime ``q``; return whether the newest digit is zero.

        Parameters
        ----------
        residues : ndarray of int64
            The data modulo ``q``, in ``[0, q)``; the same shape every time.
        q : int
            A prime below ``2**31``, coprime to the primes added before.

        Returns
        -------
        bool
            True when the reconstruction did not change (never for the first prime).
        """
        r = np.asarray(residues, dtype=np.int64) % q
        k = len(self.digits)
        if k:
            # X mod q = sum_i v_i (q_0 ... q_{i-1}) mod q
            w = np.empty(k, dtype=np.int64)
            w[0] = 1
            for i in range(1, k):
                w[i] = int(w[i - 1]) * self.primes[i - 1] % q
            if self._numba:
                from . import _modular_numba

                acc = _modular_numba.garner_residues(self._buffer, k, w, q)
            else:
                acc = matmul_mod(self._buffer[:k].T % q, w[:, None], q)[:, 0]
            inv = pow(self.modulus % q, q - 2, q)
            v = (r.ravel() - acc) % q * inv % q
        else:
            v = r.ravel()
        v = np.where(v > q // 2, v - q, v)
        if self._buffer is None or self._buffer.shape[0] == k:
            grown = np.empty((max(8, 2 * k), v.size), dtype=np.int64)
            if k:
                grown[:k] = self._buffer[:k]
            self._buffer = grown
        self._buffer[k] = v
        self.digits.append(v.reshape(r.shape))
        self.primes.append(q)
        self.modulus *= q
        return k > 0 and not v.any()

    def integers(self):
        """The reconstructed integers (object array of Python ints, the data's shape).

        ``X = sum_i v_i Q_i`` with ``Q_i = q_0 ... q_{i-1}``, as one exact
        float64 product of the digits with the 16-bit limbs of the ``Q_i``,
        carried into two's-complement limbs and read by ``int.from_bytes``.
        """
        shape = self.digits[0].shape
        k = len(self.digits)
        nl = (self.modulus.bit_length() + 2) // 16 + 1  # room for the sign bit
        if k >= 128:  # k * 2**46 would exceed 2**53: exact Python arithmetic instead
            acc = self.digits[-1].astype(object)
            for v, qi in zip(self.digits[-2::-1], self.primes[-2::-1]):
                acc = v.astype(object) + qi * acc
            return acc
        Q, prefix = [], 1
        for qi in self.primes:
            Q.append(prefix)
            prefix *= qi
        QL = _limbs(Q, 2 * nl, 2)  # (k, nl), nonnegative
        D = self._buffer[:k].T.astype(np.float64)
        X = (D @ QL).astype(np.int64)  # exact: |v| < 2**30, limbs < 2**16, k < 128
        out = np.empty(X.shape, dtype=np.uint16)
        carry = np.zeros(X.shape[0], dtype=np.int64)
        for lv in range(nl):
            v = X[:, lv] + carry
            out[:, lv] = v & 0xFFFF
            carry = v >> 16
        data = out.astype("<u2").tobytes()
        step = 2 * nl
        vals = [int.from_bytes(data[i : i + step], "little", signed=True) for i in range(0, len(data), step)]
        res = np.empty(len(vals), dtype=object)
        res[:] = vals
        return res.reshape(shape)


# ---------------------------------------------------------------------------
# exact polynomial products
# ---------------------------------------------------------------------------
def _limbs(values, nbytes, width):
    """Signed limbs of Python ints: ``v == sum(out[l] * 2**(8 * width * l))``.

    ``values`` is a flat sequence of ints with ``|v| < 2**(8 * nbytes)``;
    the result has shape ``(len(values), nbytes // width)``, float64.
    """
    ints = [int(v) for v in values]
    buf = b"".join(abs(v).to_bytes(nbytes, "little") for v in ints)
    dt = {2: "<u2", 4: "<u4"}[width]
    mag = np.frombuffer(buf, dtype=dt).reshape(len(ints), nbytes // width).astype(np.float64)
    sign = np.fromiter((-1.0 if v < 0 else 1.0 for v in ints), dtype=np.float64, count=len(ints))
    return mag * sign[:, None]


def poly_product_is_zero(P, N):
    """Exact test of ``P N == 0`` for integer polynomial matrices.

    Parameters
    ----------
    P : list of list of list of int
        ``m x n`` matrix; ``P[i][j]`` is a coefficient list, **highest
        degree first**.
    N : list of dict
        ``k`` sparse columns ``{row j: coefficient list (highest first)}``.

    Returns
    -------
    bool or None
        Whether every entry of ``P N`` is the zero polynomial; None when the
        sizes are beyond the exactness bounds of the limb products (then the
        caller must use another exact method).
    """
    k = len(N)
    used = sorted({j for col in N for j, f in col.items() if f})
    if not k or not used or not P:
        return True
    m = len(P)
    LP = max((len(P[i][j]) for i in range(m) for j in used), default=0)
    if LP == 0:
        return True
    LN = max(len(f) for col in N for f in col.values() if f)
    pbits = max((abs(int(c)).bit_length() for i in range(m) for j in used for c in P[i][j]), default=0)
    nbits = max(abs(int(c)).bit_length() for col in N for f in col.values() for c in f)
    if pbits == 0 or nbits == 0:
        return True
    u = len(used)
    AP = -(-pbits // 16)  # 16-bit limbs of P
    pmax = min(pbits, 16)
    # N's limbs: 32 bits when P's limbs are few and small enough, else 16
    width = 4 if AP == 1 and u.bit_length() + pmax + 32 <= 52 else 2
    if u.bit_length() + pmax + 8 * width > 52 or LP * AP >= 512:
        return None  # a float64 product or the int64 sums could lose exactness
    shift = 8 * width if AP == 1 else 16
    nbytes = width * -(-nbits // (8 * width))
    BN = nbytes // width
    pos = {j: a for a, j in enumerate(used)}
    # P's limbs: (AP, LP, m, u), lowest degree first
    Pl = np.zeros((AP, LP, m, u), dtype=np.float64)
    pbytes = 2 * AP
    for i in range(m):
        for j in used:
            f = P[i][j]
            if f:
                L = _limbs(f[::-1], pbytes, 2)  # (len f, AP)
                Pl[:, : len(f), i, pos[j]] = L.T
    with one_blas_thread(AP * LP * m * u * k * LN * BN):
        return _limb_products_vanish(Pl, N, pos, m, u, k, AP, LP, LN, BN, nbytes, width, shift)


def _limb_products_vanish(Pl, N, pos, m, u, k, AP, LP, LN, BN, nbytes, width, shift):
    """The chunked limb products of :func:`poly_product_is_zero` and the exact carry test."""
    chunk = max(1, CHUNK_BYTES // max(1, 8 * u * LN * BN))
    S = LP + LN - 1
    for c0 in range(0, k, chunk):
        cols = N[c0 : c0 + chunk]
        kc = len(cols)
        flat, where = [], []
        for c, col in enumerate(cols):
            for j, f in col.items():
                if f:
                    flat.extend(f[::-1])
                    where.append((pos[j], c, len(f)))
        L = _limbs(flat, nbytes, width)
        Nl = np.zeros((u, kc, LN, BN), dtype=np.float64)
        at = 0
        for a, c, n in where:
            Nl[a, c, :n] = L[at : at + n]
            at += n
        Nl = Nl.reshape(u, kc * LN * BN)
        out = np.zeros((m, kc, S, AP + BN), dtype=np.int64)
        for a in range(AP):
            for d in range(LP):
                slab = Pl[a, d]
                if not slab.any():
                    continue
                prod = (slab @ Nl).astype(np.int64).reshape(m, kc, LN, BN)
                out[:, :, d : d + LN, a : a + BN] += prod
        # each coefficient is sum_l out[..., l] * 2**(shift * l): zero iff the carries cancel
        carry = np.zeros(out.shape[:3], dtype=np.int64)
        mask = (1 << shift) - 1
        for lv in range(AP + BN):
            v = out[..., lv] + carry
            if (v & mask).any():
                return False
            carry = v >> shift
        if carry.any():
            return False
    return True
