"""Ownership: objects copy what they are given and never hand out writable views of their state.

Every test writes to the arrays a caller still holds (after construction,
``update`` or ``append``) or to the arrays an object handed out, and checks the
object against a dense NumPy reference taken before the write.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank_tree import Cascade, LowRank, LowRankSegmentTree, cascade_fit

TOL = 1e-12
NUMPY_BACKED = ("numpy", "numba")


def given_to(lib, a):
    """A caller's own array on ``lib`` (a copy, so that the NumPy reference survives the scribbling)."""
    return lib.asarray(np.array(a))


def scribble(a):
    """Overwrite an array in place, as a careless caller would (``Us[0] *= 10`` and worse)."""
    a[...] = 12345.0


def exposure_is_safe(lib, a, read):
    """Writing to the handed-out array ``a`` raises (read-only view) or leaves ``read()`` unchanged (copy)."""
    before = lib.to_numpy(read())
    if lib.name in NUMPY_BACKED:
        assert isinstance(a, np.ndarray) and not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            scribble(a)
    else:
        scribble(a)  # a copy: writing works and changes nothing
    np.testing.assert_array_equal(lib.to_numpy(read()), before)


@st.composite
def families(draw, max_K=6):
    K = draw(st.integers(0, max_K))
    m, n = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    ranks = draw(st.lists(st.integers(0, 3), min_size=K, max_size=K))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, r)), rng.standard_normal((n, r))) for r in ranks]
    return base, deltas, rng


def dense_orders(base, deltas):
    W = [np.array(base, dtype=np.float64)]
    for U, V in deltas:
        W.append(W[-1] + np.asarray(U) @ np.asarray(V).T)
    return W


def tree_answers(lib, tree, X):
    """Every query kind at every order, as host arrays."""
    K = tree.max_order
    Xl = given_to(lib, X)
    out = [lib.to_numpy(tree.query(k, Xl)) for k in range(K + 1)]
    out.append(lib.to_numpy(tree.all_orders(Xl)))
    out += [lib.to_numpy(tree.range_query(1, r, Xl)) for r in range(1, K + 1)]
    if K:
        ks = np.arange(X.shape[1]) % (K + 1)
        out.append(lib.to_numpy(tree.query(given_to(lib, ks), Xl)))
    return out


@settings(max_examples=15)
@given(families())
def test_tree_does_not_alias_constructor_inputs(lib, fam):
    base, deltas, rng = fam
    X = rng.standard_normal((base.shape[1], 3))
    bl = given_to(lib, base)
    dl = [(given_to(lib, U), given_to(lib, V)) for U, V in deltas]
    tree = LowRankSegmentTree(bl, dl, **lib.kw)
    W = dense_orders(base, deltas)
    before = tree_answers(lib, tree, X)
    for k, Wk in enumerate(W):
        np.testing.assert_allclose(before[k], Wk @ X, rtol=1e-10, atol=1e-10)
    scribble(bl)
    for U, V in dl:
        scribble(U)
        scribble(V)
    after = tree_answers(lib, tree, X)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)
    tree._check()


def test_tree_copies_updates_appends_and_dense_corrections(lib):
    rng = np.random.default_rng(3)
    m, n = 5, 4
    base = rng.standard_normal((m, n))
    deltas = [(rng.standard_normal((m, 2)), rng.standard_normal((n, 2))) for _ in range(3)]
    tree = LowRankSegmentTree(given_to(lib, base), [(given_to(lib, U), given_to(lib, V)) for U, V in deltas], **lib.kw)
    X = rng.standard_normal((n, 2))
    new = (rng.standard_normal((m, 1)), rng.standard_normal((n, 1)))
    new_l = (given_to(lib, new[0]), given_to(lib, new[1]))
    tree.update(2, new_l)
    extra = (rng.standard_normal((m, 2)), rng.standard_normal((n, 2)))
    extra_l = (given_to(lib, extra[0]), given_to(lib, extra[1]))
    tree.append(extra_l)
    dense = rng.standard_normal((m, n))
    dense_l = given_to(lib, dense)
    tree.append(dense_l)
    low = LowRank(given_to(lib, deltas[0][0]), given_to(lib, deltas[0][1]), **lib.kw)
    tree.append(low)
    for a in (*new_l, *extra_l, dense_l):
        scribble(a)
    ref = dense_orders(base, [deltas[0], new, deltas[2], extra])
    ref.append(ref[-1] + dense)
    ref.append(ref[-1] + deltas[0][0] @ deltas[0][1].T)
    for k, Wk in enumerate(ref):
        np.testing.assert_allclose(lib.to_numpy(tree.query(k, given_to(lib, X))), Wk @ X, rtol=1e-10, atol=1e-10)
    tree._check()


def test_us0_times_ten_after_build(lib):
    """The reported case: ``Us[0] *= 10`` changed ``query(1)`` but not ``query(2)``."""
    rng = np.random.default_rng(0)
    Us = [given_to(lib, rng.standard_normal((6, 1))) for _ in range(2)]
    Vs = [given_to(lib, rng.standard_normal((5, 1))) for _ in range(2)]
    base = rng.standard_normal((6, 5))
    tree = LowRankSegmentTree(given_to(lib, base), list(zip(Us, Vs)), **lib.kw)
    X = given_to(lib, np.eye(5))
    ref = [lib.to_numpy(tree.query(k, X)) for k in range(3)]
    Us[0][...] = Us[0] * 10
    for k in range(3):
        np.testing.assert_array_equal(lib.to_numpy(tree.query(k, X)), ref[k])


