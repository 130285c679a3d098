"""The engine's fast paths against independent exact references.

BLAS products modulo a prime, interpolation through the inverse Vandermonde
matrix, mixed-radix Chinese remaindering, the limb-product test of
``P N == 0``, the float-quotient ``mulmod`` of the Numba kernels and the
expression-tree conversion: each is compared with Python-integer or SymPy
arithmetic, including the boundary values (residues ``p - 1``, coefficients
at limb boundaries, empty shapes).
"""

import random

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.ntheory.modular import crt
from sympy.polys.matrices import DomainMatrix

from theory import _fast, generic_rank
from theory import _modular as mod
from theory._convert import RationalMatrix
from theory.engine import _kernel_is_exact, _kernel_is_exact_shift

BACKENDS = ["python"] + (["numba"] if mod.HAVE_NUMBA else [])
PRIMES = [2, 3, 65_537, 1_000_000_007, 2_147_483_629, 2_147_483_647]
t = sp.Symbol("t")


def _obj_matmul_mod(A, B, p):
    return (np.asarray(A).astype(object) @ np.asarray(B).astype(object)) % p


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_matmul_mod_is_exact(data):
    p = data.draw(st.sampled_from(PRIMES))
    m, k, n = (data.draw(st.integers(0, 7)) for _ in range(3))
    extreme = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    A = np.full((m, k), p - 1) if extreme else rng.integers(0, p, (m, k))
    B = np.full((k, n), p - 1) if extreme else rng.integers(0, p, (k, n))
    got = _fast.matmul_mod(A, B, p)
    assert got.shape == (m, n) and got.dtype == np.int64
    assert (got == _obj_matmul_mod(A, B, p)).all()


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30, deadline=None)
@given(st.data())
def test_interpolation_matches_newton_reference(backend, data):
    p = data.draw(st.sampled_from(PRIMES[2:]))
    npts = data.draw(st.integers(1, 12))
    q = data.draw(st.integers(0, 5))
    xs = data.draw(st.lists(st.integers(0, p - 1), min_size=npts, max_size=npts, unique=True))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    Y = rng.integers(0, p, (npts, q))
    ref = mod.interpolate_mod(xs, Y, p, "python")  # Newton divided differences, Python ints
    assert (_fast.interpolate_mod(xs, Y, p) == ref).all()
    # and the coefficients reproduce the values (Horner over Python ints)
    for c in range(q):
        for i, x in enumerate(xs):
            acc = 0
            for coef in ref[::-1, c]:
                acc = (acc * x + int(coef)) % p
            assert acc == Y[i, c]


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30, deadline=None)
@given(st.data())
def test_garner_reconstructs_symmetric_residues(backend, data):
    bits = data.draw(st.sampled_from([1, 30, 31, 62, 200, 700]))
    size = data.draw(st.integers(1, 6))
    vals = data.draw(st.lists(st.integers(-(2**bits), 2**bits), min_size=size, max_size=size))
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    g = _fast.Garner(backend)
    primes, prev = [], None
    while True:
        q = mod.random_prime(rng)
        if q in primes:
            continue
        primes.append(q)
        stable = g.add(np.array([v % q for v in vals], dtype=np.int64), q)
        M = 1
        for qi in primes:
            M *= qi
        # independent reference: SymPy's CRT, then the symmetric representative
        ref = [int(crt(primes, [v % qi for qi in primes])[0]) for v in vals]
        ref = [x - M if x > M // 2 else x for x in ref]
        assert list(g.integers()) == ref
        # "stable" exactly when the reconstruction did not change
        assert stable == (prev is not None and ref == prev)
        prev = ref
        if M > 2 ** (bits + 2) and len(primes) > 1:
            break
    assert list(g.integers()) == vals


def _poly_product_reference(P, N):
    """Every entry of P N with Python-int polynomial arithmetic (highest first)."""
    out = []
    for row in P:
        for col in N:
            acc = {}
            for j, f in col.items():
                g = row[j]
                for a, x in enumerate(g[::-1]):
                    for b, y in enumerate(f[::-1]):
                        acc[a + b] = acc.get(a + b, 0) + x * y
            out.append(any(acc.values()))
    return not any(out)


def _rand_poly(rng, deg, bits):
    return [rng.randrange(-(2**bits), 2**bits + 1) for _ in range(deg + 1)]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_poly_product_is_zero_on_kernels_and_perturbations(data):
    """P = [B, B C] has the kernel [-C; I]; a one-unit change anywhere must be seen."""
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    m, a, k = data.draw(st.integers(1, 5)), data.draw(st.integers(0, 4)), data.draw(st.integers(1, 4))
    pbits = data.draw(st.sampled_from([1, 15, 16, 17, 40]))
    nbits = data.draw(st.sampled_from([0, 16, 31, 32, 33, 300]))
    dB, dC = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    B = [[_rand_poly(rng, dB, pbits) for _ in range(a)] for _ in range(m)]
    C = [[_rand_poly(rng, dC, nbits) for _ in range(k)] for _ in range(a)]

    def prod(f, g):  # highest first, Python ints
        if not f or not g:
            return []
        out = [0] * (len(f) + len(g) - 1)
        for a_, x in enumerate(f):
            for b_, y in enumerate(g):
                out[a_ + b_] += x * y
        return out

    def add(f, g):
        n = max(len(f), len(g))
        return [x + y for x, y in zip([0] * (n - len(f)) + f, [0] * (n - len(g)) + g)]

    BC = [[[0] for _ in range(k)] for _ in range(m)]
    for i in range(m):
        for c in range(k):
            for s in range(a):
                BC[i][c] = add(BC[i][c], prod(B[i][s], C[s][c]))
    P = [[list(f) for f in B[i]] + [list(f) for f in BC[i]] for i in range(m)]
    N = []
    for c in range(k):
        col = {s: [-x for x in C[s][c]] for s in range(a) if any(C[s][c])}
        col[a + c] = [1]
        N.append(col)
    assert _poly_product_reference(P, N)
    assert _fast.poly_product_is_zero(P, N) is True
    assert _kernel_is_exact(P, N) and _kernel_is_exact_shift(P, N)
    # perturb one coefficient by +-1 or by a limb-sized power of two
    c = rng.randrange(k)
    j = rng.choice(sorted(N[c]))
    delta = rng.choice([1, -1, 2**16, -(2**32), 2**31, 2**64])
    f = list(N[c][j])
    f[rng.randrange(len(f))] += delta
    N2 = [dict(col) for col in N]
    N2[c] = {**N[c], j: f}
    expected = _poly_product_reference(P, N2)  # False unless column j of P is zero
    assert expected is (not any(any(P[i][j]) for i in range(m)))
    assert _fast.poly_product_is_zero(P, N2) is expected
    assert _kernel_is_exact(P, N2) is expected


def test_poly_product_is_zero_edge_cases():
    P = [[[1, 0], [0]], [[2], [5, 1]]]  # contains a zero polynomial
    assert _fast.poly_product_is_zero(P, []) is True
    assert _fast.poly_product_is_zero(P, [{}]) is True
    assert _fast.poly_product_is_zero([[[], []]], [{0: [1]}]) is True  # P = 0
    assert _fast.poly_product_is_zero(P, [{1: [1]}]) is False
    # beyond the exactness bounds the fast test declines (None) and the engine falls back
    Pbig = [[[1] + [0] * 600 + [2**40]]]
    assert _fast.poly_product_is_zero(Pbig, [{0: [1]}]) is None
    assert _kernel_is_exact(Pbig, [{0: [1]}]) is False
    assert _kernel_is_exact(Pbig, [{0: []}]) is True


@pytest.mark.skipif(not mod.HAVE_NUMBA, reason="numba not installed")
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_numba_mulmod_at_the_extremes(data):
    from theory import _modular_numba as nb

    p = data.draw(st.sampled_from(PRIMES))
    a = data.draw(st.one_of(st.integers(0, p - 1), st.sampled_from([0, 1, p - 1, p // 2])))
    b = data.draw(st.one_of(st.integers(0, p - 1), st.sampled_from([0, 1, p - 1, p // 2 + 1])))
    assert nb.mulmod(a, b, p, 1.0 / p) == a * b % p


@pytest.mark.skipif(not mod.HAVE_NUMBA, reason="numba not installed")
def test_numba_kernels_match_python_near_two_to_the_31():
    rng = np.random.default_rng(5)
    p = 2_147_483_647
    C = np.full((4, 5, 7), p - 1)
    C[0, 0] = rng.integers(0, p, 7)
    xs = np.array([p - 1, p - 2, 0, 1, 2**30])
    E1, E2 = mod.eval_mod(C, xs, p, "numba"), mod.eval_mod(C, xs, p, "python")
    assert (E1 == E2).all()
    d1, X1 = mod.cramer_mod(E1, [0, 1, 2], [0, 1, 4], [2, 3], p, "numba")
    d2, X2 = mod.cramer_mod(E1, [0, 1, 2], [0, 1, 4], [2, 3], p, "python")
    assert (d1 == d2).all() and (X1 == X2).all()
    M = rng.integers(p - 3, p, (6, 6)) @ np.diag([1, 1, 1, 0, 0, 0])
    r1, rows1, cols1 = mod.rank_mod(M, p, "numba")
    r2, rows2, cols2 = mod.rank_mod(M, p, "python")
    assert r1 == r2 and (rows1 == rows2).all() and (cols1 == cols2).all()


# ----------------------------------------------------------------- conversion
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_fast_conversion_matches_poly(data):
    m, n = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    x = data.draw(st.sampled_from([t, sp.Symbol("x", positive=True), sp.Symbol("j", integer=True)]))
    entries = []
    for _ in range(m * n):
        coeffs = data.draw(st.lists(st.fractions(max_denominator=50, min_value=-(10**6), max_value=10**6), max_size=5))
        entries.append(sum((sp.Rational(c.numerator, c.denominator) * x**e for e, c in enumerate(coeffs)), sp.S.Zero))
    M = sp.Matrix(m, n, entries)
    R = RationalMatrix.from_sympy(M)
    assert (R.to_sympy() - M).expand() == sp.zeros(m, n)
    if M.free_symbols:
        assert R.var == x
    for i in range(m):
        for j in range(n):
            P = sp.Poly(M[i, j], x)
            den = R.den[i][j]
            assert len(den) == 1 and den[0] > 0
            lead = [sp.Rational(c) * den[0] for c in P.all_coeffs()] if not P.is_zero else []
            assert R.num[i][j] == lead


def test_conversion_checks_still_apply():
    u = sp.Symbol("u")
    with pytest.raises(ValueError, match="several free symbols"):
        RationalMatrix.from_sympy(sp.Matrix([[t, u]]))
    with pytest.raises(ValueError, match="floating-point"):
        RationalMatrix.from_sympy(sp.Matrix([[t, 0.5 * t]]))
    with pytest.raises(ValueError, match="other than the variable"):
        RationalMatrix.from_sympy(sp.Matrix([[t, t * u]]), t)
    R = RationalMatrix.from_sympy(sp.Matrix([[1 / t, t**2 + sp.Rational(1, 2)], [3, 0]]))
    assert (R.num[0][0], R.den[0][0], R.num[0][1], R.den[0][1]) == ([1], [1, 0], [2, 0, 1], [2])
    assert isinstance(RationalMatrix.from_sympy(sp.Matrix([[1, 2]])).var, sp.Dummy)


# ------------------------------------------------------- whole-engine checks
def _product(rng, m, k, n, deg):
    R, x = sp.ring("t", sp.ZZ)

    def mat(a, b):
        return [[sum((rng.randint(-9, 9) * x**e for e in range(deg + 1)), R.zero) for _ in range(b)] for _ in range(a)]

    B, C = mat(m, k), mat(k, n)
    return sp.Matrix(m, n, lambda i, j: sum((B[i][s] * C[s][j] for s in range(k)), R.zero).as_expr(t))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(7, 5, 7), (4, 2, 8), (8, 3, 5), (3, 0, 3)])
def test_certified_kernel_is_the_cramer_kernel(backend, shape):
    """The kernel is Cramer's exact one (det at f, replaced-column minors at J), so it does not depend on the path."""
    rng = random.Random(sum(shape))
    M = _product(rng, *shape, 2)
    c = generic_rank(M, seed=3, backend=backend)
    r = c.rank
    assert r == DomainMatrix.from_Matrix(M).convert_to(sp.QQ.frac_field(t)).rank() == shape[1]
    assert c.verify(M) and c.verify(M, method="sympy")
    if c.kernel_side is None:
        return
    A = M if c.kernel_side == "right" else M.T
    if c.kernel_side == "right":
        rows_, J = list(c.pivot_rows), list(c.pivot_cols)
    else:  # the left kernel was computed on the transpose with its own pivots
        rr, rows_, J = mod.rank_mod(
            np.array([[int(sp.Poly(e, t).eval(c.point)) % c.prime for e in row] for row in A.tolist()]),
            c.prime,
            "python",
        )
        rows_, J = [int(i) for i in rows_], [int(j) for j in J]
    N = c.kernel
    ring = sp.ZZ[t]

    def det(B):  # exact determinant over ZZ[t] (DomainMatrix: fraction-free)
        return ring.to_sympy(DomainMatrix.from_Matrix(B).convert_to(ring).det())

    block = A.extract(rows_, J)
    d = det(block)
    for col, f in enumerate(c.kernel_rows):
        assert sp.expand(N[f, col] - d) == 0
        for a, jj in enumerate(J):
            repl = block.copy()
            repl[:, a] = -A.extract(rows_, [f])
            assert sp.expand(N[jj, col] - det(repl)) == 0
