"""Numba merge kernels over the whole normal range of float32 and float64.

The kernels' column norms and CholeskyQR Gram matrices used plain sums of
squares: factors near 1e-200 lost directions, near 1e+160 the build raised
``SystemError`` (float32 at 1e21: ``LinAlgError``).  Each case is compared
with the portable NumPy merge and with dense float64 references at unit
scale.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from lowrank_tree import LowRankSegmentTree
from lowrank_tree._portable import recompress_pairs
from lowrank_tree.backends import NodePair, _numba, _numba_kernels, namespace_for

XP = namespace_for("numpy")
DTYPES = [np.float32, np.float64]


def exponents(dtype, amin, amax, headroom):
    fi = np.finfo(dtype)
    return (math.ceil(math.log2(float(fi.tiny) / amin)), math.floor(math.log2(float(fi.max) / amax)) - headroom)


def make_pair(rng, dtype, m, n, ra, rb, orth_a):
    ua = rng.uniform(0.5, 2, (m, ra)) * rng.choice([-1, 1], (m, ra))
    va = rng.uniform(0.5, 2, (n, ra)) * rng.choice([-1, 1], (n, ra))
    if orth_a:  # a recompressed node: orthogonal U columns, orthonormal V
        q, _ = np.linalg.qr(ua)
        va, _ = np.linalg.qr(va)
        ua = q * np.linspace(2, 1, ra)
    ub = rng.uniform(0.5, 2, (m, rb)) * rng.choice([-1, 1], (m, rb))
    vb = rng.uniform(0.5, 2, (n, rb)) * rng.choice([-1, 1], (n, rb))
    return [x.astype(dtype) for x in (ua, va, ub, vb)]


def dense_of(ua, va, ub, vb):
    f = np.float64
    return ua.astype(f) @ va.T.astype(f) + ub.astype(f) @ vb.T.astype(f)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("orth_a", [False, True])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_merge_kernel_is_scale_free(dtype, orth_a, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    m, n, ra, rb = 40, 30, 5, 4
    ua, va, ub, vb = make_pair(rng, dtype, m, n, ra, rb, orth_a)
    lo, hi = exponents(dtype, 0.05, 2.0, headroom=12)
    e = data.draw(st.integers(lo, hi), label="e")
    pairs = [NodePair(np.ldexp(ua, e).astype(dtype), va, orth_a, np.ldexp(ub, e).astype(dtype), vb, False)] * 2
    tol = 40 * float(np.finfo(dtype).eps)
    got = _numba._merge_pairs_kernel(pairs, tol)
    portable = recompress_pairs(pairs, tol, XP)
    dense = dense_of(ua, va, ub, vb)
    for (U, V, D, r), (_, _, _, rp) in zip(got, portable):
        assert D is None and r == rp == ra + rb
        merged = np.ldexp(U.astype(np.float64), -e) @ V.T.astype(np.float64)
        err = np.linalg.norm(merged - dense) / np.linalg.norm(dense)
        assert err <= 200 * float(np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["bottom", "top"])
def test_tree_build_at_the_ends_of_the_range_matches_numpy(dtype, where):
    rng = np.random.default_rng(21)
    m, n, K, r = 24, 18, 8, 3
    lo, hi = exponents(dtype, 0.05, 2.0, headroom=12)
    e = lo if where == "bottom" else hi
    deltas = []
    for _ in range(K):
        u = rng.uniform(0.5, 2, (m, r)) * rng.choice([-1, 1], (m, r))
        deltas.append((np.ldexp(u, e).astype(dtype), rng.standard_normal((n, r)).astype(dtype)))
    base = np.zeros((m, n), dtype)
    a = LowRankSegmentTree(base, deltas, backend="numpy")
    b = LowRankSegmentTree(base, deltas, backend="numba")
    assert [(x.rank, x.dense) for x in a.nodes()] == [(x.rank, x.dense) for x in b.nodes()]
    X = rng.standard_normal((n, 3)).astype(dtype)
    dense = sum(np.ldexp(u.astype(np.float64), -e) @ v.T.astype(np.float64) for u, v in deltas)
    got = np.ldexp(b.query(K, X).astype(np.float64), -e)
    assert np.linalg.norm(got - dense @ X) <= 100 * float(np.finfo(dtype).eps) * np.linalg.norm(dense @ X)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("e_frac", [-0.9, 0.0, 0.9])
def test_merge_kernel_cancelling_pair_has_rank_zero(dtype, e_frac):
    rng = np.random.default_rng(5)
    ua, va, _, _ = make_pair(rng, dtype, 30, 20, 6, 1, False)
    e = int(e_frac * (np.finfo(dtype).maxexp - 8))
    u = np.ldexp(ua, e).astype(dtype)
    pairs = [
        NodePair(u, va, False, -u, va, False),
        NodePair(u, va, False, ((-u * dtype(3)) / dtype(3)).astype(dtype), va, False),
    ]
    for U, _V, D, r in _numba._merge_pairs_kernel(pairs, 30 * float(np.finfo(dtype).eps)):
        assert r == 0 and D is None and U.shape == (30, 0)


def test_nrm2_matches_reference_across_the_range():
    x = np.random.default_rng(3).standard_normal(50)
    ref = float(np.linalg.norm(x))
    for e in (-1020, -700, -500, 0, 500, 700, 1010):
        got = _numba_kernels._nrm2(np.ldexp(x, e))
        assert math.isclose(math.ldexp(got, -e), ref, rel_tol=1e-14)
    for e in (-120, -60, 0, 60, 120):
        got = _numba_kernels._nrm2(np.ldexp(x, e).astype(np.float32))
        assert math.isclose(math.ldexp(float(got), -e), ref, rel_tol=1e-5)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_overflowing_sum_raises_a_linalg_error_not_a_system_error():
    # the sum of two children near the largest float64 is not representable:
    # the kernel flags the pair and the portable path raises NumPy's error
    big = np.finfo(np.float64).max / 4
    u = np.full((20, 2), big)
    v = np.ones((10, 2))
    v[:, 1] = -1
    v[0, 1] = 1
    pairs = [NodePair(u, v, False, u, v, False)] * 2
    with pytest.raises(np.linalg.LinAlgError):
        _numba._merge_pairs_kernel(pairs, 1e-14)
