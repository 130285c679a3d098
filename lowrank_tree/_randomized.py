"""Randomized range finders for the cascading fit (array-API only).

Two building blocks, both returning an orthonormal basis ``Q`` (m×l) of an
approximate range of ``A`` together with ``B = Q^H A`` (l×n), so that
``A ≈ Q B`` and the SVD of the small ``B`` gives the SVD of the approximation:

* :func:`fixed_rank_qb` -- the randomized range finder of Halko, Martinsson &
  Tropp (2011), Algorithm 4.4: a Gaussian sketch with ``r + oversample``
  columns, ``power_iters`` subspace iterations with QR re-orthonormalisation
  after every product.
* :func:`adaptive_qb` -- the blocked fixed-precision range finder ``randQB_EI``
  of Yu, Gu & Li (2018), Algorithm 2 (with the power scheme): blocks are added
  until the error indicator ``‖A‖_F² − ‖B‖_F²`` (exact in exact arithmetic for
  orthonormal ``Q``, kept relative to ``‖A‖_F²``) drops below ``thr²``.  The indicator is a difference of
  two nearly equal numbers once ``thr²`` approaches ``eps·‖A‖_F²``, so the
  final residual ``‖A − QB‖_F`` is computed explicitly once, and the loop goes
  on (from the measured value) when the indicator was too optimistic.

Neither function imports an array library: ``xp`` is the array namespace and
random numbers come from the backend's ``standard_normal``.

References
----------
.. [1] N. Halko, P. G. Martinsson, J. A. Tropp, "Finding structure with
   randomness: probabilistic algorithms for constructing approximate matrix
   decompositions", SIAM Review 53(2), 217-288, 2011.
.. [2] W. Yu, Y. Gu, Y. Li, "Efficient randomized algorithms for the
   fixed-precision low-rank matrix approximation", SIAM J. Matrix Anal. Appl.
   39(3), 1339-1359, 2018.
"""

import math

from ._norms import fro_norm
from .backends import backend_name, device_of, get_func
from .backends.contract import portable

__all__ = ["Sketcher", "adaptive_qb", "fixed_rank_qb", "conj_transpose", "fro_norm", "svd_wide"]


class Sketcher:
    """Lazily created random generator shared by all orders of a fit (one seed, one stream, one device)."""

    def __init__(self, xp, seed, device=None):
        self.backend = backend_name(xp)
        self.seed = seed
        self.device = device
        self._rng = None
        #: orders left before the tolerance fit tries a sketch without power iterations again
        self.plain_skip = 0
        #: consecutive plain sketches that failed to prove their rank minimal
        self.plain_fails = 0
        #: rank of the previous order (sizes the next plain sketch: an evolving family's ranks change slowly)
        self.last_rank = 0
        #: dtype -> the fit's empty (rank-0) correction, shared by its rank-0 orders
        self.empty = {}

    @property
    def rng(self):
        if self._rng is None:
            self._rng = get_func("make_rng", self.backend)(self.seed, self.device)
        return self._rng


def conj_transpose(x, xp):
    """``x^H`` (plain transpose for real dtypes, no copy)."""
    xt = xp.matrix_transpose(x)
    return xp.conj(xt) if xp.isdtype(x.dtype, "complex floating") else xt


def _orth(Y, xp, backend=None):
    # Householder QR keeps Q orthonormal to working precision even when Y is
    # rank deficient, which a Gram-Schmidt pass would not.  The backend's
    # orth_columns skips the R factor (NumPy: LAPACK directly, 4x cheaper).
    return _orth_columns(backend or backend_name(xp))(Y, xp)


def _orth_columns(backend):
    return get_func("orth_columns", backend, default=portable("orth_columns"))


def svd_wide(B, xp, backend=None):
    """Thin SVD ``(P, s, Wh)`` of the range finder's ``B`` (l×n, ``l <= n``), through the backend's kernel."""
    return get_func("svd_wide", backend or backend_name(xp), default=portable("svd_wide"))(B, xp)


def _sketch(rng, backend, shape, dtype):
    return get_func("standard_normal", backend)(rng, shape, dtype)


