"""Numba kernels of the modular arithmetic in :mod:`theory._modular` (imported lazily).

Each kernel mirrors a pure-Python fallback in ``_modular`` (``rank`` and
``_rank_py``, ``evaluate`` and ``_eval_py``, ...); the tests run both on the
same inputs.
"""

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)


@_jit
def powmod(a, e, p):  # pragma: no cover - compiled
    r = 1
    a %= p
    while e > 0:
        if e & 1:
            r = r * a % p
        a = a * a % p
        e >>= 1
    return r


@_jit
def mulmod(a, b, p, pinv):  # pragma: no cover - compiled
    """``a * b % p`` for ``0 <= a, b < p < 2**31`` without an integer division.

    The quotient is estimated in float64 (``pinv = 1.0 / p``); its error is
    below ``2**-20``, so the remainder needs at most one correction.
    """
    q = np.int64(np.float64(a) * np.float64(b) * pinv)
    r = a * b - q * p
    if r < 0:
        r += p
    elif r >= p:
        r -= p
    return r


@_jit
def rank(M, p):  # pragma: no cover - compiled
    m, n = M.shape
    pinv = 1.0 / p
    a = M.copy() % p
    rowidx = np.arange(m)
    prow = np.empty(min(m, n), np.int64)
    pcol = np.empty(min(m, n), np.int64)
    r = 0
    for c in range(n):
        if r == m:
            break
        piv = -1
        for i in range(r, m):
            if a[i, c] != 0:
                piv = i
                break
        if piv < 0:
            continue
        if piv != r:
            for j in range(n):
                tmp = a[r, j]
                a[r, j] = a[piv, j]
                a[piv, j] = tmp
            tmp = rowidx[r]
            rowidx[r] = rowidx[piv]
            rowidx[piv] = tmp
        inv = powmod(a[r, c], p - 2, p)
        for i in range(r + 1, m):
            f = mulmod(a[i, c], inv, p, pinv)
            if f != 0:
                for j in range(c, n):
                    v = a[i, j] - mulmod(f, a[r, j], p, pinv)
                    a[i, j] = v + p if v < 0 else v
        prow[r] = rowidx[r]
        pcol[r] = c
        r += 1
    return r, prow[:r].copy(), pcol[:r].copy()


@_jit
def evaluate(C, xs, p):  # pragma: no cover - compiled
    m, n, L = C.shape
    pinv = 1.0 / p
    C = C % p
    out = np.empty((xs.shape[0], m, n), np.int64)
    for s in range(xs.shape[0]):
        x = xs[s] % p
        for i in range(m):
            for j in range(n):
                acc = 0
                for d in range(L):
                    acc = mulmod(acc, x, p, pinv) + C[i, j, d]
                    if acc >= p:
                        acc -= p
                out[s, i, j] = acc
    return out


@_jit
def cramer(E, rows, cols, F, p):  # pragma: no cover - compiled
    npts = E.shape[0]
    r = rows.shape[0]
    k = F.shape[0]
    dets = np.zeros(npts, np.int64)
    X = np.zeros((npts, r, k), np.int64)
    a = np.empty((r, r + k), np.int64)
    pinv = 1.0 / p
    for s in range(npts):
        for i in range(r):
            for j in range(r):
                a[i, j] = E[s, rows[i], cols[j]] % p
            for q in range(k):
                a[i, r + q] = (p - E[s, rows[i], F[q]] % p) % p
        det = 1
        ok = True
        for c in range(r):
            piv = -1
            for i in range(c, r):
                if a[i, c] != 0:
                    piv = i
                    break
            if piv < 0:
                ok = False
                break
            if piv != c:
                for j in range(r + k):
                    tmp = a[c, j]
                    a[c, j] = a[piv, j]
                    a[piv, j] = tmp
                det = p - det
            det = mulmod(det, a[c, c], p, pinv)
            inv = powmod(a[c, c], p - 2, p)
            for j in range(c, r + k):
                a[c, j] = mulmod(a[c, j], inv, p, pinv)
            for i in range(r):
                if i != c:
                    f = a[i, c]
                    if f != 0:
                        for j in range(c, r + k):
                            v = a[i, j] - mulmod(f, a[c, j], p, pinv)
                            a[i, j] = v + p if v < 0 else v
        if not ok:
            continue
        det %= p
        dets[s] = det
        for i in range(r):
            for q in range(k):
                X[s, i, q] = mulmod(a[i, r + q], det, p, pinv)
    return dets, X


@_jit
def garner_residues(D, k, w, q):  # pragma: no cover - compiled
    """``sum_i (D[i, e] mod q) * w[i] mod q`` for every column ``e`` of the first ``k`` rows."""
    size = D.shape[1]
    pinv = 1.0 / q
    out = np.zeros(size, np.int64)
    for e in range(size):
        acc = 0
        for i in range(k):
            v = D[i, e] % q
            acc += mulmod(v, w[i], q, pinv)
            if acc >= q:
                acc -= q
        out[e] = acc
    return out


@_jit
def interpolate(xs, Y, p):  # pragma: no cover - compiled
    npts, q = Y.shape
    out = np.zeros((npts, q), np.int64)
    dd = np.empty(npts, np.int64)
    coef = np.empty(npts, np.int64)
    # inverses of node differences, shared by all columns
    invd = np.zeros((npts, npts), np.int64)
    for lvl in range(1, npts):
        for i in range(lvl, npts):
            invd[lvl, i] = powmod((xs[i] - xs[i - lvl]) % p, p - 2, p)
    for col in range(q):
        for i in range(npts):
            dd[i] = Y[i, col] % p
        for lvl in range(1, npts):
            for i in range(npts - 1, lvl - 1, -1):
                dd[i] = (dd[i] - dd[i - 1]) % p * invd[lvl, i] % p
        for d in range(npts):
            coef[d] = 0
        for i in range(npts - 1, -1, -1):
            xi = xs[i] % p
            for d in range(npts - 1, 0, -1):
                coef[d] = (coef[d - 1] - coef[d] * xi) % p
            coef[0] = (dd[i] - coef[0] * xi) % p
        for d in range(npts):
            out[d, col] = coef[d]
    return out
