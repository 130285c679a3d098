"""The fit's pieces: method resolution, rank validation up front, and the budget allocation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowrank_tree
from lowrank_tree import cascade_fit
from lowrank_tree._budget import allocate_budget
from lowrank_tree.fit import _MethodChoice


def test_auto_method_is_chosen_from_the_previous_rank():
    choice = _MethodChoice("auto", (400, 1000))  # high rank: above 400 // 4 = 100
    assert choice.method == "randomized"
    choice.record("exact", 101)
    assert choice.method == "exact"
    choice.record("exact", 100)
    assert choice.method == "randomized"
    choice.record(None, 0)  # an order without a factorisation changes nothing
    assert choice.method == "randomized" and choice.reported() == "exact"
    choice.record("randomized", 3)
    assert choice.reported() == "randomized"
    fixed = _MethodChoice("exact", (3, 3))
    fixed.record("exact", 3)
    assert fixed.method == "exact" and fixed.reported() == "exact"
    assert _MethodChoice("randomized", (3, 3)).reported() == "randomized"
    assert cascade_fit(np.zeros((2, 3, 3)), method="auto").method == "exact"
    assert cascade_fit(np.zeros((2, 3, 3)), budget=6, method="auto").method == "exact"


def counting(mats, seen):
    for M in mats:
        seen.append(1)
        yield M


@pytest.mark.parametrize("ranks, match", [([1, 4, 1], r"ranks\[1\]"), (-1, "ranks"), (4, "ranks")])
def test_ranks_are_checked_against_the_base_before_any_order_is_fitted(ranks, match):
    seen = []
    with pytest.raises(ValueError, match=match):
        cascade_fit(counting(np.ones((4, 3, 3)), seen), ranks=ranks)
    assert len(seen) == 1  # only M_0 was read


def test_ranks_of_a_stream_are_checked_as_it_goes_and_at_its_end():
    seen = []
    with pytest.raises(ValueError, match="got 1 ranks for at least 2 corrections"):
        cascade_fit(counting(np.ones((4, 3, 3)), seen), ranks=[1])
    assert len(seen) == 3
    with pytest.raises(ValueError, match=r"ranks must have length K = 1 \(one rank per correction\), got 3"):
        cascade_fit(iter(np.ones((2, 3, 3))), ranks=[1, 1, 1])
    with pytest.raises(ValueError, match=r"ranks must have length K = 3 \(one rank per correction\), got 2"):
        cascade_fit(np.ones((4, 3, 3)), ranks=[1, 1])


def reference_allocation(mats, budget):
    """Largest weighted gains σ_j(M_k − M_{k−1})² Σ_{i>=k} 1/‖M_i‖², greedily, straight from NumPy."""
    K = len(mats) - 1
    m, n = mats[0].shape
    units = budget // (m + n)
    inv2 = [1.0 / np.linalg.norm(M) ** 2 for M in mats[1:]]
    gains = []
    for k in range(1, K + 1):
        w = sum(inv2[k - 1 :])
        s = np.linalg.svd(mats[k] - mats[k - 1], compute_uv=False)
        gains += [(sv * sv * w, k) for sv in s[: min(units, m, n)]]
    ranks = [0] * K
    for _, k in sorted(gains, key=lambda g: -g[0])[:units]:
        ranks[k - 1] += 1
    return ranks


@settings(max_examples=25, deadline=None)
@given(
    K=st.integers(0, 4),
    m=st.integers(1, 6),
    n=st.integers(1, 6),
    units=st.integers(0, 12),
    scale=st.integers(-40, 40),
    seed=st.integers(0, 2**16),
)
def test_budget_allocation_matches_the_greedy_reference(lib, K, m, n, units, scale, seed):
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal((m, n)) * 2.0**scale for _ in range(K + 1)]
    budget = units * (m + n) + int(rng.integers(0, m + n))  # leftovers below one rank unit are unused
    expected = reference_allocation(mats, budget)
    opts = {"oversample": 10, "power_iters": 2, "seed": 0}
    on_lib = [lib.asarray(M) for M in mats]
    assert allocate_budget(on_lib, budget, lib.xp, "exact", opts, one_blas_thread=True) == expected
    assert cascade_fit(lib.asarray(np.stack(mats)), budget=budget, **lib.kw).ranks == expected


BAD_FAMILIES = [
    (
        None,
        TypeError,
        (
            r"mats must be a 3-D array .*, a sequence of 2-D arrays or an iterator of 2-D arrays, "
            r"got NoneType"
        ),
    ),
    ("abc", TypeError, "mats must be a 3-D array .* got str"),
    (3.0, TypeError, "mats must be a 3-D array .* got float"),
    ([], ValueError, "mats must hold at least one matrix, got an empty list"),
    ((), ValueError, "mats must hold at least one matrix, got an empty tuple"),
    (np.zeros((0, 2, 2)), ValueError, r"mats must hold at least one matrix, got shape \(0, 2, 2\)"),
    (np.eye(2), ValueError, r"mats must be a 3-D array .* got an array of shape \(2, 2\); pass \[M\]"),
]


@pytest.mark.parametrize("mats, error, match", BAD_FAMILIES)
def test_fit_and_diagnostics_refuse_bad_families_alike(mats, error, match):
    with pytest.raises(error, match=match):
        cascade_fit(mats)
    with pytest.raises(error, match=match):
        lowrank_tree.numerical_difference_profile(mats)


def test_fit_and_diagnostics_refuse_an_empty_iterator_alike():
    for reader in (cascade_fit, lowrank_tree.numerical_difference_profile):
        with pytest.raises(ValueError, match="mats must hold at least one matrix, got an empty iterator"):
            reader(iter([]))
        with pytest.raises(ValueError, match="mats must hold at least one matrix, got an empty iterator"):
            reader(M for M in ())


@settings(max_examples=15, deadline=None)
@given(
    L=st.integers(1, 4),
    m=st.integers(1, 5),
    n=st.integers(1, 5),
    kind=st.sampled_from(["array", "list", "iter"]),
    seed=st.integers(0, 2**16),
)
def test_fit_and_diagnostics_read_every_kind_of_family(lib, L, m, n, kind, seed):
    rng = np.random.default_rng(seed)
    stack = rng.standard_normal((L, m, n)) @ np.diag(rng.integers(0, 2, n).astype(float))
    items = [lib.asarray(M) for M in stack]
    family = {"array": lambda: lib.asarray(stack), "list": lambda: list(items), "iter": lambda: iter(items)}[kind]
    fitted = cascade_fit(family(), **lib.kw)
    for k in range(L):
        np.testing.assert_allclose(lib.to_numpy(fitted.matrix(k)), stack[k], atol=1e-12 * max(1.0, np.abs(stack).max()))
    ranks = lowrank_tree.numerical_difference_profile(family()).ranks
    assert ranks[0] == max(np.linalg.matrix_rank(M) for M in stack)
