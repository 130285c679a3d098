"""Rank diagnostics of a matrix sequence: finite-difference profiles, direct sums.

A cascade stores a family ``M_0..M_K`` as ``M_0`` plus the corrections
``Δ_k = M_k − M_{k−1}``, i.e. the first forward differences of the sequence.
How small those corrections are in rank, and how much the segment tree can
compress their sums, is decided by the ranks of the higher differences and by
whether the corrections share column/row spaces.  This module measures both on
real (floating-point) data; the exact, symbolic counterparts live in the
``theory`` package.

Everything here is written against an array-API namespace, so NumPy, CuPy and
array_api_strict stacks run through the same lines.
"""

from __future__ import annotations

import dataclasses
import math
from collections import namedtuple
from collections.abc import Sequence

from ._norms import comfortable, max_abs, pow2_exponent, scale_pow2
from ._typing import ArrayLike
from ._validation import (
    as_array,
    check_finite,
    check_int,
    check_tol,
    count_above,
    default_tol,
    open_matrices,
)
from .backends import backend_name, device_of, get_func, is_array
from .factor import LowRank

__all__ = ["DifferenceProfile", "DirectSumCheck", "direct_sum_check", "numerical_difference_profile"]

_SIDES = ("column", "row")


class DirectSumCheck(namedtuple("DirectSumCheck", "is_direct sum_of_ranks rank_of_concatenation")):
    """Outcome of a direct-sum test of the column (or row) spaces of ``p`` matrices.

    Attributes
    ----------
    is_direct : bool
        ``rank_of_concatenation >= sum_of_ranks`` (equality in exact
        arithmetic): the spaces are independent at the tolerance used.
    sum_of_ranks : int
        ``Σ_j rank B_j``.
    rank_of_concatenation : int
        ``rank [B_0 | B_1 | ...]`` (column spaces) or the rank of the vertical
        stack (row spaces), i.e. the dimension of the sum of the spaces.

    The truth value of the tuple is ``is_direct`` (a plain 3-tuple would always
    be true, which makes ``if direct_sum_check(...)`` a silent bug).
    """

    __slots__ = ()

    def __bool__(self):
        return bool(self.is_direct)


@dataclasses.dataclass(frozen=True)
class DifferenceProfile:
    """Numerical rank profile of the forward differences of a matrix sequence.

    Returned by :func:`numerical_difference_profile`; see there for the definitions.

    Attributes
    ----------
    ranks : list of int, length max_order + 1
        ``ρ(k) = max_j rank Δ^k A(j)``.
    rank_table : list of list of int
        ``rank_table[k][j] = rank Δ^k A(j)`` for ``j = 0..L-1-k``.
    rtol : float
        Relative accuracy assumed for the samples (see
        :func:`numerical_difference_profile` and :doc:`/glossary`).
    thresholds : list of float
        Absolute singular-value threshold used at each order,
        ``rtol · 2^k · scale``.
    scale : float
        ``max_j ‖A(j)‖_2``.
    shape : tuple of int
        ``(L, m, n)``.
    column_direct_sum, row_direct_sum : DirectSumCheck
        Whether the column (row) spaces of the first differences
        ``ΔA(0..L-2)`` form a direct sum.

    See Also
    --------
    numerical_difference_profile : Computes it.
    direct_sum_check : The direct-sum test on its own.
    """

    ranks: list
    rank_table: list
    rtol: float
    thresholds: list
    scale: float
    shape: tuple
    column_direct_sum: DirectSumCheck
    row_direct_sum: DirectSumCheck

    @property
    def max_order(self) -> int:
        """Highest difference order computed."""
        return len(self.ranks) - 1

    @property
    def nonincreasing(self) -> bool:
        """Whether ``ρ(0) >= ρ(1) >= ... >= ρ(max_order)``."""
        return all(b <= a for a, b in zip(self.ranks, self.ranks[1:]))

    @property
    def increases(self) -> list[int]:
        """Orders ``k`` with ``ρ(k) > ρ(k−1)`` (empty when non-increasing)."""
        return [k for k in range(1, len(self.ranks)) if self.ranks[k] > self.ranks[k - 1]]

    def summary(self, *, max_columns: int = 12) -> str:
        """Plain-text table for the command line.

        Parameters
        ----------
        max_columns : int, optional
            Per-sample ranks shown per order before eliding with ``...``.

        Returns
        -------
        str
        """
        L, m, n = self.shape
        lines = [
            f"Difference profile: L = {L} samples of {m} x {n}, rtol = {self.rtol:.3g} "
            f"(relative to max_j ||A(j)||_2 = {self.scale:.3g})",
            f"{'order':>5}  {'rank':>4}  {'threshold':>9}  ranks at j = 0, 1, ...",
        ]
        for k, (r, thr, row) in enumerate(zip(self.ranks, self.thresholds, self.rank_table)):
            shown = [str(v) for v in row[:max_columns]]
            if len(row) > max_columns:
                shown.append("...")
            lines.append(f"{k:>5}  {r:>4}  {thr:>9.2e}  {' '.join(shown)}")
        if self.nonincreasing:
            lines.append("profile: non-increasing")
        else:
            at = ", ".join(f"{k - 1}->{k}" for k in self.increases)
            lines.append(f"profile: INCREASES at k = {at}")
        for side, check in (("column", self.column_direct_sum), ("row", self.row_direct_sum)):
            verdict = "direct sum" if check.is_direct else "NOT a direct sum (shared subspaces)"
            lines.append(
                f"first differences, {side} spaces: {verdict} "
                f"(sum of ranks {check.sum_of_ranks}, "
                f"rank of concatenation {check.rank_of_concatenation})"
            )
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


