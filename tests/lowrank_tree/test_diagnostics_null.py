"""assumption_test: a family's first differences against null models, checked against NumPy references.

The references are written out here from the documented definitions: the
rank at a tolerance from explicit singular values, the null draws from
``numpy.random.default_rng(seed)`` and the Legendre polynomials, and the
decay rates of families whose differences have closed forms.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowrank_tree as lrt
from lowrank_tree.backends import get_func
from lowrank_tree.diagnostics import ISOTROPIC_NULLS, NULL_MODELS, STATISTICS, NullComparison


def ref_tol_rank(s, tol):
    """Smallest r with ‖s[r:]‖ <= tol ‖s‖ (the documented r_tol), by a plain loop."""
    s = sorted((float(v) for v in s), reverse=True)
    total = math.sqrt(math.fsum(v * v for v in s))
    if total == 0.0:
        return 0
    for r in range(len(s) + 1):
        if math.sqrt(math.fsum(v * v for v in s[r:])) <= tol * total:
            return r
    raise AssertionError("unreachable")


def ref_statistics(steps, max_order, tol):
    """The documented statistics of a family with first differences ``steps`` (p, m, n), in NumPy."""
    _, m, n = steps.shape
    pmin = min(m, n)
    profile, energy = [], []
    D = steps
    for k in range(1, max_order + 1):
        if k > 1:
            D = np.diff(D, axis=0)
        ranks = [ref_tol_rank(np.linalg.svd(d, compute_uv=False), tol) for d in D]
        if k == 1:
            step_ranks = ranks
        profile.append(np.mean(ranks))
        energy.append(math.sqrt(np.mean([np.linalg.norm(d) ** 2 for d in D])))
    out = {
        "step_ranks": step_ranks,
        "step_rank": np.mean(step_ranks) / pmin,
        "displacement_rank": ref_tol_rank(np.linalg.svd(steps.sum(axis=0), compute_uv=False), tol) / pmin,
        "rank_profile": profile,
    }
    if max_order > 1:
        out["rank_rate"] = (profile[-1] - profile[0]) / ((max_order - 1) * pmin)
        out["energy_rate"] = math.log(energy[-1] / energy[0]) / (max_order - 1)
    return out


def ref_haar(Z):
    """Haar-distributed orthonormal columns from each Gaussian matrix of the stack Z, by NumPy's QR and a sign fix."""
    out = []
    for z in Z:
        Q, R = np.linalg.qr(z)
        out.append(Q * np.sign(np.diag(R)))
    return np.array(out)


def ref_null_steps(steps, null, normal):
    """One null draw's steps with the family's step norms; ``normal(shape)`` draws from the backend's generator.

    Draw order (documented by the implementation): random walk, one (p, m, n) draw; smooth, one
    (4, m n) draw of the Legendre coefficients; rotated, one (p, m, r) and one (p, n, r) draw.
    """
    p, m, n = steps.shape
    if null == "rotated":
        r = min(m, n)
        Q, P = ref_haar(normal((p, m, r))), ref_haar(normal((p, n, r)))
        s = np.linalg.svd(steps, compute_uv=False)
        G = np.array([(Q[j] * s[j]) @ P[j].T for j in range(p)])
    elif null == "random_walk":
        G = normal((p, m, n))
    else:
        x = np.linspace(-1.0, 1.0, p) if p > 1 else np.zeros(1)
        C = normal((4, m * n))
        G = sum(np.polynomial.Legendre.basis(i)(x)[:, None] * C[i] for i in range(4)).reshape(p, m, n)
    norms = np.linalg.norm(steps.reshape(p, -1), axis=1)
    return G * (norms / np.linalg.norm(G.reshape(p, -1), axis=1))[:, None, None]


def low_rank_walk(rng, L, m, n, r):
    """``W_j = W_0 + Σ_{i<=j} U_i S V_iᵀ``: orthonormal U_i, V_i, singular values 1, 1/2, ... (exact rank r)."""
    steps = []
    for _ in range(L - 1):
        U, _ = np.linalg.qr(rng.standard_normal((m, r)))
        V, _ = np.linalg.qr(rng.standard_normal((n, r)))
        steps.append((U * (0.5 ** np.arange(r))) @ V.T * rng.uniform(0.5, 2.0))
    return np.cumsum([rng.standard_normal((m, n))] + steps, axis=0)


