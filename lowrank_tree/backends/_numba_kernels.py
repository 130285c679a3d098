"""Numba kernels of the ``numba`` backend (imported on first use: compiling is not free).

Every kernel is ``cache=True``: the first call in a fresh environment compiles
(see ``docs/backends.md`` for what that costs) and later processes load the
machine code from Numba's cache.  Kernels work on NumPy arrays of float32,
float64, complex64 or complex128; one specialisation is compiled per dtype.
"""

import numpy as np
from numba import njit, prange


# ----------------------------------------------------------------------------
# Building and re-merging nodes
# ----------------------------------------------------------------------------
@njit(cache=True)
def _nrm2(x):
    """2-norm of a 1-D array without under/overflow (as BLAS ``nrm2``).

    The naive sum of squares is kept when it is a normal, finite number well
    above the underflow level; otherwise the column is scaled by its largest
    entry first.  Finite input gives a finite result unless the norm itself
    exceeds the dtype's range.
    """
    ss = 0.0
    for i in range(x.shape[0]):
        ss += (x[i] * np.conj(x[i])).real
    fi = np.finfo(x.dtype)
    if ss < np.inf and ss >= x.shape[0] * fi.tiny / fi.eps:
        return np.sqrt(ss)
    amax = 0.0
    for i in range(x.shape[0]):
        amax = max(amax, abs(x[i]))
    if amax == 0.0 or not amax < np.inf:
        return amax
    ss = 0.0
    for i in range(x.shape[0]):
        y = x[i] / amax
        ss += (y * np.conj(y)).real
    return amax * np.sqrt(ss)


@njit(cache=True)
def _all_finite(A):
    for v in A.ravel():
        if not np.isfinite(v):
            return False
    return True


@njit(cache=True)
def _upper_cholesky(G):
    """Upper ``R`` with ``G = Rᴴ R``; ``ok`` is False when a pivot is not safely positive."""
    w = G.shape[0]
    R = np.zeros_like(G)
    scale = 0.0
    for j in range(w):
        scale = max(scale, G[j, j].real)
    for j in range(w):
        d = G[j, j].real
        for t in range(j):
            d -= (R[t, j] * np.conj(R[t, j])).real
        # CholeskyQR2 is accurate only for cond(B) well below 1/sqrt(eps):
        # refuse pivots that small and let the caller fall back to Householder.
        if not d > 1e-11 * scale:
            return R, False
        rjj = np.sqrt(d)
        R[j, j] = rjj
        for i in range(j + 1, w):
            acc = G[j, i]
            for t in range(j):
                acc -= np.conj(R[t, j]) * R[t, i]
            R[j, i] = acc / rjj
    return R, True


@njit(cache=True)
def _upper_inverse(R):
    """Inverse of a nonsingular upper-triangular matrix (back substitution)."""
    w = R.shape[0]
    inv = np.zeros_like(R)
    for j in range(w - 1, -1, -1):
        inv[j, j] = 1.0 / R[j, j]
        for i in range(j - 1, -1, -1):
            acc = 0.0 * R[0, 0]
            for t in range(i + 1, j + 1):
                acc += R[i, t] * inv[t, j]
            inv[i, j] = -acc / R[i, i]
    return inv