def numerical_difference_profile(
    mats: ArrayLike | Sequence[ArrayLike], *, rtol: float | None = None, max_order: int | None = None
) -> DifferenceProfile:
    """Numerical ranks of the forward differences of a matrix sequence.

    The ``k``-th forward difference of ``A(0), ..., A(L-1)`` is

    ``Δ^k A(j) = Σ_{i=0..k} (-1)^(k-i) C(k, i) A(j+i)``,  ``j = 0..L-1-k``,

    and the profile value is ``ρ(k) = max_j rank Δ^k A(j)``.

    Parameters
    ----------
    mats : array_like, shape (L, m, n), or sequence of L arrays of shape (m, n)
        The samples ``A(0..L-1)``, ``L >= 1``; one array library.  Integer
        input is converted to float64.
    rtol : float, optional, keyword-only
        Relative accuracy of the samples, in ``[0, 1)`` (see
        :doc:`/glossary`): each ``A(j)`` is assumed known up to a
        perturbation of 2-norm at most ``rtol · max_j ‖A(j)‖_2``.  Default ``max(m, n) · eps`` of the dtype
        (the samples are exact up to rounding), as in
        ``numpy.linalg.matrix_rank``.
    max_order : int, optional, keyword-only
        Highest order ``k``, in ``[0, L-1]``; default ``L - 1``.

    Returns
    -------
    DifferenceProfile
        ``.ranks`` (``ρ(0..max_order)``), ``.rank_table`` (per order, the rank
        at every ``j``), ``.rtol``, ``.thresholds``, ``.nonincreasing`` and the
        direct-sum checks ``.column_direct_sum`` / ``.row_direct_sum`` of the
        first differences (see :func:`direct_sum_check`).  ``str()`` of it
        is a table.

    Raises
    ------
    ValueError
        If ``mats`` is empty, a sample is not 2-D or has zero rows/columns,
        ``mats[j]`` differs in shape from ``mats[0]``, a sample holds NaN/Inf,
        ``rtol`` is outside ``[0, 1)`` or ``max_order`` outside ``[0, L-1]``.
    TypeError
        If ``mats`` is not an array or a sequence, a sample is not numeric,
        samples come from different array libraries, or ``max_order`` is not
        an integer.

    See Also
    --------
    direct_sum_check : The direct-sum test on its own, for any list of matrices.
    DifferenceProfile : The result and its properties.
    theory.difference_profile : The exact profile of a symbolic sequence.
    numpy.linalg.matrix_rank : The numerical rank of one matrix (its ``rtol`` is relative to σ_max).

    Notes
    -----
    **Tolerance.**  Order ``k`` counts the singular values of ``Δ^k A(j)``
    above ``rtol · 2^k · max_j ‖A(j)‖_2``.  The threshold is tied to the scale
    of the *data*, not to ``σ_max`` of each difference: once the sequence is
    exhausted (``Δ^k A ≡ 0`` in exact arithmetic) the computed difference is
    pure rounding noise, and a threshold relative to its own ``σ_max`` would
    call that noise full rank.  The factor ``2^k = Σ_i C(k, i)`` is the exact
    worst-case growth of sample errors under a ``k``-th difference: if
    ``‖E(j)‖_2 <= ε`` for all ``j`` then ``‖Δ^k E(j)‖_2 <= 2^k ε`` (triangle
    inequality).  By Weyl's inequality every singular value counted is
    therefore also nonzero for the unperturbed data: under the stated error
    model each reported rank is a *lower bound* of the exact rank.  It can
    undercount when genuine singular values of a difference are below the
    threshold (differences far smaller than the data itself cannot be told
    apart from its rounding), and once ``2^k · rtol`` approaches 1 the order
    carries no information (``k >~ 45`` in float64, ``k >~ 20`` in float32).

    **Cost.**  ``Σ_{k<=max_order} (L − k)`` batched SVDs of m×n matrices
    (``O(L · max_order · m n min(m, n))``) plus two SVDs of the
    concatenated first differences; lower ``max_order`` for long sequences.

    **Interpretation.**  Why each value is a lower bound of the generic rank,
    why an increase rules out a decomposable family (and a non-increasing
    profile proves nothing), and what direct sums of the first differences
    mean for the segment tree: :ref:`reading-a-difference-profile` in the
    user guide.

    Examples
    --------
    A family whose profile increases, ``A(j) = [[1, j], [j, j²]]``:

    >>> import numpy as np
    >>> from lowrank_tree import numerical_difference_profile
    >>> A = np.array([[[1.0, j], [j, j * j]] for j in range(6)])
    >>> p = numerical_difference_profile(A)
    >>> p.ranks
    [1, 2, 1, 0, 0, 0]
    >>> p.nonincreasing, p.increases
    (False, [1])
    >>> p.rank_table[2]
    [1, 1, 1, 1]
    >>> bool(p.column_direct_sum)
    False
    """
    xp, X = _stack(mats, "mats")
    L, m, n = X.shape
    tol = check_tol(rtol, "rtol")
    if tol is None:
        tol = default_tol(xp, X.dtype, (m, n))
    max_order = L - 1 if max_order is None else check_int(max_order, "max_order", 0, L - 1)
    to_host = get_func("to_numpy", backend_name(xp))

    X, s0, scale, e = _unit_scale(X, xp)
    thresholds = [tol * 2.0**k * scale for k in range(max_order + 1)]
    table = [_count(s0, thresholds[0], xp, to_host)]
    D, D1 = X, None
    for k in range(1, max_order + 1):
        D = D[1:, ...] - D[:-1, ...]
        if k == 1:
            D1 = D
        table.append(_count(xp.linalg.svdvals(D), thresholds[k], xp, to_host))
    if D1 is None and L > 1:
        D1 = X[1:, ...] - X[:-1, ...]

    thr1 = tol * 2.0 * scale
    checks = {}
    if D1 is None:
        checks = {side: DirectSumCheck(True, 0, 0) for side in _SIDES}
    else:
        piece_ranks = table[1] if max_order >= 1 else _count(xp.linalg.svdvals(D1), thr1, xp, to_host)
        for side in _SIDES:
            checks[side] = _direct_sum(D1, piece_ranks, thr1, side, xp)
    return DifferenceProfile(
        ranks=[max(row) for row in table],
        rank_table=table,
        rtol=tol,
        thresholds=[_ldexp(t, e) for t in thresholds],
        scale=_ldexp(scale, e),
        shape=(L, m, n),
        column_direct_sum=checks["column"],
        row_direct_sum=checks["row"],
    )