def fixed_rank_qb(A, rank, xp, rng, backend, *, oversample=10, power_iters=2):
    """Randomized range finder for a fixed target rank.

    Parameters
    ----------
    A : array, shape (m, n)
    rank : int
        Target rank ``r``; the sketch has ``l = min(r + oversample, m, n)``
        columns.
    xp : module
        Array namespace of ``A``.
    rng : generator
        From ``get_func("make_rng", backend)(seed, device)`` on ``A``'s device.
    backend : str
        Backend name (for the random numbers).
    oversample, power_iters : int
        Extra sketch columns and subspace iterations (each iteration costs
        two products with ``A`` and sharpens a slowly decaying spectrum).

    Returns
    -------
    Q : array, shape (m, l)
        Orthonormal columns.
    B : array, shape (l, n)
        ``Q^H A``.
    """
    m, n = A.shape
    width = min(rank + oversample, m, n)  # the docstring's ``l``
    Q = _orth(A @ _sketch(rng, backend, (n, width), A.dtype), xp, backend)
    AH = conj_transpose(A, xp)
    for _ in range(power_iters):
        # Re-orthonormalise after every product: without it the columns of
        # (A A^H)^q A Ω all align with the top singular vector in floating point.
        Z = _orth(AH @ Q, xp, backend)
        Q = _orth(A @ Z, xp, backend)
    return Q, conj_transpose(Q, xp) @ A