@njit(cache=True)
def _qr(B):
    """``B = Q R`` with orthonormal ``Q``: CholeskyQR2, Householder when ill-conditioned.

    CholeskyQR2 (Fukaya et al. 2014) is two Gram-Cholesky passes: GEMM work
    instead of LAPACK's panel-bound Householder QR, several times faster on
    the tall-skinny factors of tree nodes.  It is kept only when its result
    is verifiably orthonormal; rank-deficient input (shared subspaces) goes to
    ``numpy.linalg.qr``.
    """
    m, w = B.shape
    if w <= m:
        # Unit columns first (B = Bs diag(d)): the Gram matrix of B itself
        # under/overflows once entries leave ~[1e-154, 1e154] (float32:
        # [1e-19, 1e19]), and equilibration also helps CholeskyQR's accuracy.
        d = np.empty(w, dtype=B.real.dtype)
        Bs = np.empty_like(B)
        usable = True
        for j in range(w):
            d[j] = _nrm2(B[:, j])
            if not (d[j] > 0 and d[j] < np.inf):
                usable = False  # a zero column: rank deficient, Householder's job
                break
            Bs[:, j] = B[:, j] / d[j]
        if usable:
            Bh = np.ascontiguousarray(np.conj(Bs.T))
            R1, ok = _upper_cholesky(Bh @ Bs)
            if ok:
                Q1 = Bs @ _upper_inverse(R1)
                R2, ok = _upper_cholesky(np.ascontiguousarray(np.conj(Q1.T)) @ Q1)
                if ok:
                    Q = Q1 @ _upper_inverse(R2)
                    E = np.ascontiguousarray(np.conj(Q.T)) @ Q
                    err = 0.0
                    for i in range(w):
                        E[i, i] -= 1.0
                        for j in range(w):
                            err = max(err, abs(E[i, j]))
                    if err <= 64.0 * w * np.finfo(B.dtype).eps:
                        R = R2 @ R1
                        for j in range(w):
                            R[:, j] *= d[j]
                        return Q, R
    if not _all_finite(B):
        # only an overflow upstream gets here: NaN in R reaches the caller's
        # check instead of an exception inside a parallel region
        k = min(m, w)
        return np.zeros((m, k), dtype=B.dtype), np.full((k, w), np.nan, dtype=B.dtype)
    # Householder QR (LAPACK geqrf) scales its reflectors itself
    Q, R = np.linalg.qr(np.ascontiguousarray(B))
    return np.ascontiguousarray(Q), np.ascontiguousarray(R)  # one array layout for both branches


@njit(cache=True)
def _stacked_basis(A, B, a_orth):
    """``[A B] = Q R`` with ``Q`` orthonormal, reusing an orthogonal ``A``.

    When the columns of ``A`` are already mutually orthogonal (every
    recompressed node's are), ``Q_A`` is ``A`` with unit columns and only the
    part of ``B`` orthogonal to it needs a QR: block classical Gram-Schmidt,
    run twice ("twice is enough", Giraud et al. 2005), so the QR is of width
    ``r_B`` instead of ``r_A + r_B``.
    """
    m, ra = A.shape
    rb = B.shape[1]
    if a_orth:
        QA = np.empty_like(A)
        RA = np.zeros((ra, ra), dtype=A.dtype)
        for j in range(ra):
            nrm = _nrm2(A[:, j])  # a plain sum of squares under/overflows at extreme scales
            RA[j, j] = nrm
            if nrm > 0:
                QA[:, j] = A[:, j] / nrm
            else:
                QA[:, j] = 0
    else:
        QA, RA = _qr(A)
    ka = QA.shape[1]
    QAh = np.ascontiguousarray(np.conj(QA.T))
    C = QAh @ B
    B2 = B - QA @ C
    C2 = QAh @ B2
    B2 = B2 - QA @ C2
    C = C + C2
    QB, RB = _qr(B2)
    kb = QB.shape[1]
    Q = np.empty((m, ka + kb), dtype=A.dtype)
    Q[:, :ka] = QA
    Q[:, ka:] = QB
    R = np.zeros((ka + kb, ra + rb), dtype=A.dtype)
    R[:ka, :ra] = RA
    R[:ka, ra:] = C
    R[ka:, ra:] = RB
    return Q, R


