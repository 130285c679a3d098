"""The tolerance fit's shortcuts keep ranks and errors: plain sketches where the rank is provably minimal,
the range finder's indicator where it is far above rounding."""

import numpy as np
import pytest

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
    # and the next orders go straight to power iterations.
    sv = 0.9 ** np.arange(40)
    mats = spectrum_family(np.random.default_rng(1), 3, 120, 100, sv)
    calls = record_power_iters(monkeypatch)
    c = cascade_fit(mats, tol=0.005, method="randomized", seed=0)
    assert calls[:2] == [0, 2] and calls[2:] == [2, 2]
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