def direct_sum_check(
    mats: ArrayLike | Sequence[ArrayLike], *, side: str = "column", rtol: float | None = None
) -> DirectSumCheck:
    """Whether the column (or row) spaces of matrices ``B_0..B_{p-1}`` form a direct sum.

    The spaces form a direct sum iff ``Σ_j rank B_j`` equals the dimension of
    their sum, ``rank [B_0 | B_1 | ...]`` (horizontal concatenation, column
    spaces) or the rank of the vertical stack (row spaces).

    Parameters
    ----------
    mats : array_like, shape (p, m, n), or sequence of p matrices (m, n)
        The matrices themselves (not a sequence to be differenced: pass
        ``M[1:] - M[:-1]``, or use :func:`numerical_difference_profile`, to test first
        differences).  Items may also be :class:`~lowrank_tree.LowRank`
        (e.g. ``cascade.corrections``); they are densified.
    side : {'column', 'row'}, keyword-only
        Which spaces to test.
    rtol : float, optional, keyword-only
        Relative accuracy of the matrices, in ``[0, 1)``, as in
        :func:`numerical_difference_profile` (see :doc:`/glossary`): singular
        values ``<= rtol · max_j ‖B_j‖_2`` are treated as zero in each
        ``B_j``, and ``<= sqrt(p) · rtol · max_j ‖B_j‖_2`` in the concatenation (the bound
        on the 2-norm of the concatenated perturbations).  Default
        ``max(m, n) · eps``.

    Returns
    -------
    DirectSumCheck
        ``(is_direct, sum_of_ranks, rank_of_concatenation)``; its truth value
        is ``is_direct``.

    Raises
    ------
    ValueError
        If ``side`` is not ``'column'`` or ``'row'``, ``mats`` is empty, the
        shapes differ (naming ``mats[j]``), a matrix holds NaN/Inf, or ``rtol``
        is outside ``[0, 1)``.
    TypeError
        If an item is not numeric or items come from different array
        libraries.

    See Also
    --------
    numerical_difference_profile : Runs this test on the first differences of a sequence.
    lowrank_tree.diagnostics.DirectSumCheck : The result.

    Notes
    -----
    A numerical test: nearly parallel subspaces (principal angles small
    enough that the concatenation has singular values under the threshold)
    count as shared.  That is the relevant notion for compression — the
    recompressed segment-tree nodes drop the same directions — but it is not
    a proof about the exact matrices.  Independence of the column spaces of
    the corrections alone does not prevent compression of their sum (the row
    spaces may still overlap); both sides must be direct for a node summing
    them to keep the full rank ``Σ_j rank B_j``.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_tree.diagnostics import direct_sum_check
    >>> e = np.eye(3)
    >>> B = [np.outer(e[0], e[0]), np.outer(e[1], e[0])]
    >>> direct_sum_check(B)                  # columns e0, e1: independent
    DirectSumCheck(is_direct=True, sum_of_ranks=2, rank_of_concatenation=2)
    >>> direct_sum_check(B, side="row")      # both rows are e0: shared
    DirectSumCheck(is_direct=False, sum_of_ranks=2, rank_of_concatenation=1)
    """
    if side not in _SIDES:
        raise ValueError(f"side must be 'column' or 'row', got {side!r}")
    xp, X = _stack(mats, "mats")
    _, m, n = X.shape
    tol = check_tol(rtol, "rtol")
    if tol is None:
        tol = default_tol(xp, X.dtype, (m, n))
    to_host = get_func("to_numpy", backend_name(xp))
    X, s, scale, _ = _unit_scale(X, xp)
    thr = tol * scale
    return _direct_sum(X, _count(s, thr, xp, to_host), thr, side, xp)