# --------------------------------------------------------------------------
# the family that is a cumulative low-rank walk, and the one that is noise
# --------------------------------------------------------------------------
@settings(max_examples=10)
@given(m=st.integers(12, 20), n=st.integers(8, 20), L=st.integers(3, 8), seed=st.integers(0, 2**32 - 1))
def test_low_rank_walk_scores_clearly_better_than_noise(lib, m, n, L, seed):
    rng = np.random.default_rng(seed)
    W = low_rank_walk(rng, L, m, n, r=2)
    t = lrt.assumption_test(lib.asarray(W), tol=1e-2, null_samples=19, seed=seed)
    pmin = min(m, n)
    assert t.step_ranks == [2] * (L - 1)
    assert t.statistics["step_rank"] == pytest.approx(2 / pmin)
    for null in ISOTROPIC_NULLS:
        c = t.nulls[null]["step_rank"]
        # a Gaussian m×n matrix needs almost full rank for 1 % error; every draw is far above rank 2
        assert c.low > 4 / pmin
        assert c.p_value == pytest.approx(1 / 20)
        assert c.z == -math.inf or c.z < -5
    assert t.better_than_noise(alpha=0.05)
    # the rotated null keeps every step's singular values: the same step ranks, so no evidence there
    assert t.nulls["rotated"]["step_rank"].draws == (2 / pmin,) * 19
    assert t.p_value("rotated") == 1.0
    # the displacement is a sum of L - 1 rank-2 steps: rank <= 2 (L - 1), below every draw when that is small
    assert t.statistics["displacement_rank"] <= 2 * (L - 1) / pmin
    for null in ISOTROPIC_NULLS:
        c = t.nulls[null]["displacement_rank"]
        if 2 * (L - 1) < c.low * pmin:
            assert c.p_value == pytest.approx(1 / 20)


def test_steps_on_shared_subspaces_beat_the_rotated_null(lib):
    # ΔA(j) = U S_j Vᵀ with one U (m×2), V (n×2): every partial sum has rank <= 2, while the same
    # spectra on independent random subspaces add up to rank min(2 (L - 1), p) (here >= 6)
    rng = np.random.default_rng(8)
    m, n, L = 15, 11, 6
    U, _ = np.linalg.qr(rng.standard_normal((m, 2)))
    V, _ = np.linalg.qr(rng.standard_normal((n, 2)))
    steps = [U @ np.diag([1.0, rng.uniform(0.3, 0.9)]) @ V.T * rng.uniform(0.5, 2) for _ in range(L - 1)]
    W = np.cumsum([rng.standard_normal((m, n))] + steps, axis=0)
    t = lrt.assumption_test(lib.asarray(W), null="rotated", null_samples=19, seed=3)
    assert t.statistics["displacement_rank"] == pytest.approx(2 / n)
    c = t.nulls["rotated"]["displacement_rank"]
    assert c.low >= 6 / n and c.p_value == pytest.approx(1 / 20)
    assert t.shares_subspaces()
    with pytest.raises(ValueError, match="needs the 'random_walk' or the 'smooth' null"):
        t.better_than_noise()


def test_random_walk_family_scores_like_the_null(lib):
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        m, n, L = 14, 9, 12
        steps = rng.standard_normal((L - 1, m, n)) * rng.uniform(0.2, 3.0, (L - 1, 1, 1))
        W = np.cumsum(np.concatenate([rng.standard_normal((1, m, n)), steps]), axis=0)
        t = lrt.assumption_test(lib.asarray(W), tol=1e-2, null="random_walk", null_samples=30, seed=seed)
        ref = ref_statistics(steps, 3, 1e-2)
        assert t.step_ranks == ref["step_ranks"]
        assert not t.better_than_noise()
        for name in STATISTICS:
            c = t.nulls["random_walk"][name]
            assert c.value == pytest.approx(ref[name], rel=1e-9, abs=1e-12)
            # within the null's spread: no evidence either way
            assert c.p_value > 0.05
            assert c.low <= c.value <= c.high or abs(c.z) < 3


