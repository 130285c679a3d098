"""numeric=True: scale-safe floating-point ranks of non-rational matrix functions (uncertified).

Reference ranks are exact: A = D1 C D2 with D1, D2 diagonal matrices of exponentials (nonsingular
for every t) and C a constant integer matrix, so rank A(t) = rank C at every t, computed by SymPy.
"""

import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

from theory import generic_rank

t = sp.Symbol("t")


def test_badly_scaled_full_rank_matrix():
    A = sp.Matrix([[sp.exp(40 * t), 1], [1, sp.exp(-40 * t) + 1]])
    assert sp.simplify(A.det() - sp.exp(40 * t)) == 0  # nonzero for every t: rank 2
    c = generic_rank(A, numeric=True, seed=0)
    assert c.rank == 2 and c.method == "numeric" and not c.certified
    assert "UNCERTIFIED" in repr(c) and not c.verify(A)


def test_entries_beyond_the_float_range():
    # exp(800 t) overflows float64 for every t in the sampling interval; exp(-800 t) underflows
    big = sp.Matrix([[sp.exp(800 * t), 1], [1, sp.exp(-800 * t)]])  # u u^T: rank 1
    assert generic_rank(big, numeric=True, seed=1).rank == 1
    big[1, 0] = 2  # det = -1: rank 2
    assert generic_rank(big, numeric=True, seed=1).rank == 2


@st.composite
def scaled_products(draw):
    m, n, r = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(0, 3))
    B = sp.Matrix(m, r, lambda *_: draw(st.integers(-3, 3)))
    C = sp.Matrix(r, n, lambda *_: draw(st.integers(-3, 3)))
    core = B * C if r else sp.zeros(m, n)
    d1 = [draw(st.integers(-300, 300)) for _ in range(m)]
    d2 = [draw(st.integers(-300, 300)) for _ in range(n)]
    s = sp.Integer(10) ** draw(st.integers(-300, 300))
    A = s * sp.diag(*[sp.exp(a * t) for a in d1]) * core * sp.diag(*[sp.exp(b * t) for b in d2])
    return A, core.rank()


@settings(max_examples=60, deadline=None)
@given(scaled_products(), st.integers(0, 2**16))
def test_rank_is_invariant_under_extreme_scalings(case, seed):
    A, reference = case
    c = generic_rank(A, var=t, numeric=True, seed=seed)
    assert c.rank == reference
    # rational input (here: a zero core) stays exact and certified even with numeric=True
    assert c.method == ("numeric" if A.has(sp.exp) else "certified")


def test_numeric_rank_of_empty_and_zero_matrices():
    assert generic_rank(sp.Matrix(0, 2, []), numeric=True).rank == 0
    assert generic_rank(sp.Matrix([[0 * sp.exp(t), 0]]), numeric=True).rank == 0


@st.composite
def exponential_products(draw):
    """A(t) = U(t) V(t) with entries c * exp(a t): A(t) = B(exp(t)) for a Laurent matrix B(x)."""
    m, n, r = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    x = sp.Symbol("x")

    def entry(*_):
        return draw(st.integers(-3, 3)) * x ** draw(st.integers(-40, 40))

    B = sp.Matrix(m, r, entry) * sp.Matrix(r, n, entry)
    return B, x, sp.Integer(10) ** draw(st.integers(-300, 300))


@settings(max_examples=40, deadline=None)
@given(exponential_products(), st.integers(0, 2**16))
def test_sums_of_exponentials_match_the_laurent_reference(case, seed):
    """grank A = grank B over Q(x), since exp(t) takes infinitely many values."""
    B, x, scale = case
    reference = DomainMatrix.from_Matrix(B).convert_to(sp.QQ.frac_field(x)).rank()
    A = scale * B.subs(x, sp.exp(t))
    c = generic_rank(A, var=t, numeric=True, seed=seed)
    assert c.rank == reference
