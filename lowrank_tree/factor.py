"""The factored matrix ``LowRank`` and the recompression kernel.

A ``LowRank`` is the m×n matrix ``U @ V.T`` held as its factors ``U`` (m×r)
and ``V`` (n×r).  Note the plain transpose: for complex data this is *not*
``U @ V^H``, so a factorisation of a complex matrix never needs a conjugate.
"""

from __future__ import annotations

from typing import Any

from ._norms import largest_term
from ._ownership import exposed, take
from ._typing import Array, ArrayLike
from ._validation import (
    as_array,
    check_finite,
    check_int,
    check_scalar,
    check_tol,
    count_above,
    default_tol,
    nbytes,
    resolve_device,
    resolve_namespace,
    same_device,
)
from .backends import backend_name, device_of

__all__ = ["LowRank", "correction_factors", "recompress"]


def recompress(U, V, xp, tol=None, max_rank=None):
    """Best low-rank factors of ``U @ V.T`` up to a relative tolerance.

    QR of the left factor and of the right factor, then an SVD of the small
    core ``R_U R_V^T``; singular values ``<= tol * max(sigma_max, t_max)``
    are dropped, where ``t_max = max_j ‖U[:, j]‖ ‖V[:, j]‖`` is the size of
    the largest rank-one term.  Rounding while the terms are summed is of
    order ``eps * t_max``, so when terms cancel (``A + (-A)``) what is left
    is noise at that level and is dropped, whereas a threshold relative to
    the (noise-sized) ``sigma_max`` of the sum would keep it.
    Cost ``O((m + n) r^2 + r^3)``, never forming the m×n product.

    Parameters
    ----------
    U : array, shape (m, r)
    V : array, shape (n, r)
    xp : module
        Array namespace of ``U`` and ``V``.
    tol : float, optional
        Relative drop tolerance; default ``max(m, n) * eps`` (lossless up to
        rounding).
    max_rank : int, optional
        Keep at most this many singular values.

    Returns
    -------
    U_new : array, shape (m, k)
        Left factor, columns orthogonal with norms equal to the kept singular
        values.
    V_new : array, shape (n, k)
        Right factor with orthonormal columns.
    s : array, shape (min(m, n, r),)
        All singular values of ``U @ V.T`` (before truncation).
    """
    m, n, r = U.shape[0], V.shape[0], U.shape[1]
    if tol is None:
        tol = default_tol(xp, U.dtype, (m, n))
    if r == 0:
        return U, V, xp.zeros((0,), dtype=xp.real(U[:0, :0]).dtype, device=device_of(U))
    Qu, Ru = xp.linalg.qr(U)
    Qv, Rv = xp.linalg.qr(V)
    P, s, Wh = xp.linalg.svd(Ru @ xp.matrix_transpose(Rv), full_matrices=False)
    # ‖R_U[:, j]‖ = ‖U[:, j]‖ (orthonormal Q_U): the term sizes from the small factors
    k = _kept_rank(s, tol, max_rank, xp, scale=largest_term(Ru, Rv, xp))
    # U V^T = Qu P diag(s) Wh Qv^T, so the new right factor is Qv Wh^T (no conjugate).
    U_new = Qu @ (P[:, :k] * xp.astype(s[:k], U.dtype))
    V_new = Qv @ xp.matrix_transpose(Wh[:k, :])
    return U_new, V_new, s


