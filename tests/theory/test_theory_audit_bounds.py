"""The Monte-Carlo ``error_bound`` dominates what it claims to bound.

The rank at a random point ``x`` modulo a random prime ``p`` underestimates only if ``x`` is a
root of a nonzero maximal minor ``g`` of the row-cleared matrix modulo ``p`` (at most
``deg g / p`` by Schwartz–Zippel) or ``p`` divides every coefficient of ``g`` (at most
``log2 max|coefficient| / 30`` primes of ``[2**30, 2**31)`` do, out of more than 4.8e7).
Here ``g`` is computed independently with SymPy from the entries, with denominators
(including rational coefficients) cleared, and the bound must exceed both terms.
"""

import itertools
import math

import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import generic_rank
from theory.engine import PRIMES_IN_RANGE

t, s = sp.symbols("t s")


def cleared_minor(A, gens):
    """A nonzero maximal minor of P = D A over Z[gens] (row i times the product of its denominators)."""
    m, n = A.shape
    rows = []
    for i in range(m):
        pairs = []
        for j in range(n):
            num, den = sp.fraction(sp.cancel(sp.together(A[i, j])))
            cn, Pn = sp.Poly(num, *gens, domain="QQ").clear_denoms(convert=True)
            cd, Pd = sp.Poly(den, *gens, domain="QQ").clear_denoms(convert=True)
            pairs.append((Pn * int(cd), Pd * int(cn)))  # entry = a / b over Z[gens]
        rows.append([pairs[j][0] * sp.prod([pairs[k][1] for k in range(n) if k != j]) for j in range(n)])
    k = min(m, n)
    for rows_i in itertools.combinations(range(m), k):
        for cols_j in itertools.combinations(range(n), k):
            g = sp.Matrix(k, k, lambda a, b: rows[rows_i[a]][cols_j[b]].as_expr()).det(method="berkowitz")
            g = sp.Poly(sp.expand(g), *gens, domain="ZZ")
            if not g.is_zero:
                return g
    return None


entry = st.builds(
    lambda c0, c1, c2, q, shift, kind: (
        (sp.Rational(c0, q) + c1 * t + c2 * s * t)
        / ((t + shift * s + 1) if kind == 1 else (s**2 + shift) if kind == 2 else 1)
    ),
    st.integers(-5, 5),
    st.integers(-5, 5),
    st.integers(-5, 5),
    st.integers(1, 9),
    st.integers(1, 4),
    st.integers(0, 2),
)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.data(), st.integers(0, 1000))
def test_bound_dominates_both_failure_terms(m, n, data, seed):
    A = sp.Matrix(m, n, lambda *_: data.draw(entry))
    for gens in ((t, s), (t,)):
        M = A.subs(s, 2) if gens == (t,) else A  # one variable: a specialisation in s
        g = cleared_minor(M, gens)
        if g is None:
            continue  # rank 0: nothing to underestimate
        c = generic_rank(M, var=gens if len(gens) > 1 else gens[0], certify=False, seed=seed)
        deg = g.total_degree()
        coef_bits = math.log2(max(abs(int(x)) for x in g.coeffs()))
        assert c.error_bound >= deg / c.prime + (coef_bits / 30) / PRIMES_IN_RANGE, (M, g)
        assert c.error_bound < 1e-6
