"""Generic ranks over ℚ(t₁, …, t_s) and profiles of partial derivatives.

References: SymPy's ``DomainMatrix`` rank over ``QQ.frac_field(t, s)`` on
small random instances, and closed forms (rank-one outer products, Hankel
profiles scaled by a parameter, the Leibniz bound).
"""

import random

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

from theory import generic_rank, hankel, hankel_formula, rank_profile

t, s, u = sp.symbols("t s u")


def dm_rank(M, gens):
    return DomainMatrix.from_Matrix(sp.Matrix(M)).convert_to(sp.QQ.frac_field(*gens)).rank()


def rand_poly(rng, gens, deg):
    return sum(
        (rng.randint(-3, 3) * sp.Mul(*[g ** rng.randint(0, deg) for g in gens]) for _ in range(3)),
        sp.S.Zero,
    )


@settings(max_examples=12, deadline=None)
@given(st.data())
def test_rank_matches_domainmatrix(data):
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    gens = data.draw(st.sampled_from([(t, s), (t, s, u)]))
    m, k, n = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3)), data.draw(st.integers(0, 4))
    B = sp.Matrix(m, k, lambda i, j: rand_poly(rng, gens, 2))
    # a denominator in the first column
    C = sp.Matrix(k, n, lambda i, j: rand_poly(rng, gens, 1) / (1 + gens[1] ** 2 * int(j == 0)))
    A = B * C if k else sp.zeros(m, n)
    c = generic_rank(A, var=gens, seed=data.draw(st.integers(0, 100)))
    assert c.certified and c.rank == (dm_rank(A, gens) if m and n else 0)
    assert c.var == gens and len(c.point or gens) == len(gens)
    assert c.verify(A)
    mc = generic_rank(A, var=gens, certify=False, seed=1)
    assert mc.rank <= c.rank
    if m and n:
        assert mc.method == "monte-carlo" and 0 < mc.error_bound < 1e-6


def test_closed_forms():
    x = sp.Matrix([1, t, s, t * s])
    y = sp.Matrix([s**2, 1, t])
    c = generic_rank(x * y.T, var=(t, s), seed=0)
    assert c.rank == 1 and c.certified and c.kernel.shape == (3, 2)
    assert r"\mathbb{Q}(t, s)} A = 1$" in c._repr_latex_() and "kernel of 2 vectors" in c._repr_latex_()
    assert (x * y.T * c.kernel).applyfunc(sp.cancel) == sp.zeros(4, 2)
    # rank 2 generically, rank 1 on the line t = s: the generic rank sees 2
    assert generic_rank(sp.Matrix([[t, s], [s, t]]), var=(t, s), seed=0).rank == 2
    # a parameter that only scales: rank over Q(t, s) is the rank over Q(t)
    H = hankel(3, t)
    assert generic_rank(s * H, var=(t, s), seed=0).rank == 1
    assert generic_rank(sp.zeros(2, 3), var=(t, s), seed=0).rank == 0
    assert generic_rank(sp.zeros(0, 3), var=(t, s), seed=0).rank == 0


@pytest.mark.parametrize("d", [1, 2, 3])
def test_partial_profile_of_a_scaled_hankel_block(d):
    """∂^k/∂t^k of s·H_d(t) has the Hankel profile; in s it is (1, 1, 0, ...)."""
    A = s * hankel(d, t)
    K = 2 * d + 1
    P = rank_profile(A, K, var=(t, s), wrt=t, seed=0)
    assert P.ranks == tuple(hankel_formula(d, K))
    assert P.certified and P.var == (t, s) and P.wrt == t
    assert P.verify(A)
    assert rank_profile(A, 3, var=(t, s), wrt=s, seed=0).ranks == (1, 1, 0, 0)


@settings(max_examples=5, deadline=None)
@given(st.data())
def test_partial_profile_matches_domainmatrix_and_leibniz(data):
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    U = sp.Matrix(3, 1, lambda i, j: rand_poly(rng, (t, s), 2))
    V = sp.Matrix(1, 3, lambda i, j: rand_poly(rng, (t, s), 1))
    A = U * V
    K = 2
    P = rank_profile(A, K, var=(t, s), wrt=t, seed=2)
    ref = [dm_rank(A.diff(t, k) if k else A, (t, s)) for k in range(K + 1)]
    assert list(P.ranks) == ref
    # the (j+1)-bound of C2 holds for partial derivatives too
    for k in range(K + 1):
        for j in range(K + 1 - k):
            assert P.ranks[k + j] <= (j + 1) * P.ranks[k]


def test_one_variable_sequence_is_the_univariate_engine():
    A = sp.Matrix([[1, t], [t, t**2]])
    assert generic_rank(A, var=(t,), seed=3).to_json() | {"seconds": 0} == generic_rank(A, var=t, seed=3).to_json() | {
        "seconds": 0
    }


def test_certificates_are_bound_to_their_matrix():
    A = sp.Matrix([[t, s, t + s], [1, s**2, 1 + s**2], [t + 1, s + s**2, t + s + 1 + s**2]])
    c = generic_rank(A, var=(t, s), seed=4)
    assert c.rank == 2 and c.verify(A) and c.verify()
    assert not c.verify(A + sp.diag(0, 0, 1))
    assert not c.verify(A[:, :2])
    import dataclasses

    assert not dataclasses.replace(c, rank=1).verify(A)


def test_bad_input():
    with pytest.raises(ValueError, match="repeats"):
        generic_rank(sp.Matrix([[t]]), var=(t, t))
    with pytest.raises(TypeError, match="Symbol"):
        generic_rank(sp.Matrix([[t]]), var=(t, 1))
    with pytest.raises(ValueError, match="outside var"):
        generic_rank(sp.Matrix([[t, u]]), var=(t, s))
    with pytest.raises(ValueError, match="floating-point"):
        generic_rank(sp.Matrix([[t, 0.5 * s]]), var=(t, s))
    with pytest.raises(ValueError, match="rational function"):
        generic_rank(sp.Matrix([[sp.exp(t), s]]), var=(t, s))
    with pytest.raises(ValueError, match="wrt"):
        rank_profile(sp.Matrix([[t, s]]), 2, var=(t, s))
    with pytest.raises(ValueError, match="several free symbols.*var=\\(s, t\\)"):
        generic_rank(sp.Matrix([[t, s]]))
