"""A hypothesis state machine drives a tree through every operation against a dense model.

Rules: construction (from NumPy data, and again from what a tree hands out),
query, mixed query, range query, all orders, update, append, clear_cache and a
save/load round trip; every answer is compared with
the dense NumPy model ``W_k = W_0 + Δ_1 + ... + Δ_k`` and the tree's internal
invariants (``_check``) are verified after every step.
"""

import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from lowrank_tree import LowRank, LowRankSegmentTree, load, save
from lowrank_tree.backends import get_func

SEEDS = st.integers(0, 2**32 - 1)
#: 1e-12 is above the lossless default (max(m, n) eps): a lossy tree, whose
#: answers may differ from the model by the (tiny) recompression error.
TOLS = st.sampled_from([None, None, 1e-12])
CACHES = st.sampled_from([0, 600, 2**28])


class TreeMachine(RuleBasedStateMachine):
    backend = "numpy"

    def __init__(self):
        super().__init__()
        self.tree = None
        self.dirs = []

    # -- helpers ---------------------------------------------------------
    def to_lib(self, a):
        return get_func("asarray", self.backend)(np.array(a))

    def to_np(self, a):
        return np.asarray(get_func("to_numpy", self.backend)(a))

    def dense(self, k):
        return self.base + sum(self.deltas[:k], np.zeros_like(self.base))

    def scale(self, X):
        """Size of the terms of a sum: cancellation makes a relative error meaningless."""
        terms = np.linalg.norm(self.base) + sum(np.linalg.norm(D) for D in self.deltas)
        return terms * max(np.linalg.norm(X), 1.0)

    def assert_close(self, got, want, X):
        got = self.to_np(got)
        assert got.shape == want.shape, (got.shape, want.shape)
        err = np.linalg.norm(got - want)
        assert err <= 1e-9 * self.scale(X), f"error {err:.3e} against the dense model"

    def correction(self, seed):
        """A random correction as the caller would pass it, and its dense value."""
        rng = np.random.default_rng(seed)
        r = int(rng.integers(0, 4))
        U, V = rng.standard_normal((self.m, r)), rng.standard_normal((self.n, r))
        form = int(rng.integers(0, 3))
        if form == 0:
            return (self.to_lib(U), self.to_lib(V)), U @ V.T
        if form == 1:
            return LowRank(self.to_lib(U), self.to_lib(V), backend=self.backend), U @ V.T
        return self.to_lib(U @ V.T), U @ V.T

    def batch(self, seed, b=None):
        rng = np.random.default_rng(seed)
        b = b if b is not None else int(rng.integers(1, 4))
        return rng.standard_normal((self.n, b))

    @property
    def K(self):
        return len(self.deltas)

    # -- rules -----------------------------------------------------------
    @initialize(m=st.integers(1, 6), n=st.integers(1, 6), K=st.integers(0, 6), seed=SEEDS, tol=TOLS, cache=CACHES)
    def build(self, m, n, K, seed, tol, cache):
        self.m, self.n = m, n
        rng = np.random.default_rng(seed)
        self.base = rng.standard_normal((m, n))
        pairs = [self.correction(int(rng.integers(2**32))) for _ in range(K)]
        self.deltas = [D for _, D in pairs]
        self.tree = LowRankSegmentTree(
            self.to_lib(self.base), [c for c, _ in pairs], rtol=tol, backend=self.backend, cache_bytes=cache
        )
        assert self.tree.max_order == K and self.tree.shape == (m, n)

    @rule(k=st.integers(0, 100), seed=SEEDS, vector=st.booleans())
    def query(self, k, seed, vector):
        k %= self.K + 1
        X = self.batch(seed)
        if vector:
            X = X[:, 0]
        self.assert_close(self.tree.query(k, self.to_lib(X)), self.dense(k) @ X, X)

    @rule(seed=SEEDS)
    def mixed_query(self, seed):
        rng = np.random.default_rng(seed)
        X = self.batch(seed, b=int(rng.integers(1, 6)))
        ks = rng.integers(0, self.K + 1, size=X.shape[1])
        want = np.stack([self.dense(int(k)) @ X[:, j] for j, k in enumerate(ks)], axis=1)
        self.assert_close(self.tree.query(self.to_lib(ks), self.to_lib(X)), want, X)

    @precondition(lambda self: self.K > 0)
    @rule(a=st.integers(0, 100), b=st.integers(0, 100), seed=SEEDS)
    def range_query(self, a, b, seed):
        first, last = sorted((a % self.K + 1, b % self.K + 1))
        X = self.batch(seed)
        want = sum(self.deltas[first - 1 : last], np.zeros_like(self.base)) @ X
        self.assert_close(self.tree.range_query(first, last, self.to_lib(X)), want, X)

    @rule(seed=SEEDS)
    def all_orders(self, seed):
        X = self.batch(seed)
        A = self.to_np(self.tree.all_orders(self.to_lib(X)))
        want = np.stack([self.dense(k) @ X for k in range(self.K + 1)])
        self.assert_close(A, want, X)
        # the same answers as the queries, whatever the tolerance
        for k in range(self.K + 1):
            Y = self.to_np(self.tree.query(k, self.to_lib(X)))
            assert np.linalg.norm(A[k] - Y) <= 1e-12 * self.scale(X)

    @precondition(lambda self: self.K > 0)
    @rule(i=st.integers(0, 100), seed=SEEDS)
    def update(self, i, seed):
        i = i % self.K + 1
        delta, D = self.correction(seed)
        self.tree.update(i, delta)
        self.deltas[i - 1] = D

    @rule(seed=SEEDS)
    def append(self, seed):
        delta, D = self.correction(seed)
        self.tree.append(delta)
        self.deltas.append(D)
        assert self.tree.max_order == self.K

    @rule(cache=CACHES)
    def rebuild(self, cache):
        """Construction from what a tree hands out (read-only views or copies, shared LowRanks)."""
        old = self.tree
        self.tree = LowRankSegmentTree(
            old.base, old.corrections, rtol=old._tol, backend=self.backend, cache_bytes=cache
        )
        assert self.tree.ranks == old.ranks and self.tree.max_order == self.K

    @rule()
    def clear_cache(self):
        self.tree.clear_cache()
        assert self.tree.cache_nbytes == 0

    @rule()
    def save_and_load(self):
        directory = tempfile.mkdtemp(prefix="lowrank-tree-stateful-")
        self.dirs.append(directory)
        path = save(self.tree, os.path.join(directory, "tree.npz"))
        again = load(path, backend=self.backend)
        assert again.max_order == self.K and again.ranks == self.tree.ranks and again.rtol == self.tree.rtol
        self.tree = again

    # -- invariants ------------------------------------------------------
    @invariant()
    def internal_invariants(self):
        if self.tree is not None:
            self.tree._check()

    def teardown(self):
        for directory in self.dirs:
            shutil.rmtree(directory, ignore_errors=True)