def correction_factors(delta, xp, name, shape, allow_dense=False, device=None, move=False):
    """Validated factors ``(U, V)`` of one correction ``Δ = U @ V.T``.

    Parameters
    ----------
    delta : LowRank, (U, V) pair, or array of shape ``shape``
        A dense array is accepted only with ``allow_dense`` and is factorised
        losslessly (:meth:`LowRank.from_dense`).
    xp : module
        Namespace the factors must belong to.
    name : str
        Argument name used in error messages.
    shape : tuple of int
        ``(m, n)`` of the matrix the correction is added to.
    allow_dense : bool
        Accept a dense array (see ``delta``).
    device : optional
        Device the factors must lie on (None: any); see
        :func:`~lowrank_tree._validation.as_array`.
    move : bool
        Copy factors on another device to ``device`` instead of refusing them.

    Returns
    -------
    U : array, shape (m, r)
    V : array, shape (n, r)

    Raises
    ------
    TypeError
        Another array library or device, a non-numeric dtype, or (without
        ``allow_dense``) something that is neither a LowRank nor a pair.
    ValueError
        Wrong shapes, unequal factor widths, NaN/Inf.
    """
    m, n = shape
    if isinstance(delta, LowRank):
        if delta.xp is not xp:
            raise TypeError(
                f"{name} is a LowRank on {backend_name(delta.xp)} arrays but {backend_name(xp)} "
                f"arrays are expected (mixing array libraries is not allowed)"
            )
        U, V = delta._U, delta._V  # owned by an immutable LowRank: safe to share
        if not same_device(U, device):
            if not move:
                raise TypeError(f"{name} is a LowRank on device {delta.device} but the arrays are on {device}")
            U = as_array(U, xp, f"{name} U factor", device=device, move=True)
            V = as_array(V, xp, f"{name} V factor", device=device, move=True)
    elif isinstance(delta, (tuple, list)) and len(delta) == 2:
        U = as_array(delta[0], xp, f"{name} U factor", ndim=2, device=device, move=move)
        V = as_array(delta[1], xp, f"{name} V factor", ndim=2, device=device, move=move)
        if U.shape[1] != V.shape[1]:
            raise ValueError(
                f"{name} factors must have the same number of columns, got U {tuple(U.shape)} and V {tuple(V.shape)}"
            )
    elif allow_dense:
        D = as_array(delta, xp, name, ndim=2, device=device, move=move)
        if tuple(D.shape) != (m, n):
            raise ValueError(f"{name} must have shape {(m, n)}, got {tuple(D.shape)}")
        check_finite(D, xp, name)
        low = LowRank.from_dense(D)
        U, V = low.U, low.V
    else:
        raise TypeError(f"{name} must be a LowRank or a (U, V) pair, got {type(delta).__name__}")
    if U.shape[0] != m or V.shape[0] != n:
        raise ValueError(
            f"{name} must have shape {(m, n)} (a {m}x{n} correction: U with {m} rows, "
            f"V with {n} rows), got U {tuple(U.shape)} and V {tuple(V.shape)}"
        )
    check_finite(U, xp, f"{name} U factor")
    check_finite(V, xp, f"{name} V factor")
    return U, V


def _kept_rank(s, tol, cap, xp, scale=0.0):
    """How many of the descending ``s`` exceed ``tol * max(s[0], scale)``, at most ``cap``."""
    smax = float(s[0]) if s.shape[0] else 0.0
    k = count_above(s, tol * max(smax, scale), xp) if smax > 0 else 0
    return k if cap is None else min(k, cap)


