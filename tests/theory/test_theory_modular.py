"""Modular kernels: both backends agree with each other and with SymPy over GF(p)."""

import random

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

from theory import _modular as mod

BACKENDS = ["python"] + (["numba"] if mod.HAVE_NUMBA else [])
P = 2_147_483_647  # 2**31 - 1


def gf_rank(M, p):
    return DomainMatrix([[sp.GF(p)(int(x)) for x in row] for row in M], M.shape, sp.GF(p)).rank()


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_rank_mod_matches_sympy_gf(backend, data):
    m = data.draw(st.integers(1, 6))
    n = data.draw(st.integers(1, 6))
    r = data.draw(st.integers(0, min(m, n)))
    p = data.draw(st.sampled_from([2, 3, 101, P]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    M = rng.integers(-4, 5, (m, r)) @ rng.integers(-4, 5, (r, n)) if r else np.zeros((m, n), np.int64)
    rank, rows, cols = mod.rank_mod(M, p, backend)
    assert rank == gf_rank(M, p)
    assert len(rows) == len(cols) == rank
    if rank:
        assert gf_rank(M[np.ix_(rows, cols)], p) == rank  # the pivot block is nonsingular


def test_backends_agree_on_everything():
    if not mod.HAVE_NUMBA:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(1)
    p = 1_000_003
    C = rng.integers(0, p, (3, 4, 6))
    xs = np.arange(12)
    E1, E2 = mod.eval_mod(C, xs, p, "numba"), mod.eval_mod(C, xs, p, "python")
    assert (E1 == E2).all()
    d1, X1 = mod.cramer_mod(E1, [0, 2], [1, 3], [0, 2], p, "numba")
    d2, X2 = mod.cramer_mod(E1, [0, 2], [1, 3], [0, 2], p, "python")
    assert (d1 == d2).all() and (X1 == X2).all()
    Y = rng.integers(0, p, (7, 3))
    assert (mod.interpolate_mod(range(7), Y, p, "numba") == mod.interpolate_mod(range(7), Y, p, "python")).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_and_interpolate_are_inverse(backend):
    rng = random.Random(0)
    p = P
    coeffs = [rng.randrange(p) for _ in range(9)]  # highest first
    C = np.array(coeffs, dtype=np.int64).reshape(1, 1, 9)
    xs = [rng.randrange(p) for _ in range(9)]
    vals = mod.eval_mod(C, xs, p, backend)[:, 0, 0]
    assert vals.tolist() == [sum(c * pow(x, 8 - i, p) for i, c in enumerate(coeffs)) % p for x in xs]
    back = mod.interpolate_mod(xs, vals.reshape(9, 1), p, backend)[:, 0]
    assert back.tolist() == coeffs[::-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_cramer_solves_the_system(backend):
    p = 10007
    rng = np.random.default_rng(5)
    E = rng.integers(0, p, (4, 3, 5))
    dets, X = mod.cramer_mod(E, [0, 1, 2], [0, 1, 2], [3, 4], p, backend)
    for s in range(4):
        M = sp.Matrix(E[s, :, :3].tolist())
        assert int(dets[s]) == int(M.det()) % p
        # M X = -det * B  (mod p)
        B = sp.Matrix(E[s, :, 3:].tolist())
        assert ((M * sp.Matrix(X[s].tolist()) + dets[s] * B) % p).is_zero_matrix


def test_singular_block_reports_zero_det():
    E = np.array([[[1, 2, 5], [2, 4, 7]]], dtype=np.int64)
    for backend in BACKENDS:
        d, X = mod.cramer_mod(E, [0, 1], [0, 1], [2], 13, backend)
        assert d.tolist() == [0] and not X.any()


def test_primes_and_errors():
    rng = random.Random(3)
    ps = {mod.random_prime(rng) for _ in range(20)}
    assert all(sp.isprime(p) and 2**30 <= p < 2**31 for p in ps)
    assert [n for n in range(200) if mod.is_prime(n)] == list(sp.primerange(0, 200))
    with pytest.raises(ValueError, match="backend"):
        mod.rank_mod(np.eye(2, dtype=np.int64), 7, backend="gpu")
    with pytest.raises(ValueError, match="p must be a prime below 2\\*\\*31"):
        mod.rank_mod(np.eye(2, dtype=np.int64), 2**40)
    with pytest.raises(ValueError, match="distinct"):
        mod.interpolate_mod([1, 1], [[1], [2]], 7)
    with pytest.raises(ValueError, match="2-D"):
        mod.rank_mod(np.zeros(3, dtype=np.int64), 7)