# --------------------------------------------------------------------------
# internals
# --------------------------------------------------------------------------
def _unit_scale(X, xp):
    """``(X', s', scale', e)``: the stack, its singular values and ``max σ``, with ``X = 2**e X'``.

    ``e = 0`` (nothing done) unless the largest singular value is outside the
    range where differences, sums of squares and thresholds are safe: then
    the stack is scaled by a power of two (exact), so that every rank
    decision is the one made at unit scale, and differences of data near
    the top of the range do not overflow.
    """
    _, m, n = X.shape
    s = xp.linalg.svdvals(X)
    scale = float(xp.max(s[:, 0]))
    if comfortable(scale, xp, X.dtype, 4 * m * n):  # 4: headroom for the differences
        return X, s, scale, 0
    big = scale if 0.0 < scale < math.inf else max_abs(X, xp)
    e = pow2_exponent(big)
    X = scale_pow2(X, -e, xp)
    s = xp.linalg.svdvals(X)
    return X, s, float(xp.max(s[:, 0])), e


def _ldexp(x, e):
    try:
        return math.ldexp(x, e)
    except OverflowError:
        return math.inf


def _count(s, thr, xp, to_host):
    """Per-matrix count of singular values ``> thr`` (``s`` of shape (p, min(m, n)))."""
    counts = xp.sum(xp.astype(s > thr, xp.int64), axis=-1)
    return [int(c) for c in to_host(counts).tolist()]


