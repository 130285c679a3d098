"""The public names: keyword-only modes, one meaning per tolerance name, orders 0..K.

The glossary (docs/glossary.md) defines the vocabulary; these tests hold the
signatures and the documented meanings of ``rtol`` to it, against NumPy
references.
"""

import inspect
import math
import pathlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lowrank_tree as lrt
from lowrank_tree import benchmark, demo
from lowrank_tree.fit import Cascade

# (callable, the parameters that may be passed by position: the data)
SIGNATURES = [
    (lrt.cascade_fit, ["mats"]),
    (lrt.LowRankSegmentTree.__init__, ["self", "base", "corrections"]),
    (lrt.LowRankSegmentTree.range_query, ["self", "first", "last", "X"]),
    (lrt.LowRank.__init__, ["self", "U", "V"]),
    (lrt.LowRank.from_dense, ["M"]),
    (lrt.LowRank.compress, ["self"]),
    (Cascade.__init__, ["self", "base", "corrections", "errors"]),
    (lrt.numerical_difference_profile, ["mats"]),
    (lrt.direct_sum_check, ["mats"]),
    (lrt.assumption_test, ["mats"]),
    (lrt.save, ["obj", "path"]),
    (lrt.load, ["path"]),
    (lrt.synthetic_evolution, []),
    (benchmark.query_benchmark, []),
    (benchmark.median_time, ["fn"]),
    (demo.run_demo, []),
    (demo.compare, ["mats"]),
    (demo.ratio_text, ["stored", "dense"]),
    (lrt.DifferenceProfile.summary, ["self"]),
]


@pytest.mark.parametrize("func, positional", SIGNATURES, ids=[f.__qualname__ for f, _ in SIGNATURES])
def test_mode_arguments_are_keyword_only(func, positional):
    params = inspect.signature(func).parameters.values()
    assert [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == positional
    assert all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params)


def test_one_name_per_meaning():
    # the fit's relative error is tol; relative singular-value cutoffs are rtol;
    # each documents its meaning with a link to the glossary
    for func in (lrt.cascade_fit, lrt.assumption_test):
        assert "tol" in inspect.signature(func).parameters
        assert ":doc:`/glossary`" in func.__doc__, func.__qualname__
    cutoffs = [
        (lrt.LowRankSegmentTree.__init__, lrt.LowRankSegmentTree.__doc__),
        (lrt.LowRank.from_dense, lrt.LowRank.from_dense.__doc__),
        (lrt.LowRank.compress, lrt.LowRank.compress.__doc__),
        (lrt.numerical_difference_profile, lrt.numerical_difference_profile.__doc__),
        (lrt.direct_sum_check, lrt.direct_sum_check.__doc__),
    ]
    for func, doc in cutoffs:
        params = inspect.signature(func).parameters
        assert "rtol" in params and "tol" not in params, func.__qualname__
        assert ":doc:`/glossary`" in doc, func.__qualname__
    with pytest.raises(TypeError, match="tol"):
        lrt.LowRankSegmentTree(np.eye(2), tol=1e-3)
    # the numerical profile no longer shares its name with theory.difference_profile
    assert not hasattr(lrt, "difference_profile")


def test_glossary_page_is_in_the_docs():
    docs = pathlib.Path(__file__).resolve().parents[2] / "docs"
    assert "glossary" in (docs / "index.md").read_text().split()
    text = (docs / "glossary.md").read_text()
    for name in ("max_order", "`tol`", "`rtol`", "`first`", "`last`"):
        assert name in text


def test_ships_type_information():
    assert (pathlib.Path(lrt.__file__).parent / "py.typed").is_file()