# --------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------
@settings(max_examples=15)
@given(
    theta=st.floats(0.2, 3.0),
    r=st.integers(1, 3),
    extra=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    L=st.integers(3, 9),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_decay_rates_of_a_rotating_family_match_the_closed_form(lib, theta, r, extra, L, seed, data):
    # A(j) = cos(θj) M1 + sin(θj) M2, M1 and M2 with r unit singular values on orthogonal column and
    # row spaces: Δ^k A(j) = ρ^k (cos ψ M1 + sin ψ M2) with ρ = 2 sin(θ/2) and ψ = k(π + θ)/2 + θj,
    # so e_k = ρ^k sqrt(r), energy_rate = ln ρ, and the singular values of Δ^k A(j) are
    # ρ^k |cos ψ| and ρ^k |sin ψ|, r times each
    m, n = 2 * r + extra[0], 2 * r + extra[1]
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, 2 * r)))
    V, _ = np.linalg.qr(rng.standard_normal((n, 2 * r)))
    M1, M2 = U[:, :r] @ V[:, :r].T, U[:, r:] @ V[:, r:].T
    A = np.array([math.cos(theta * j) * M1 + math.sin(theta * j) * M2 for j in range(L)])
    K = data.draw(st.integers(2, L - 1))
    tol = data.draw(st.sampled_from([1e-3, 1e-2, 0.3]))
    t = lrt.assumption_test(lib.asarray(A), tol=tol, max_order=K, null=None)
    rho = 2 * math.sin(theta / 2)
    assert t.statistics["energy_rate"] == pytest.approx(math.log(rho), abs=1e-9)
    assert t.energy_profile == pytest.approx([rho**k * math.sqrt(r) for k in range(1, K + 1)], rel=1e-9)

    def rank_at(k, j):
        psi = k * (math.pi + theta) / 2 + theta * j
        c, s = abs(math.cos(psi)), abs(math.sin(psi))
        return ref_tol_rank([c] * r + [s] * r, tol)

    profile = [np.mean([rank_at(k, j) for j in range(L - k)]) for k in range(1, K + 1)]
    assert t.rank_profile == pytest.approx(profile)
    assert t.statistics["rank_rate"] == pytest.approx((profile[-1] - profile[0]) / ((K - 1) * min(m, n)))


def test_geometric_family_energy_rate_and_exhausted_polynomial():
    # A(j) = (-1)^j M: Δ^k A(j) = (-2)^k (-1)^j M, so e_k = 2^k ‖M‖_F and the rate is ln 2
    M = np.outer([1.0, 2.0, 3.0], [1.0, -1.0])
    A = np.array([(-1.0) ** j * M for j in range(6)])
    t = lrt.assumption_test(A, max_order=4, null=None)
    assert t.statistics["energy_rate"] == pytest.approx(math.log(2), rel=1e-12)
    assert t.rank_profile == [1, 1, 1, 1]
    # a linear family: second differences vanish exactly, so the rate is -inf and the rank falls to 0
    B = np.array([M + j * np.eye(3, 2) for j in range(5)])
    t = lrt.assumption_test(B, max_order=2, null=None)
    assert t.rank_profile == [2, 0]
    assert t.statistics["energy_rate"] == -math.inf
    assert t.statistics["rank_rate"] == pytest.approx(-2 / 2)


