"""Exact jets that violate the drop bound to a given order (theory.jets).

Each jet is checked here without the construction code: the Taylor
coefficients are convolved with exact ``Fraction`` arithmetic, and the rank
and determinant at ``h = 0`` come from SymPy's ``DomainMatrix`` over ``QQ``.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp
from sympy.polys.domains import QQ
from sympy.polys.matrices import DomainMatrix

from theory.jets import DropJet, drop_bound_jet, shipped_drop_jet


def _fractions(M: sp.Matrix) -> list[list[Fraction]]:
    return [[Fraction(int(sp.Rational(v).p), int(sp.Rational(v).q)) for v in M.row(i)] for i in range(M.rows)]


def _matmul(A: list[list[Fraction]], B: list[list[Fraction]]) -> list[list[Fraction]]:
    return [
        [sum((A[i][k] * B[k][j] for k in range(len(B))), Fraction(0)) for j in range(len(B[0]))] for i in range(len(A))
    ]


def _dm(A: list[list[Fraction]]) -> DomainMatrix:
    return DomainMatrix([[QQ(v.numerator, v.denominator) for v in row] for row in A], (len(A), len(A[0])), QQ)


def independent_check(jet: DropJet) -> tuple[bool, Fraction]:
    """(third derivative matches x yᵀ to the jet's order, det A''(0))."""
    U = [_fractions(M) for M in jet.U]
    V = [_fractions(M) for M in jet.V]
    x = [_fractions(M) for M in jet.x]
    y = [_fractions(M) for M in jet.y]

    def A(k: int) -> list[list[Fraction]]:
        total = [[Fraction(0)] * 4 for _ in range(4)]
        for i in range(k + 1):
            prod = _matmul(U[i], V[k - i])
            total = [[a + b for a, b in zip(r, s)] for r, s in zip(total, prod)]
        return total

    ok = True
    for d in range(jet.order + 1):
        lhs = A(d + 3)
        f = (d + 1) * (d + 2) * (d + 3)
        for i in range(4):
            for j in range(4):
                rhs = sum((x[a][i][0] * y[d - a][j][0] for a in range(d + 1)), Fraction(0))
                ok &= f * lhs[i][j] == rhs
    assert _dm(U[0]).rank() == 2 and _dm(V[0]).rank() == 2
    second = [[2 * v for v in row] for row in A(2)]
    det = _dm(second).det()
    return ok, Fraction(int(det.numerator), int(det.denominator))


def _first_derivative_det_coefficients(jet: DropJet) -> list:
    """Coefficients of det A'(h), from a DomainMatrix over QQ[h] (not the module's Berkowitz)."""
    h = sp.Symbol("h")
    U, V, _, _ = jet.polynomials()
    first = (U * V).diff(h).applyfunc(sp.expand)
    det = DomainMatrix.from_Matrix(first).convert_to(QQ[h]).det()
    poly = sp.Poly(QQ[h].to_sympy(det), h)
    return [poly.coeff_monomial(h**k) for k in range(poly.degree() + 1)]


def test_shipped_jet_violates_the_bound_to_order_seven():
    jet = shipped_drop_jet()
    assert jet.order >= 7 and jet.singular_first_order is None
    matches, det = independent_check(jet)
    assert matches
    assert det != 0
    assert jet.verify()
    assert Fraction(str(jet.det_second_derivative)) == det


def test_shipped_jet_of_the_target_2341():
    # rank A = 2, rank of the third derivative <= 1 to order 8, rank A' <= 3 to order 10,
    # A''(0) invertible: the profile (2, 3, 4, 1) of the designer's table, to those orders.
    jet = shipped_drop_jet(singular_first=True)
    assert jet.order >= 8 and jet.singular_first_order == jet.order + 2
    matches, det = independent_check(jet)
    assert matches and det != 0
    coefficients = _first_derivative_det_coefficients(jet)
    assert all(c == 0 for c in coefficients[: jet.singular_first_order + 1])
    h = sp.Symbol("h")
    U, V, _, _ = jet.polynomials()
    assert (U * V).diff(h).subs(h, 0).rank() == 3
    assert jet.verify()


@pytest.mark.parametrize("seed", [0, 1])
def test_singular_first_jets(seed):
    jet = drop_bound_jet(order=1, seed=seed, singular_first=True)
    assert jet.singular_first_order == 3
    matches, det = independent_check(jet)
    assert matches and det != 0
    assert all(c == 0 for c in _first_derivative_det_coefficients(jet)[:4])
    assert jet.verify()


def test_shipped_jet_minors_vanish_to_its_order():
    # The criterion without x and y: every 2 x 2 minor of A''' is O(h^{N+1}).
    jet = shipped_drop_jet()
    h = sp.Symbol("h")
    U, V, _, _ = jet.polynomials()
    A3 = (U * V).diff(h, 3).applyfunc(sp.expand)
    for rows in [(0, 1), (1, 3), (2, 3)]:
        for cols in [(0, 2), (1, 3), (0, 3)]:
            minor = sp.expand(A3.extract(list(rows), list(cols)).det())
            poly = sp.Poly(minor, h)
            assert all(poly.coeff_monomial(h**k) == 0 for k in range(jet.order + 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constructed_jets_pass_the_independent_check(seed):
    jet = drop_bound_jet(order=2, seed=seed)
    assert jet.order == 2
    matches, det = independent_check(jet)
    assert matches and det != 0
    assert len(jet.U) == len(jet.V) == 6 and len(jet.x) == len(jet.y) == 3


def test_order_zero_is_the_pointwise_case():
    jet = drop_bound_jet(order=0, seed=3)
    matches, det = independent_check(jet)
    assert matches and det != 0


def test_json_round_trip_and_corruption_is_caught():
    jet = drop_bound_jet(order=1, seed=0)
    again = DropJet.from_json(jet.to_json())
    assert again.to_json() == jet.to_json()
    assert again.verify()
    data = jet.to_json()
    data["V"][4][0][2] = str(sp.Rational(data["V"][4][0][2]) + 1)  # A_4 enters h^1 of A'''
    broken = DropJet.from_json(data)
    assert not broken.verify()
    assert not independent_check(broken)[0]


@pytest.mark.parametrize("order", [-1, 1.5, True, "2"])
def test_bad_order_is_refused(order):
    with pytest.raises(ValueError, match="order"):
        drop_bound_jet(order)


def test_from_json_refuses_a_bad_order():
    data = drop_bound_jet(order=0, seed=0).to_json()
    data["order"] = -2
    with pytest.raises(ValueError, match="order"):
        DropJet.from_json(data)
    data["order"] = 1  # the coefficients are those of an order-0 jet
    with pytest.raises(ValueError, match="needs 5 U and V"):
        DropJet.from_json(data)
    data["order"] = 0
    data["singular_first_order"] = -1
    with pytest.raises(ValueError, match="singular_first_order"):
        DropJet.from_json(data)


def test_command_line_writes_a_jet_that_verifies(tmp_path, capsys):
    import json

    from theory.cli import main

    out = tmp_path / "jet.json"
    assert main(["jets", "--order", "1", "--seed", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "O(h^2)" in printed and "verified from the polynomials: True" in printed
    jet = DropJet.from_json(json.loads(out.read_text()))
    assert jet.order == 1 and independent_check(jet)[0]


@pytest.mark.parametrize("singular_first", [False, True])
def test_extension_certificates_of_the_shipped_jets_hold(singular_first):
    cert = shipped_drop_jet(singular_first).extension_certificate()
    assert cert.holds and cert.left_nullity == 1 and cert.lag_one_vanishes
    assert len(cert.coefficients) == 5
    assert (cert.gamma is not None) == singular_first


def _obstruction_next(U, V, x, y, order):
    """The obstruction of degree order + 1, computed from the coefficients directly."""
    d = order + 1
    P = [M[2:, :] for M in U]
    f = (d + 1) * (d + 2) * (d + 3)
    bottom = sp.zeros(2, 4)
    for i in range(1, d + 3):
        bottom += P[i] * V[d + 3 - i]
    b = f * sp.zeros(2, 4).col_join(bottom)
    for i in range(1, d):
        b -= x[i] * y[d - i].T
    z = sp.symbols("z0:20")
    Vz, Pz = sp.Matrix(2, 4, z[:8]), sp.Matrix(2, 2, z[8:12])
    xz, yz = sp.Matrix(z[12:16]), sp.Matrix(z[16:20])
    E = (Vz.col_join(Pz * V[0]) - x[0] * yz.T - xz * y[0].T).reshape(16, 1)
    J = sp.Matrix([[sp.diff(E[i], s) for s in z] for i in range(16)])
    (ell,) = J.T.nullspace()
    return (ell.T * b.reshape(16, 1))[0, 0], J


def test_extension_coefficients_predict_the_next_obstruction():
    # Move the coefficients of degree N - 1 along each kernel vector, re-solve degree N, and
    # compare the change of the degree-(N+1) obstruction with the certificate's L_{N+1}.
    jet = shipped_drop_jet()
    N = jet.order
    cert = jet.extension_certificate()
    U, V, x, y = list(jet.U), list(jet.V), list(jet.x), list(jet.y)
    base, J1 = _obstruction_next(U, V, x, y, N)
    f = lambda e: (e + 1) * (e + 2) * (e + 3)  # noqa: E731
    for kappa, predicted in zip(J1.nullspace(), cert.coefficients):
        U2, V2, x2, y2 = list(U), list(V), list(x), list(y)
        k = list(kappa)
        V2[N + 2] = V[N + 2] + sp.Matrix(2, 4, k[:8]) / f(N - 1)
        U2[N + 2] = U[N + 2] + sp.zeros(2, 2).col_join(sp.Matrix(2, 2, k[8:12]) / f(N - 1))
        x2[N - 1] = x[N - 1] + sp.Matrix(k[12:16])
        y2[N - 1] = y[N - 1] + sp.Matrix(k[16:20])
        # degree N: the residual f_N A_{N+3} - sum x_i y_{N-i} must stay zero: re-solve (V, P, x, y)_N
        P2 = [M[2:, :] for M in U2]
        bottom = sp.zeros(2, 4)
        for i in range(1, N + 3):
            bottom += P2[i] * V2[N + 3 - i]
        resid = f(N) * V2[N + 3].col_join(bottom + P2[N + 3] * V2[0])
        for i in range(N + 1):
            resid -= x2[i] * y2[N - i].T
        JN = J1.copy()
        JN[:, :12] = JN[:, :12] * f(N)
        sol, params = JN.gauss_jordan_solve(-resid.reshape(16, 1))
        s = list(sol.subs({p: 0 for p in params}))
        V2[N + 3] = V2[N + 3] + sp.Matrix(2, 4, s[:8])
        U2[N + 3] = U2[N + 3] + sp.zeros(2, 2).col_join(sp.Matrix(2, 2, s[8:12]))
        x2[N] = x2[N] + sp.Matrix(s[12:16])
        y2[N] = y2[N] + sp.Matrix(s[16:20])
        moved, _ = _obstruction_next(U2, V2, x2, y2, N)
        assert sp.nsimplify(moved - base) == predicted.subs(sp.Symbol("d"), N + 1)


def test_extension_certificate_needs_order_four_and_the_normal_form():
    jet = shipped_drop_jet()
    short = DropJet(3, jet.U[:7], jet.V[:7], jet.x[:4], jet.y[:4])  # the same series, to order 3
    assert short.verify()
    with pytest.raises(ValueError, match="order >= 4"):
        short.extension_certificate()
    moved = DropJet(jet.order, (jet.U[0] * 2,) + jet.U[1:], jet.V, jet.x, jet.y)
    with pytest.raises(ValueError, match="normal form"):
        moved.extension_certificate()


def test_profiles_of_the_shipped_jets_match_their_ranks():
    # (rank A, rank A', rank A'', rank A''') from the series at h = 0 and the certified conditions
    h = sp.Symbol("h")
    # rank A'(0) bounds rank A' from below only: the plain jet leaves rank A' to the extension
    for singular_first, expected in [(False, None), (True, (2, 3, 4, 1))]:
        jet = shipped_drop_jet(singular_first)
        U, V, _, _ = jet.polynomials()
        A = U * V
        at_zero = tuple(int(A.diff(h, k).subs(h, 0).rank()) for k in range(4))
        assert at_zero[0] == 2 and at_zero[2:] == (4, 1)
        assert jet.profile == expected
