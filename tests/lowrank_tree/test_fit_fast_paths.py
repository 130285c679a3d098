"""The tolerance fit's shortcuts keep ranks and errors: plain sketches where the rank is provably minimal,
the range finder's indicator where it is far above rounding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lowrank_tree.fit as fit_mod
from lowrank_tree import cascade_fit
from lowrank_tree._randomized import adaptive_qb
from lowrank_tree.backends import get_func, namespace_for


def spectrum_family(rng, K, m, n, sv):
    """``M_k = M_{k-1} + U diag(sv) V^T`` with fresh orthonormal U, V each order."""
    mats = [rng.standard_normal((m, n))]
    for _ in range(K):
        U, _ = np.linalg.qr(rng.standard_normal((m, len(sv))))
        V, _ = np.linalg.qr(rng.standard_normal((n, len(sv))))
        mats.append(mats[-1] + (U * sv) @ V.T)
    return np.stack(mats)


def record_power_iters(monkeypatch):
    calls = []
    real = fit_mod.adaptive_qb

    def spy(*args, **kwargs):
        calls.append(kwargs["power_iters"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_mod, "adaptive_qb", spy)
    return calls


@pytest.mark.parametrize("shape", [(90, 70), (70, 90)])
def test_a_spectral_cliff_needs_no_power_iterations_and_gets_the_exact_ranks(shape, monkeypatch):
    # 6 directions of size 1..0.5, then 1e-9: at tol 1e-6 the rank is 6, and
    # σ_6 of the sketch is far above the tolerance, which proves it minimal.
    m, n = shape
    sv = np.concatenate([np.linspace(1.0, 0.5, 6), np.full(20, 1e-9)])
    mats = spectrum_family(np.random.default_rng(0), 4, m, n, sv)
    calls = record_power_iters(monkeypatch)
    c = cascade_fit(mats, tol=1e-6, method="randomized", seed=0)
    assert calls == [0] * 4
    ref = cascade_fit(mats, tol=1e-6, method="exact")
    assert c.ranks == ref.ranks == [6] * 4
    for k in range(5):  # reported errors against the dense truth
        true = np.linalg.norm(c.matrix(k) - mats[k]) / np.linalg.norm(mats[k])
        assert abs(c.errors[k] - true) <= 1e-10 and true <= 1e-6


def test_a_slowly_decaying_spectrum_uses_power_iterations_then_skips_plain_sketches(monkeypatch):
    # σ_j = 0.9^j: the tolerance falls inside a smooth tail, no proof from a
    # plain sketch, so the first order tries one and then power iterations,
    # and the next order goes straight to power iterations.
    sv = 0.9 ** np.arange(40)
    mats = spectrum_family(np.random.default_rng(1), 3, 120, 100, sv)
    calls = record_power_iters(monkeypatch)
    c = cascade_fit(mats, tol=0.005, method="randomized", seed=0)
    # order 1: plain, then power; order 2 skips the plain sketch (one failed proof);
    # order 3 tries one again (r_2 + oversample columns wide), with or without a proof
    assert calls[:4] == [0, 2, 2, 0] and calls[4:] in ([], [2])
    ref = cascade_fit(mats, tol=0.005, method="exact")
    assert all(rx <= r <= rx + 2 for r, rx in zip(c.ranks, ref.ranks))
    assert max(c.errors) <= 0.005 and min(ref.ranks) >= 10


@pytest.mark.parametrize("rel", [1e-2, 1e-4])
def test_unchecked_range_finder_meets_the_tolerance_with_an_accurate_indicator(rel):
    xp = namespace_for("numpy")
    rng = np.random.default_rng(2)
    U, _ = np.linalg.qr(rng.standard_normal((200, 60)))
    V, _ = np.linalg.qr(rng.standard_normal((150, 60)))
    A = (U * np.logspace(0, -8, 60)) @ V.T
    thr = rel * np.linalg.norm(A)
    Q, B, res = adaptive_qb(A, thr, xp, get_func("make_rng", "numpy")(0), "numpy", block=4, power_iters=1, check=False)
    measured = np.linalg.norm(A - Q @ B)
    assert measured <= thr
    assert abs(measured - res) <= 1e-6 * thr


@given(
    m=st.integers(2, 60),
    n=st.integers(2, 60),
    rank=st.integers(0, 40),
    power_iters=st.integers(0, 2),
    rel=st.sampled_from([1e-1, 1e-4, 1e-8]),
    seed=st.integers(0, 2**16),
)
def test_range_finder_blocks_stay_orthonormal_and_meet_the_tolerance(m, n, rank, power_iters, rel, seed):
    """One block or many (block = 4 here): Q orthonormal, B = Qᴴ A, ‖A − Q B‖ <= thr, measured densely."""
    rng = np.random.default_rng(seed)
    rank = min(rank, m, n)
    sv = np.logspace(0, -10, max(rank, 1))[:rank]
    U, _ = np.linalg.qr(rng.standard_normal((m, max(rank, 1))))
    V, _ = np.linalg.qr(rng.standard_normal((n, max(rank, 1))))
    A = (U[:, :rank] * sv) @ V[:, :rank].T
    xp = namespace_for("numpy")
    thr = rel * max(np.linalg.norm(A), 1e-300)
    out = adaptive_qb(
        A, thr, xp, get_func("make_rng", "numpy")(seed), "numpy", block=4, power_iters=power_iters, max_cols=min(m, n)
    )
    if out is None:  # the range would need more columns than min(m, n) allows: the caller's full SVD
        return
    Q, B, res = out
    assert np.linalg.norm(Q.T @ Q - np.eye(Q.shape[1])) <= 1e-12 * max(Q.shape[1], 1)
    np.testing.assert_allclose(B, Q.T @ A, atol=1e-12 * max(np.abs(A).max(), 1e-300))
    true = np.linalg.norm(A - Q @ B)
    assert true <= thr * (1 + 1e-6) + 1e-12 * np.linalg.norm(A)
    assert abs(res - true) <= 1e-9 * max(np.linalg.norm(A), 1e-300)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_later_order_with_nan_or_inf_is_refused_by_name(bad):
    """The norm-based check of orders k >= 1 still names the matrix and the problem."""
    rng = np.random.default_rng(0)
    mats = rng.standard_normal((4, 12, 10))
    mats[2, 3, 4] = bad
    with pytest.raises(ValueError, match=r"mats\[2\] contains NaN or Inf"):
        cascade_fit(mats, tol=1e-6)


def test_finite_values_whose_norm_overflows_are_accepted():
    """Entries near the float64 maximum: the norm overflows, the entries are finite, the fit is exact."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((8, 6))
    step = np.outer(rng.standard_normal(8), rng.standard_normal(6))
    mats = np.stack([base, base + step, base + 2 * step]) * 1e307
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sqrt(np.sum(mats[1] ** 2)))  # a naive norm overflows
    c = cascade_fit(mats, tol=1e-10)
    assert c.ranks == [1, 1]
    for k in range(3):
        np.testing.assert_allclose(c.matrix(k), mats[k], rtol=0, atol=1e-12 * np.abs(mats[k]).max())