# --------------------------------------------------------------------------
# the null draws are the documented ones, and reproducible
# --------------------------------------------------------------------------
@pytest.mark.parametrize("null", NULL_MODELS)
def test_null_draws_follow_the_documented_definition(lib, null):
    rng = np.random.default_rng(7)
    W = low_rank_walk(rng, 7, 11, 6, r=1)
    steps = np.diff(W, axis=0)
    t = lrt.assumption_test(lib.asarray(W), tol=0.05, null=null, null_samples=4, seed=123)
    # the draws come from the backend's own generator, on the input's device
    draw_rng = get_func("make_rng", lib.name)(123, lib.device)

    def normal(shape):
        return lib.to_numpy(get_func("standard_normal", lib.name)(draw_rng, shape, lib.xp.float64))

    profiles = []
    for i in range(4):
        ref = ref_statistics(ref_null_steps(steps, null, normal), 3, 0.05)
        profiles.append(ref["rank_profile"])
        for name in STATISTICS:
            assert t.nulls[null][name].draws[i] == pytest.approx(ref[name], rel=1e-8, abs=1e-12)
    assert t.null_rank_profiles[null] == pytest.approx(np.mean(profiles, axis=0))
    # the reported spread is the draws' own
    c = t.nulls[null]["energy_rate"]
    assert c.mean == pytest.approx(np.mean(c.draws))
    assert c.std == pytest.approx(np.std(c.draws, ddof=1))


def test_seeds_are_reproducible():
    W = low_rank_walk(np.random.default_rng(3), 9, 10, 7, r=2)
    a = lrt.assumption_test(W, null_samples=5, seed=42)
    b = lrt.assumption_test(W, null_samples=5, seed=np.random.default_rng(42))
    c = lrt.assumption_test(W, null_samples=5, seed=43)
    for null in NULL_MODELS:
        assert a.nulls[null]["energy_rate"].draws == b.nulls[null]["energy_rate"].draws
        assert a.nulls[null]["energy_rate"].draws != c.nulls[null]["energy_rate"].draws
    assert a.statistics == c.statistics


# --------------------------------------------------------------------------
# edge cases
# --------------------------------------------------------------------------
def test_one_difference(lib):
    rng = np.random.default_rng(5)
    W = low_rank_walk(rng, 2, 3, 9, r=2)
    t = lrt.assumption_test(lib.asarray(W), null_samples=3, seed=0)
    assert t.max_order == 1 and t.step_ranks == [2] and t.shape == (2, 3, 9)
    assert t.statistics["displacement_rank"] == t.statistics["step_rank"] == pytest.approx(2 / 3)
    assert math.isnan(t.statistics["rank_rate"]) and math.isnan(t.statistics["energy_rate"])
    assert math.isnan(t.nulls["smooth"]["energy_rate"].z)
    assert math.isnan(t.p_value("random_walk", "energy_rate"))


def test_constant_family_and_one_by_one():
    t = lrt.assumption_test(np.ones((4, 5, 3)), null_samples=3, seed=0)
    assert t.step_ranks == [0, 0, 0] and t.rank_profile == [0, 0, 0]
    assert math.isnan(t.statistics["energy_rate"])
    # the null keeps the zero step norms: no evidence
    assert t.nulls["random_walk"]["step_rank"].draws == (0.0, 0.0, 0.0)
    assert t.p_value() == 1.0 and not t.better_than_noise()
    s = lrt.assumption_test([[[1.0]], [[2.0]], [[4.0]]], null_samples=2, seed=0)
    assert s.step_ranks == [1, 1] and s.statistics["energy_rate"] == pytest.approx(math.log(1 / math.sqrt(2.5)))


@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e300])
def test_scale_free(scale):
    W = low_rank_walk(np.random.default_rng(11), 6, 8, 5, r=2)
    ref = lrt.assumption_test(W, null_samples=3, seed=1)
    t = lrt.assumption_test(W * scale, null_samples=3, seed=1)
    assert t.step_ranks == ref.step_ranks and t.rank_profile == ref.rank_profile
    assert t.statistics["energy_rate"] == pytest.approx(ref.statistics["energy_rate"], rel=1e-9)
    assert t.energy_profile == pytest.approx([e * scale for e in ref.energy_profile], rel=1e-9)
    assert t.nulls["random_walk"]["step_rank"].draws == ref.nulls["random_walk"]["step_rank"].draws


