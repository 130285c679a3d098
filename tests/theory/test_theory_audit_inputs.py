"""Input kinds in one and several variables; entries of positive characteristic are refused.

A ``GF(7)`` element turns into an integer when SymPy converts it to an expression, so a
``DomainMatrix`` over ``GF(7)`` (or a ``Poly`` entry with ``modulus=7``) would silently get
the rank of its integer representatives over ℚ(t).  References: SymPy's ``DomainMatrix``
rank over ``QQ.frac_field(...)``.
"""

import warnings

import pytest
import sympy as sp
from sympy.polys.matrices import DomainMatrix

from theory import generic_rank, rank_profile
from theory.checker import check_certificate

t, s = sp.symbols("t s")
GF7 = sp.GF(7)


def ref_rank(M, gens):
    return DomainMatrix.from_Matrix(sp.Matrix(M)).convert_to(sp.QQ.frac_field(*gens)).rank()


def _quiet(make):
    with warnings.catch_warnings():  # SymPy deprecates Poly entries in a Matrix
        warnings.simplefilter("ignore")
        return make()


@pytest.mark.parametrize("var", [None, (t, s)])
def test_positive_characteristic_is_refused(var):
    # over GF(7), [[8, 1], [1, 1]] is [[1, 1], [1, 1]]: rank 1 there, rank 2 over Q
    gf = DomainMatrix([[GF7(8), GF7(1)], [GF7(1), GF7(1)]], (2, 2), GF7)
    gft = DomainMatrix.from_Matrix(sp.Matrix([[t, 1], [1, t]])).convert_to(GF7[t])
    poly_matrix = _quiet(lambda: sp.Matrix([[sp.Poly(8 * t, t, modulus=7), 1], [t, 1]]))
    for A, what in [
        (gf, "DomainMatrix over GF"),
        (gft, "DomainMatrix over GF"),
        (poly_matrix, "Poly entry over GF"),
        ([[sp.Poly(8 * t, t, modulus=7), 1], [t, 1]], "Poly entry over GF"),
    ]:
        with pytest.raises(ValueError, match=f"{what}.*characteristic 7"):
            generic_rank(A, var=var)
    with pytest.raises(ValueError, match="characteristic 7"):
        rank_profile(gft, 1, var=var, wrt=t if var else None)


def test_checker_refuses_positive_characteristic():
    A = sp.Matrix([[8 * t, 1], [t, 1]])
    c = generic_rank(A, seed=0)
    assert c.rank == 2 and check_certificate(c.to_json(), A)
    B = _quiet(lambda: sp.Matrix([[sp.Poly(8 * t, t, modulus=7), 1], [t, 1]]))
    with pytest.raises(ValueError, match="Poly over GF"):
        check_certificate(c.to_json(), B)


def test_characteristic_zero_domains_are_accepted():
    M = sp.Matrix([[t, 1, t * s], [t**2, t, t**2 * s]])  # rank 1 over Q(t, s); rank 1 over Q(t) for fixed s
    for dom in (sp.ZZ[t, s], sp.QQ[t, s], sp.QQ.frac_field(t, s)):
        D = DomainMatrix.from_Matrix(M).convert_to(dom)
        c = generic_rank(D, var=(t, s), seed=1)
        assert c.rank == ref_rank(M, (t, s)) == 1 and c.verify(D) and c.verify(M, method="sympy")
    N = sp.Matrix([[t, 1], [t**2 + 1, t]])
    for dom in (sp.ZZ[t], sp.QQ[t], sp.QQ.frac_field(t)):
        D = DomainMatrix.from_Matrix(N).convert_to(dom)
        c = generic_rank(D, seed=1)
        assert c.rank == ref_rank(N, (t,)) == 2 and c.verify(D) and c.verify(N, method="sympy")


def test_several_variable_input_kinds():
    M = sp.Matrix([[1, t, s], [t, t**2, t * s]])
    want = ref_rank(M, (t, s))
    assert want == 1
    inputs = [
        _quiet(lambda: sp.Matrix([[sp.Poly(1, t, s), sp.Poly(t, t, s), s], [t, t**2, sp.Poly(t * s, t, s)]])),
        [[sp.Poly(1, t), t, s], [t, sp.Poly(t**2, t), t * s]],
        sp.Array([[1, t, s], [t, t**2, t * s]]),
        sp.ImmutableSparseMatrix(M),
        sp.SparseMatrix(M),
        DomainMatrix.from_Matrix(M),
    ]
    for X in inputs:
        c = generic_rank(X, var=(t, s), seed=0)
        assert c.rank == want, type(X)
        assert c.verify(X) and c.verify(M) and c.verify(X, method="sympy")
