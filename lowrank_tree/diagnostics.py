"""Rank diagnostics of a matrix sequence: finite-difference profiles, direct sums.

A cascade stores a family ``M_0..M_K`` as ``M_0`` plus the corrections
``Δ_k = M_k − M_{k−1}``, i.e. the first forward differences of the sequence.
How small those corrections are in rank, and how much the segment tree can
compress their sums, is decided by the ranks of the higher differences and by
whether the corrections share column/row spaces.  This module measures both on
real (floating-point) data, and (:func:`assumption_test`) compares the rank of
the first differences with null models of the same step sizes; the exact,
symbolic counterparts live in the ``theory`` package.

Everything here is written against an array-API namespace, so NumPy, CuPy and
array_api_strict stacks run through the same lines.
"""

from __future__ import annotations

import dataclasses
import math
from collections import namedtuple
from collections.abc import Sequence

from ._norms import comfortable, max_abs, pow2_exponent, scale_pow2
from ._threads import small_blas
from ._typing import ArrayLike, Seed
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
from .fit import SMALL_BLAS_MAX

__all__ = [
    "AssumptionTest",
    "DifferenceProfile",
    "DirectSumCheck",
    "NullComparison",
    "assumption_test",
    "direct_sum_check",
    "numerical_difference_profile",
]

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


# --------------------------------------------------------------------------
# the assumption against null models
# --------------------------------------------------------------------------
#: The null models :func:`assumption_test` knows.
NULL_MODELS = ("random_walk", "smooth", "rotated")
#: The null models whose steps have no low-rank structure (``step_rank`` is tested against them).
ISOTROPIC_NULLS = ("random_walk", "smooth")
#: Degree (in the step index) of the smooth null's random polynomial steps.
SMOOTH_NULL_DEGREE = 3
#: The scalar statistics of :func:`assumption_test`, each "lower = more structure".
STATISTICS = ("step_rank", "displacement_rank", "rank_rate", "energy_rate")


@dataclasses.dataclass(frozen=True)
class NullComparison:
    """Where a family's statistic falls among the draws of one null model.

    Every statistic of :func:`assumption_test` reads "lower means more
    structure than noise", so the comparison is one-sided towards low values.

    Attributes
    ----------
    null : str
        ``'random_walk'``, ``'smooth'`` or ``'rotated'``.
    statistic : str
        One of ``'step_rank'``, ``'displacement_rank'``, ``'rank_rate'``,
        ``'energy_rate'``.
    value : float
        The family's value.
    draws : tuple of float, length null_samples
        The statistic of each null draw.
    """

    null: str
    statistic: str
    value: float
    draws: tuple

    @property
    def mean(self) -> float:
        """Mean of the draws."""
        return math.fsum(self.draws) / len(self.draws)

    @property
    def std(self) -> float:
        """Sample standard deviation of the draws (``ddof = 1``; NaN for one draw)."""
        n = len(self.draws)
        if n < 2 or not all(math.isfinite(d) for d in self.draws):
            return math.nan
        mu = self.mean
        return math.sqrt(math.fsum((d - mu) ** 2 for d in self.draws) / (n - 1))

    @property
    def low(self) -> float:
        """Smallest draw."""
        return min(self.draws)

    @property
    def high(self) -> float:
        """Largest draw."""
        return max(self.draws)

    @property
    def z(self) -> float:
        """``(value − mean) / std``; ``0`` or ``±inf`` when the draws do not vary; NaN when undefined."""
        v, mu, sd = self.value, self.mean, self.std
        if math.isnan(v) or math.isnan(mu):
            return math.nan
        if math.isinf(v) or math.isinf(mu):
            return math.nan if v == mu else math.copysign(math.inf, v - mu)
        if math.isnan(sd):
            return math.nan
        if sd == 0.0:
            return 0.0 if v == mu else math.copysign(math.inf, v - mu)
        return (v - mu) / sd

    @property
    def p_value(self) -> float:
        """One-sided Monte Carlo p-value ``(1 + #{draws <= value}) / (1 + null_samples)``.

        The probability, under the null model, of a value at least as low as
        the family's (ties count against the family); its smallest possible
        value is ``1 / (1 + null_samples)``.  NaN if the value is NaN.
        """
        if math.isnan(self.value):
            return math.nan
        return (1 + sum(d <= self.value for d in self.draws)) / (1 + len(self.draws))

    @property
    def ratio(self) -> float:
        """``value / mean`` (NaN when the mean is 0 or either is not finite)."""
        mu = self.mean
        if mu == 0.0 or not (math.isfinite(mu) and math.isfinite(self.value)):
            return math.nan
        return self.value / mu


