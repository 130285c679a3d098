"""rank_factorization: A = U V over Q(t) with grank A inner columns (checked against SymPy)."""

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

from theory import exceptional_set, kernels, rank_factorization

t = sp.Symbol("t")
QT = sp.QQ.frac_field(t)


def dm(M):
    return DomainMatrix.from_Matrix(sp.Matrix(M)).convert_to(QT)


entries = st.builds(
    lambda cs, shift, kind: sum(c * t**i for i, c in enumerate(cs)) / (t + shift if kind else 1),
    st.lists(st.integers(-3, 3), min_size=1, max_size=3),
    st.integers(1, 3),
    st.booleans(),
)


@st.composite
def products(draw):
    m, n, r = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(0, 3))
    if r == 0:
        return sp.zeros(m, n)
    return sp.Matrix(m, r, lambda *_: draw(entries)) * sp.Matrix(r, n, lambda *_: draw(entries))


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(products(), st.integers(0, 1000))
def test_factorization_is_exact_and_minimal(A, seed):
    U, V, c = rank_factorization(A, var=t, seed=seed)
    r = dm(A).rank() if A.rows and A.cols else 0
    assert c.rank == r and U.shape == (A.rows, r) and V.shape == (r, A.cols)
    assert dm(U * V) == dm(A) if r else A.is_zero_matrix
    if r:
        assert dm(U).rank() == r and dm(V).rank() == r


@settings(max_examples=25, deadline=None)
@given(products(), st.integers(0, 1000))
def test_both_kernels(A, seed):
    R, L = kernels(A, var=t, seed=seed)
    r = dm(A).rank() if A.rows and A.cols else 0
    assert R.shape == (A.cols, A.cols - r) and L.shape == (A.rows, A.rows - r)
    if R.shape[1]:
        assert (dm(A) * dm(R)).is_zero_matrix and dm(R).rank() == R.shape[1]
    if L.shape[1]:
        assert (dm(L.T) * dm(A)).is_zero_matrix and dm(L).rank() == L.shape[1]


@settings(max_examples=25, deadline=None)
@given(products(), st.integers(0, 1000))
def test_exceptional_set_against_pointwise_ranks(A, seed):
    """G(t0) == 0 exactly when A(t0) is defined and rank A(t0) < grank A, checked at -6..6."""
    G = exceptional_set(A, var=t, seed=seed)
    r = dm(A).rank() if A.rows and A.cols else 0
    # A(t0) is the value of each entry in lowest terms: (t + 1)**2/(t + 1) is t + 1, 0 at t0 = -1
    A = A.applyfunc(sp.cancel)
    dens = [sp.denom(e) for e in A]
    for t0 in range(-6, 7):
        if any(d.subs(t, t0) == 0 for d in dens):
            assert G.eval(t0) != 0 or G.degree() <= 0  # poles are removed from the set
            continue
        drops = A.subs(t, t0).rank() < r
        assert drops == (G.eval(t0) == 0), (t0, G)


def test_exceptional_set_examples():
    assert exceptional_set(sp.Matrix([[t, 0], [0, t - 1]])).as_expr() == t**2 - t
    assert exceptional_set(sp.Matrix([[1, t], [t, t**2]])).as_expr() == 1  # u u^T: rank 1 everywhere
    assert exceptional_set(sp.Matrix([[1 / (t - 1), 0], [0, t**2]])).as_expr() == t
    with pytest.raises(ValueError, match="max_minors"):
        exceptional_set(sp.eye(6) * t, max_minors=0)
