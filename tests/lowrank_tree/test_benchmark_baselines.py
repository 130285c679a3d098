"""The benchmark baselines compute what they claim to, on every backend."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lowrank_tree.benchmark import loop_all_orders, loop_query


@st.composite
def families(draw):
    m, n, b, K = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(0, 5))
    ranks = draw(st.lists(st.integers(0, 3), min_size=K, max_size=K))
    scale = 10.0 ** draw(st.integers(-100, 100))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = scale * rng.standard_normal((m, n))
    factors = [(scale * rng.standard_normal((m, r)), rng.standard_normal((n, r))) for r in ranks]
    return base, factors, rng.standard_normal((n, b))


@given(fam=families())
def test_loops_match_dense_prefix_sums(lib, rel_err, fam):
    base, factors, X = fam
    dense = [base]  # independent reference: materialise every W_k
    for U, V in factors:
        dense.append(dense[-1] + U @ V.T)
    want = np.stack([W @ X for W in dense])
    on = [(lib.asarray(U), lib.asarray(V)) for U, V in factors]
    got_all = lib.to_numpy(loop_all_orders(lib.asarray(base), on, lib.asarray(X)))
    assert got_all.shape == want.shape and rel_err(got_all, want) <= 1e-13
    for k in range(len(factors) + 1):
        got = lib.to_numpy(loop_query(lib.asarray(base), on, k, lib.asarray(X)))
        assert rel_err(got, want[k]) <= 1e-13


def test_interleaved_samples_times_every_function_in_every_round():
    from lowrank_tree.benchmark import interleaved_samples

    calls = {"a": 0, "b": 0}
    order = []

    def make(name):
        def fn():
            calls[name] += 1
            order.append(name)

        return fn

    samples = interleaved_samples({"a": make("a"), "b": make("b")}, repeat=4, min_time=0.0, untimed_call_first=True)
    assert {k: len(v) for k, v in samples.items()} == {"a": 4, "b": 4}
    assert all(t >= 0 for v in samples.values() for t in v)
    # calibration: a warm-up and one timed call each; then per round one untimed and one timed call each
    assert calls == {"a": 2 + 4 * 2, "b": 2 + 4 * 2}
    assert order[4:] == ["a", "a", "b", "b"] * 4  # round-robin: the functions alternate round by round