@dataclasses.dataclass(frozen=True)
class AssumptionTest:
    """A matrix family's first-difference structure, against null models of the same step sizes.

    Returned by :func:`assumption_test`; see there for the definitions.

    Attributes
    ----------
    tol : float
        Relative Frobenius error that defines every rank here.
    shape : tuple of int
        ``(L, m, n)``.
    max_order : int
        Highest difference order in the profiles.
    step_ranks : list of int, length L - 1
        ``r_tol(ΔA(j))`` for ``j = 0..L-2``.
    rank_profile : list of float, length max_order
        Entry ``k - 1``: the mean over ``j`` of ``r_tol(Δ^k A(j))``.
    energy_profile : list of float, length max_order
        Entry ``k - 1``: the root mean square over ``j`` of ``‖Δ^k A(j)‖_F``.
    statistics : dict of str to float
        The family's ``step_rank``, ``displacement_rank``, ``rank_rate``,
        ``energy_rate``.
    nulls : dict of str to dict of str to NullComparison
        ``nulls[null][statistic]``: the comparison with each null model
        computed (empty for ``null=None``).
    null_rank_profiles : dict of str to list of float
        ``null_rank_profiles[null][k - 1]``: the mean over the draws of the
        null's ``rank_profile``.
    null_samples : int
        Draws per null model.
    seed : object
        The seed given.

    See Also
    --------
    assumption_test : Computes it.
    """

    tol: float
    shape: tuple
    max_order: int
    step_ranks: list
    rank_profile: list
    energy_profile: list
    statistics: dict
    nulls: dict
    null_rank_profiles: dict
    null_samples: int
    seed: object

    def p_value(self, null: str = "random_walk", statistic: str = "step_rank") -> float:
        """The one-sided p-value of ``statistic`` against ``null`` (see :class:`NullComparison`).

        Raises
        ------
        ValueError
            If ``null`` was not computed or ``statistic`` is unknown.
        """
        return self._comparison(null, statistic).p_value

    def z(self, null: str = "random_walk", statistic: str = "step_rank") -> float:
        """The z-score of ``statistic`` against ``null`` (see :class:`NullComparison`)."""
        return self._comparison(null, statistic).z

    def better_than_noise(self, alpha: float = 0.05, statistic: str = "step_rank") -> bool:
        """Whether the first differences are of lower rank than noise of the same step sizes.

        True iff ``p_value(null, statistic) <= alpha`` for each of the
        ``'random_walk'`` and ``'smooth'`` null models computed (the
        ``'rotated'`` null keeps the family's step spectra, so its
        ``step_rank`` equals the family's: see :meth:`shares_subspaces`).
        With ``null_samples`` draws the smallest p-value is
        ``1 / (1 + null_samples)``, so ``alpha = 0.05`` needs at least 19 draws.

        Raises
        ------
        ValueError
            If neither ``'random_walk'`` nor ``'smooth'`` was computed,
            ``alpha`` is outside ``(0, 1)`` or ``statistic`` is unknown.
        """
        nulls = [null for null in self.nulls if null in ISOTROPIC_NULLS]
        if not nulls:
            raise ValueError(
                "better_than_noise needs the 'random_walk' or the 'smooth' null model: run assumption_test with one"
            )
        _check_alpha(alpha)
        return all(self._comparison(null, statistic).p_value <= alpha for null in nulls)

    def shares_subspaces(self, alpha: float = 0.05) -> bool:
        """Whether the steps share subspaces beyond chance: ``displacement_rank`` below the ``'rotated'`` null.

        True iff ``p_value('rotated', 'displacement_rank') <= alpha``: the
        whole displacement ``A(L−1) − A(0)`` needs a lower rank than the sum
        of the same steps (same singular values) placed on independent random
        subspaces would.

        Raises
        ------
        ValueError
            If the ``'rotated'`` null was not computed or ``alpha`` is outside ``(0, 1)``.
        """
        if "rotated" not in self.nulls:
            raise ValueError("shares_subspaces needs the 'rotated' null model: run assumption_test with it")
        _check_alpha(alpha)
        return self._comparison("rotated", "displacement_rank").p_value <= alpha

    def _comparison(self, null, statistic):
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        if null not in self.nulls:
            raise ValueError(f"null must be one of the null models computed {tuple(self.nulls)}, got {null!r}")
        return self.nulls[null][statistic]

    def summary(self) -> str:
        """Plain-text table: the family's statistics and, per null model, mean ± std, z and p.

        Returns
        -------
        str
        """
        L, m, n = self.shape
        lines = [
            f"Assumption test: L = {L} samples of {m} x {n}, tol = {self.tol:.3g}, "
            f"{self.null_samples} draws per null model",
            "rank profile (mean r_tol of the k-th differences, k = 1..{}): {}".format(
                self.max_order, " ".join(f"{r:.3g}" for r in self.rank_profile)
            ),
        ]
        for null, prof in self.null_rank_profiles.items():
            lines.append(f"  {null} null: {' '.join(f'{r:.3g}' for r in prof)}")
        header = f"{'statistic':>17}  {'family':>9}"
        for null in self.nulls:
            header += f"  {null + ' mean ± std':>26}  {'z':>7}  {'p':>5}"
        lines.append(header)
        for name in STATISTICS:
            row = f"{name:>17}  {self.statistics[name]:>9.4g}"
            for null in self.nulls:
                c = self.nulls[null][name]
                row += f"  {f'{c.mean:.4g} ± {c.std:.2g}':>26}  {c.z:>7.3g}  {c.p_value:>5.3f}"
            lines.append(row)
        if any(null in self.nulls for null in ISOTROPIC_NULLS):
            verdict = "yes" if self.better_than_noise() else "no"
            lines.append(f"first differences of lower rank than noise (step_rank, p <= 0.05): {verdict}")
        if "rotated" in self.nulls:
            verdict = "yes" if self.shares_subspaces() else "no"
            lines.append(f"steps share subspaces beyond chance (displacement_rank vs rotated, p <= 0.05): {verdict}")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


