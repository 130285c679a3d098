"""The pole construction: a rational matrix that breaks the drop bound.

The drop bound ``ρ(n) <= ρ(n+1) + min_{k<n} ρ(k)`` was conjectured for
derivative profiles over ``ℚ(t)``; :mod:`theory.jets` showed it false over
formal power series.  This module gives a *rational* counterexample with the
profile ``(2, 3, 4, 1)`` (``ρ(2) = 4 > ρ(3) + ρ(0) = 3``), so the bound is
false over ``ℚ(t)`` too.  It was the first construction of ``(2, 3, 4, 1)``;
the designer's table now uses a polynomial one that
:func:`theory.rank_one_search.rank_one_search` finds by itself.

How it was found
----------------
A rank-1 third derivative ``A''' = x yᵀ`` with ``x, y`` of degree 1 in
``1/t`` integrates to ``A = Q + P``: ``Q`` a matrix polynomial of degree
at most 2, and ``P`` proper with its only pole at ``t = 0``.  After constant
changes of basis on both sides ``P = diag(G, 0)`` with the ``2 × 2``

    G(t) = [[1/(60 t³), 1/(24 t²)], [1/(24 t²), 1/(6 t)]],

whose third derivative ``-t⁻⁶ (1, t)ᵀ(1, t)`` has rank 1.  With ``Q`` in
``2 × 2`` blocks, ``A = [[Q11 + G, Q12], [Q21, Q22]]`` has rank 2 exactly
when its Schur complement vanishes, ``Q12 Q22⁻¹ Q21 = Q11 + G``: the
principal part of ``Q12 Q22⁻¹ Q21`` at ``t = 0`` must be ``G`` and there
must be no other pole.  ``G`` has McMillan degree 4, so ``det Q22`` must be
``c t⁴`` with Smith form ``diag(t, t³)`` at 0: ``Q22 = [[t², t], [0, t²]]``.
Then the principal-part equations are linear in ``Q21`` once ``Q12`` is
fixed (one of them fixes an entry of ``Q12``), and ``det A' = 0`` (for
``ρ(1) = 3``) is polynomial equations in the entries of ``Q12``: a
least-squares search showed that one more entry must be ``-2``, after which
SymPy solved the remaining four coefficient equations for a rational
family (the scripts are not shipped; the tests check the result, not the
route).  :func:`drop_bound_counterexample` builds the simplest member.  It
is ``D_a C D_b`` with ``a = (0, 1, 2, 3)``, ``b = (-3, -2, 0, -1)`` (after
scaling rows and columns); its ``1/(6t)`` entry has a residue, so unlike
the polynomial construction it has no rational antiderivative to lift.

Examples
--------
>>> A = drop_bound_counterexample()
>>> from theory.profiles import rank_profile
>>> rank_profile(A, 3).ranks
(2, 3, 4, 1)
"""

from __future__ import annotations

import sympy as sp

from ._typing import Matrix, Symbol

__all__ = ["drop_bound_counterexample", "schur_completion"]

_T = sp.Symbol("t")


def schur_completion(Q12: Matrix, Q21: Matrix, Q22: Matrix) -> Matrix:
    """The matrix ``[[Q12 Q22⁻¹ Q21, Q12], [Q21, Q22]]`` of rank ``rank Q22``.

    Parameters
    ----------
    Q12 : sympy.Matrix, shape (p, r)
    Q21 : sympy.Matrix, shape (r, q)
    Q22 : sympy.Matrix, shape (r, r)
        Invertible over ``ℚ(t)``.

    Returns
    -------
    sympy.Matrix, shape (p + r, q + r)
        ``[Q12 Q22⁻¹; I] [Q21, Q22]``, entries simplified with ``cancel``.

    Raises
    ------
    ValueError
        If the shapes do not fit or ``Q22`` is singular.

    Examples
    --------
    >>> t = sp.Symbol("t")
    >>> schur_completion(sp.Matrix([[1]]), sp.Matrix([[t]]), sp.Matrix([[t**2]]))
    Matrix([
    [1/t,    1],
    [  t, t**2]])
    """
    Q12, Q21, Q22 = sp.Matrix(Q12), sp.Matrix(Q21), sp.Matrix(Q22)
    r = Q22.rows
    if Q22.cols != r or Q12.cols != r or Q21.rows != r:
        raise ValueError(
            f"Q12, Q21, Q22 must have shapes (p, r), (r, q), (r, r); got {Q12.shape}, {Q21.shape}, {Q22.shape}"
        )
    if sp.cancel(Q22.det(method="berkowitz")) == 0:
        raise ValueError("Q22 must be invertible over Q(t)")
    left = (Q12 * Q22.inv()).col_join(sp.eye(r))
    return (left * Q21.row_join(Q22)).applyfunc(sp.cancel)


def drop_bound_counterexample(var: Symbol = _T) -> Matrix:
    """A ``4 × 4`` rational matrix with derivative profile ``(2, 3, 4, 1)``.

    Built by :func:`schur_completion` from the blocks of the module
    docstring, with ``Q22 = [[t², t], [0, t²]]``.  Its derivatives: rank 2,
    3, 4 and 1; ``det A'' = 1/(60 t⁸)`` and ``A''' = -t⁻⁶ e(t) e(t)ᵀ`` with
    ``e = (1, t, 0, 0)`` (the drop bound would need ``ρ(2) <= 3``).

    Parameters
    ----------
    var : sympy.Symbol

    Returns
    -------
    sympy.Matrix, shape (4, 4)
        Equal to ``diag(1, 1/2, 1, 1) · D_a C D_b · diag(1/60, 1/72, 1, 1/2)``
        with ``a = (0, 1, 2, 3)``, ``b = (-3, -2, 0, -1)`` and the integer
        ``C = [[1, 3, 1, 0], [5, 24, -4, -18], [0, -1, 1, 2], [-1, -4, 0, 2]]``.

    Examples
    --------
    >>> drop_bound_counterexample()[:2, :2]
    Matrix([
    [1/(60*t**3), 1/(24*t**2)],
    [1/(24*t**2),     1/(6*t)]])
    """
    t = var
    Q12 = sp.Matrix([[1, 0], [-2 * t, sp.Rational(-9, 2)]])
    Q21 = sp.Matrix([[0, sp.Rational(-1, 72)], [sp.Rational(-1, 60), -t / 18]])
    Q22 = sp.Matrix([[t**2, t], [0, t**2]])
    # the top-left block Q12 Q22⁻¹ Q21 comes out as G itself (Q11 = 0 for this member)
    return schur_completion(Q12, Q21, Q22)