def test_float32_and_integer_input():
    W = low_rank_walk(np.random.default_rng(2), 5, 9, 6, r=1)
    assert lrt.assumption_test(W.astype(np.float32), null=None).step_ranks == [1] * 4
    t = lrt.assumption_test(np.arange(2 * 3 * 2).reshape(2, 3, 2), null=None)
    assert t.step_ranks == [1]


def test_summary_names_every_statistic():
    t = lrt.assumption_test(low_rank_walk(np.random.default_rng(0), 5, 6, 4, r=1), null_samples=19, seed=0)
    text = str(t)
    for name in (*STATISTICS, *NULL_MODELS, "(step_rank, p <= 0.05): yes", "vs rotated, p <= 0.05): no"):
        assert name in text


def test_null_comparison_z_conventions():
    assert NullComparison("random_walk", "step_rank", 0.5, (1.0, 1.0)).z == -math.inf
    assert NullComparison("random_walk", "step_rank", 1.0, (1.0, 1.0)).z == 0.0
    assert NullComparison("random_walk", "step_rank", 1.0, (0.0, 2.0)).z == 0.0
    assert NullComparison("random_walk", "step_rank", 3.0, (0.0, 2.0)).z == pytest.approx(2 / math.sqrt(2))
    assert math.isnan(NullComparison("random_walk", "step_rank", 1.0, (1.0,)).z)
    c = NullComparison("smooth", "energy_rate", 0.0, (-1.0, 0.0, 1.0))
    assert c.p_value == pytest.approx(3 / 4) and c.low == -1.0 and c.high == 1.0


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"null": "gaussian"}, ValueError, "null must be one of"),
        ({"null": ["smooth", "smooth"]}, ValueError, "null names a model twice"),
        ({"null": 3}, TypeError, "null must be a string"),
        ({"null": [None]}, TypeError, "null must be a string"),
        ({"null_samples": 0}, ValueError, "null_samples must be in"),
        ({"null_samples": 2.0}, TypeError, "null_samples must be an integer"),
        ({"max_order": 0}, ValueError, "max_order must be in"),
        ({"max_order": 5}, ValueError, "max_order must be in"),
        ({"tol": 1.5}, ValueError, "tol must be in"),
        ({"tol": "x"}, TypeError, "tol must be a real number"),
        ({"tol": None}, TypeError, "tol must be a real number"),
        ({"seed": "abc"}, TypeError, "seed must be"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, exc, match):
    W = np.zeros((4, 3, 2))
    with pytest.raises(exc, match=match):
        lrt.assumption_test(W, **kwargs)


def test_bad_families():
    with pytest.raises(ValueError, match="at least 2 matrices"):
        lrt.assumption_test(np.ones((1, 3, 3)))
    with pytest.raises(ValueError, match=r"mats\[1\]"):
        lrt.assumption_test([np.ones((3, 3)), np.ones((3, 2))])
    with pytest.raises(ValueError, match=r"NaN|finite"):
        lrt.assumption_test(np.full((2, 2, 2), np.nan))
    with pytest.raises(TypeError, match="mats must be real"):
        lrt.assumption_test(np.ones((2, 2, 2), dtype=complex))
    t = lrt.assumption_test(np.ones((3, 2, 2)), null=None)
    with pytest.raises(ValueError, match="needs the .random_walk. or the .smooth. null"):
        t.better_than_noise()
    t = lrt.assumption_test(np.ones((3, 2, 2)), null="smooth", null_samples=1, seed=0)
    with pytest.raises(ValueError, match="null must be one of the null models computed"):
        t.p_value("random_walk")
    with pytest.raises(ValueError, match="statistic must be one of"):
        t.p_value("smooth", "rank")
    with pytest.raises(ValueError, match="alpha must be in"):
        t.better_than_noise(alpha=1.0)
    with pytest.raises(ValueError, match="needs the 'rotated' null"):
        t.shares_subspaces()


def test_options_are_keyword_only_and_documented():
    import inspect

    params = inspect.signature(lrt.assumption_test).parameters.values()
    assert [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == ["mats"]
    assert ":doc:`/glossary`" in lrt.assumption_test.__doc__
    assert "assumption_test" in lrt.__all__ and "AssumptionTest" in lrt.__all__
