"""LowRank against dense NumPy."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowrank_tree import LowRank


@st.composite
def factors(draw, max_dim=8, max_rank=5):
    m = draw(st.integers(1, max_dim))
    n = draw(st.integers(1, max_dim))
    r = draw(st.integers(0, max_rank))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal((m, r)), rng.standard_normal((n, r)), rng


@given(factors(), st.integers(1, 3), st.booleans())
def test_matmul_and_dense(lib, rel_err, f, b, vector):
    U, V, rng = f
    A = LowRank(lib.asarray(U), lib.asarray(V), **lib.kw)
    D = U @ V.T
    assert A.shape == D.shape and A.rank == U.shape[1]
    assert rel_err(lib.to_numpy(A.to_dense()), D) <= 1e-12
    X = rng.standard_normal(D.shape[1] if vector else (D.shape[1], b))
    assert rel_err(lib.to_numpy(A @ lib.asarray(X)), D @ X) <= 1e-12
    Y = rng.standard_normal((b, D.shape[0]))
    assert rel_err(lib.to_numpy(A.__rmatmul__(lib.asarray(Y))), Y @ D) <= 1e-12
    if lib.name in ("numpy", "numba"):  # array_api_strict's __matmul__ raises instead of deferring to LowRank
        assert rel_err(lib.asarray(Y) @ A, Y @ D) <= 1e-12


@given(factors(), factors())
def test_add_sub_scale_transpose(f, g):
    U, V, rng = f
    A = LowRank(U, V)
    B = LowRank(rng.standard_normal(U.shape), rng.standard_normal((V.shape[0], 2)) @ np.ones((2, U.shape[1])))
    D, E = A.to_dense(), B.to_dense()
    np.testing.assert_allclose((A + B).to_dense(), D + E, atol=1e-12)
    assert (A + B).rank == A.rank + B.rank
    np.testing.assert_allclose((A - B).to_dense(), D - E, atol=1e-12)
    np.testing.assert_allclose((2.5 * A).to_dense(), 2.5 * D, atol=1e-12)
    np.testing.assert_allclose(A.T.to_dense(), D.T, atol=1e-12)


@given(factors(max_rank=8))
def test_compress_is_lossless_and_exact_rank(lib, rel_err, f):
    U, V, _ = f
    D = U @ V.T
    C = LowRank(lib.asarray(U), lib.asarray(V), **lib.kw).compress()
    assert C.rank == np.linalg.matrix_rank(D)
    assert rel_err(lib.to_numpy(C.to_dense()), D) <= 1e-12


@given(factors(max_dim=10, max_rank=6), st.integers(0, 6))
def test_compress_max_rank_is_best_approximation(f, k):
    U, V, _ = f
    D = U @ V.T
    C = LowRank(U, V).compress(max_rank=k)
    s = np.linalg.svd(D, compute_uv=False)
    best = np.sqrt(np.sum(s[k:] ** 2))  # Eckart–Young
    assert C.rank <= k
    assert abs(np.linalg.norm(C.to_dense() - D) - best) <= 1e-10 * max(1.0, s[0])


@given(st.integers(1, 8), st.integers(1, 8), st.integers(0, 8), st.integers(0, 2**32 - 1))
def test_from_dense(m, n, r, seed):
    rng = np.random.default_rng(seed)
    r = min(r, m, n)
    D = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    A = LowRank.from_dense(D)
    assert A.rank == np.linalg.matrix_rank(D)
    np.testing.assert_allclose(A.to_dense(), D, atol=1e-12 * max(1.0, np.abs(D).max()))
    B = LowRank.from_dense(D, rank=max(r - 1, 0))
    s = np.linalg.svd(D, compute_uv=False)
    assert np.linalg.norm(B.to_dense() - D) == pytest.approx(np.sqrt(np.sum(s[max(r - 1, 0) :] ** 2)), abs=1e-9)


def test_complex_and_float32():
    rng = np.random.default_rng(0)
    U = rng.standard_normal((6, 2)) + 1j * rng.standard_normal((6, 2))
    V = rng.standard_normal((4, 2)) + 1j * rng.standard_normal((4, 2))
    A = LowRank(U, V)
    np.testing.assert_allclose(A.to_dense(), U @ V.T)  # plain transpose, no conjugate
    np.testing.assert_allclose((A + A).compress().to_dense(), 2 * U @ V.T, atol=1e-12)
    np.testing.assert_allclose(LowRank.from_dense(U @ V.T).to_dense(), U @ V.T, atol=1e-12)
    F = LowRank(U.real.astype(np.float32), V.real.astype(np.float32))
    assert F.dtype == np.float32
    assert (F + F).compress().dtype == np.float32
    assert (F @ np.ones(4, dtype=np.float32)).dtype == np.float32


def test_integer_input_becomes_float64():
    A = LowRank(np.ones((3, 1), dtype=int), np.ones((2, 1), dtype=int))
    assert A.dtype == np.float64


def test_nbytes_and_repr():
    A = LowRank(np.ones((3, 2)), np.ones((4, 2)))
    assert A.nbytes == (3 + 4) * 2 * 8
    assert repr(A) == "LowRank(shape=(3, 4), rank=2, dtype=float64)"


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: LowRank(np.ones((3, 2)), np.ones((4, 3))), ValueError, "same number of columns"),
        (lambda: LowRank(np.ones(3), np.ones((4, 1))), ValueError, "U must be a 2-D"),
        (lambda: LowRank(np.ones((3, 1)), np.full((4, 1), np.nan)), ValueError, "V contains NaN"),
        (lambda: LowRank(np.ones((3, 1), dtype=bool), np.ones((4, 1))), TypeError, "U must have a real or complex"),
        (lambda: LowRank.from_dense(np.ones((3, 4)), rank=4), ValueError, r"rank must be in \[0, 3\]"),
        (lambda: LowRank.from_dense(np.ones((3, 4)), rtol=2.0), ValueError, r"rtol must be in \[0, 1\)"),
        (lambda: LowRank(np.ones((3, 1)), np.ones((4, 1))) @ np.ones(3), ValueError, "X must have 4 rows"),
        (
            lambda: LowRank(np.ones((3, 1)), np.ones((4, 1))) + LowRank(np.ones((4, 1)), np.ones((4, 1))),
            ValueError,
            "cannot add",
        ),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_mixed_libraries():
    import array_api_strict as xps

    with pytest.raises(TypeError, match="mixed array libraries"):
        LowRank(np.ones((3, 1)), xps.ones((4, 1)))
    A = LowRank(np.ones((3, 1)), np.ones((4, 1)))
    with pytest.raises(TypeError, match="array_api_strict"):
        A @ xps.ones(4)


def test_correction_factors_validation():
    import array_api_strict as xps

    from lowrank_tree.backends import namespace_for
    from lowrank_tree.factor import correction_factors

    xp = namespace_for("numpy")
    U, V = correction_factors((np.ones((3, 2)), 2 * np.ones((4, 2))), xp, "d", (3, 4))
    np.testing.assert_array_equal(U @ V.T, 4 * np.ones((3, 4)))
    with pytest.raises(TypeError, match="d must be a LowRank or a \\(U, V\\) pair"):
        correction_factors(np.ones((3, 4)), xp, "d", (3, 4))
    U, V = correction_factors(np.outer([1.0, 2, 3], [1.0, 0, 0, 1]), xp, "d", (3, 4), allow_dense=True)
    assert U.shape == (3, 1)
    with pytest.raises(TypeError, match="d is a LowRank on array_api_strict arrays"):
        correction_factors(LowRank(xps.ones((3, 1)), xps.ones((4, 1))), xp, "d", (3, 4))
    with pytest.raises(ValueError, match=r"d must have shape \(3, 4\) \(a 3x4 correction"):
        correction_factors((np.ones((3, 1)), np.ones((5, 1))), xp, "d", (3, 4))