class LowRank:
    """The matrix ``U @ V.T`` kept in factored form.

    Parameters
    ----------
    U : array_like, shape (m, r)
        Left factor.  ``r`` may be 0 (the zero matrix).
    V : array_like, shape (n, r)
        Right factor.
    backend : {'numpy', 'numba', 'cupy', 'torch', 'array_api_strict'}, optional
        Array library; by default the library of ``U`` and ``V``.
    device : optional
        Device of the factors (``'cuda'``, ``'cpu'`` for torch); by default
        that of ``U`` and ``V`` (NumPy input to a device library: the
        library's default device).  Factors on another device are copied there.

    Attributes
    ----------
    U, V : arrays
        The factors, in a common floating dtype: read-only views on NumPy,
        copies on other array libraries (see Notes).
    shape : tuple of int
        ``(m, n)``.
    rank : int
        ``r``, the number of factor columns (an upper bound of the true rank;
        :meth:`compress` makes it exact).

    See Also
    --------
    LowRank.from_dense : Truncated SVD of a dense matrix.
    LowRankSegmentTree : A family of corrections, summed in ``O(log K)`` nodes.

    Notes
    -----
    A ``LowRank`` is immutable and owns its factors: the constructor copies
    ``U`` and ``V`` (once, together with any dtype conversion), so writing to
    the caller's arrays afterwards does not change it.  ``A.U`` and ``A.V``
    cannot be used to change it either: NumPy arrays come back as read-only
    views (no copy; writing raises ``ValueError``), arrays of libraries
    without a read-only flag (``array_api_strict``, CuPy, PyTorch) as copies.  Results
    of operations (``A + B``, ``A.T``, ``-A``, ``compress``) may share
    factors with their operands, which is safe because none of them ever
    changes.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_tree import LowRank
    >>> rng = np.random.default_rng(0)
    >>> A = LowRank(rng.standard_normal((5, 2)), rng.standard_normal((4, 2)))
    >>> A.shape, A.rank
    ((5, 4), 2)
    >>> x = np.ones(4)
    >>> bool(np.allclose(A @ x, A.to_dense() @ x))
    True
    >>> (A + A).rank, (A + A).compress().rank
    (4, 2)
    """

    __array_priority__ = 1000  # make ndarray @ LowRank defer to __rmatmul__
    # NumPy arrays and scalars (np.int64(2) * A) return NotImplemented instead of
    # broadcasting over the object, so Python calls __rmul__ / __rmatmul__.
    __array_ufunc__ = None

    def __init__(self, U: ArrayLike, V: ArrayLike, *, backend: str | None = None, device: Any = None) -> None:
        U_in, V_in = U, V
        xp = resolve_namespace(U, V, names=("U", "V"), backend=backend)
        device = resolve_device(xp, device)
        U = as_array(U, xp, "U", ndim=2, device=device, move=device is not None)
        V = as_array(V, xp, "V", ndim=2, device=device_of(U), move=device is not None)
        if U.shape[1] != V.shape[1]:
            raise ValueError(
                f"U and V must have the same number of columns (the rank), "
                f"got U {tuple(U.shape)} and V {tuple(V.shape)}"
            )
        check_finite(U, xp, "U")
        check_finite(V, xp, "V")
        dtype = xp.result_type(U.dtype, V.dtype)
        self._U = take(U, U_in, dtype, xp)
        self._V = take(V, V_in, dtype, xp)
        self._xp = xp

    @classmethod
    def _from_factors(cls, U, V, xp):
        """Trusted constructor: no checks, no copies.

        The factors must be validated and owned by no caller: fresh results,
        or arrays of another immutable object.
        """
        obj = cls.__new__(cls)
        obj._U, obj._V, obj._xp = U, V, xp
        return obj

    @property
    def U(self) -> Array:
        """Left factor, shape (m, r): read-only view (NumPy) or copy (other libraries)."""
        return exposed(self._U, self._xp)

    @property
    def V(self) -> Array:
        """Right factor, shape (n, r): read-only view (NumPy) or copy (other libraries)."""
        return exposed(self._V, self._xp)

    # -- basic properties -------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``, the shape of ``U @ V.T``."""
        return (self._U.shape[0], self._V.shape[0])

    @property
    def rank(self) -> int:
        """``r``, the number of factor columns (an upper bound of the true rank)."""
        return self._U.shape[1]

    @property
    def dtype(self) -> Any:
        """Dtype of the factors."""
        return self._U.dtype

    @property
    def xp(self) -> Any:
        """Array namespace of the factors."""
        return self._xp

    @property
    def device(self) -> Any:
        """Device of the factors (``'cpu'`` for NumPy; a ``torch.device`` for torch tensors)."""
        return device_of(self._U)

    @property
    def nbytes(self) -> int:
        """Bytes held by the two factors."""
        return nbytes(self._U, self._xp) + nbytes(self._V, self._xp)

    @property
    def T(self) -> LowRank:
        """The transpose ``V @ U.T`` (swaps the factors, no copy)."""
        return LowRank._from_factors(self._V, self._U, self._xp)

    def __repr__(self):
        m, n = self.shape
        return f"LowRank(shape=({m}, {n}), rank={self.rank}, dtype={self.dtype})"

    # -- conversion -------------------------------------------------------
    def to_dense(self) -> Array:
        """The m×n matrix ``U @ V.T``.

        Returns
        -------
        array, shape (m, n)
        """
        return self._U @ self._xp.matrix_transpose(self._V)

    @classmethod
    def from_dense(
        cls,
        M: ArrayLike,
        *,
        rank: int | None = None,
        rtol: float | None = None,
        backend: str | None = None,
        device: Any = None,
    ) -> LowRank:
        """Best low-rank factorisation of a dense matrix by truncated SVD.

        Parameters
        ----------
        M : array_like, shape (m, n)
        rank : int, optional, keyword-only
            Keep exactly ``min(rank, numerical rank)`` singular triplets; ``rank``
            must not exceed ``min(m, n)``.
        rtol : float, optional, keyword-only
            Relative singular-value cutoff (see :doc:`/glossary`): drop
            singular values ``<= rtol * sigma_max``.  Default
            ``max(m, n) * eps`` (lossless), as in ``numpy.linalg.matrix_rank``,
            so that the result has the numerical rank of ``M``.
        backend : {'numpy', 'numba', 'cupy', 'torch', 'array_api_strict'}, optional, keyword-only
            Array library; by default that of ``M``.
        device : optional, keyword-only
            Device of the factors (e.g. ``'cuda'`` for torch); by default that
            of ``M`` (NumPy input to a device library: the library's default).

        Returns
        -------
        LowRank
            ``U`` has orthogonal columns scaled by the singular values, ``V``
            orthonormal columns.

        Raises
        ------
        ValueError
            If ``M`` is not 2-D, holds NaN/Inf, or ``rank > min(m, n)``.

        See Also
        --------
        numpy.linalg.svd : The factorisation truncated here.
        scipy.linalg.pinv : The same ``rtol`` convention for a relative singular-value cutoff.

        Examples
        --------
        >>> import numpy as np
        >>> M = np.outer([1.0, 2.0, 3.0], [1.0, -1.0])
        >>> A = LowRank.from_dense(M)
        >>> A.rank, bool(np.allclose(A.to_dense(), M))
        (1, True)
        """
        xp = resolve_namespace(M, names=("M",), backend=backend)
        device = resolve_device(xp, device)
        M = as_array(M, xp, "M", ndim=2, device=device, move=device is not None)
        check_finite(M, xp, "M")
        m, n = M.shape
        if rank is not None:
            rank = check_int(rank, "rank", 0, min(m, n))
        tol = check_tol(rtol, "rtol")
        if tol is None:
            tol = default_tol(xp, M.dtype, M.shape)
        if min(m, n) == 0:
            dev = device_of(M)
            return cls._from_factors(
                xp.zeros((m, 0), dtype=M.dtype, device=dev), xp.zeros((n, 0), dtype=M.dtype, device=dev), xp
            )
        P, s, Wh = xp.linalg.svd(M, full_matrices=False)
        k = _kept_rank(s, tol, rank, xp)
        U = P[:, :k] * xp.astype(s[:k], M.dtype)
        # a copy: a view would keep the whole min(m, n)×n factor alive
        V = xp.asarray(xp.matrix_transpose(Wh[:k, :]), copy=True)
        return cls._from_factors(U, V, xp)

    def compress(self, *, rtol: float | None = None, max_rank: int | None = None) -> LowRank:
        """Recompressed copy with the numerical rank (or at most ``max_rank``).

        Parameters
        ----------
        rtol : float, optional, keyword-only
            Relative singular-value cutoff (see :doc:`/glossary`): drop
            singular values ``<= rtol * max(sigma_max, t_max)``, with
            ``t_max`` the largest ``‖U[:, j]‖ ‖V[:, j]‖`` (see
            :func:`recompress`); default ``max(m, n) * eps`` (lossless).
        max_rank : int, optional, keyword-only
            Upper bound on the rank of the result.

        Returns
        -------
        LowRank

        Examples
        --------
        >>> import numpy as np
        >>> u = np.arange(1.0, 4.0)[:, None]
        >>> A = LowRank(np.hstack([u, 2 * u]), np.ones((2, 2)))
        >>> A.rank, A.compress().rank
        (2, 1)
        """
        tol = check_tol(rtol, "rtol")
        if max_rank is not None:
            max_rank = check_int(max_rank, "max_rank", 0)
        U, V, _ = recompress(self._U, self._V, self._xp, tol=tol, max_rank=max_rank)
        return LowRank._from_factors(U, V, self._xp)

    def singular_values(self) -> Array:
        """Singular values of ``U @ V.T``, descending, length ``min(m, n, r)`` (no truncation)."""
        return recompress(self._U, self._V, self._xp, tol=0.0)[2]

    # -- arithmetic -------------------------------------------------------
    def __matmul__(self, X):
        """``U @ (V.T @ X)`` for ``X`` of shape (n,) or (n, b)."""
        xp = self._xp
        X = as_array(X, xp, "X", ndim=2, allow_1d=True, device=self.device)
        n = self.shape[1]
        if X.shape[0] != n:
            raise ValueError(f"X must have {n} rows (the number of columns of the matrix), got shape {tuple(X.shape)}")
        check_finite(X, xp, "X")
        # xp.matmul, not @: X may have another dtype, and torch's @ does not promote
        if X.ndim == 2:
            return xp.matmul(self._U, xp.matmul(xp.matrix_transpose(self._V), X))
        return xp.matmul(self._U, xp.matmul(X, self._V))

    def __rmatmul__(self, Y):
        """``(Y @ U) @ V.T`` for ``Y`` of shape (m,) or (b, m)."""
        xp = self._xp
        Y = as_array(Y, xp, "Y", ndim=2, allow_1d=True, device=self.device)
        m = self.shape[0]
        if Y.shape[-1] != m:
            raise ValueError(f"Y must have {m} columns (the number of rows of the matrix), got shape {tuple(Y.shape)}")
        check_finite(Y, xp, "Y")
        return xp.matmul(xp.matmul(Y, self._U), xp.matrix_transpose(self._V))

    def _check_same(self, other, op):
        if not isinstance(other, LowRank):
            return False
        if other.shape != self.shape:
            raise ValueError(f"cannot {op} LowRank of shape {other.shape} and {self.shape}")
        if other._xp is not self._xp:
            raise TypeError(f"cannot {op} LowRank objects from different array libraries")
        if str(other.device) != str(self.device):
            raise TypeError(f"cannot {op} LowRank objects on different devices ({self.device} and {other.device})")
        return True

    def __add__(self, other):
        """Sum as a concatenation of factors (rank adds; see :meth:`compress`)."""
        if not self._check_same(other, "add"):
            return NotImplemented
        xp = self._xp
        dtype = xp.result_type(self.dtype, other.dtype)
        U = xp.concat([xp.astype(self._U, dtype), xp.astype(other._U, dtype)], axis=1)
        V = xp.concat([xp.astype(self._V, dtype), xp.astype(other._V, dtype)], axis=1)
        return LowRank._from_factors(U, V, xp)

    def __neg__(self):
        return LowRank._from_factors(-self._U, self._V, self._xp)

    def __sub__(self, other):
        if not self._check_same(other, "subtract"):
            return NotImplemented
        return self + (-other)

    def __mul__(self, alpha):
        """Scalar multiple ``alpha * (U @ V.T)`` (scales ``U``).

        ``alpha`` is a Python or NumPy number (not ``bool``), used as a Python
        scalar: a real ``alpha`` keeps the factors' dtype (a float32 LowRank
        stays float32), a complex one makes them complex of the same precision.

        Raises
        ------
        ValueError
            If ``alpha`` is NaN or Inf, or the product overflows the dtype.
        """
        value = check_scalar(alpha, "alpha")
        if value is None:
            return NotImplemented
        # a Python float, not an int: torch refuses ints beyond int64 (2**70), and a float factor
        # times a float is what NumPy computes for an int too
        U = self._U * (float(value) if isinstance(value, int) else value)
        check_finite(U, self._xp, f"alpha * U (alpha={alpha!r}, dtype {self.dtype})")
        # a complex alpha makes U complex: V follows, so that both factors keep one dtype
        V = self._V if U.dtype == self._V.dtype else self._xp.astype(self._V, U.dtype)
        return LowRank._from_factors(U, V, self._xp)

    __rmul__ = __mul__
