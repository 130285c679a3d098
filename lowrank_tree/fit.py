"""Cascading low-rank fit of a matrix family ``M_0..M_K``.

The family is stored as a shared base ``W_0 = M_0`` plus low-rank corrections
``Δ_k = U_k V_k^T``: the fitted order ``k`` is ``Ŵ_k = W_0 + Σ_{i<=k} Δ_i``.
Each ``Δ_k`` approximates the residual against the *fitted* previous order,
``R_k = M_k − Ŵ_{k−1}``, so a truncation error made at one order is seen (and
corrected, where the rank allows) by the next.

All array code is written against an array-API namespace ``xp``; NumPy, CuPy
and array_api_strict inputs run through the same lines.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._budget import allocate_budget
from ._norms import comfortable, fro_norm, max_abs, pow2_exponent, scale_pow2, tail_ranks
from ._ownership import adopting, exposed, take
from ._randomized import Sketcher, adaptive_qb, fixed_rank_qb, svd_wide
from ._threads import small_blas
from ._typing import Array, ArrayLike, Seed
from ._validation import (
    as_array,
    check_finite,
    check_int,
    check_real,
    check_seed,
    check_sequence,
    check_tol,
    count_above,
    is_single_order,
    lossless_fit_tol,
    nbytes,
    open_matrices,
    resolve_device,
    resolve_namespace,
)
from .backends import backend_name, device_of
from .factor import LowRank, correction_factors

if TYPE_CHECKING:
    from .tree import LowRankSegmentTree

__all__ = ["Cascade", "DenseCorrectionWarning", "PrecisionFloorWarning", "cascade_fit"]

_METHODS = ("auto", "exact", "randomized")
#: Extra rank steps tried when rounding makes a tolerance-chosen rank miss.
_MAX_GROW = 4
#: Orders with ``min(m, n)`` up to this run their SVDs and QRs with one BLAS
#: thread (when threadpoolctl is installed): small LAPACK calls gain nothing
#: from threads and lose badly when the cores are busy.
SMALL_BLAS_MAX = 512


class PrecisionFloorWarning(UserWarning):
    """A requested ``tol`` was below what the working precision can resolve and was raised."""


class DenseCorrectionWarning(UserWarning):
    """Some fitted corrections store at least as many numbers as dense matrices would.

    A rank-``r`` correction of an m×n family stores ``r (m + n)`` numbers,
    more than the ``m n`` of a dense matrix once ``r >= m n / (m + n)``
    (full-rank residuals: noise, independently trained matrices).  The fit
    keeps them factored (every correction is a :class:`LowRank`) and warns;
    :meth:`Cascade.summary` reports the true ratio.
    """


# --------------------------------------------------------------------------
# Result object
# --------------------------------------------------------------------------
class Cascade:
    """A fitted matrix family: base plus cascaded low-rank corrections.

    Usually obtained from :func:`cascade_fit`; the constructor is public so
    that saved cascades can be rebuilt.

    Parameters
    ----------
    base : array_like, shape (m, n)
        ``W_0``.
    corrections : sequence of LowRank or (U, V) pairs, length K
        ``Δ_1..Δ_K``; ``U`` is m×r_k, ``V`` is n×r_k, ``Δ_k = U @ V.T``.
    errors : sequence of float, length K + 1, optional
        Relative Frobenius errors of the fitted orders (``None``/``nan`` when
        unknown; by default all unknown except ``errors[0] = 0``).
    method : str, optional, keyword-only
        The SVD method that produced the fit (informative only).
    backend : {'numpy', 'numba', 'cupy', 'torch', 'array_api_strict'}, optional, keyword-only
        Array library; by default that of ``base``.
    device : optional, keyword-only
        Device of the arrays (``'cuda'``, ``'cpu'`` for torch); by default that
        of ``base`` (NumPy input to a device library: the library's default).
        Arrays on another device are copied there.

    Attributes
    ----------
    base : array, shape (m, n)
        ``W_0 = M_0``.
    corrections : list of LowRank, length K
    ranks : list of int, length K
        ``r_k``, the rank of ``Δ_k``.
    errors : list of float, length K + 1
        ``‖Ŵ_k − M_k‖_F / ‖M_k‖_F`` (absolute when ``M_k = 0``); ``errors[0]``
        is 0.
    n_params : int
        ``m·n + Σ r_k (m + n)``: numbers stored (base included).
    dense_params : int
        ``(K + 1)·m·n``: numbers in one dense matrix per order.
    max_order : int
        ``K``: the orders are ``0..K`` (``K + 1`` of them), the corrections
        ``Δ_1..Δ_K``.
    shape : tuple of int
        ``(m, n)``.
    dtype
        Dtype of the base and the factors.
    method : str
        ``'exact'`` or ``'randomized'``.

    See Also
    --------
    cascade_fit : Fits one to a matrix family.
    Cascade.tree : The low-rank segment tree of its corrections.
    save, load : Persistence.

    Notes
    -----
    A cascade never changes after construction and owns its arrays: the
    constructor copies the caller's base and ``(U, V)`` pairs (a
    :class:`LowRank`'s factors are shared, being immutable too), and
    :func:`cascade_fit` hands over the arrays it computed without a second
    copy.  :attr:`base` is a read-only view on NumPy and a copy on libraries
    without read-only arrays (``array_api_strict``, CuPy, PyTorch);
    :attr:`corrections` and :attr:`errors` are new lists.  :meth:`tree`
    shares the base and the factors with the new tree, which never writes to
    them either.  A cascade is therefore safe to share between threads.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_tree.fit import Cascade
    >>> c = Cascade(np.eye(3), [(np.ones((3, 1)), np.ones((3, 1)))])
    >>> c.ranks, c.n_params, c.dense_params
    ([1], 15, 18)
    >>> c.matrix(1)
    array([[2., 1., 1.],
           [1., 2., 1.],
           [1., 1., 2.]])
    """

    def __init__(
        self,
        base: ArrayLike,
        corrections: Sequence[Any],
        errors: Sequence[float | None] | None = None,
        *,
        method: str = "exact",
        backend: str | None = None,
        device: Any = None,
    ) -> None:
        base_in = base
        xp = resolve_namespace(base, names=("base",), backend=backend)
        device = resolve_device(xp, device)
        move = device is not None
        base = as_array(base, xp, "base", ndim=2, device=device, move=move)
        check_finite(base, xp, "base")
        device = device_of(base)
        m, n = base.shape
        corr = []
        dtype = base.dtype
        sources = []  # what the caller passed, to decide what must be copied
        corrections = check_sequence(corrections, "corrections", "LowRank or (U, V) pairs")
        for i, c in enumerate(corrections):
            U, V = correction_factors(c, xp, f"corrections[{i}]", (m, n), device=device, move=move)
            dtype = xp.result_type(dtype, U.dtype, V.dtype)
            corr.append(LowRank._from_factors(U, V, xp))
            if isinstance(c, LowRank):
                # its factors are immutable and may be shared (None: no copy); moved ones are new
                sources.append((None, None) if U is c._U else (c._U, c._V))
            else:
                sources.append((c[0], c[1]))
        K = len(corr)
        if errors is None:
            errors = [0.0] + [float("nan")] * K
        errors = check_sequence(errors, "errors", "floats (one per order) or None")
        if len(errors) != K + 1:
            raise ValueError(f"errors must have length K + 1 = {K + 1}, got {len(errors)}")
        errors = [
            float("nan") if e is None else check_real(e, f"errors[{k}]", low=0.0, allow_nan=True)
            for k, e in enumerate(errors)
        ]
        base = take(base, base_in, dtype, xp)
        corr = [
            LowRank._from_factors(take(c._U, U_in, dtype, xp), take(c._V, V_in, dtype, xp), xp)
            for c, (U_in, V_in) in zip(corr, sources)
        ]
        self._set(base, corr, errors, str(method), xp, backend)

    @classmethod
    def _from_parts(cls, base, corrections, errors, method, xp, backend=None):
        """Trusted constructor for :func:`cascade_fit`: no checks, no copies (it owns the arrays)."""
        obj = cls.__new__(cls)
        obj._set(base, corrections, errors, method, xp, backend)
        return obj

    def _set(self, base, corrections, errors, method, xp, backend):
        self._base = base
        self._corrections = tuple(corrections)
        self._errors = tuple(errors)
        self._method = method
        self._xp = xp
        self._backend = backend if backend is not None else backend_name(xp)

    # -- contents (never writable views of the cascade's own arrays) ----
    @property
    def base(self) -> Array:
        """``W_0``, shape (m, n): a read-only view (NumPy) or a copy."""
        return exposed(self._base, self._xp)

    @property
    def corrections(self) -> list[LowRank]:
        """``Δ_1..Δ_K``, a new list of (immutable) :class:`LowRank`."""
        return list(self._corrections)

    @property
    def errors(self) -> list[float]:
        """Relative Frobenius errors of the fitted orders, a new list of K + 1 floats."""
        return list(self._errors)

    # -- sizes ------------------------------------------------------------
    @property
    def xp(self) -> Any:
        """Array namespace of the base and factors."""
        return self._xp

    @property
    def backend(self) -> str:
        """Backend name (``'numba'`` keeps NumPy arrays; :meth:`tree` builds on it)."""
        return self._backend

    @property
    def device(self) -> Any:
        """Device of the base and factors (``'cpu'`` for NumPy; a ``torch.device`` for torch)."""
        return device_of(self._base)

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``, the shape of every order's matrix."""
        return tuple(self._base.shape)

    @property
    def dtype(self) -> Any:
        """Dtype of the base and the factors."""
        return self._base.dtype

    @property
    def max_order(self) -> int:
        """``K``, the highest order: orders are ``0..K``, corrections ``Δ_1..Δ_K``."""
        return len(self._corrections)

    @property
    def method(self) -> str:
        """The SVD method that produced the fit: ``'exact'`` or ``'randomized'`` (informative)."""
        return self._method

    @property
    def ranks(self) -> list[int]:
        """Ranks ``r_1..r_K`` of the corrections (a new list)."""
        return [c.rank for c in self._corrections]

    @property
    def n_params(self) -> int:
        """Numbers stored: ``m n + Σ_i r_i (m + n)``."""
        m, n = self.shape
        return m * n + sum(self.ranks) * (m + n)

    @property
    def dense_params(self) -> int:
        """Numbers one dense matrix per order would store: ``(K + 1) m n``."""
        m, n = self.shape
        return (self.max_order + 1) * m * n

    @property
    def nbytes(self) -> int:
        """Bytes held by the base and all factors."""
        return nbytes(self._base, self._xp) + sum(c.nbytes for c in self._corrections)

    # -- access -----------------------------------------------------------
    def matrix(self, k: int) -> Array:
        """The fitted order ``Ŵ_k = W_0 + Σ_{i<=k} Δ_i`` as a dense array.

        Parameters
        ----------
        k : int
            Order, ``0 <= k <= K``.

        Returns
        -------
        array, shape (m, n)
            A new array (never a view of :attr:`base`).

        Raises
        ------
        ValueError
            If ``k`` is outside ``[0, K]``.
        """
        k = check_int(k, "k", 0, self.max_order)
        xp = self._xp
        used = [c for c in self._corrections[:k] if c.rank > 0]
        if not used:
            return xp.asarray(self._base, copy=True)
        # One GEMM with the concatenated factors instead of k rank-r products.
        U = xp.concat([c._U for c in used], axis=1)
        V = xp.concat([c._V for c in used], axis=1)
        return self._base + U @ xp.matrix_transpose(V)

    def tree(self, **opts: Any) -> LowRankSegmentTree:
        """A :class:`~lowrank_tree.tree.LowRankSegmentTree` over the corrections.

        Parameters
        ----------
        **opts
            Passed on, e.g. ``tol``; ``backend`` defaults to the cascade's.

        Returns
        -------
        LowRankSegmentTree
            ``LowRankSegmentTree(self.base, self.corrections, **opts)``.  The
            tree shares the base and the leaf factors with the cascade instead
            of copying them: neither object ever writes to its arrays.
        """
        from .tree import LowRankSegmentTree

        opts.setdefault("backend", self._backend)
        with adopting(self._base):
            return LowRankSegmentTree(self._base, self._corrections, **opts)

    # -- reporting --------------------------------------------------------
    def __repr__(self):
        m, n = self.shape
        ranks = self.ranks
        shown = ranks if len(ranks) <= 8 else ranks[:4] + ["..."] + ranks[-3:]
        shown = "[" + ", ".join(str(r) for r in shown) + "]"
        max_err = max(self.errors)
        return (
            f"Cascade(max_order={self.max_order}, shape=({m}, {n}), dtype={self.dtype}, "
            f"method={self.method!r}, ranks={shown}, max_error={max_err:.2e}, "
            f"params={self.n_params}/{self.dense_params})"
        )

    def summary(self) -> str:
        """Plain-text table of the fit: order, rank and relative error.

        Returns
        -------
        str

        Examples
        --------
        >>> import numpy as np
        >>> from lowrank_tree.fit import cascade_fit
        >>> c = cascade_fit(np.stack([np.eye(4), 2 * np.eye(4)]), ranks=1)
        >>> print(c.summary())  # doctest: +NORMALIZE_WHITESPACE
        Cascade: K = 1, 4 x 4, float64, method 'exact'
        order  rank  rel. error
            0  base   0.000e+00
            1     1   4.330e-01
        parameters: 24 of 32 dense (1.33x fewer)
        """
        m, n = self.shape
        lines = [
            f"Cascade: K = {self.max_order}, {m} x {n}, {self.dtype}, method {self.method!r}",
            f"{'order':>5}  {'rank':>4}  {'rel. error':>10}",
            f"{0:>5}  {'base':>4}  {self.errors[0]:>10.3e}",
        ]
        for k, (r, e) in enumerate(zip(self.ranks, self.errors[1:]), start=1):
            lines.append(f"{k:>5}  {r:>4}  {e:>10.3e}")
        stored, dense = self.n_params, self.dense_params
        if stored < dense:
            versus = f"{dense / stored:.2f}x fewer"
        else:  # corrections of high rank can cost more than the dense matrices
            versus = f"{stored / dense:.2f}x more" if stored > dense else "as many"
        lines.append(f"parameters: {stored} of {dense} dense ({versus})")
        costly = _costlier_than_dense(self.ranks, m, n)
        if costly:
            lines.append(
                f"{costly} of {self.max_order} corrections store more than dense "
                f"(rank >= m n / (m + n) = {m * n / (m + n):.1f})"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------
def cascade_fit(
    mats: ArrayLike | Iterable[ArrayLike],
    *,
    ranks: int | Sequence[int] | None = None,
    tol: float | None = None,
    budget: int | None = None,
    method: str = "auto",
    seed: Seed = None,
    oversample: int = 10,
    power_iters: int = 2,
    backend: str | None = None,
    device: Any = None,
) -> Cascade:
    """Fit a base and cascaded low-rank corrections to ``M_0..M_K``.

    ``W_0 = M_0`` exactly; for ``k = 1..K`` the residual against the fitted
    previous order, ``R_k = M_k − Ŵ_{k−1}``, is replaced by its best rank-r_k
    factorisation ``Δ_k = U_k V_k^T`` and ``Ŵ_k = Ŵ_{k−1} + Δ_k``.  Because
    ``R_k`` is taken against the *fitted* ``Ŵ_{k−1}``, truncation errors of
    earlier orders are corrected later when the rank allows.

    Parameters
    ----------
    mats : array, sequence of arrays, or iterator
        The targets ``M_0..M_K``, each m×n: a 3-D array of shape
        ``(K + 1, m, n)``, a list or tuple of 2-D arrays, or any iterator
        (e.g. a generator) yielding 2-D arrays one at a time.  An iterator is
        consumed lazily: besides the base and the fitted factors only the
        running fitted matrix ``Ŵ_{k−1}``, the current ``M_k`` and the residual
        are held, never the whole stack (except in ``budget`` mode, see below).
        ``K = 0`` (a single matrix) gives no corrections.  Every argument
        after ``mats`` is keyword-only.
    ranks : int or sequence of int, optional
        Target rank of every correction (an int, NumPy integers included) or
        of each (length K).  Each
        must be in ``[0, min(m, n)]``.  A rank is lowered to the numerical
        rank of ``R_k`` (singular values ``<= ε·max(‖M_k‖_F, ‖Ŵ_{k−1}‖_F,
        ‖R_k‖_F)`` with the lossless level ``ε = max(m, n, 32)·eps`` are
        dropped), so ``ranks=min(m, n)`` is lossless and stores no zero
        directions.
    tol : float, optional
        Relative Frobenius error per order, in ``[0, 1)`` (see
        :doc:`/glossary`): ``r_k`` is the
        smallest rank with ``‖Ŵ_k − M_k‖_F <= tol·‖M_k‖_F`` (absolute
        ``<= tol`` when ``M_k = 0``).  Tolerances below the lossless level
        ``ε = max(m, n, 32)·eps`` of the working dtype are raised to it, with a
        :class:`PrecisionFloorWarning` (``tol=0`` asks for that level and
        does not warn).  Works in both
        methods: the randomized path uses an adaptive range finder with a
        verified a-posteriori error.
    budget : int, optional
        Total number of parameters allowed for the corrections,
        ``Σ r_k (m + n) <= budget`` (the base's ``m·n`` is not counted).  The
        ranks go to the largest marginal gains; this needs every ``M_k``
        up front, so an iterator is materialised in this mode.  See Notes.
    method : {'auto', 'exact', 'randomized'}
        ``'exact'``: full SVD of each residual, truncated.  ``'randomized'``:
        randomized range finder (fixed rank: ``r + oversample`` columns and
        ``power_iters`` subspace iterations; tolerance: adaptive blocked
        randQB_EI); an order whose range would exceed ``min(m, n) / 2``
        columns falls back to the full SVD, which is cheaper by then.
        ``'auto'``: chosen per order from the work (see Notes).
    seed : None, int, numpy.random.Generator or torch.Generator
        Seed of the random sketches; the same seed gives identical results
        (a ``torch.Generator`` only on the torch backend, on the arrays' device).
        Checked on every call, whether or not the fit draws random numbers.
        With ``method="auto"``, ``None`` means the fixed seed 0, so that the
        default fit is reproducible; with ``method="randomized"`` it means
        fresh entropy.
    oversample : int, keyword-only
        Extra sketch columns in the fixed-rank randomized path, and beyond the
        previous order's rank in the tolerance path's first sketch (default 10).
    power_iters : int, keyword-only
        Subspace iterations of the randomized range finders (default 2).
        With ``tol``, each order is sketched first without them and only
        sketched again with them when the rank found cannot be proven
        minimal from the sketch's singular values; see Notes, *Cost*.
    backend : {'numpy', 'numba', 'cupy', 'torch', 'array_api_strict'}, keyword-only
        Array library; by default that of the input arrays.  ``'cupy'`` moves
        NumPy input to the GPU, ``'torch'`` to a tensor on ``device``;
        ``'numba'`` fits with NumPy (the fit is LAPACK-bound) and builds its
        :meth:`Cascade.tree` on Numba.
    device : keyword-only, optional
        Device to fit on (``'cuda'``, ``'cpu'``, a ``torch.device``; for torch
        tensors and NumPy input to the torch backend): matrices elsewhere are
        copied there one at a time.  By default the device of the first
        matrix; every later one must lie there too (``TypeError`` otherwise).

    With none of ``ranks``, ``tol`` and ``budget`` the fit is lossless:
    ``tol`` at its floor ``ε`` (a residual that is rounding noise gets rank 0).

    Returns
    -------
    Cascade
        ``.base`` (m×n), ``.corrections`` (K ``LowRank``), ``.ranks``,
        ``.errors`` (length K + 1, each ``‖Ŵ_k − M_k‖_F / ‖M_k‖_F`` measured
        on the dense matrices during the fit), ``.n_params``,
        ``.dense_params``, ``.method``, ``.matrix(k)``, ``.tree()``.

    Raises
    ------
    ValueError
        Matrices of different shapes (names ``mats[k]`` and the expected
        shape), NaN/Inf, a 2-D ``mats``, no matrix at all, a rank outside
        ``[0, min(m, n)]``, ``ranks`` of the wrong length, more than one of
        ``ranks``/``tol``/``budget``, an unknown ``method``.
    TypeError
        Mixed array libraries, a refused dtype (see Notes), a rank, budget or
        seed that is not an integer (``bool`` and floats included).

    See Also
    --------
    Cascade : The fitted family it returns.
    LowRankSegmentTree : Fast queries, updates and appends on the fit (``Cascade.tree()``).
    numerical_difference_profile : Whether a family has low-rank differences before fitting it.

    Notes
    -----
    *Dtypes.* Integer inputs become float64 and float16 becomes float32;
    float32 and complex64 stay in their precision (factors, base and the
    residuals are computed in the inputs' precision or higher, never lower);
    mixed dtypes promote.  Bool, object, extended-precision (``longdouble``)
    and masked arrays raise ``TypeError`` naming ``mats``.
    Complex corrections follow the ``LowRank`` convention ``Δ = U @ V.T``
    (plain transpose).

    *Budget allocation.* The objective is the sum of squared relative errors
    ``Σ_k errors[k]²``.  With ``D_k = M_k − M_{k−1}`` and
    ``w_k = Σ_{i>=k} 1/‖M_i‖_F²``, the ``j``-th singular direction of ``D_k``
    is worth ``σ_j(D_k)²·w_k``: an error left at order ``k`` is carried into
    every later residual, so capturing it early helps all later orders.  The
    ``budget // (m + n)`` largest gains are taken (a sort, no search), then the
    cascade runs with those ranks and corrects what propagates.  When the
    ``D_k`` have mutually orthogonal row and column spaces this allocation is
    optimal among all rank vectors within the budget; the plain
    ``σ_j(D_k)²/‖M_k‖_F²`` greedy ignores the propagation and is not.
    Singular values are exact (``svdvals``) unless the randomized method is in
    use and the rank count is small, in which case a randomized sketch of
    that many top singular values is used.

    *Scale.* Ranks and relative errors do not depend on the scale of the
    data: a fit of ``s * mats`` matches the fit of ``mats`` for every ``s``
    that keeps the entries finite and normal.  Norms are computed as BLAS
    ``nrm2`` reasons (naive first, rescaled when that under/overflows), no
    threshold is squared unscaled, and an order whose norms leave the safe
    range is fitted on ``2**-e`` times its data (exact) and scaled back.

    *Corrections costlier than dense.* A correction of rank
    ``r >= m n / (m + n)`` stores at least as many numbers as a dense matrix;
    it is kept factored (so that every correction is a :class:`LowRank` in
    the tree, in files and in :meth:`Cascade.matrix`) and the fit warns with
    a :class:`DenseCorrectionWarning` giving the true storage ratio, which
    :meth:`Cascade.summary` reports too.

    *Method "auto".* The cost of the randomized path grows with the rank it
    finds, that of the full SVD does not, so the choice follows the rank, not
    the size.  Each order starts randomized; the range finder gives up and
    the order takes the full SVD once the range passes ``min(m, n) / 2``
    columns, or once its first blocks show it cannot close before then
    (fixed ranks: once ``r + oversample`` passes ``min(m, n) / 2``).  An order that
    needed the full SVD with a rank above ``min(m, n) / 4`` sends the next
    order straight to the full SVD (its rank is likely as high: noise,
    independent matrices), and an exact order with a lower rank sends the
    next back to the randomized path.  :attr:`Cascade.method` is
    ``'randomized'`` when any order used a randomized factorisation.

    *Threads.* For ``min(m, n) <= 512`` each order's factorisations run with
    one BLAS thread when threadpoolctl is installed (small LAPACK calls are
    much slower with several threads on busy cores).

    *Cost.* Exact: one m×n SVD per order.  Randomized, fixed rank ``r``:
    ``O(mn(r + p)(2q + 2))`` for oversampling ``p`` and ``q`` power
    iterations; adaptive (``tol``): first a sketch without power iterations,
    in blocks of ``r_{k−1} + oversample`` columns (the previous order's
    rank plus ``oversample``, at least 4), two passes over ``R_k`` per
    block.  Its range is kept when its rank ``r`` is proven minimal: the
    sketch's singular values ``s_i <= σ_i(R_k)`` leave a tail
    ``sqrt(Σ_{i>=r} s_i²)`` above the tolerance at rank ``r − 1``, so no
    method can use rank ``r − 1``.  Otherwise the range is found again with
    ``2q + 2`` passes per block (and the next orders start there: after
    consecutive failed proofs 1, 2, 4, then 8 orders skip the plain
    sketch).  A range whose error indicator is at its rounding level
    (tolerances near the working precision) is not measured separately:
    the fitted order's error, which is measured anyway, decides, and only
    a miss measures the range.  A range that would pass ``min(m, n) / 2``
    columns, or that the energy captured per column so far shows cannot
    reach the tolerance before then, is abandoned for the full SVD after
    its first block.  Per order the fit further reads ``M_k`` for its norm,
    forms ``R_k`` and its norm, and forms ``Ŵ_k`` and its error (four
    passes).

    References
    ----------
    .. [1] N. Halko, P. G. Martinsson, J. A. Tropp, "Finding structure with
       randomness: probabilistic algorithms for constructing approximate
       matrix decompositions", SIAM Review 53(2), 217-288, 2011.
    .. [2] W. Yu, Y. Gu, Y. Li, "Efficient randomized algorithms for the
       fixed-precision low-rank matrix approximation", SIAM J. Matrix Anal.
       Appl. 39(3), 1339-1359, 2018.

    Examples
    --------
    A family whose successive differences have rank 1:

    >>> import numpy as np
    >>> from lowrank_tree.fit import cascade_fit
    >>> rng = np.random.default_rng(0)
    >>> W0 = rng.standard_normal((6, 5))
    >>> u, v = rng.standard_normal((3, 6)), rng.standard_normal((3, 5))
    >>> mats = [W0, W0 + np.outer(u[0], v[0]), W0 + np.outer(u[0], v[0]) + np.outer(u[1], v[1])]
    >>> c = cascade_fit(mats)
    >>> c.ranks, c.n_params, c.dense_params
    ([1, 1], 52, 90)
    >>> max(c.errors) < 1e-12
    True
    >>> bool(np.allclose(c.matrix(2), mats[2]))
    True

    A tolerance picks each rank, a budget spreads a parameter count:

    >>> c = cascade_fit(mats, tol=0.5)
    >>> all(e <= 0.5 for e in c.errors)
    True
    >>> cascade_fit(mats, budget=11).ranks
    [1, 0]

    Streaming from a generator (only one target held at a time):

    >>> cascade_fit(m for m in mats).ranks
    [1, 1]
    """
    given = [name for name, v in (("ranks", ranks), ("tol", tol), ("budget", budget)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of ranks, tol, budget; got {' and '.join(given)}")
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    tol = check_tol(tol)
    if budget is not None:
        budget = check_int(budget, "budget", 0)
    oversample = check_int(oversample, "oversample", 0)
    power_iters = check_int(power_iters, "power_iters", 0)
    ranks = _parse_ranks(ranks)
    seed = check_seed(seed)
    if seed is None and method == "auto":
        # the default fit is reproducible, as the full SVD it replaces was
        seed = 0

    xp, stack, stream, count = open_matrices(mats, "mats", "(K + 1, m, n)", backend)
    check_seed(seed, backend=backend_name(xp))  # a torch.Generator needs torch arrays
    K = None if count is None else count - 1
    opts = dict(
        oversample=oversample,
        power_iters=power_iters,
        seed=seed,
        device=resolve_device(xp, device),
        checked_stack=stack is not None,
    )
    if budget is not None:
        # The allocation compares gains across orders, so it needs them all.
        shaped: list[Array] = []
        asked = opts["device"] is not None
        for k, M in enumerate(stream):
            if k == 0:
                shaped.append(_check_matrix(M, xp, 0, None, opts["device"], asked))
            else:
                shaped.append(_check_matrix(M, xp, k, shaped[0].shape, device_of(shaped[0]), asked))
        # auto: the allocation's own sketches fall back to exact singular values by size
        ranks = allocate_budget(
            shaped,
            budget,
            xp,
            "randomized" if method == "auto" else method,
            opts,
            one_blas_thread=min(shaped[0].shape) <= SMALL_BLAS_MAX,
        )
        return _run(iter(shaped), xp, len(shaped) - 1, ranks, None, method, opts, backend)
    return _run(stream, xp, K, ranks, tol, method, opts, backend)


# --------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------
def _parse_ranks(ranks):
    """None, one Python int (the same rank for every order), or a list (one per order)."""
    if ranks is None:
        return None
    if is_single_order(ranks):  # Python/NumPy integers and 0-d arrays; bool, float refused
        return check_int(ranks, "ranks")
    return check_sequence(ranks, "ranks", "ints (one rank per correction) or an int")


def _check_matrix(M, xp, k, shape, device, move, finite=True):
    """``mats[k]`` as a 2-D array of ``shape`` on ``device`` (copied there with ``move``, else refused
    if elsewhere); checked for NaN and Inf unless ``finite`` is False.

    The fit checks later orders through their norm instead (:func:`_finite_norm`).
    """
    name = f"mats[{k}]"
    M = as_array(M, xp, name, ndim=2, device=device, move=move)
    if shape is not None and tuple(M.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (the shape of mats[0]), got {tuple(M.shape)}")
    if finite:
        check_finite(M, xp, name)
    return M


def _finite_norm(M, xp, k):
    """``‖M‖_F``, raising ``ValueError`` for NaN or Inf in ``mats[k]``.

    A finite norm proves every entry finite, so the entry-wise check (a
    second pass and a boolean temporary) runs only when the norm is not.
    """
    norm = fro_norm(M, xp)
    if not math.isfinite(norm):
        check_finite(M, xp, f"mats[{k}]")  # raises, unless a finite M's norm exceeds the float64 range
    return norm


class _MethodChoice:
    """The SVD method of each order: fixed, or for ``'auto'`` chosen from the previous order's work.

    The randomized path costs about ``mn`` times the rank it finds and gives
    up (to the full SVD) past ``min(m, n) / 2`` columns; an order whose
    full-SVD rank was above ``min(m, n) / 4`` predicts a next order as
    expensive, so that one goes to the full SVD without the wasted sketches.
    """

    def __init__(self, method, shape):
        self.auto = method == "auto"
        self.method = "randomized" if self.auto else method
        self.high = min(shape) // 4
        self.used = set()

    def record(self, ran, rank):
        """Note what order ``k`` ran (``'exact'``, ``'randomized'`` or None) and its rank."""
        if ran is None:
            return
        self.used.add(ran)
        if self.auto:
            self.method = "exact" if ran == "exact" and rank > self.high else "randomized"

    def reported(self):
        """``Cascade.method``: ``'randomized'`` when any order used a randomized factorisation."""
        if "randomized" in self.used or (not self.used and self.method == "randomized" and not self.auto):
            return "randomized"
        return "exact"


class _TargetRanks:
    """The ``ranks`` argument checked against the shape, in one place.

    Tolerance mode (``ranks=None``), one rank for every order, or one rank per
    order.  Everything known once ``M_0`` is read (bounds, and the length when
    K is known) is checked at construction, before any order is fitted; a
    stream of unknown length is checked as it goes and at its end.
    """

    def __init__(self, ranks, K, bound):
        self._same = self._each = None
        if isinstance(ranks, int):
            self._same = check_int(ranks, "ranks", 0, bound)
        elif ranks is not None:
            if K is not None and len(ranks) != K:
                raise ValueError(f"ranks must have length K = {K} (one rank per correction), got {len(ranks)}")
            self._each = [check_int(r, f"ranks[{i}]", 0, bound) for i, r in enumerate(ranks)]

    def order(self, k):
        """Target rank of order ``k`` (1-based), or None in tolerance mode."""
        if self._each is None:
            return self._same
        if k > len(self._each):
            raise ValueError(
                f"ranks must have length K (one rank per correction), got "
                f"{len(self._each)} ranks for at least {k} corrections"
            )
        return self._each[k - 1]

    def check_count(self, K):
        """Refuse a per-order list whose length is not the number ``K`` of corrections fitted."""
        if self._each is not None and len(self._each) != K:
            raise ValueError(f"ranks must have length K = {K} (one rank per correction), got {len(self._each)}")


# --------------------------------------------------------------------------
# The cascade
# --------------------------------------------------------------------------
def _run(stream, xp, K, ranks, tol, method, opts, backend=None):
    # The base M_0 fixes the shape, the rank bound, the SVD method and the device of every order.
    asked = opts["device"] is not None
    # slices of a 3-D array that was checked as a whole (namespace, dtype, device): only finiteness
    # is left to check, which each order's norm does
    checked = opts.get("checked_stack", False) and not asked
    M = _check_matrix(next(stream), xp, 0, None, opts["device"], asked)
    device = device_of(M)
    m, n = M.shape
    bound = min(m, n)
    targets = _TargetRanks(ranks, K, bound)
    choice = _MethodChoice(method, (m, n))
    # A copy, so that a view into a 3-D stack does not pin the stack.
    base = W = xp.asarray(M, copy=True)
    del M
    norm_w = None  # ‖Ŵ_{k−1}‖_F when known
    sketch = Sketcher(xp, opts["seed"], device)
    corrections, errors = [], [0.0]
    used_tol = 0.0  # largest relative tolerance actually applied where tol was raised
    k = 0
    small = bound <= SMALL_BLAS_MAX
    # One BLAS thread for the whole loop when the matrices come from memory
    # (entering and leaving the limit costs tens of µs, as much as a small
    # order's arithmetic); around each order only when they come from the
    # caller's iterator, whose own code must not run under the limit.
    lazy = K is None
    with contextlib.nullcontext() if lazy else small_blas(small):
        for M in stream:  # not enumerate(): its cached result tuple would keep M_k alive
            k += 1
            if not checked:
                M = _check_matrix(M, xp, k, (m, n), device, asked, finite=False)
            r_req = targets.order(k)
            if M.dtype != W.dtype:
                dt = xp.result_type(W.dtype, M.dtype)
                M = xp.astype(M, dt, copy=False)
                W = xp.astype(W, dt, copy=False)
            with small_blas(small) if lazy else contextlib.nullcontext():  # the norm is a BLAS dot too
                norm_m = _finite_norm(M, xp, k)
                W_old = W
                delta, W, err, raised, ran = _fit_order(
                    M, W, r_req, tol, choice.method, sketch, opts, xp, norm_m=norm_m, norm_w=norm_w
                )
            if W is not W_old:
                # ‖Ŵ_k‖ <= ‖M_k‖ + ‖Ŵ_k − M_k‖: with a tolerance that error is at most
                # tol·‖M_k‖, so the bound is within a factor 1 + 2·tol of the norm and
                # saves a pass; it only scales the rounding-level floor (lossless_fit_tol)
                norm_w = norm_m + err * (norm_m if norm_m > 0 else 1.0) if r_req is None else None
            del W_old
            choice.record(ran, delta.rank)
            sketch.last_rank = delta.rank
            used_tol = max(used_tol, raised)
            corrections.append(delta)
            errors.append(err)
            del M  # do not hold M_k while the iterator produces M_{k+1}
    targets.check_count(k)
    dtype = W.dtype
    if used_tol > 0.0:
        warnings.warn(
            f"tol={tol:.3g} is below the lossless level of {dtype} for these "
            f"matrices; the fit used a relative tolerance of up to {used_tol:.3g} "
            f"instead (rounding noise of the working precision cannot be fitted)",
            PrecisionFloorWarning,
            stacklevel=3,
        )
    costly = _costlier_than_dense([d.rank for d in corrections], m, n)
    if costly:
        stored = m * n + sum(d.rank for d in corrections) * (m + n)
        warnings.warn(
            f"{costly} of {k} corrections have rank >= m n / (m + n) = {m * n / (m + n):.1f} and "
            f"store more numbers factored than dense; the cascade stores {stored} numbers, "
            f"{stored / ((k + 1) * m * n):.2f}x the {k + 1} dense matrices (the residuals are "
            f"close to full rank: is the family really low-rank from order to order?)",
            DenseCorrectionWarning,
            stacklevel=3,
        )
    base = xp.astype(base, dtype, copy=False)
    corrections = [
        LowRank._from_factors(xp.astype(c._U, dtype, copy=False), xp.astype(c._V, dtype, copy=False), xp)
        for c in corrections
    ]
    return Cascade._from_parts(base, corrections, errors, choice.reported(), xp, backend)


def _fit_order(M, W, r_req, tol, method, sketch, opts, xp, rescaled=False, norm_m=None, norm_w=None):
    """One cascade step: ``(Δ_k, Ŵ_k, errors[k], raised, ran)`` from ``M_k`` and ``Ŵ_{k−1}``.

    ``raised`` is the relative tolerance actually used when a positive
    ``tol`` was below the lossless floor, else 0; ``ran`` is the
    factorisation used (``'exact'``, ``'randomized'``, or None for none);
    ``norm_m`` is ``‖M‖_F`` when the caller has it, ``norm_w`` ``‖W‖_F`` or
    an upper bound of it within ``2·tol·‖M_{k−1}‖_F`` (see :func:`_run`).
    """
    m, n = M.shape
    dt = M.dtype
    if norm_m is None:
        norm_m = fro_norm(M, xp)
    if norm_w is None:
        norm_w = fro_norm(W, xp)
    if not rescaled and not comfortable(max(norm_m, norm_w), xp, dt, m * n):
        return _fit_order_rescaled(M, W, r_req, tol, method, sketch, opts, xp, norm_m, norm_w)
    R = M - W
    norm_r = fro_norm(R, xp)
    # Below this, singular values / tails are rounding noise of the subtraction
    # (relative to M_k, not to R_k: a noise-only R_k must give rank 0).
    floor = _lossless_fit_tol(xp, dt, (m, n)) * max(norm_m, norm_r, norm_w)
    raised = 0.0
    if r_req is not None:
        thr = floor
    else:
        want = tol if tol is not None else 0.0
        ref = norm_m if norm_m > 0 else 1.0
        thr = max(want * ref, floor)
        if want > 0 and want * ref < floor:
            raised = floor / ref

    if min(m, n) == 0 or norm_r == 0.0 or r_req == 0 or (r_req is None and norm_r <= thr):
        cand = None
    elif method == "exact":
        cand = _exact(R, xp)
    elif r_req is not None:
        cand = _randomized_fixed(R, r_req, xp, sketch, opts)
    else:
        cand = _randomized_tol(R, thr, norm_r, xp, sketch, opts)

    if cand is None:
        # one empty correction per fit and dtype, shared by its rank-0 orders (immutable, no entries)
        delta = sketch.empty.get(dt)
        if delta is None:
            dev = device_of(M)
            delta = sketch.empty[dt] = LowRank._from_factors(
                xp.zeros((m, 0), dtype=dt, device=dev), xp.zeros((n, 0), dtype=dt, device=dev), xp
            )
        return delta, W, _rel(norm_r, norm_m), raised, None

    delta, W_new, err = _truncate(M, W, cand, r_req, thr, floor, xp)
    if cand[4] is None and err > thr:
        # the range finder's unmeasured claim was wrong: find the range again, measured
        cand = _randomized_tol(R, thr, norm_r, xp, sketch, opts, verify=True)
        if cand is None:  # pragma: no cover - R is above thr, so the measured search finds a range
            cand = _exact(R, xp)
        delta, W_new, err = _truncate(M, W, cand, r_req, thr, floor, xp)
    Q = cand[0]
    if r_req is None and err > thr and Q is not None and method != "exact":
        # the sketched range missed the tolerance after all (rounding): the
        # full SVD decides, so that no reported error exceeds tol silently
        return _fit_order(M, W, r_req, tol, "exact", sketch, opts, xp, rescaled, norm_m)
    return delta, W_new, _rel(err, norm_m), raised, "exact" if Q is None else "randomized"


def _truncate(M, W, cand, r_req, thr, floor, xp):
    """``(Δ_k, Ŵ_k, ‖M − Ŵ_k‖_F)`` from a factorisation ``cand = (Q, P, s, Wh, res)`` of ``R = M − W``.

    The rank: ``r_req`` lowered to the singular values above ``floor``, or
    the smallest whose predicted error ``sqrt(res² + tail²)`` is within
    ``thr``; then grown a little while the measured error misses by
    rounding.  An unmeasured range (``res`` None) is tried at the rank it
    predicts with ``res = 0`` only: a miss sends the caller back to the
    range finder.
    """
    Q, P, s, Wh, res = cand
    L = s.shape[0]
    if r_req is not None:
        r = min(r_req, count_above(s, floor, xp))
    else:
        r = tail_ranks(s, 0.0 if res is None else res, thr, xp)[0]
    grow = 0 if res is not None else _MAX_GROW
    while True:
        delta = _factors(Q, P, s, Wh, r, xp)
        if r:
            # Vᵀ = Wh[:r] (row-major: a faster GEMM than the transposed copy V); rank 1 as a
            # broadcast product, which NumPy's matmul would run without BLAS, ten times slower
            Vt = Wh[:r, :]
            W_new = delta._U * Vt if r == 1 else delta._U @ Vt
            W_new += W  # = W + U Vᵀ, without a second m×n temporary
        else:
            W_new = W
        err = fro_norm(M - W_new, xp)
        # The rank came from ‖R − Δ‖ predicted through singular values; the
        # measured error can exceed the target by rounding.  Grow a little.
        if r_req is not None or err <= thr or r >= L or grow >= _MAX_GROW:
            return delta, W_new, err
        r = r + 1 if grow < _MAX_GROW - 1 else L
        grow += 1


def _fit_order_rescaled(M, W, r_req, tol, method, sketch, opts, xp, norm_m, norm_w):
    """:func:`_fit_order` on ``2**-e M`` and ``2**-e W`` with ``2**e`` near their scale.

    Taken only when the norms leave the range where naive sums of squares and
    sketch products are safe (far below 1 or above ``sqrt(max)``): the scaled
    step is the unit-scale step bit for bit (power-of-two scaling is exact),
    so ranks and relative errors do not depend on the scale of the data.
    Costs two extra passes over ``M`` and ``W`` and one over the result.
    """
    big = max(norm_m, norm_w)
    if not big < float("inf"):  # the norm itself is beyond float64: use max |entry|
        big = max(max_abs(M, xp), max_abs(W, xp))
    e = pow2_exponent(big)
    delta, W_new, err, raised, ran = _fit_order(
        scale_pow2(M, -e, xp), scale_pow2(W, -e, xp), r_req, tol, method, sketch, opts, xp, rescaled=True
    )
    if delta.rank == 0:
        return delta, W, err, raised, ran
    delta = LowRank._from_factors(scale_pow2(delta._U, e, xp), delta._V, xp)
    return delta, scale_pow2(W_new, e, xp), err, raised, ran


@functools.lru_cache(maxsize=32)
def _lossless_fit_tol(xp, dtype, shape):
    # looked up once per fit and dtype instead of once per order
    return lossless_fit_tol(xp, dtype, shape)


def _costlier_than_dense(ranks, m, n):
    """How many corrections of ``ranks`` store ``r (m + n) >= m n`` numbers (rank 0 never does)."""
    return sum(1 for r in ranks if r and r * (m + n) >= m * n)


def _rel(err, norm_m):
    return err / norm_m if norm_m > 0 else err


def _factors(Q, P, s, Wh, r, xp):
    """``Δ = U V^T`` from ``R ≈ (Q) P diag(s) Wh``: U = P[:, :r]·s, V = Wh[:r]^T (no conj)."""
    dt = P.dtype
    Pr = P[:, :r] if Q is None else Q @ P[:, :r]
    U = Pr * xp.astype(s[:r], dt)  # a new (m, r) array
    # A copy: a view would keep the whole SVD factor (up to n×n) alive, far
    # more than the n×r that nbytes reports.
    V = xp.asarray(xp.matrix_transpose(Wh[:r, :]), copy=True)
    return LowRank._from_factors(U, V, xp)


def _exact(R, xp):
    P, s, Wh = xp.linalg.svd(R, full_matrices=False)
    return None, P, s, Wh, 0.0  # the last item: residual norm not covered by s


def _randomized_fixed(R, r, xp, sketch, opts):
    m, n = R.shape
    if r + opts["oversample"] > min(m, n) // 2:
        return _exact(R, xp)
    Q, B = fixed_rank_qb(
        R, r, xp, sketch.rng, sketch.backend, oversample=opts["oversample"], power_iters=opts["power_iters"]
    )
    P, s, Wh = svd_wide(B, xp, sketch.backend)
    return Q, P, s, Wh, 0.0


#: After a plain sketch failed to prove its rank minimal, orders skipped before trying one again.
_PLAIN_RETRY = 8
#: Fewest columns of a sketch (it has the previous order's rank plus ``oversample``).
_MIN_BLOCK = 4


def _randomized_tol(R, thr, norm_r, xp, sketch, opts, verify=False):
    """A range of ``R`` for the absolute tolerance ``thr``: ``(Q, P, s, Wh, res)``, ``_exact(R)``, or None.

    ``R ≈ Q P diag(s) Wh``.  ``res`` is ``‖R − Q Q^H R‖_F`` (measured, or
    the range finder's indicator far above its rounding level), or None
    when the indicator could not vouch for its claim and nothing was
    measured (``verify=False``): the caller then keeps rank
    ``tail_rank(s, 0, thr)``, measures its error, and calls again with
    ``verify=True`` if that misses.
    """
    # Every sketch is the previous order's rank plus ``oversample`` wide: the ranks of an
    # evolving family change slowly, and a range that needs more grows by further blocks.
    # (Fewer extra columns find the same ranks where they are proven minimal, but leave
    # more rounding-level directions in the corrections, which the lossless tree keeps.)
    block = max(sketch.last_rank + opts["oversample"], _MIN_BLOCK)
    # First without power iterations (two passes over R per block instead of
    # 2q + 2).  The range is verified against thr either way; the rank r
    # chosen from B = Q^H R is the smallest any method can reach whenever it
    # is also the rank chosen as if the range missed nothing (res = 0):
    # σ_i(B) <= σ_i(R), so rank r − 1 leaves an error of at least
    # sqrt(Σ_{i>=r} σ_i(B)²) > thr.  Only when that proof fails (a slowly
    # decaying spectrum around the tolerance) is the range found again with
    # power iterations.  Slowly decaying spectra stay so from one order to
    # the next: after failed proofs the next orders go straight to power
    # iterations (1, 2, 4, ... of them after consecutive failures), and a
    # plain sketch is tried again at least every _PLAIN_RETRY orders.
    plain = opts["power_iters"] == 0 or sketch.plain_skip == 0
    tries = ((0, opts["power_iters"]) if plain else (opts["power_iters"],)) if opts["power_iters"] else (0,)
    sketch.plain_skip = max(sketch.plain_skip - 1, 0)
    for q in tries:
        # check=False: _fit_order measures the fitted order's error itself
        qb = adaptive_qb(
            R,
            thr,
            xp,
            sketch.rng,
            sketch.backend,
            block=block,
            power_iters=q,
            norm_a=norm_r,
            check=verify,
            defer=not verify,
        )
        if qb is None:
            # the range would pass max_cols: power iterations would not make it
            # narrower than the rank the residual needs, so the full SVD it is
            return _exact(R, xp)
        Q, B, res = qb
        if Q.shape[1] == 0:
            return None
        P, s, Wh = svd_wide(B, xp, sketch.backend)
        if res is None:
            return Q, P, s, Wh, None  # the rank is tail_rank(s, 0, thr): minimal if its error is within thr
        r, lowest = tail_ranks(s, res, thr, xp)
        proven = r == lowest
        if q == 0 and len(tries) > 1:
            # skip 1, 2, 4, ... up to _PLAIN_RETRY orders after consecutive failed proofs:
            # a one-off failure costs one order with power iterations, a slowly decaying
            # spectrum (every plain proof fails) a plain sketch every _PLAIN_RETRY orders
            sketch.plain_fails = 0 if proven else sketch.plain_fails + 1
            if not proven:
                sketch.plain_skip = min(2 ** (sketch.plain_fails - 1), _PLAIN_RETRY)
        if q == tries[-1] or proven:
            return Q, P, s, Wh, res