def _merge_pairs(UA, VA, ra, oa, UB, VB, rb, ob, tol, Uout, Vout, rout, dense):
    """Recompress ``U_a V_aᵀ + U_b V_bᵀ`` for every pair ``p`` in parallel.

    ``UA[p, :, :ra[p]]`` etc. are the (zero-padded) factors; ``oa[p]`` says
    whether pair ``p``'s ``a`` node has orthogonal factor columns.  Results go
    to ``Uout[p, :, :rout[p]]`` and ``Vout[p, :, :rout[p]]``: left factor with
    orthogonal columns of norms equal to the kept singular values, right
    factor with orthonormal columns, as :func:`lowrank_tree.factor.recompress`.
    When the kept rank makes factors cost more than the dense matrix,
    ``dense[p]`` is set and the factors are not formed: the caller adds the
    children densely (one GEMM each).

    Singular values ``<= tol · max(s_0, max_j ‖u_j‖ ‖v_j‖)`` are dropped (the
    columns ``j`` of both children's factors), as in
    :func:`lowrank_tree.factor.recompress`: relative to the size of the
    terms, so that children that cancel leave rank 0, not rounding noise.
    A pair whose core is not finite (an overflow: the sum is beyond the
    dtype's range) gets ``rout[p] = -1`` and no exception: an exception
    cannot leave a parallel region cleanly.
    """
    P = UA.shape[0]
    m, n = UA.shape[1], VA.shape[1]
    for p in prange(P):
        a_u, a_v = UA[p, :, : ra[p]], VA[p, :, : ra[p]]
        b_u, b_v = UB[p, :, : rb[p]], VB[p, :, : rb[p]]
        a_orth = oa[p]
        if ob[p] and not oa[p]:  # put the orthogonal node first: its QR is free
            a_u, b_u = b_u, a_u
            a_v, b_v = b_v, a_v
            a_orth = True
        Qu, Ru = _stacked_basis(np.ascontiguousarray(a_u), np.ascontiguousarray(b_u), a_orth)
        Qv, Rv = _stacked_basis(np.ascontiguousarray(a_v), np.ascontiguousarray(b_v), a_orth)
        core = Ru @ np.ascontiguousarray(Rv.T)
        if not _all_finite(core):
            rout[p] = -1
            dense[p] = False
            continue
        # ‖R[:, j]‖ = ‖[A B][:, j]‖ (orthonormal Q): the size of term j
        terms = 0.0
        for j in range(Ru.shape[1]):
            terms = max(terms, _nrm2(Ru[:, j]) * _nrm2(Rv[:, j]))
        P_, s, Wh = np.linalg.svd(core, full_matrices=False)
        k = 0
        if s.shape[0] > 0 and s[0] > 0:
            thr = tol * max(s[0], terms)
            while k < s.shape[0] and s[k] > thr:
                k += 1
        k = min(k, Uout.shape[2])  # a guard only: a rank above min(m, n) / 2 is stored dense
        rout[p] = k
        if k * (m + n) >= m * n:
            dense[p] = True
            continue
        dense[p] = False
        scaled = P_[:, :k] * s[:k].astype(P_.dtype)
        Uout[p, :, :k] = Qu @ np.ascontiguousarray(scaled)
        Vout[p, :, :k] = Qv @ np.ascontiguousarray(Wh[:k, :].T)


# A level's pairs run in parallel, one per thread.  A single pair (each step of
# an update's or append's path) runs serially: a parallel region of one
# iteration only adds idle, spinning threads that slowed updates down.
merge_pairs = njit(cache=True, parallel=True)(_merge_pairs)
merge_pair_serial = njit(cache=True)(_merge_pairs)


# ----------------------------------------------------------------------------
# Queries
# ----------------------------------------------------------------------------
@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def all_orders(Y0, U, Z, nblocks):
    """``out[0] = Y0``, ``out[k + 1] = out[k] + U[k] @ Z[k]``, parallel over row blocks.

    Fuses the K per-leaf products with the running sum: the (K, m, b)
    intermediate of the NumPy path is never formed, ``out`` is written once,
    and each thread streams ``U`` and ``Z`` once for its rows (the running
    row block stays in cache between orders).
    """
    K, m, r = U.shape
    b = Y0.shape[1]
    out = np.empty((K + 1, m, b), dtype=Y0.dtype)
    step = (m + nblocks - 1) // nblocks
    for blk in prange(nblocks):
        lo = blk * step
        hi = min(m, lo + step)
        for i in range(lo, hi):
            for c in range(b):
                out[0, i, c] = Y0[i, c]
        for k in range(K):
            for i in range(lo, hi):
                src, dst = out[k, i], out[k + 1, i]
                for c in range(b):
                    dst[c] = src[c]
                for j in range(r):  # axpy over the batch: contiguous, vectorised
                    u = U[k, i, j]
                    zk = Z[k, j]
                    for c in range(b):
                        dst[c] += u * zk[c]
    return out