def assumption_test(
    mats: ArrayLike | Sequence[ArrayLike],
    *,
    tol: float = 1e-2,
    max_order: int | None = None,
    null: str | Sequence[str] | None = NULL_MODELS,
    null_samples: int = 20,
    seed: Seed = None,
) -> AssumptionTest:
    """Are the first differences of a matrix family lower-rank than noise of the same step sizes?

    The cascade stores ``A(0)`` and the first differences
    ``ΔA(j) = A(j+1) − A(j)``; it pays off when those are well approximated
    at low rank and share subspaces.  This test measures that at a relative
    Frobenius error ``tol`` and compares it with *null models*: random
    families with the same step norms ``‖ΔA(j)‖_F`` and no low-rank
    structure, and one that keeps each step's singular values but not its
    subspaces.  (A plain difference profile cannot tell a family from noise:
    the profile of a random walk is non-increasing too.)

    **Rank at a tolerance.**  ``r_tol(D)`` is the smallest ``r`` with
    ``‖D − D_r‖_F <= tol ‖D‖_F`` (``D_r`` the truncated SVD), the rank a
    cascade fit needs for a correction ``D``; ``r_tol(0) = 0``.

    **Statistics** (each "lower = more structure"; ``p = min(m, n)``,
    ``K = max_order``):

    * ``step_rank`` — ``mean_j r_tol(ΔA(j)) / p``: the rank fraction of the
      first differences (a correction of rank ``r`` costs ``r (m + n)``
      numbers against ``m n`` dense).  The main statistic.
    * ``displacement_rank`` — ``r_tol(A(L−1) − A(0)) / p``: the rank fraction
      of the whole displacement; low when the steps share subspaces (the
      sums a segment tree's nodes hold).
    * ``rank_rate`` — ``(ρ̄_K − ρ̄_1) / ((K − 1) p)``, with
      ``ρ̄_k = mean_j r_tol(Δ^k A(j))``: the decay rate of the rank profile,
      in rank fraction per order (negative: the profile falls).  NaN for
      ``K = 1``.
    * ``energy_rate`` — ``ln(e_K / e_1) / (K − 1)``, with ``e_k`` the root mean
      square over ``j`` of ``‖Δ^k A(j)‖_F``: the decay rate of the
      differences' size per order (negative for smooth families, about
      ``+ln 2`` per order for a random walk at high orders).  ``-inf`` when
      ``e_K = 0 < e_1``, NaN for ``K = 1`` or ``e_1 = 0``.

    **Null models** (each draw keeps the step norms ``‖ΔA(j)‖_F``; only the
    directions of the steps are random):

    * ``'random_walk'`` — ``ΔA(j) = ‖ΔA(j)‖_F G_j / ‖G_j‖_F`` with independent
      m×n matrices ``G_j`` of i.i.d. standard normal entries.
    * ``'smooth'`` — the same with ``G_j = Σ_{i=0..3} C_i P_i(x_j)``: ``P_i``
      the Legendre polynomials, ``x_j`` equispaced on ``[−1, 1]``, ``C_i``
      i.i.d. Gaussian m×n: a trajectory whose direction changes smoothly in
      ``j`` (the differences of the unit steps decay with the order), with no
      low-rank structure.

    * ``'rotated'`` — ``ΔA(j) = Q_j Σ_j P_jᵀ``: the singular values
      ``Σ_j`` of the family's own step, on independent Haar-random
      orthonormal ``Q_j`` (m×p) and ``P_j`` (n×p).  Its steps have exactly
      the family's ranks, so only ``displacement_rank`` (and
      ``energy_rate``) can differ: it asks whether the steps *share*
      subspaces more than independent ones of the same spectra would.

    Every linear combination of i.i.d. Gaussian matrices is again one, so the
    rank statistics of the first two nulls follow the singular values of a
    Gaussian matrix of the same shape; they differ in ``energy_rate``, and
    the smooth null tells "smooth" from "low rank".

    **Score.**  For each null and statistic, :class:`NullComparison` gives
    the draws' mean, standard deviation, range, the z-score and the one-sided
    Monte Carlo p-value ``(1 + #{draws <= value}) / (1 + null_samples)``.
    *Better than noise* (:meth:`AssumptionTest.better_than_noise`) means
    ``step_rank`` has ``p <= alpha`` against the random-walk and the smooth
    null: at most a fraction ``alpha`` of their draws has first differences
    of so low a rank (at the smallest p-value, ``1 / (1 + null_samples)``,
    none has).  *Shared subspaces*
    (:meth:`AssumptionTest.shares_subspaces`) means ``displacement_rank``
    has ``p <= alpha`` against the rotated null.

    Parameters
    ----------
    mats : array_like, shape (L, m, n), or sequence of L arrays of shape (m, n)
        The family ``A(0..L-1)``, ``L >= 2``; one array library (NumPy,
        CuPy, torch, array_api_strict); integer input becomes float64.
    tol : float, keyword-only
        Relative Frobenius error defining ``r_tol``, in ``[0, 1)`` (the fit's
        ``tol``, see :doc:`/glossary`).  Default ``1e-2``.
    max_order : int, optional, keyword-only
        Highest difference order of the profiles, in ``[1, L-1]``; default
        ``min(3, L - 1)``.
    null : {'random_walk', 'smooth', 'rotated'}, sequence of them, or None, keyword-only
        Null models to compare against; default all three; None computes
        the family's statistics only.
    null_samples : int, keyword-only
        Draws per null model, ``>= 1``; default 20 (the smallest p-value is
        ``1 / 21``).
    seed : None, int, sequence of int, numpy.random.SeedSequence or numpy.random.Generator, keyword-only
        Seed of the null draws, which are drawn on the input's backend and
        device: ``numpy.random.default_rng(seed)`` for NumPy (and Numba and
        array_api_strict) arrays, a ``torch.Generator`` seeded from it for
        torch tensors (a ``torch.Generator`` is also accepted), CuPy's
        generator for CuPy arrays.  The same seed on the same backend gives
        the same result.

    Returns
    -------
    AssumptionTest
        ``.statistics``, ``.step_ranks``, ``.rank_profile``,
        ``.energy_profile``, ``.nulls[null][statistic]`` (a
        :class:`NullComparison`), ``.p_value(null, statistic)``,
        ``.better_than_noise(alpha)``; ``str()`` of it is a table.

    Raises
    ------
    ValueError
        If ``mats`` holds fewer than 2 matrices, a sample is not 2-D or has
        zero rows/columns, the shapes differ, a sample holds NaN/Inf, ``tol``
        is outside ``[0, 1)``, ``max_order`` is outside ``[1, L-1]``,
        ``null`` names an unknown model or ``null_samples < 1``.
    TypeError
        If ``mats`` is not numeric or is complex, ``max_order``/``null_samples`` are not
        integers, ``null`` is not a string, a sequence of strings or None,
        or ``seed`` is not a valid NumPy seed.

    See Also
    --------
    numerical_difference_profile : Ranks of the differences at a cutoff relative to the data.
    direct_sum_check : Whether matrices share column or row spaces.

    Notes
    -----
    **Cost.**  Per family (the given one and each of the
    ``null_samples · len(null)`` draws): ``Σ_{k<=K} (L − k) + 1`` singular
    value decompositions of m×n matrices, ``O(L K m n min(m, n))``; a
    rotated draw adds ``2 (L − 1)`` QR factorisations of m×p and n×p
    Gaussian matrices.  Everything runs on the input's backend and device
    (the draws too); only ranks and a few norms come back to the host.  For
    long runs, test windows of a few dozen consecutive checkpoints.

    The ranks are scale-free; a stack near the top of the floating-point
    range is first scaled by a power of two.  ``tol`` below the data's
    accuracy counts noise as rank: choose it as for the fit.

    Examples
    --------
    A walk whose steps are rank 1 (``W_j = W_0 + Σ_{i<=j} u_i v_iᵀ``) against
    a Gaussian random walk with the same step sizes:

    >>> import numpy as np
    >>> from lowrank_tree import assumption_test
    >>> rng = np.random.default_rng(0)
    >>> steps = [np.outer(rng.standard_normal(30), rng.standard_normal(20)) for _ in range(12)]
    >>> W = np.cumsum([rng.standard_normal((30, 20))] + steps, axis=0)
    >>> t = assumption_test(W, tol=1e-2, seed=1)
    >>> t.step_ranks[:4], t.statistics["step_rank"]
    ([1, 1, 1, 1], 0.05)
    >>> t.nulls["random_walk"]["step_rank"].mean > 0.9
    True
    >>> t.p_value("random_walk"), t.better_than_noise()
    (0.047619047619047616, True)

    The steps are independent rank-one matrices: they share no subspaces, so
    the whole displacement is no lower in rank than the same steps on random
    subspaces (the rotated null):

    >>> t.statistics["displacement_rank"], t.shares_subspaces()
    (0.6, False)
    """
    xp, X = _stack(mats, "mats")
    L, m, n = X.shape
    if L < 2:
        raise ValueError(f"mats must hold at least 2 matrices (one difference), got {L}")
    if tol is None:
        raise TypeError("tol must be a real number in [0, 1), got None")
    tol = check_tol(tol, "tol")
    max_order = min(3, L - 1) if max_order is None else check_int(max_order, "max_order", 1, L - 1)
    nulls = _check_nulls(null)
    null_samples = check_int(null_samples, "null_samples", 1)
    if xp.isdtype(X.dtype, "complex floating"):
        # the null models draw real steps: a complex family would be compared with the wrong noise
        raise TypeError(f"mats must be real (assumption_test has real null models), got dtype {X.dtype}")
    backend = backend_name(xp)
    to_host = get_func("to_numpy", backend)
    if not xp.isdtype(X.dtype, "real floating"):
        X = xp.astype(X, xp.float64)
    try:
        rng = get_func("make_rng", backend)(seed, device_of(X))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"seed must be None, an int, a sequence of ints, a SeedSequence or a Generator, got {seed!r}"
        ) from exc

    # many small SVDs: one BLAS thread each on small matrices (see the performance notes)
    with small_blas(min(m, n) <= SMALL_BLAS_MAX):
        return _assumption_test(X, xp, backend, to_host, rng, tol, max_order, nulls, null_samples, seed)


