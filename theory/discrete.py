"""A designer for generic *difference* profiles over ℚ(j).

Problem.  Given ``(r_0, ..., r_{K-1})``, find a matrix sequence ``A(j)`` with
entries in ℚ(j) and ``grank Δ^k A = r_k`` for ``k = 0..K-1``, where
``ΔA(j) = A(j+1) - A(j)``, or prove that none exists.

Necessary conditions.  Zero absorption, the C2 bound, rank-one persistence,
doubling and generalised rigidity are proved for forward differences as well
as for derivatives, so :func:`theory.designer.necessary_violations` applies
with ``differences=True`` (which leaves out three-term rigidity, proved for
derivatives only).

Constructions.  The discrete block library replaces the antiderivative
``∫`` by the indefinite sum ``Σ`` (the inverse of ``Δ`` that vanishes at
``j = 0``), and ``t`` by ``j``:

    ``j^e``              profile 1 for ``k <= e``, then 0
    ``Σ^m H_d``          m-fold indefinite sum of ``H_d(j) = u(j) u(j)ᵀ``
    ``Σ^m u_a u_bᵀ``     m-fold indefinite sum of the rectangular block

Their difference profiles equal the derivative profiles of ``t^e``,
``∫^m H_d`` and ``∫^m u_a u_bᵀ``: for ``k >= m``, ``Δ^k Σ^m X = Δ^{k-m} X``,
whose rank is given by the Gram-matrix lemma (proved for differences); for
``k < m``, ``Δ^k Σ^m X = Σ^{m-k} X``, and after scaling rows by ``j^{-a}``,
columns by ``j^{-b}`` and everything by ``j^{-(m-k)}`` its entries tend, as
``j → ∞``, to the positive definite moment matrix of the continuous proof,
so the rank is full (a specialisation cannot have larger rank than the
generic one).  The profiles are nevertheless recomputed by the engine here,
and each assembled matrix is certified before the designer answers.

Targets that no discrete library sum realises fall back to the derivative
construction read as a sequence in ``j`` ("same matrix in j": library
blocks replaced by their ``Σ`` versions, ``D_a C D_b`` blocks taken as they
are), which the engine checks; otherwise they are reported open.

Examples
--------
>>> r = design_difference_profile((2, 1))
>>> r.status, discrete_construction(r.blocks), r.profile.ranks
('constructed', 'Σ^1 H_1', (2, 1))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import sympy as sp

from ._claims import block_diag
from ._typing import Matrix, Symbol
from .designer import DesignResult, _block_name, _search, block_matrix, design_profile, library, necessary_violations
from .profiles import difference_profile

__all__ = [
    "J",
    "indefinite_sum_power",
    "discrete_block_matrix",
    "discrete_block_profile",
    "discrete_construction",
    "design_difference_profile",
]

J = sp.Symbol("j", integer=True)


@functools.lru_cache(maxsize=None)
def _stirling2(s: int, i: int) -> int:
    if s == i:
        return 1
    if i == 0 or i > s:
        return 0
    return i * _stirling2(s - 1, i) + _stirling2(s - 1, i - 1)


def indefinite_sum_power(s: int, m: int, var: Symbol = J) -> sp.Expr:
    """The m-fold indefinite sum of ``var**s`` that vanishes at ``var = 0, ..., m-1``.

    Writes ``j^s = Σ_i S(s, i) (j)_i`` (Stirling numbers of the second kind,
    falling factorials) and uses ``Σ (j)_i = (j)_{i+1} / (i+1)``.

    Parameters
    ----------
    s, m : int
        Non-negative exponent and number of sums.
    var : sympy.Symbol

    Returns
    -------
    sympy.Expr
        A polynomial ``P`` with ``Δ^m P = var**s``.

    Raises
    ------
    ValueError
        If ``s`` or ``m`` is negative.

    Examples
    --------
    >>> indefinite_sum_power(1, 1)
    j*(j - 1)/2
    """
    if s < 0 or m < 0:
        raise ValueError(f"s and m must be non-negative ints, got s={s!r}, m={m!r}")
    return sum(
        (_stirling2(s, i) * sp.Rational(math.factorial(i), math.factorial(i + m)) * sp.ff(var, i + m))
        for i in range(s + 1)
    )


def discrete_block_matrix(block: tuple, var: Symbol = J) -> Matrix:
    """The sequence analogue of a library block.

    Parameters
    ----------
    block : tuple
        ``("monomial", e)`` gives ``[[j^e]]``; ``("hankel_anti", d, m)``
        gives ``Σ^m H_d`` (entry ``(a, b)``: the m-fold sum of
        ``j^(a+b)``); ``("rect_anti", a, b, m)`` gives ``Σ^m u_a u_bᵀ``;
        ``("dcd", a, b, C)`` gives the same matrix as for derivatives, in
        ``j``.
    var : sympy.Symbol

    Returns
    -------
    sympy.Matrix

    Raises
    ------
    ValueError
        For an unknown block.

    Examples
    --------
    >>> discrete_block_matrix(("hankel_anti", 1, 1))
    Matrix([
    [        j,    j*(j - 1)/2],
    [j*(j - 1)/2, j*(j - 1)*(2*j - 1)/6]])
    """
    kind = block[0]
    if kind == "monomial":
        return sp.Matrix([[var ** block[1]]])
    if kind == "hankel_anti":
        d, m = block[1:]
        return sp.Matrix(d + 1, d + 1, lambda a, b: sp.factor(indefinite_sum_power(a + b, m, var)))
    if kind == "rect_anti":
        ra, rb, m = block[1:]
        return sp.Matrix(ra + 1, rb + 1, lambda a, b: sp.factor(indefinite_sum_power(a + b, m, var)))
    if kind == "dcd":
        return block_matrix(block, var)
    raise ValueError(f"unknown block {block!r}")


def discrete_construction(blocks: Sequence[tuple]) -> str:
    """Human-readable name of a discrete block sum, e.g. ``'Σ^1 H_1 ⊕ j^0'``."""
    return " ⊕ ".join(_block_name(b).replace("∫", "Σ").replace("t^", "j^") for b in blocks)


def discrete_block_profile(block: tuple, K: int) -> tuple[int, ...]:
    """Engine-certified difference profile of :func:`discrete_block_matrix` at orders ``0..K-1``.

    The designer does not call this (the profiles are proved equal to the
    derivative profiles of the same blocks, and every assembled matrix is
    certified); it is here for checking that statement.

    Examples
    --------
    >>> discrete_block_profile(("hankel_anti", 1, 1), 5)
    (2, 1, 2, 1, 0)
    """
    P = difference_profile(discrete_block_matrix(block, J), K - 1, var=J, seed=0)
    if not P.certified:  # pragma: no cover - the engine always certifies
        raise RuntimeError(f"difference profile of {block} not certified")
    return P.ranks


def design_difference_profile(
    target: Sequence[int], *, library_kind: str = "extended", derivative: DesignResult | None = None
) -> DesignResult:
    """Construct a sequence with generic difference profile ``target`` — or prove impossible.

    Parameters
    ----------
    target : sequence of int
        ``(r_0, ..., r_{K-1})``.
    library_kind : {"standard", "extended"}
    derivative : DesignResult, optional
        The derivative designer's answer for the same target (computed if
        not given); its matrix, read in ``j``, is the fallback construction.

    Returns
    -------
    DesignResult
        ``profile.kind == "difference"``; ``reason`` says which
        construction was used ("discrete library sum" or "same matrix in
        j"), the violated condition, or why the target is open.

    Raises
    ------
    ValueError
        For a malformed target.

    Examples
    --------
    >>> design_difference_profile((3, 2, 1)).reason
    'discrete library sum, difference profile certified'
    >>> design_difference_profile((1, 3, 2)).status
    'impossible'
    """
    viol = necessary_violations(target, differences=True)
    target = tuple(target)
    K = len(target)
    if viol:
        return DesignResult(target, "impossible", reason="; ".join(viol))
    if not any(target):
        A = sp.zeros(1, 1)
        return DesignResult(target, "constructed", [], A, difference_profile(A, K - 1, var=J), "zero matrix")
    # the discrete blocks have the derivative blocks' profiles (proved above); the sum is certified below
    blocks = _search(target, library(K, max(target), kind=library_kind))
    if blocks is not None:
        A = block_diag(*[discrete_block_matrix(b, J) for b in blocks])
        prof = difference_profile(A, K - 1, var=J, seed=1)
        if prof.certified and prof.ranks == target:
            return DesignResult(
                target, "constructed", list(blocks), A, prof, "discrete library sum, difference profile certified"
            )
    if derivative is None:
        derivative = design_profile(target, library_kind=library_kind)
    if derivative.status == "constructed" and derivative.blocks:
        # library blocks become their Σ versions, D_a C D_b blocks are read in j
        A = block_diag(*[discrete_block_matrix(b, J) for b in derivative.blocks])
        prof = difference_profile(A, K - 1, var=J, seed=2)
        if prof.certified and prof.ranks == target:
            how = "same matrix in j, difference profile certified"
            return DesignResult(target, "constructed", list(derivative.blocks), A, prof, how)
        return DesignResult(
            target, "open", reason=f"no discrete library sum; the derivative construction in j has {prof.ranks}"
        )
    return DesignResult(target, "open", reason="passes the necessary conditions; no discrete construction known")
