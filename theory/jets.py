"""Exact Taylor jets that violate the drop bound to a given order.

The drop bound ``ρ(n) <= ρ(0) + ρ(n+1)`` (see the theory documentation),
once conjectured, would have decided the open rows of the designer's table;
it is false, by the rational counterexample of :mod:`theory.poles`, which
came later.  Its first
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
documentation uses the minors and their first derivative, and the
construction here has met no obstruction it could not solve (it ships jets of
orders 7 and 8).  With ``singular_first=True`` the jet also keeps ``A'``
singular (``det A'(h) = O(h^{N+3})``, ``rank A'(0) = 3``): the profile
``(2, 3, 4, 1)`` of the designer's table, to those orders.
:meth:`DropJet.extension_certificate` computes, exactly and for a symbolic
degree ``d``, the induction step that extends such a jet to power series of
every order; with the shipped jet it proves that ``(2, 3, 4, 1)`` is a
derivative profile over the differential field ``ℚ((h))`` of formal Laurent
series, where the drop bound is therefore false.  A power series is not a
matrix function over ``ℚ(t)``; :mod:`theory.poles` gives a rational one.

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
newest degree in which it is linear; then the parameters that no later
obstruction can reach are fixed at random small integers.  The singular first
derivative adds, per degree, the condition that ``A'(h) n(h) = 0`` for a
kernel series ``n(h)`` has a solution at the next order (again one scalar,
linear in the newest parameters); its first three orders need six entries of
the start (halves of ``x_0`` and ``y_0``, a row of ``P_2``) kept symbolic.  (The obstruction at
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

__all__ = ["DropJet", "ExtensionCertificate", "drop_bound_jet", "shipped_drop_jet"]


def _third_derivative_factor(d: Any) -> Any:
    """``(d+1)(d+2)(d+3)``: the coefficient of ``h^d`` in the third derivative is this times ``A_{d+3}``."""
    return (d + 1) * (d + 2) * (d + 3)


def _rational_matrix(rows: Any) -> sp.Matrix:
    return sp.Matrix([[sp.Rational(str(v)) for v in row] for row in rows])


def _as_strings(M: sp.Matrix) -> list[list[str]]:
    return [[str(sp.Rational(M[i, j])) for j in range(M.cols)] for i in range(M.rows)]


def _nonzero_beyond(value: sp.Expr, d: sp.Symbol, order: int) -> bool:
    """True when the rational function ``value`` of ``d`` is defined and nonzero at every integer ``d > order``."""
    numerator, denominator = sp.fraction(sp.cancel(value))
    if numerator == 0:
        return False
    for poly in (sp.Poly(numerator, d), sp.Poly(denominator, d)):
        if poly.degree() > 0 and any(r.is_integer and r > order for r in poly.ground_roots()):
            return False
    return True


@dataclass(frozen=True)
class ExtensionCertificate:
    """The data of :meth:`DropJet.extension_certificate` (see there).

    Attributes
    ----------
    left_nullity : int
        Obstructions per degree (1 is needed).
    lag_one_vanishes : bool
        Whether adjusting the coefficients one degree back leaves the next
        obstruction alone.
    gamma : tuple of sympy.Rational or None
        The form ``γ`` on the kernel basis (jets with a singular first derivative).
    coefficients : tuple of sympy.Expr
        ``L_d`` on the kernel basis, rational functions of the symbol ``d``.
    holds : bool
        Whether the induction step works at every degree beyond the jet.
    """

    left_nullity: int
    lag_one_vanishes: bool
    gamma: tuple[sp.Rational, ...] | None
    coefficients: tuple[sp.Expr, ...]
    holds: bool


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
    singular_first_order : int or None
        ``M`` when the jet also has ``det A'(h) = O(h^{M+1})`` with
        ``rank A'(0) = 3`` — the profile ``(2, 3, 4, 1)`` of the table to that
        order; None when the first derivative is unconstrained.
    """

    order: int
    U: tuple[sp.Matrix, ...]
    V: tuple[sp.Matrix, ...]
    x: tuple[sp.Matrix, ...]
    y: tuple[sp.Matrix, ...]
    singular_first_order: int | None = None

    def polynomials(self) -> tuple[sp.Matrix, sp.Matrix, sp.Matrix, sp.Matrix]:
        """``U(h)``, ``V(h)``, ``x(h)``, ``y(h)`` as polynomial matrices in ``h``."""
        h = sp.Symbol("h")
        U = sum((M * h**k for k, M in enumerate(self.U)), sp.zeros(4, 2))
        V = sum((M * h**k for k, M in enumerate(self.V)), sp.zeros(2, 4))
        x = sum((M * h**k for k, M in enumerate(self.x)), sp.zeros(4, 1))
        y = sum((M * h**k for k, M in enumerate(self.y)), sp.zeros(4, 1))
        return U, V, x, y

    @property
    def profile(self) -> tuple[int, int, int, int] | None:
        """``(rank A, rank A', rank A'', rank A''')`` over ``ℚ((h))`` for the extended series.

        Only a jet with ``singular_first_order`` fixes ``rank A'`` (to 3); for
        the others the extension decides it (``rank A'(0)`` is only a lower
        bound) and this is None. It is the profile of the power series whose
        existence :meth:`extension_certificate` proves.
        """
        return (2, 3, 4, 1) if self.singular_first_order is not None else None

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
        ``h^0 … h^N`` in ``(UV)''' − x yᵀ`` is zero, ``det A''(0) ≠ 0``, and,
        for a jet with ``singular_first_order = M``, ``rank A'(0) = 3`` and the
        coefficients of ``h^0 … h^M`` in ``det A'(h)`` are zero.
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
        if A.diff(h, 2).subs(h, 0).det() == 0:
            return False
        if self.singular_first_order is None:
            return True
        first = A.diff(h)
        if first.subs(h, 0).rank() != 3:
            return False
        det = sp.Poly(sp.expand(first.det(method="berkowitz")), h)
        return all(det.coeff_monomial(h**k) == 0 for k in range(self.singular_first_order + 1))

    def extension_certificate(self) -> ExtensionCertificate:
        """The induction step that extends this jet to a power series of every order.

        At a degree ``d`` beyond the jet, the degree-``d`` equation is solvable
        when its one scalar obstruction vanishes. Adjusting the coefficients
        of degree ``d − 2`` inside the kernel ``K`` of the degree equations
        (which keeps every earlier equation solved) changes that obstruction
        by ``L_d(κ)``, a linear form on ``K`` that is a rational function of
        ``d``, computed here exactly with ``d`` symbolic. The step works at
        every ``d`` when (1) the degree equations have exactly one obstruction
        (left nullity 1), (2) adjustments one degree back do not move it (the
        lag-one forms vanish on ``K``), and (3) some ``κ`` has
        ``L_d(κ) ≠ 0`` for every integer ``d`` beyond the jet — for a jet with
        a singular first derivative, a ``κ`` with ``γ(κ) = 0``, where ``γ``
        is the form through which the newest coefficients move ``A'(h) n(h)``
        (``γ ≠ 0`` lets the next degree restore that condition). Then the
        obstructions can be solved one degree after another for ever, and the
        jet extends to formal power series ``U, V, x, y`` with
        ``(UV)''' = x yᵀ`` exactly (and ``det (UV)' = 0`` for
        ``singular_first``). Needs a jet in the normal form of the module
        docstring and of order ``>= 4``, so that the obstruction moves
        linearly (``x_{d−2} y_2ᵀ`` is quadratic when ``d = 4``).
        """
        d = sp.Symbol("d")
        P = {k: U[2:, :] for k, U in enumerate(self.U)}
        V = dict(enumerate(self.V))
        x = dict(enumerate(self.x))
        y = dict(enumerate(self.y))
        if self.order < 4:
            # from degree 5 on, every product of two coefficients that an adjustment of degree
            # d - 2 moves (x_{d-2} y_2, P_2 V_{d+1}, ...) has one factor that it leaves alone,
            # so the obstruction moves linearly
            raise ValueError(f"the extension certificate needs a jet of order >= 4, got order {self.order}")
        normal = self.U[0] == sp.Matrix([[1, 0], [0, 1], [0, 0], [0, 0]]) and self.V[0] == sp.Matrix(
            [[1, 0, 0, 0], [0, 1, 0, 0]]
        )
        if not normal or any(not U[:2, :].is_zero_matrix for U in self.U[1:]):
            raise ValueError("the extension certificate needs the normal form U = [I; P], P(0) = 0, V(0) = [I 0]")
        z = sp.symbols("z0:20")

        def parts(v: Any) -> tuple[sp.Matrix, sp.Matrix, sp.Matrix, sp.Matrix]:
            v = list(v)
            return sp.Matrix(2, 4, v[:8]), sp.Matrix(2, 2, v[8:12]), sp.Matrix(v[12:16]), sp.Matrix(v[16:20])

        def degree_matrix(f: Any) -> sp.Matrix:  # J(f): z = (V, P, x, y) -> f [V; P V_0] - x_0 yᵀ - x y_0ᵀ
            Vz, Pz, xz, yz = parts(z)
            E = (f * Vz.col_join(Pz * V[0]) - x[0] * yz.T - xz * y[0].T).reshape(16, 1)
            return sp.Matrix([[sp.diff(E[i], s) for s in z] for i in range(16)])

        def lag(e: Any, v: Any, k: int) -> sp.Matrix:  # what v, placed k degrees back, adds to b_e
            Vz, Pz, xz, yz = parts(v)
            bottom = sp.zeros(2, 4).col_join(Pz * V[k] + P[k] * Vz)
            return (_third_derivative_factor(e) * bottom - (xz * y[k].T + x[k] * yz.T)).reshape(16, 1)

        J1 = degree_matrix(1)
        kernel = J1.nullspace()
        left = J1.T.nullspace()
        ell = left[0] if left else sp.zeros(16, 1)
        lag_one = all((ell.T * lag(d, kappa, 1))[0, 0].expand() == 0 for kappa in kernel)
        if len(left) != 1 or not lag_one:
            return ExtensionCertificate(len(left), lag_one, None, (), False)
        J_prev = degree_matrix(_third_derivative_factor(d - 1))
        coefficients = []
        for kappa in kernel:
            shifted = sp.Matrix([c / _third_derivative_factor(d - 2) for c in list(kappa)[:12]] + list(kappa)[12:])
            change = lag(d - 1, shifted, 1).applyfunc(sp.cancel)
            solution, params = J_prev.gauss_jordan_solve(-change)
            particular = solution.subs({p: 0 for p in params}).applyfunc(sp.cancel)
            total = (lag(d, shifted, 2) + lag(d, particular, 1)).applyfunc(sp.cancel)
            coefficients.append(sp.factor(sp.cancel((ell.T * total)[0, 0])))
        gamma = None
        allowed = sp.eye(len(kernel))
        if self.singular_first_order is not None:
            A1 = V[1].col_join(P[1] * V[0])
            n0, m0 = A1.nullspace()[0], A1.T.nullspace()[0]
            gamma = tuple(sp.Rational((m0.T * parts(k)[0].col_join(parts(k)[1] * V[0]) * n0)[0, 0]) for k in kernel)
            allowed = sp.Matrix.hstack(*sp.Matrix([list(gamma)]).nullspace())
        restricted = (sp.Matrix([coefficients]) * allowed).applyfunc(sp.cancel)
        holds = (
            len(left) == 1
            and lag_one
            and (gamma is None or any(g != 0 for g in gamma))
            and any(_nonzero_beyond(c, d, self.order) for c in restricted)
        )
        return ExtensionCertificate(
            left_nullity=len(left),
            lag_one_vanishes=lag_one,
            gamma=gamma,
            coefficients=tuple(coefficients),
            holds=holds,
        )

    def to_json(self) -> dict[str, Any]:
        """The jet as JSON-ready data (rationals as strings)."""
        return {
            "order": self.order,
            "U": [_as_strings(M) for M in self.U],
            "V": [_as_strings(M) for M in self.V],
            "x": [_as_strings(M) for M in self.x],
            "y": [_as_strings(M) for M in self.y],
            "singular_first_order": self.singular_first_order,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DropJet:
        """Inverse of :meth:`to_json`."""
        order = data.get("order")
        if isinstance(order, bool) or not isinstance(order, int) or order < 0:
            raise ValueError(f"order must be a non-negative integer, got {order!r}")
        singular = data.get("singular_first_order")
        if singular is not None and (isinstance(singular, bool) or not isinstance(singular, int) or singular < 0):
            raise ValueError(f"singular_first_order must be None or a non-negative integer, got {singular!r}")
        lengths = {key: len(data[key]) for key in ("U", "V", "x", "y")}
        if lengths != {"U": order + 4, "V": order + 4, "x": order + 1, "y": order + 1}:
            raise ValueError(f"a jet of order {order} needs {order + 4} U and V and {order + 1} x and y, got {lengths}")
        return cls(
            order=order,
            U=tuple(_rational_matrix(M) for M in data["U"]),
            V=tuple(_rational_matrix(M) for M in data["V"]),
            x=tuple(_rational_matrix(M) for M in data["x"]),
            y=tuple(_rational_matrix(M) for M in data["y"]),
            singular_first_order=data.get("singular_first_order"),
        )


class _JetSolver:
    """The degree-by-degree solver described in the module docstring."""

    def __init__(self, rng: random.Random, singular_first: bool) -> None:
        self.rng = rng
        small = self.small
        self.P: dict[int, sp.Matrix] = {0: sp.zeros(2, 2), 1: small(2, 2), 2: small(2, 2)}
        self.V: dict[int, sp.Matrix] = {0: sp.Matrix([[1, 0, 0, 0], [0, 1, 0, 0]]), 1: small(2, 4)}
        self.x: dict[int, sp.Matrix] = {0: small(4, 1)}
        self.y: dict[int, sp.Matrix] = {0: small(4, 1)}
        self.pending: dict[int, list[sp.Symbol]] = {}
        self.singular_first = singular_first
        self.kernel: dict[int, sp.Matrix] = {}  # n(h) with A'(h) n(h) = 0
        if singular_first:
            # A'(0) = [[V_1L, W_1], [P_1, 0]] is singular when W_1 = V_1[:, 2:] has rank one,
            # and the h^1 coefficient of det A'(h) vanishes when x_0's lower half is P_1 u.
            u, w = small(2, 1), small(1, 2)
            while u.is_zero_matrix or w.is_zero_matrix:
                u, w = small(2, 1), small(1, 2)
            self.V[1][:, 2:] = u * w
            self.x[0][2:, 0] = sp.Integer(self.rng.randint(1, 3)) * self.P[1] * u
            # the h^2 coefficient needs freedom in the data of degree 0: keep six entries symbolic
            start = [sp.Symbol(f"s_{i}") for i in range(6)]
            self.x[0][:2, 0] = sp.Matrix(start[0:2])
            self.y[0][:2, 0] = sp.Matrix(start[2:4])
            self.P[2][0, :] = sp.Matrix([start[4:6]])
            self.pending[-1] = start

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
        return _third_derivative_factor(d) * self.A(d + 3) - rhs

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
        for store in (self.P, self.V, self.x, self.y, self.kernel):
            for k in store:
                store[k] = store[k].subs(values).applyfunc(sp.cancel)

    def impose(self, expression: sp.Expr, d: object) -> None:
        numerator = sp.expand(sp.numer(sp.together(sp.expand(expression))))
        if numerator == 0:
            return
        for degree in sorted(self.pending, reverse=True):
            linear = [s for s in self.pending[degree] if numerator.has(s) and sp.degree(numerator, s) == 1]
            if linear:
                symbol = linear[-1]
                break
        else:
            raise _Obstructed(f"{d}: no free parameter left, the condition is {numerator} = 0")
        (value,) = sp.solve(numerator, symbol)
        self.substitute({symbol: value})
        self.pending[degree].remove(symbol)

    def finalize(self, up_to: int) -> None:
        values = {}
        for degree in [g for g in self.pending if g <= max(up_to, -1)]:  # -1: the start's symbols
            for symbol in self.pending.pop(degree):
                values[symbol] = sp.Integer(self.rng.randint(-3, 3))
        if values:
            self.substitute(values)

    def kernel_step(self, k: int) -> None:
        """Impose the ``h^k`` coefficient of ``A'(h) n(h) = 0`` and solve for ``n_k``."""
        A1 = self.A(1)
        if k == 0:
            null = A1.nullspace()
            if len(null) != 1:
                raise _Obstructed("rank A'(0) is not 3")
            self.kernel[0] = null[0]
            return

        def rest() -> sp.Matrix:
            total = sp.zeros(4, 1)
            for i in range(1, k + 1):
                total += (i + 1) * self.A(i + 1) * self.kernel[k - i]
            return total

        left = A1.T.nullspace()[0]
        self.impose((left.T * rest())[0, 0], f"rank A' <= 3 at h^{k}")
        solution, params = A1.gauss_jordan_solve(-rest().applyfunc(sp.cancel))
        self.kernel[k] = solution.subs({p: 0 for p in params}).applyfunc(sp.cancel)

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
            if self.singular_first:  # A_{d+3} is known: the h^{d+2} coefficient of A'(h) n(h)
                for k in [0, 1, 2] if d == 0 else [d + 2]:
                    self.kernel_step(k)
            self.finalize(d - 3)
        self.finalize(order)
        U = tuple(sp.Matrix.vstack(sp.eye(2) if k == 0 else sp.zeros(2, 2), self.P[k]) for k in range(order + 4))
        return DropJet(
            order=order,
            U=U,
            V=tuple(self.V[k] for k in range(order + 4)),
            x=tuple(self.x[k] for k in range(order + 1)),
            y=tuple(self.y[k] for k in range(order + 1)),
            singular_first_order=order + 2 if self.singular_first else None,
        )


