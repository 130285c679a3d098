"""rank_factorization: A = U V over Q(t) with grank A inner columns (checked against SymPy)."""

import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

from theory import kernels, rank_factorization

t = sp.Symbol("t")
QT = sp.QQ.frac_field(t)


def dm(M):
    return DomainMatrix.from_Matrix(sp.Matrix(M)).convert_to(QT)


entries = st.builds(
    lambda cs, shift, kind: sum(c * t**i for i, c in enumerate(cs)) / (t + shift if kind else 1),
    st.lists(st.integers(-3, 3), min_size=1, max_size=3), st.integers(1, 3), st.booleans(),
)


@st.composite
def products(draw):
    m, n, r = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(0, 3))
    if r == 0:
        return sp.zeros(m, n)
    return sp.Matrix(m, r, lambda *_: draw(entries)) * sp.Matrix(r, n, lambda *_: draw(entries))


@settings(max_examples=25, deadline=None)
@given(products(), st.integers(0, 1000))
def test_factorization_is_exact_and_minimal(A, seed):
    U, V, c = rank_factorization(A, t, seed=seed)
    r = dm(A).rank() if A.rows and A.cols else 0
    assert c.rank == r and U.shape == (A.rows, r) and V.shape == (r, A.cols)
    assert dm(U * V) == dm(A) if r else A.is_zero_matrix
    if r:
        assert dm(U).rank() == r and dm(V).rank() == r


@settings(max_examples=25, deadline=None)
@given(products(), st.integers(0, 1000))
def test_both_kernels(A, seed):
    R, L = kernels(A, t, seed=seed)
    r = dm(A).rank() if A.rows and A.cols else 0
    assert R.shape == (A.cols, A.cols - r) and L.shape == (A.rows, A.rows - r)
    if R.shape[1]:
        assert (dm(A) * dm(R)).is_zero_matrix and dm(R).rank() == R.shape[1]
    if L.shape[1]:
        assert (dm(L.T) * dm(A)).is_zero_matrix and dm(L).rank() == L.shape[1]