@given(K=st.integers(0, 6), r=st.integers(0, 2), seed=st.integers(0, 2**32 - 1))
def test_max_order_counts_corrections_and_orders_run_0_to_K(lib, rel_err, K, r, seed):
    rng = np.random.default_rng(seed)
    m, n = 5, 4
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, r)), rng.standard_normal((n, r))) for _ in range(K)]
    tree = lrt.LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], **lib.kw)
    cascade = Cascade(base, deltas)
    assert tree.max_order == cascade.max_order == K == len(tree.corrections)
    X = rng.standard_normal((n, 3))
    orders = lib.to_numpy(tree.all_orders(lib.asarray(X)))
    assert orders.shape == (tree.max_order + 1, m, 3)
    W = base.copy()
    for k in range(K + 1):
        if k:
            W = W + deltas[k - 1][0] @ deltas[k - 1][1].T
        assert rel_err(orders[k], W @ X) <= 1e-12
    if K:
        first = int(rng.integers(1, K + 1))
        last = int(rng.integers(first, K + 1))
        ref = sum((U @ V.T for U, V in deltas[first - 1 : last]), np.zeros((m, n))) @ X
        got = lib.to_numpy(tree.range_query(first=first, last=last, X=lib.asarray(X)))
        assert np.allclose(got, ref, atol=1e-12 * (1 + np.abs(ref).max()))


# Singular values spread over decades, and cutoffs between them (never on one),
# so that the reference count is unambiguous.
SPECTRA = st.lists(st.sampled_from([1.0, 1e-2, 1e-4, 1e-7, 1e-10]), min_size=1, max_size=4)
CUTOFFS = st.sampled_from([3e-1, 3e-3, 3e-6, 3e-9])


def _with_spectrum(rng, m, n, s, scale):
    U, _ = np.linalg.qr(rng.standard_normal((m, len(s))))
    V, _ = np.linalg.qr(rng.standard_normal((n, len(s))))
    return scale * (U * np.asarray(s)) @ V.T


@given(s=SPECTRA, rtol=CUTOFFS, seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-200, 1.0, 1e200]))
def test_from_dense_rtol_is_relative_to_sigma_max(array_lib, s, rtol, seed, scale):
    rng = np.random.default_rng(seed)
    M = _with_spectrum(rng, 7, 5, s, scale)
    sv = np.linalg.svd(M / scale, compute_uv=False)
    want = int(np.sum(sv > rtol * sv[0]))  # numpy.linalg.matrix_rank(M, rtol=rtol), scale-free
    assert lrt.LowRank.from_dense(array_lib.asarray(M), rtol=rtol).rank == want


@given(s=SPECTRA, rtol=CUTOFFS, seed=st.integers(0, 2**32 - 1))
def test_difference_profile_rtol_is_relative_to_the_data(array_lib, s, rtol, seed):
    # A(0) = B, A(1) = B + C, A(2) = B + 2C: ΔA = C, Δ²A = 0; the cutoff of
    # order k is rtol · 2^k · max_j ‖A(j)‖_2 (the glossary's table)
    rng = np.random.default_rng(seed)
    B = _with_spectrum(rng, 6, 5, [1.0], 1.0)
    C = _with_spectrum(rng, 6, 5, s, 1.0)
    A = np.stack([B, B + C, B + 2 * C])
    data = max(np.linalg.norm(M, 2) for M in A)
    p = lrt.numerical_difference_profile(array_lib.asarray(A), rtol=rtol)
    sv = np.linalg.svd(C, compute_uv=False)
    assert p.rtol == rtol
    assert math.isclose(p.thresholds[1], rtol * 2 * data, rel_tol=1e-12)
    # away from the cutoff, the count is unambiguous
    if np.all(np.abs(np.log(sv / (rtol * 2 * data))) > 0.1):
        assert p.ranks[1] == int(np.sum(sv > rtol * 2 * data))
    assert p.ranks[2] == 0


def test_io_keeps_the_stored_key(tmp_path):
    # the file format is unchanged: the tree's rtol is stored under "tol", K under "num_orders"
    import json

    tree = lrt.LowRankSegmentTree(np.eye(3), [(np.ones((3, 1)), np.ones((3, 1)))], rtol=1e-6)
    path = lrt.save(tree, tmp_path / "t")
    with np.load(path) as raw:
        meta = json.loads(raw["__metadata__"].tobytes().decode("utf-8"))
    assert meta["tol"] == 1e-6 and meta["num_orders"] == 1
    again = lrt.load(path)
    assert again.rtol == 1e-6 and again.max_order == 1