def _direct_sum(D, piece_ranks, thr, side, xp):
    p, m, n = D.shape
    if side == "column":
        C = xp.reshape(xp.permute_dims(D, (1, 0, 2)), (m, p * n))  # [D_0 | D_1 | ...]
    else:
        C = xp.reshape(D, (p * m, n))  # D_0 over D_1 over ...
    # sqrt(p) bounds the 2-norm of the concatenated per-piece perturbations,
    # so noise cannot inflate the rank of the concatenation past the pieces'.
    s = xp.linalg.svdvals(C)
    rank_cat = count_above(s, math.sqrt(p) * thr, xp)
    total = sum(piece_ranks)
    return DirectSumCheck(rank_cat >= total, total, rank_cat)


def _stack(mats, name):
    """Validated ``(xp, X)`` with ``X`` of shape (L, m, n), L >= 1, m, n >= 1."""
    if not is_array(mats) and not isinstance(mats, (str, bytes)) and mats is not None:
        try:
            it = iter(mats)
        except TypeError:
            it = None  # not iterable: open_matrices says what was expected
        if it is not None:
            # LowRank members are compared densely; an iterator is read whole
            # (every order is needed), so the namespace covers all its items
            dense = [a.to_dense() if isinstance(a, LowRank) else a for a in it]
            if isinstance(mats, tuple):
                mats = tuple(dense)
            elif isinstance(mats, list) or dense:
                mats = dense
            else:
                mats = iter(())  # an empty iterator, reported as one
    xp, X, items, _ = open_matrices(mats, name, "(L, m, n)")
    if X is not None:
        if not bool(xp.all(xp.isfinite(X))):
            for j in range(X.shape[0]):
                check_finite(X[j, ...], xp, f"{name}[{j}]")
    else:
        arrays = []
        for j, a in enumerate(items):
            # the first array fixes the device (a nested list among tensors goes there)
            a = as_array(a, xp, f"{name}[{j}]", ndim=2, device=device_of(arrays[0]) if arrays else None)
            if arrays and tuple(a.shape) != tuple(arrays[0].shape):
                raise ValueError(
                    f"{name}[{j}] must have shape {tuple(arrays[0].shape)} "
                    f"(the shape of {name}[0]), got {tuple(a.shape)}"
                )
            check_finite(a, xp, f"{name}[{j}]")
            arrays.append(a)
        dtype = xp.result_type(*[a.dtype for a in arrays])
        X = xp.stack([xp.astype(a, dtype, copy=False) for a in arrays])
    L, m, n = X.shape
    if m == 0 or n == 0:
        raise ValueError(f"{name} must hold matrices with at least one row and one column, got shape {(m, n)}")
    return xp, X
