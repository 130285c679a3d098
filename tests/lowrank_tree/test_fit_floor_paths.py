"""The randomized tolerance fit's cheap paths keep ranks and errors honest.

Each test compares against dense NumPy: the optimal rank of every residual
``R_k = M_k − Ŵ_{k−1}`` (``numpy.linalg.svd``, Eckart–Young) bounds the fitted
rank from below, the true error of every order is within ``tol``, and the
reported error is the true one.  The paths: plain sketches sized from the
previous order's rank and kept when the sketch's singular values prove the
rank minimal, unmeasured ranges near the working precision (the fitted
order's measured error decides), the early switch to the full SVD for
full-rank residuals, and the LAPACK kernels of the NumPy backend against
the portable array-API code they replace.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lowrank_tree._randomized as rand_mod
import lowrank_tree.fit as fit_mod
from lowrank_tree import cascade_fit
from lowrank_tree._norms import tail_rank, tail_ranks
from lowrank_tree._randomized import adaptive_qb
from lowrank_tree.backends import get_func, namespace_for, operations
from lowrank_tree.backends.contract import portable

XP = namespace_for("numpy")


def stepped_family(rng, K, m, n, ranks, dtype=np.float64, scale=1.0, noise=0.0):
    """``M_k = M_{k−1} + (rank-r_k step) + noise``, scaled by ``scale`` (exact in powers of two)."""
    mats = [rng.standard_normal((m, n))]
    for r in ranks[:K]:
        step = rng.standard_normal((m, r)) @ rng.standard_normal((r, n)) if r else np.zeros((m, n))
        mats.append(mats[-1] + step + noise * rng.standard_normal((m, n)))
    return (np.stack(mats) * scale).astype(dtype)


def optimal_rank(R, thr):
    """Smallest rank whose truncated SVD of ``R`` is within ``thr`` (Eckart–Young), in float64."""
    s = np.linalg.svd(np.asarray(R, np.float64), compute_uv=False)
    tail = np.sqrt(np.cumsum((s**2)[::-1])[::-1])  # tail[r] = error of rank r
    return int(np.sum(tail > thr))


def check_against_dense(c, mats, tol, slack):
    """Every order: rank >= the optimal rank of its residual, true error <= tol, reported == true."""
    W = np.asarray(c.base, np.float64)
    for k, d in enumerate(c.corrections, start=1):
        M = np.asarray(mats[k], np.float64)
        nm = np.linalg.norm(M)
        ref = nm if nm > 0 else 1.0
        # the residual the fit saw (to rounding of the working precision)
        assert d.rank >= optimal_rank(M - W, tol * ref * (1 + slack)), k
        W = W + np.asarray(d.U, np.float64) @ np.asarray(d.V, np.float64).T
        true = np.linalg.norm(M - W) / ref
        assert true <= tol * (1 + slack), (k, true, tol)
        assert abs(c.errors[k] - true) <= slack * tol + 1e-300, (k, c.errors[k], true)
    return W


# ----------------------------------------------------------------------------
# ranks and errors against dense NumPy, over shapes, ranks, tolerances, dtypes, scales
# ----------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 40),
    n=st.integers(1, 40),
    K=st.integers(0, 4),
    ranks=st.lists(st.integers(0, 6), min_size=4, max_size=4),
    tol=st.sampled_from([0.3, 1e-2, 1e-4, 1e-8]),
    dtype=st.sampled_from([np.float64, np.float32]),
    exponent=st.sampled_from([0, -150, 150, -60, 60]),
    noise=st.sampled_from([0.0, 1e-3]),
    seed=st.integers(0, 2**16),
)
def test_tolerance_fit_ranks_and_errors_against_dense_svd(m, n, K, ranks, tol, dtype, exponent, noise, seed):
    if dtype == np.float32:
        assume(abs(exponent) <= 60 and tol >= 1e-4)  # float32: range 1e±38, precision 6e-8
    ranks = [min(r, m, n) for r in ranks]
    mats = stepped_family(np.random.default_rng(seed), K, m, n, ranks, dtype, 2.0**exponent, noise)
    c = cascade_fit(mats, tol=tol, method="randomized", seed=seed)
    assert c.max_order == K and c.dtype == dtype
    assert all(d.U.dtype == dtype and d.V.dtype == dtype for d in c.corrections)
    slack = 1e-3 if dtype == np.float32 else 1e-6
    check_against_dense(c, mats, tol, slack)


@pytest.mark.parametrize("shape", [(48, 30), (30, 48)])
def test_low_rank_steps_near_the_precision_get_the_step_ranks_without_measuring_the_range(shape, monkeypatch):
    # tol 1e-10 is far below where the indicator can vouch for a range: the range is
    # returned unmeasured and the fitted order's error decides (one measured order per step)
    m, n = shape
    mats = stepped_family(np.random.default_rng(3), 6, m, n, [3, 1, 4, 0, 2, 5])
    measured = []
    real_norm = rand_mod.fro_norm

    def spy(x, xp):
        if tuple(x.shape) == (m, n):
            measured.append(1)
        return real_norm(x, xp)

    monkeypatch.setattr(rand_mod, "fro_norm", spy)
    c = cascade_fit(mats, tol=1e-10, method="randomized", seed=0)
    assert c.ranks == [3, 1, 4, 0, 2, 5]
    assert not measured  # no explicit ‖R − QB‖ in the range finder
    check_against_dense(c, mats, 1e-10, 1e-4)


def test_a_wrong_unmeasured_claim_is_measured_and_refitted(monkeypatch):
    # An unmeasured range that misses (here: forced, by dropping all but one of its
    # columns) must not reach the result: the fit measures, finds the miss and
    # searches again with measured residuals.
    mats = stepped_family(np.random.default_rng(4), 3, 40, 36, [4, 4, 4])
    real = fit_mod.adaptive_qb
    seen = []

    def lying(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(kwargs["defer"])
        if kwargs["defer"] and out is not None and out[2] is None:
            Q, B, _ = out
            return Q[:, :1], B[:1, :], None
        return out

    monkeypatch.setattr(fit_mod, "adaptive_qb", lying)
    c = cascade_fit(mats, tol=1e-10, method="randomized", seed=1)
    assert False in seen and True in seen  # both the unmeasured and the measured search ran
    assert c.ranks == [4, 4, 4]
    check_against_dense(c, mats, 1e-10, 1e-4)


def test_rank_zero_and_identical_orders():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((20, 12))
    mats = np.stack([A, A, A + np.outer(rng.standard_normal(20), rng.standard_normal(12)), A])
    c = cascade_fit(mats, tol=1e-8, method="randomized", seed=0)
    assert c.ranks == [0, 1, 1]
    assert c.errors[1] == 0.0
    check_against_dense(c, mats, 1e-8, 1e-6)
    single = cascade_fit(mats[:1], tol=1e-8, method="randomized")
    assert single.max_order == 0 and single.errors == [0.0]
    one = cascade_fit(mats[1:3], tol=1e-8, method="randomized", seed=0)
    assert one.ranks == [1]
    check_against_dense(one, mats[1:3], 1e-8, 1e-6)


# ----------------------------------------------------------------------------
# full-rank residuals: the range finder gives up after one block
# ----------------------------------------------------------------------------
def test_a_full_rank_residual_gives_up_after_one_block():
    A = XP.asarray(np.random.default_rng(6).standard_normal((64, 64)))
    rng = get_func("make_rng", "numpy")(0)
    blocks = []
    real = rand_mod._sketch

    def count(*args):
        blocks.append(args[2])
        return real(*args)

    rand_mod._sketch, saved = count, rand_mod._sketch
    try:
        out = adaptive_qb(A, 1e-2 * float(np.linalg.norm(A)), XP, rng, "numpy", block=8, power_iters=0)
    finally:
        rand_mod._sketch = saved
    assert out is None and len(blocks) == 1


@pytest.mark.parametrize("method", ["randomized", "auto"])
def test_noise_family_gets_the_full_svd_ranks(method):
    mats = np.random.default_rng(7).standard_normal((4, 32, 24))
    with pytest.warns(fit_mod.DenseCorrectionWarning):
        c = cascade_fit(mats, tol=1e-2, method=method, seed=0)
    with pytest.warns(fit_mod.DenseCorrectionWarning):
        ref = cascade_fit(mats, tol=1e-2, method="exact")
    assert c.ranks == ref.ranks
    assert c.method == "exact"  # every order went to the full SVD
    check_against_dense(c, mats, 1e-2, 1e-9)


# ----------------------------------------------------------------------------
# the minimality proof from the sketch's singular values
# ----------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    L=st.integers(0, 80),  # up to 64 on the host, more with array operations
    res=st.sampled_from([0.0, 1e-3, 0.5, 2.0]),
    thr=st.sampled_from([0.0, 1e-4, 0.3, 1.0, 5.0]),
    exponent=st.sampled_from([0, -300, 300]),
    seed=st.integers(0, 2**16),
)
def test_tail_ranks_is_the_pair_of_tail_ranks(L, res, thr, exponent, seed):
    s = np.sort(np.random.default_rng(seed).exponential(size=L))[::-1]
    scale = 2.0**exponent
    s, res, thr = s * scale, res * scale, thr * scale
    got = tail_ranks(XP.asarray(s), res, thr, XP)
    assert got == (tail_rank(XP.asarray(s), res, thr, XP), tail_rank(XP.asarray(s), 0.0, thr, XP))
    assert got[1] <= got[0]
    # array operations (backends whose arrays stay on their device) give the same pair
    strict = namespace_for("array_api_strict")
    assert tail_ranks(get_func("asarray", "array_api_strict")(s), res, thr, strict) == got


@settings(max_examples=20, deadline=None)
@given(m=st.integers(8, 40), n=st.integers(8, 40), seed=st.integers(0, 2**16), tol=st.sampled_from([0.5, 0.2, 1e-2]))
def test_the_rank_proven_by_the_sketch_is_the_optimal_rank(m, n, seed, tol):
    # Whatever the sketch, the rank chosen as if it missed nothing is a lower bound
    # on the rank of every approximation within thr: s_i(Q^H R) <= σ_i(R).
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((m, n)) * 0.8 ** np.arange(n)
    thr = tol * np.linalg.norm(R)
    qb = adaptive_qb(
        XP.asarray(R), thr, XP, get_func("make_rng", "numpy")(seed), "numpy", block=3, power_iters=0, check=True
    )
    assume(qb is not None)
    Q, B, res = qb
    s = np.linalg.svd(B, compute_uv=False)
    r, lowest = tail_ranks(XP.asarray(s), res, thr, XP)
    best = optimal_rank(R, thr)
    assert lowest <= best <= r
    if r == lowest:
        assert r == best


def test_plain_sketch_is_sized_from_the_previous_rank(monkeypatch):
    mats = stepped_family(np.random.default_rng(8), 4, 60, 50, [7, 7, 7, 7])
    widths = []
    real = fit_mod.adaptive_qb

    def spy(*args, **kwargs):
        widths.append((kwargs["power_iters"], kwargs["block"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_mod, "adaptive_qb", spy)
    c = cascade_fit(mats, tol=1e-9, method="randomized", seed=0)
    assert c.ranks == [7, 7, 7, 7]
    assert widths[0] == (0, 10)  # nothing known yet: the default oversample
    assert widths[1:] == [(0, 7 + 10)] * 3
    widths.clear()
    c = cascade_fit(mats, tol=1e-9, method="randomized", seed=0, oversample=0)
    assert c.ranks == [7, 7, 7, 7]
    assert widths[0] == (0, fit_mod._MIN_BLOCK) and widths[1] == (0, 7)


# ----------------------------------------------------------------------------
# the NumPy kernels against the portable code they replace
# ----------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(1, 30),
    k=st.integers(1, 30),
    dtype=st.sampled_from([np.float32, np.float64, np.complex64, np.complex128]),
    exponent=st.sampled_from([0, -100, 100]),
    seed=st.integers(0, 2**16),
)
def test_numpy_orth_columns_and_svd_wide_match_numpy_linalg(m, k, dtype, exponent, seed):
    assume(k <= m)
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((m, k)) + (1j * rng.standard_normal((m, k)) if np.dtype(dtype).kind == "c" else 0)
    if np.finfo(dtype).bits == 32:
        exponent = max(-30, min(30, exponent))
    Y = (Y * 2.0**exponent).astype(dtype)
    eps = float(np.finfo(dtype).eps)
    ops = operations("numpy")
    Q = ops.orth_columns(Y, XP)
    Qref = np.linalg.qr(Y)[0]
    assert Q.dtype == dtype and Q.shape == (m, k)
    # the same Householder factorisation: the same Q up to rounding
    assert np.linalg.norm(Q - Qref) <= 100 * eps * k
    B = Y.T.copy()  # (k, m): wide
    P, s, Wh = ops.svd_wide(B, XP)
    sref = np.linalg.svd(B, compute_uv=False)
    assert P.shape == (k, k) and s.shape == (k,) and Wh.shape == (k, m)
    np.testing.assert_allclose(s, sref, rtol=100 * eps * k, atol=100 * eps * k * float(sref[0]))
    assert np.linalg.norm((P * s) @ Wh - B) <= 100 * eps * k * np.linalg.norm(B)
    assert np.linalg.norm(P.conj().T @ P - np.eye(k)) <= 100 * eps * k


def test_orth_columns_and_svd_wide_on_every_backend(lib):
    rng = np.random.default_rng(9)
    Y, B = rng.standard_normal((12, 5)), rng.standard_normal((4, 9))
    ops = operations(lib.name)
    Q = lib.to_numpy(ops.orth_columns(lib.asarray(Y), lib.xp))
    assert np.linalg.norm(Q.T @ Q - np.eye(5)) <= 1e-13
    assert np.linalg.norm(Q @ (Q.T @ Y) - Y) <= 1e-13 * np.linalg.norm(Y)
    P, s, Wh = (lib.to_numpy(a) for a in ops.svd_wide(lib.asarray(B), lib.xp))
    np.testing.assert_allclose(s, np.linalg.svd(B, compute_uv=False), rtol=1e-13)
    assert np.linalg.norm((P * s) @ Wh - B) <= 1e-13 * np.linalg.norm(B)
    if lib.name in ("array_api_strict", "cupy", "torch"):
        assert ops.orth_columns is portable("orth_columns") and ops.svd_wide is portable("svd_wide")


@pytest.mark.parametrize("ranks", [None, 3])
def test_numpy_kernels_give_the_portable_path_to_rounding(ranks):
    # array_api_strict runs the portable QR and SVD (xp.linalg) on the same random
    # numbers as NumPy: the two fits agree to rounding, ranks exactly.
    rng = np.random.default_rng(10)
    mats = stepped_family(rng, 5, 36, 28, [3, 2, 5, 1, 3], noise=1e-7)
    kw = dict(method="randomized", seed=3)
    kw.update(tol=1e-5) if ranks is None else kw.update(ranks=ranks)
    c_np = cascade_fit(mats, **kw)
    c_strict = cascade_fit(get_func("asarray", "array_api_strict")(mats), **kw)
    assert c_np.ranks == c_strict.ranks
    np.testing.assert_allclose(c_np.errors, c_strict.errors, rtol=1e-8, atol=1e-15)
    for k in range(6):
        a, b = np.asarray(c_np.matrix(k)), get_func("to_numpy", "array_api_strict")(c_strict.matrix(k))
        assert np.linalg.norm(a - b) <= 1e-10 * np.linalg.norm(a)


def test_the_last_block_is_narrowed_to_max_cols_and_a_too_wide_first_block_gives_up():
    rng = np.random.default_rng(11)
    A = rng.standard_normal((30, 7)) @ rng.standard_normal((7, 25))  # rank 7
    thr = 1e-8 * np.linalg.norm(A)
    gen = get_func("make_rng", "numpy")
    Q, B, res = adaptive_qb(XP.asarray(A), thr, XP, gen(0), "numpy", block=5, power_iters=0, max_cols=7)
    assert Q.shape[1] == 7  # 5 + a last block of 2
    assert np.linalg.norm(A - Q @ B) <= thr and res <= thr
    assert adaptive_qb(XP.asarray(A), thr, XP, gen(0), "numpy", block=8, power_iters=0, max_cols=7) is None