def _assumption_test(X, xp, backend, to_host, rng, tol, max_order, nulls, null_samples, seed):
    L, m, n = X.shape
    X, _, _, e = _unit_scale(X, xp)
    D1 = X[1:, ...] - X[:-1, ...]
    fam = _family_statistics(D1, X[-1, ...] - X[0, ...], max_order, tol, xp, to_host)
    comparisons, null_profiles = {}, {}
    if nulls:
        norms = fam["step_norms"]
        for name in nulls:
            draws = []
            for _ in range(null_samples):
                G = _null_steps(name, xp, backend, rng, L - 1, m, n, fam["step_svals"], X.dtype)
                # every draw keeps the family's step norms (a zero step stays zero)
                g_norms = xp.linalg.matrix_norm(G, ord="fro")
                G = G * (norms / xp.where(g_norms > 0, g_norms, xp.ones_like(g_norms)))[:, None, None]
                draws.append(_family_statistics(G, xp.sum(G, axis=0), max_order, tol, xp, to_host))
            comparisons[name] = {s: NullComparison(name, s, fam[s], tuple(d[s] for d in draws)) for s in STATISTICS}
            null_profiles[name] = [
                math.fsum(d["rank_profile"][k] for d in draws) / null_samples for k in range(max_order)
            ]
    return AssumptionTest(
        tol=tol,
        shape=(L, m, n),
        max_order=max_order,
        step_ranks=fam["step_ranks"],
        rank_profile=fam["rank_profile"],
        energy_profile=[_ldexp(v, e) for v in fam["energy_profile"]],
        statistics={s: fam[s] for s in STATISTICS},
        nulls=comparisons,
        null_rank_profiles=null_profiles,
        null_samples=null_samples,
        seed=seed,
    )


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _check_nulls(null):
    if null is None:
        return ()
    names = (null,) if isinstance(null, str) else null
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"null must be a string, a sequence of strings or None, got {null!r}") from None
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"null must be a string, a sequence of strings or None, got {null!r}")
        if name not in NULL_MODELS:
            raise ValueError(f"null must be one of {NULL_MODELS} (or a sequence of them, or None), got {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"null names a model twice: {null!r}")
    return names


def _null_steps(name, xp, backend, rng, p, m, n, svals, dtype):
    """``p`` random m×n steps of null model ``name`` on the family's backend and device, before rescaling.

    ``svals`` (p, min(m, n)): the singular values of the family's steps (used by ``'rotated'``).
    """
    normal = get_func("standard_normal", backend)
    if name == "random_walk":
        return normal(rng, (p, m, n), dtype)
    if name == "smooth":
        C = normal(rng, (SMOOTH_NULL_DEGREE + 1, m * n), dtype)
        P = xp.asarray(_legendre_table(p, SMOOTH_NULL_DEGREE), dtype=dtype, device=device_of(C))
        return xp.reshape(P @ C, (p, m, n))
    r = svals.shape[1]
    Q = _haar(xp, normal(rng, (p, m, r), dtype))
    P = _haar(xp, normal(rng, (p, n, r), dtype))
    return (Q * xp.astype(svals, dtype)[:, None, :]) @ xp.matrix_transpose(P)


def _legendre_table(p, degree):
    """``[P_i(x_j)]`` (p rows, degree + 1 columns), ``x_j`` equispaced on [-1, 1] (``x = 0`` for p = 1)."""
    xs = [-1.0 + 2.0 * j / (p - 1) for j in range(p)] if p > 1 else [0.0]
    table = []
    for x in xs:
        row = [1.0, x]
        for i in range(1, degree):  # Bonnet: (i + 1) P_{i+1} = (2i + 1) x P_i − i P_{i−1}
            row.append(((2 * i + 1) * x * row[i] - i * row[i - 1]) / (i + 1))
        table.append(row[: degree + 1])
    return table


def _haar(xp, Z):
    """Orthonormal columns, uniformly (Haar) distributed, from a stack of Gaussian matrices ``Z`` (p, m, r)."""
    Q, R = xp.linalg.qr(Z)
    d = xp.sign(xp.linalg.diagonal(R))
    # the sign fix makes the distribution exactly Haar (QR alone fixes diag(R) >= 0, which biases Q)
    return Q * xp.where(d == 0, xp.ones_like(d), d)[:, None, :]


def _tol_ranks(s, tol, xp):
    """``(r_tol, ‖·‖_F)`` of each row of singular values ``s`` (shape (q, min(m, n)), descending), on ``s``'s device.

    ``r_tol`` is the number of ``r`` with ``‖s[r:]‖ > tol ‖s‖`` (the tail norm does
    not increase with ``r``); the rows are scaled by their largest value first,
    so no square under- or overflows.
    """
    top = s[:, :1]
    safe = xp.where(top > 0, top, xp.ones_like(top))
    t = s / safe
    tail = xp.flip(xp.cumulative_sum(xp.flip(t * t, axis=1), axis=1), axis=1)  # tail[:, r] = ‖t[r:]‖²
    total = tail[:, :1]
    ranks = xp.sum(xp.astype(tail > (tol * tol) * total, xp.int64), axis=1)
    fro = top[:, 0] * xp.sqrt(total[:, 0])
    return ranks, fro


def _rms(v, xp):
    """Root mean square of a 1-D array as a Python float, scaled so that no square overflows."""
    peak = float(xp.max(v))
    if peak == 0.0:
        return 0.0
    return peak * math.sqrt(float(xp.mean((v / peak) ** 2)))


def _family_statistics(D1, displacement, max_order, tol, xp, to_host):
    """The statistics of :func:`assumption_test` from the first differences ``D1`` (L-1, m, n)."""
    _, m, n = D1.shape
    p = min(m, n)
    rank_profile, energy_profile = [], []
    D = D1
    for k in range(1, max_order + 1):
        if k > 1:
            D = D[1:, ...] - D[:-1, ...]
        s = xp.linalg.svdvals(D)
        ranks, fro = _tol_ranks(s, tol, xp)
        ranks = [int(r) for r in to_host(ranks).tolist()]
        if k == 1:
            step_ranks, step_norms, step_svals = ranks, fro, s
        rank_profile.append(sum(ranks) / len(ranks))
        energy_profile.append(_rms(fro, xp))
    disp_rank, _ = _tol_ranks(xp.linalg.svdvals(displacement[None, ...]), tol, xp)
    K = max_order
    if K == 1:
        rank_rate = energy_rate = math.nan
    else:
        rank_rate = (rank_profile[-1] - rank_profile[0]) / ((K - 1) * p)
        e1, eK = energy_profile[0], energy_profile[-1]
        if e1 == 0.0:
            energy_rate = math.nan
        elif eK == 0.0:
            energy_rate = -math.inf
        else:
            energy_rate = math.log(eK / e1) / (K - 1)
    return {
        "step_ranks": step_ranks,
        "step_norms": step_norms,
        "step_svals": step_svals,
        "rank_profile": rank_profile,
        "energy_profile": energy_profile,
        "step_rank": sum(step_ranks) / (len(step_ranks) * p),
        "displacement_rank": int(to_host(disp_rank).tolist()[0]) / p,
        "rank_rate": rank_rate,
        "energy_rate": energy_rate,
    }
