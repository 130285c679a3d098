"""Each statement proved in the theory documentation, checked on many instances.

Hankel profile for all d (Gram-matrix lemma), rectangular and antiderivative library blocks,
generalised rigidity (derivatives and differences), and the K = 4 impossibility count.
"""

import itertools
import random

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import difference_profile, necessary_violations, rank_profile
from theory.designer import block_matrix
from theory.leibniz import hankel, hankel_formula, rigidity_violations

t = sp.Symbol("t")
j = sp.Symbol("j", integer=True)
x = sp.Symbol("x")


def N(a0, b0, k):
    """Rank given by the Gram-matrix lemma: #{i : 0 <= i <= a0, 0 <= k - i <= b0}."""
    return sum(1 for i in range(a0 + 1) if 0 <= k - i <= b0)


def u(a, var):
    return sp.Matrix([var**i for i in range(a + 1)])


@pytest.mark.parametrize("a0, b0", [(d, d) for d in range(9)] + [(1, 4), (2, 5), (3, 3), (4, 2), (0, 6)])
def test_gram_lemma_both_functionals(a0, b0):
    """rank [E(x^(i+j))] = N(a0, b0, k) for E = k-th derivative at 0 and k-th difference at 0."""
    for k in range(a0 + b0 + 3):
        deriv = sp.Matrix(a0 + 1, b0 + 1, lambda i, j: sp.diff(x ** (i + j), x, k).subs(x, 0))
        diff = sp.Matrix(
            a0 + 1, b0 + 1, lambda i, j: sum((-1) ** (k - s) * sp.binomial(k, s) * s ** (i + j) for s in range(k + 1))
        )
        assert deriv.rank() == diff.rank() == N(a0, b0, k), k


def test_congruence_to_the_gram_matrix():
    """H_d^(k) = T G T^T with T[a, c] = C(a, c) t^(a-c) invertible: the step the proof rests on."""
    for d in range(5):
        T = sp.Matrix(d + 1, d + 1, lambda a, c: sp.binomial(a, c) * t ** (a - c) if c <= a else 0)
        assert T.det() == 1
        for k in range(2 * d + 2):
            G = sp.Matrix(d + 1, d + 1, lambda a, b: sp.factorial(k) if a + b == k else 0)
            H = hankel(d, t).diff(t, k)
            assert (H - T * G * T.T).applyfunc(sp.expand).is_zero_matrix


@pytest.mark.parametrize("d", [7, 8])
def test_hankel_profile_for_larger_d(d):
    want = tuple(max(0, min(k + 1, 2 * d + 1 - k)) for k in range(2 * d + 3))
    assert hankel_formula(d, 2 * d + 2) == want
    assert rank_profile(hankel(d, t), 2 * d + 2, seed=d).ranks == want
    assert difference_profile(hankel(d, j), 2 * d + 2, seed=d).ranks == want


@pytest.mark.parametrize("a, b", [(0, 2), (1, 2), (1, 3), (2, 3), (2, 5), (3, 4)])
def test_rectangular_block_profiles(a, b):
    """(u_a u_b^T)^(k) and Delta^k(u_a u_b^T) both have rank N(a, b, k)."""
    K = a + b + 2
    want = tuple(N(a, b, k) for k in range(K + 1))
    assert want == tuple(max(0, min(k + 1, a + 1, a + b + 1 - k)) for k in range(K + 1))
    assert rank_profile(u(a, t) * u(b, t).T, K, seed=1).ranks == want
    assert difference_profile(u(a, j) * u(b, j).T, K, seed=1).ranks == want


@pytest.mark.parametrize("a, b, m", [(1, 2, 1), (1, 2, 2), (1, 3, 1), (2, 3, 2), (2, 4, 1), (0, 3, 2)])
def test_antiderivative_rectangular_block_profiles(a, b, m):
    K = m + a + b + 1
    want = tuple(a + 1 if k < m else N(a, b, k - m) for k in range(K + 1))
    assert rank_profile(block_matrix(("rect_anti", a, b, m), t), K, seed=2).ranks == want


@st.composite
def products_meeting_the_hypothesis(draw):
    """U V with U, V random polynomial matrices wide enough that rho(j) = (j + 1) rho(0) generically."""
    r = draw(st.integers(1, 2))
    jj = draw(st.integers(1, 3 if r == 1 else 2))
    m = draw(st.integers((jj + 1) * r, (jj + 1) * r + 1))
    n = draw(st.integers((jj + 1) * r, (jj + 1) * r + 1))
    seed = draw(st.integers(0, 10**6))
    rng = random.Random(seed)

    def entry(*_):
        return sum(rng.randint(-3, 3) * t**e for e in range(jj + 2))

    return (sp.Matrix(m, r, entry) * sp.Matrix(r, n, entry)).applyfunc(sp.expand), r, jj


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(products_meeting_the_hypothesis())
def test_generalised_rigidity(case):
    A, r, jj = case
    K = jj + 2
    for prof in (rank_profile(A, K, seed=0), difference_profile(A.subs(t, j), K, var=j, seed=0)):
        assert prof.ranks[0] <= r
        assert rigidity_violations(prof.ranks) == []
        if prof.ranks[0] == r and prof.ranks[jj] == (jj + 1) * r:  # the hypothesis holds here
            assert prof.ranks[jj + 1] >= jj * r


def test_generalised_rigidity_hypothesis_is_met_often():
    """The random family above meets the hypothesis (so the property test is not vacuous)."""
    met = 0
    rng = random.Random(0)
    for r, jj in [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]:
        m = n = (jj + 1) * r

        def entry(*_):
            return sum(rng.randint(-3, 3) * t**e for e in range(jj + 2))

        A = (sp.Matrix(m, r, entry) * sp.Matrix(r, n, entry)).applyfunc(sp.expand)
        for prof in (rank_profile(A, jj + 1, seed=0), difference_profile(A.subs(t, j), jj + 1, var=j, seed=0)):
            if prof.ranks[0] == r and prof.ranks[jj] == (jj + 1) * r:
                met += 1
                assert prof.ranks[jj + 1] >= jj * r
    assert met >= 8


def test_rigidity_is_sharp_on_hankel():
    """H_j meets the hypothesis at k = 0 with rho(j+1) = j exactly: the bound j * rho(k) is attained."""
    for jj in range(1, 5):
        p = rank_profile(hankel(jj, t), jj + 1).ranks
        q = difference_profile(hankel(jj, j), jj + 1).ranks
        assert p == q and p[0] == 1 and p[jj] == jj + 1 and p[jj + 1] == jj


def test_impossible_counts():
    counts = {
        K: sum(bool(necessary_violations(p)) for p in itertools.permutations(range(1, K + 1))) for K in range(1, 6)
    }
    assert counts[4] == 15 and sum(counts[K] for K in range(1, 5)) == 17
    assert counts == {1: 0, 2: 0, 3: 2, 4: 15, 5: 97}
