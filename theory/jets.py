"""Exact Taylor jets that violate the drop bound to a given order.

The conjectured drop bound ``ρ(n) <= ρ(0) + ρ(n+1)`` (see the theory
documentation) decides the six open rows of the designer's table.  Its first
open case is ``n = 2``, ``ρ(0) = 2``, ``ρ(3) = 1``: can a matrix function of
rank 2 whose third derivative has rank 1 have an invertible ``4 × 4`` second
derivative?  This module answers the *local* version of that question with
exact arithmetic: it builds power series ``U(h)`` (``4 × 2``), ``V(h)``
(``2 × 4``), ``x(h)``, ``y(h)`` (4-vectors) with rational coefficients such
that, for ``A = U V``,

    A''' − x yᵀ = O(h^{N+1})      and      det A''(0) ≠ 0.

So the 2 × 2 minors of ``A'''`` vanish at ``h = 0`` together with their first
``N`` derivatives, while ``A''`` is invertible there.  A proof of the bound in
this case must therefore use derivatives of the minors of order higher than
``N`` (or an argument that is not local): the rank-one proof in the
documentation uses the minors and their first derivative, and the search here
reaches ``N = 7`` without meeting an obstruction.  A jet is not a matrix
function over ``ℚ(t)`` and decides no row of the table.

Construction.  Constant row and column operations and a gauge
``U → U G, V → G⁻¹ V`` (which change no rank) bring ``A`` to
``U = [I; P]``, ``P(0) = 0``, ``V(0) = [I 0]``, so ``A = [V; P V]``.  Write
``P = Σ P_k h^k``, ``V = Σ V_k h^k``, ``x = Σ x_k h^k``, ``y = Σ y_k h^k``.
The coefficient of ``h^d`` in ``A''' = x yᵀ`` is

    (d+1)(d+2)(d+3) A_{d+3} = Σ_{i+j=d} x_i y_jᵀ,    A_k = [V_k; Σ_i P_i V_{k−i}],

16 equations that are linear in the newest unknowns ``z_d = (V_{d+3},
P_{d+3}, x_d, y_d)`` for ``d >= 1`` (for ``d = 0`` the unknowns are ``V_2,
V_3, P_3``, with ``x_0, y_0`` chosen first).  Their matrix ``J_d`` has rank 15:
the tangent spaces of the rank-2 and the rank-1 matrices at ``A_0`` and
``x_0 y_0ᵀ`` miss one direction.  So each degree carries one scalar
*obstruction* ``ℓ_d · b_d`` (``ℓ_d`` the left null vector of ``J_d``), a
polynomial in the earlier unknowns, and leaves a 5-dimensional space of
solutions.  The free parameters of each degree are kept as symbols for three
more degrees; each obstruction is solved, exactly, for a parameter of the
oldest degree in which it is linear; then the parameters that no later
obstruction can reach are fixed at random small integers.  (The obstruction at
degree ``d`` turns out to depend on the parameters of degrees ``d − 3`` and
``d − 2``, never on those of ``d − 1``: a search that fixed each degree at once
would stop at degree 2.)

Examples
--------
>>> from theory.jets import drop_bound_jet
>>> jet = drop_bound_jet(order=2, seed=1)
>>> jet.verify()
True
>>> jet.det_second_derivative != 0
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import sympy as sp

__all__ = ["DropJet", "drop_bound_jet", "shipped_drop_jet"]


def _rational_matrix(rows: Any) -> sp.Matrix:
    return sp.Matrix([[sp.Rational(str(v)) for v in row] for row in rows])


def _as_strings(M: sp.Matrix) -> list[list[str]]:
    return [[str(sp.Rational(M[i, j])) for j in range(M.cols)] for i in range(M.rows)]


@dataclass(frozen=True)
class DropJet:
    """Exact jets ``U``, ``V``, ``x``, ``y`` with ``(UV)''' = x yᵀ + O(h^{N+1})``.

    Attributes
    ----------
    order : int
        ``N``: the coefficients of ``h^0 … h^N`` of ``(UV)''' − x yᵀ`` vanish.
    U : tuple of sympy.Matrix
        ``U_0 … U_{N+3}``, each ``4 × 2`` (the Taylor coefficients of ``U``).
    V : tuple of sympy.Matrix
        ``V_0 … V_{N+3}``, each ``2 × 4``.
    x, y : tuple of sympy.Matrix
        ``x_0 … x_N`` and ``y_0 … y_N``, each ``4 × 1``.
    """

    order: int
    U: tuple[sp.Matrix, ...]
    V: tuple[sp.Matrix, ...]
    x: tuple[sp.Matrix, ...]
    y: tuple[sp.Matrix, ...]

    def polynomials(self) -> tuple[sp.Matrix, sp.Matrix, sp.Matrix, sp.Matrix]:
        """``U(h)``, ``V(h)``, ``x(h)``, ``y(h)`` as polynomial matrices in ``h``."""
        h = sp.Symbol("h")
        U = sum((M * h**k for k, M in enumerate(self.U)), sp.zeros(4, 2))
        V = sum((M * h**k for k, M in enumerate(self.V)), sp.zeros(2, 4))
        x = sum((M * h**k for k, M in enumerate(self.x)), sp.zeros(4, 1))
        y = sum((M * h**k for k, M in enumerate(self.y)), sp.zeros(4, 1))
        return U, V, x, y

    @property
    def det_second_derivative(self) -> sp.Rational:
        """``det A''(0)`` for ``A = U V`` (nonzero: ``A''`` is invertible at 0)."""
        A2 = sum(
            (self.U[i] * self.V[2 - i] for i in range(3)),
            sp.zeros(4, 4),
        )
        return sp.Rational((2 * A2).det())

    def verify(self) -> bool:
        """Check the jet from its polynomials alone.

        True when ``rank U(0) = rank V(0) = 2``, every coefficient of
        ``h^0 … h^N`` in ``(UV)''' − x yᵀ`` is zero, and ``det A''(0) ≠ 0``.
        """
        h = sp.Symbol("h")
        U, V, x, y = self.polynomials()
        if U.subs(h, 0).rank() != 2 or V.subs(h, 0).rank() != 2:
            return False
        A = (U * V).applyfunc(sp.expand)
        B = (A.diff(h, 3) - x * y.T).applyfunc(sp.expand)
        for entry in B:
            poly = sp.Poly(entry, h)
            if any(poly.coeff_monomial(h**k) != 0 for k in range(self.order + 1)):
                return False
        return A.diff(h, 2).subs(h, 0).det() != 0

    def to_json(self) -> dict[str, Any]:
        """The jet as JSON-ready data (rationals as strings)."""
        return {
            "order": self.order,
            "U": [_as_strings(M) for M in self.U],
            "V": [_as_strings(M) for M in self.V],
            "x": [_as_strings(M) for M in self.x],
            "y": [_as_strings(M) for M in self.y],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DropJet:
        """Inverse of :meth:`to_json`."""
        order = data.get("order")
        if not isinstance(order, int) or order < 0:
            raise ValueError(f"order must be a non-negative integer, got {order!r}")
        return cls(
            order=order,
            U=tuple(_rational_matrix(M) for M in data["U"]),
            V=tuple(_rational_matrix(M) for M in data["V"]),
            x=tuple(_rational_matrix(M) for M in data["x"]),
            y=tuple(_rational_matrix(M) for M in data["y"]),
        )


class _JetSolver:
    """The degree-by-degree solver described in the module docstring."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        small = self.small
        self.P: dict[int, sp.Matrix] = {0: sp.zeros(2, 2), 1: small(2, 2), 2: small(2, 2)}
        self.V: dict[int, sp.Matrix] = {0: sp.Matrix([[1, 0, 0, 0], [0, 1, 0, 0]]), 1: small(2, 4)}
        self.x: dict[int, sp.Matrix] = {0: small(4, 1)}
        self.y: dict[int, sp.Matrix] = {0: small(4, 1)}
        self.pending: dict[int, list[sp.Symbol]] = {}

    def small(self, rows: int, cols: int) -> sp.Matrix:
        return sp.Matrix(rows, cols, lambda i, j: sp.Integer(self.rng.randint(-3, 3)))

    def A(self, k: int) -> sp.Matrix:
        bottom = sp.zeros(2, 4)
        for i in range(k + 1):
            bottom += self.P[i] * self.V[k - i]
        return self.V[k].col_join(bottom)

    def residual(self, d: int) -> sp.Matrix:
        rhs = sp.zeros(4, 4)
        for i in range(d + 1):
            rhs += self.x[i] * self.y[d - i].T
        return (d + 1) * (d + 2) * (d + 3) * self.A(d + 3) - rhs

    @staticmethod
    def layout(d: int) -> list[tuple[str, int, int, int]]:
        if d == 0:
            return [("V", 2, 2, 4), ("V", 3, 2, 4), ("P", 3, 2, 2)]
        return [("V", d + 3, 2, 4), ("P", d + 3, 2, 2), ("x", d, 4, 1), ("y", d, 4, 1)]

    def assign(self, d: int, values: list[Any]) -> None:
        at = 0
        for kind, index, rows, cols in self.layout(d):
            block = sp.Matrix(rows, cols, values[at : at + rows * cols])
            at += rows * cols
            getattr(self, kind)[index] = block

    def affine(self, d: int) -> tuple[sp.Matrix, sp.Matrix]:
        """``J_d`` and ``b_d`` with ``vec(residual) = J_d z_d + b_d``."""
        n = sum(r * c for _, _, r, c in self.layout(d))
        self.assign(d, [0] * n)
        offset = self.residual(d).reshape(16, 1)
        columns = []
        for j in range(n):
            unit = [0] * n
            unit[j] = 1
            self.assign(d, unit)
            columns.append(self.residual(d).reshape(16, 1) - offset)
        return sp.Matrix.hstack(*columns), offset

    def substitute(self, values: dict[sp.Symbol, Any]) -> None:
        for store in (self.P, self.V, self.x, self.y):
            for k in store:
                store[k] = store[k].subs(values).applyfunc(sp.cancel)

    def impose(self, expression: sp.Expr, d: int) -> None:
        numerator = sp.expand(sp.numer(sp.together(sp.expand(expression))))
        if numerator == 0:
            return
        for degree in sorted(self.pending):
            linear = [s for s in self.pending[degree] if numerator.has(s) and sp.degree(numerator, s) == 1]
            if linear:
                symbol = linear[-1]
                break
        else:
            raise _Obstructed(f"the obstruction at degree {d} is {sp.factor(numerator)}")
        (value,) = sp.solve(numerator, symbol)
        self.substitute({symbol: value})
        self.pending[degree].remove(symbol)

    def finalize(self, up_to: int) -> None:
        values = {}
        for degree in [g for g in self.pending if g <= up_to]:
            for symbol in self.pending.pop(degree):
                values[symbol] = sp.Integer(self.rng.randint(-3, 3))
        if values:
            self.substitute(values)

    def run(self, order: int) -> DropJet:
        for d in range(order + 1):
            J, b = self.affine(d)
            if d > 0:
                left = J.T.nullspace()
                if len(left) != 1:
                    raise _Obstructed(f"J_{d} has {len(left)} obstructions (degenerate start)")
                self.impose((left[0].T * b)[0, 0], d)
                J, b = self.affine(d)
            try:
                solution, params = J.gauss_jordan_solve(-b)
            except ValueError as exc:  # no solution: a degenerate start
                raise _Obstructed(f"degree {d} has no solution") from exc
            symbols = [sp.Symbol(f"k{d}_{i}") for i in range(len(params))]
            self.assign(d, list(solution.subs(dict(zip(params, symbols)))))
            self.pending[d] = symbols
            self.finalize(d - 3)
        self.finalize(order)
        U = tuple(sp.Matrix.vstack(sp.eye(2) if k == 0 else sp.zeros(2, 2), self.P[k]) for k in range(order + 4))
        return DropJet(
            order=order,
            U=U,
            V=tuple(self.V[k] for k in range(order + 4)),
            x=tuple(self.x[k] for k in range(order + 1)),
            y=tuple(self.y[k] for k in range(order + 1)),
        )


class _Obstructed(Exception):
    pass


def drop_bound_jet(order: int = 5, *, seed: int = 0, max_tries: int = 20) -> DropJet:
    """Exact jets of a rank-2 ``A`` with ``A''' = x yᵀ + O(h^{order+1})``, ``A''(0)`` invertible.

    Parameters
    ----------
    order : int, default 5
        ``N >= 0``: how many orders of ``A''' = x yᵀ`` to match
        (``h^0 … h^N``). Time grows quickly: ``N = 7`` takes about a minute.
    seed : int, default 0
        Seed of the random small integers chosen for the free parameters.
    max_tries : int, default 20
        Random starts to try; a start fails when it is degenerate (a zero
        pivot, or ``det A''(0) = 0`` at the end).

    Returns
    -------
    DropJet
        Verified with :meth:`DropJet.verify` before it is returned.

    Raises
    ------
    ValueError
        If ``order`` is not a non-negative integer.
    RuntimeError
        If no start succeeds (not observed; it would be reported with the
        obstruction met).
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    rng = random.Random(seed)
    last = ""
    for _ in range(max_tries):
        try:
            jet = _JetSolver(rng).run(order)
        except _Obstructed as exc:
            last = str(exc)
            continue
        if jet.det_second_derivative != 0 and jet.verify():
            return jet
        last = "det A''(0) = 0"
    raise RuntimeError(f"no jet of order {order} found in {max_tries} starts; last: {last}")


def shipped_drop_jet() -> DropJet:
    """The jet of order 7 shipped with the package.

    It is the output of ``python -m theory jets --order 7 --seed 1``.

    Returns
    -------
    DropJet
        ``A = U V`` of rank 2 with ``A''' = x yᵀ + O(h^8)`` and
        ``det A''(0) = 352/3``; the tests re-check it without this module.
    """
    from ._drop_jet import DATA

    return DropJet.from_json(DATA)