def test_tree_exposes_no_writable_state(lib):
    rng = np.random.default_rng(1)
    tree = LowRankSegmentTree(
        given_to(lib, rng.standard_normal((4, 3))),
        [(given_to(lib, rng.standard_normal((4, 2))), given_to(lib, rng.standard_normal((3, 2)))) for _ in range(3)],
        **lib.kw,
    )
    X = given_to(lib, rng.standard_normal((3, 2)))
    answers = tree_answers(lib, tree, lib.to_numpy(X))
    exposure_is_safe(lib, tree.base, lambda: tree.base)
    for i in range(1, 4):
        c = tree.correction(i)
        exposure_is_safe(lib, c.U, lambda i=i: tree.correction(i).U)
        exposure_is_safe(lib, c.V, lambda i=i: tree.correction(i).V)
    for c in tree.corrections:
        exposure_is_safe(lib, c.U, lambda c=c: c.U)
    # results are fresh arrays: writing to them changes nothing either
    for out in (tree.query(2, X), tree.all_orders(X), tree.matrix(3), tree.range_query(1, 3, X)):
        scribble(out)
    for a, b in zip(tree_answers(lib, tree, lib.to_numpy(X)), answers):
        np.testing.assert_array_equal(a, b)
    tree._check()


def test_lowrank_owns_its_factors(lib):
    rng = np.random.default_rng(2)
    U0, V0 = rng.standard_normal((5, 2)), rng.standard_normal((4, 2))
    U, V = given_to(lib, U0), given_to(lib, V0)
    A = LowRank(U, V, **lib.kw)
    scribble(U)
    scribble(V)
    np.testing.assert_allclose(lib.to_numpy(A.to_dense()), U0 @ V0.T, rtol=TOL)
    exposure_is_safe(lib, A.U, lambda: A.to_dense())
    exposure_is_safe(lib, A.V, lambda: A.to_dense())
    exposure_is_safe(lib, A.T.U, lambda: A.to_dense())
    with pytest.raises(AttributeError):
        A.U = U  # the factors cannot be replaced either


def test_cascade_owns_its_arrays(lib):
    rng = np.random.default_rng(4)
    m, n = 5, 4
    base0 = rng.standard_normal((m, n))
    pairs0 = [(rng.standard_normal((m, 1)), rng.standard_normal((n, 1))) for _ in range(3)]
    base = given_to(lib, base0)
    pairs = [(given_to(lib, U), given_to(lib, V)) for U, V in pairs0]
    low = LowRank(given_to(lib, pairs0[0][0]), given_to(lib, pairs0[0][1]), **lib.kw)
    c = Cascade(base, pairs + [low], errors=[0.0, 0.1, 0.2, 0.3, 0.4], **lib.kw)
    ref = dense_orders(base0, pairs0 + [pairs0[0]])
    scribble(base)
    for U, V in pairs:
        scribble(U)
        scribble(V)
    for k, Wk in enumerate(ref):
        np.testing.assert_allclose(lib.to_numpy(c.matrix(k)), Wk, rtol=1e-12, atol=1e-12)
    exposure_is_safe(lib, c.base, lambda: c.matrix(0))
    exposure_is_safe(lib, c.corrections[1].U, lambda: c.matrix(4))
    # the lists handed out are new lists: changing them leaves the cascade alone
    c.corrections.clear()
    c.errors.append(9.0)
    assert c.max_order == 4 and c.errors == [0.0, 0.1, 0.2, 0.3, 0.4]
    tree = c.tree()
    X = rng.standard_normal((n, 2))
    for k, Wk in enumerate(ref):
        np.testing.assert_allclose(lib.to_numpy(tree.query(k, given_to(lib, X))), Wk @ X, rtol=1e-10, atol=1e-10)
    tree._check()


def test_fit_does_not_alias_its_input(lib):
    rng = np.random.default_rng(5)
    mats0 = np.cumsum(rng.standard_normal((4, 6, 5)), axis=0)
    mats = given_to(lib, mats0)
    c = cascade_fit(mats, **lib.kw)
    before = [lib.to_numpy(c.matrix(k)) for k in range(4)]
    scribble(mats)
    for k in range(4):
        np.testing.assert_array_equal(lib.to_numpy(c.matrix(k)), before[k])
        np.testing.assert_allclose(before[k], mats0[k], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", NUMPY_BACKED)
def test_immutable_objects_share_instead_of_copying(backend):
    """No second copy where nothing can write: LowRank leaves, and cascade.tree()."""
    rng = np.random.default_rng(6)
    mats = np.cumsum(rng.standard_normal((4, 6, 5)), axis=0)
    c = cascade_fit(mats, ranks=2, backend=backend)
    tree = c.tree()
    assert np.shares_memory(tree.base, c.base)
    for i, low in enumerate(c.corrections, start=1):
        assert np.shares_memory(tree.correction(i).U, low.U)
    A = LowRank(rng.standard_normal((6, 1)), rng.standard_normal((5, 1)))
    tree.append(A)
    assert np.shares_memory(tree.correction(4).U, A.U)
    # but a caller's own arrays are always copied
    U = rng.standard_normal((6, 1))
    tree.append((U, rng.standard_normal((5, 1))))
    assert not np.shares_memory(tree.correction(5).U, U)
    assert not np.shares_memory(LowRankSegmentTree(mats[0]).base, mats)