class _Obstructed(Exception):
    pass


def drop_bound_jet(order: int = 5, *, seed: int = 0, singular_first: bool = False, max_tries: int = 20) -> DropJet:
    """Exact jets of a rank-2 ``A`` with ``A''' = x yᵀ + O(h^{order+1})``, ``A''(0)`` invertible.

    Parameters
    ----------
    order : int, default 5
        ``N >= 0``: how many orders of ``A''' = x yᵀ`` to match
        (``h^0 … h^N``). ``N = 7`` takes about 25 s, ``N = 8`` with
        ``singular_first`` about 35 s.
    seed : int, default 0
        Seed of the random small integers chosen for the free parameters.
    singular_first : bool, default False
        Also make ``A'`` singular to order ``order + 2`` (``det A'(h) =
        O(h^{order+3})``, ``rank A'(0) = 3``): jets of the table's target
        ``(2, 3, 4, 1)`` itself. Each order of ``A'(h) n(h) = 0`` (``n`` a
        kernel series) costs one more free parameter per degree.
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

    Notes
    -----
    The time depends on the start, through the size of the rational
    expressions in the symbolic parameters: ``order=5, seed=0`` takes about
    a minute, but ``order=3, seed=0`` (without ``singular_first``) meets an
    expression swell and runs for minutes; another seed avoids it.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    rng = random.Random(seed)
    last = ""
    for _ in range(max_tries):
        try:
            jet = _JetSolver(rng, singular_first).run(order)
        except _Obstructed as exc:
            last = str(exc)
            continue
        if jet.det_second_derivative != 0 and jet.verify():
            return jet
        last = "det A''(0) = 0"
    raise RuntimeError(f"no jet of order {order} found in {max_tries} starts; last: {last}")


def shipped_drop_jet(singular_first: bool = False) -> DropJet:
    """One of the two jets shipped with the package.

    Parameters
    ----------
    singular_first : bool, default False
        False: the output of ``python -m theory jets --order 7 --seed 1``
        (``A''' = x yᵀ + O(h^8)``). True: the output of ``python -m theory
        jets --order 8 --seed 1 --singular-first`` (``A''' = x yᵀ + O(h^9)``
        and ``det A'(h) = O(h^11)`` with ``rank A'(0) = 3``: the target
        ``(2, 3, 4, 1)`` to those orders).

    Returns
    -------
    DropJet
        Re-checked by the tests without this module.
    """
    from ._drop_jet import DATA

    return DropJet.from_json(DATA["singular_first" if singular_first else "plain"])