def adaptive_qb(
    A, thr, xp, rng, backend, *, block=16, power_iters=2, max_cols=None, norm_a=None, check=True, defer=False
):
    """Blocked fixed-precision range finder (randQB_EI with power scheme).

    Adds orthonormal blocks to ``Q`` until ``‖A − Q Q^H A‖_F <= thr``,
    verified explicitly at the end.

    Parameters
    ----------
    A : array, shape (m, n)
    thr : float
        Absolute Frobenius tolerance (``>= 0``).
    xp, rng, backend
        As in :func:`fixed_rank_qb`.
    block : int
        Columns added per step.
    power_iters : int
        Subspace iterations per block.
    max_cols : int, optional
        Give up (return ``None``) once ``Q`` would need more than this many
        columns (the last block is narrowed to reach it; a first block wider
        than it gives up at once); the caller then uses a full SVD, which is
        cheaper by then.
        Default ``min(m, n) // 2``.  The search also gives up early, as soon
        as the energy captured so far per column shows that the remaining
        error cannot be reached within ``max_cols`` (see Notes).
    norm_a : float, optional
        ``‖A‖_F`` if the caller already has it.
    check : bool
        Measure ``‖A − Q B‖_F`` explicitly when the indicator claims
        convergence (default).  With False, a claim made while ``thr²`` is at
        least ``1000·eps·max(m, n)·‖A‖_F²`` (far above the indicator's
        rounding error) is accepted and ``res`` is the indicator's value:
        for callers that measure their final error themselves.
    defer : bool
        With ``check=False``: a claim the indicator cannot vouch for (below
        that level, or the indicator down to its rounding error) is returned
        unmeasured, with ``res = None``, instead of measuring ``‖A − QB‖_F``
        (three passes over ``A``).  For a caller that measures the error of
        what it builds from ``Q`` and ``B`` anyway and calls again with
        ``check=True`` when that error misses.

    Returns
    -------
    (Q, B, res) or None
        ``Q`` (m×l, orthonormal), ``B = Q^H A`` (l×n) and the measured
        ``res = ‖A − Q B‖_F``, which is ``<= thr`` (the indicator's value or
        None as described under ``check`` and ``defer``); ``None`` if the
        range grew, or would grow, past ``max_cols``.

    Notes
    -----
    The error indicator ``E = ‖A‖_F² − Σ_i ‖B_i‖_F²`` equals ``‖A − QB‖_F²``
    for exactly orthonormal ``Q`` (Yu, Gu & Li 2018, Theorem 1); each new block
    is orthogonalised against the previous ``Q`` twice ("twice is enough"),
    then orthonormalised by one QR, so that the identity holds to working
    precision (the first block has nothing to be orthogonalised against).  Subtracting nearly equal
    numbers loses all digits once ``thr²`` is near ``eps·‖A‖_F²``; hence the
    explicit check (also made once ``E`` is down to ``4·eps·max(m, n)``, its
    rounding level, which a tolerance below it would otherwise never see
    reached), after which ``E`` restarts from the measured residual.
    The indicator is kept relative to ``‖A‖_F²`` (every norm is divided by
    ``‖A‖_F`` before it is squared), so that it neither under- nor overflows
    whatever the scale of ``A``.

    *Giving up early.*  The range finder meets the largest singular
    directions first, so a later column captures no more energy than the
    average column so far (exactly so for the singular vectors, in
    expectation for a sketch).  With ``c = (‖A‖² − E) / l`` captured per
    column after ``l`` columns, reaching the tolerance needs at least
    ``l + (E − thr²) / c`` columns; once that exceeds ``max_cols`` the search
    stops: a residual close to full rank (noise, independent matrices) costs
    one block instead of ``max_cols / block`` before the caller's full SVD.
    """
    m, n = A.shape
    dtype = A.dtype
    if max_cols is None:
        max_cols = min(m, n) // 2
    if norm_a is None:
        norm_a = fro_norm(A, xp)
    Q = xp.zeros((m, 0), dtype=dtype, device=device_of(A))
    B = xp.zeros((0, n), dtype=dtype, device=device_of(A))
    if norm_a <= thr:
        return Q, B, norm_a
    orth = _orth_columns(backend)
    # relative indicator E / ‖A‖² and threshold (thr / ‖A‖)²: scale-free
    thr2 = (float(thr) / norm_a) ** 2
    E = 1.0
    # Below a few eps·max(m, n) the indicator is rounding noise.
    stuck = 4 * float(xp.finfo(dtype).eps) * max(m, n)
    trusted = not check and thr2 >= 250 * stuck  # 1000·eps·max(m, n)
    AH = conj_transpose(A, xp)
    while True:
        found = Q.shape[1]
        b = min(block, min(m, n) - found)
        if found + b > max_cols:
            if found == 0:
                return None  # not even the first block fits: the rank is expected high
            b = max_cols - found  # a narrower last block: up to max_cols, not a block short of it
        if b <= 0:
            return None
        Om = _sketch(rng, backend, (n, b), dtype)
        if found == 0:
            # the first block: nothing to deflate or to orthogonalise against
            Qi = orth(A @ Om, xp)
            for _ in range(power_iters):
                Qi = orth(A @ orth(AH @ Qi, xp), xp)
            Bi = conj_transpose(Qi, xp) @ A
            Q, B = Qi, Bi
        else:
            QH = conj_transpose(Q, xp)
            BH = conj_transpose(B, xp)
            # Products with the deflated matrix A - Q B, never formed explicitly.
            Qi = orth(A @ Om - Q @ (B @ Om), xp)
            for _ in range(power_iters):
                Z = orth(AH @ Qi - BH @ (QH @ Qi), xp)
                Qi = orth(A @ Z - Q @ (B @ Z), xp)
            # against the previous blocks twice ("twice is enough"), then one QR
            Qi = Qi - Q @ (QH @ Qi)
            Qi = orth(Qi - Q @ (QH @ Qi), xp)
            Bi = conj_transpose(Qi, xp) @ A
            Q = xp.concat([Q, Qi], axis=1)
            B = xp.concat([B, Bi], axis=0)
        E = E - (fro_norm(Bi, xp) / norm_a) ** 2
        if E <= thr2 and trusted:
            return Q, B, math.sqrt(max(E, 0.0)) * norm_a
        if E <= thr2 or E <= stuck:
            # Claimed convergence, or E down to its own rounding error (where
            # it may never reach a tolerance below that): only the measured
            # residual can tell.
            if defer and not check:
                return Q, B, None
            res = fro_norm(A - Q @ B, xp)
            if res <= thr:
                return Q, B, res
            E = (res / norm_a) ** 2  # the indicator lied (cancellation); go on from the truth
        else:
            cols = Q.shape[1]
            captured = 1.0 - E
            if captured > 0.0 and cols + (E - thr2) * cols / captured > max_cols:
                return None  # the tolerance lies beyond max_cols (see Notes)