def machine_for(backend):
    return type(f"TreeMachine_{backend}", (TreeMachine,), {"backend": backend})


@pytest.mark.parametrize("backend", ["numpy", "numba", "array_api_strict"])
def test_tree_state_machine(backend):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        machine_for(backend),
        settings=settings(
            max_examples=20,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


@settings(max_examples=15, deadline=None)
@given(K=st.integers(2, 9), seed=SEEDS, tol=st.sampled_from([1e-3, 1e-2, 0.1]))
def test_lossy_tol_query_and_all_orders_agree(lib, K, seed, tol):
    """A lossy ``rtol`` drops directions in merged nodes; ``all_orders`` must drop the same ones."""
    rng = np.random.default_rng(seed)
    m, n = 8, 6
    base = rng.standard_normal((m, n))
    # each correction: a strong direction and a weak one (1e-5 of it) that lossy merges drop
    deltas = [(rng.standard_normal((m, 2)) * np.array([1.0, 1e-5]), rng.standard_normal((n, 2))) for _ in range(K)]
    tree = LowRankSegmentTree(
        lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], rtol=tol, **lib.kw
    )
    X = rng.standard_normal((n, 3))
    A = lib.to_numpy(tree.all_orders(lib.asarray(X)))
    exact = base.copy()
    lost = 0.0
    for k in range(K + 1):
        if k:
            exact = exact + deltas[k - 1][0] @ deltas[k - 1][1].T
        Y = lib.to_numpy(tree.query(k, lib.asarray(X)))
        scale = (np.linalg.norm(base) + sum(np.linalg.norm(U @ V.T) for U, V in deltas)) * np.linalg.norm(X)
        assert np.linalg.norm(A[k] - Y) <= 1e-12 * scale
        lost = max(lost, np.linalg.norm(Y - exact @ X) / scale)
    assert lost > 1e-9  # the tree really is lossy here, so the agreement above is not trivial
    tree._check()
