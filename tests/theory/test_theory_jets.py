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
