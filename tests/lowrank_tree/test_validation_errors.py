"""Bad arguments raise ValueError/TypeError naming the argument and what was expected.

And what is accepted gives the right answer: NumPy integer orders and ranks,
the dtype rule (float16 -> float32, integers -> float64), mixed-order edge
cases, scalar multiples with NumPy scalars on either side.
"""

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lowrank_tree as lrt
from lowrank_tree import (
    Cascade,
    LowRank,
    LowRankSegmentTree,
    cascade_fit,
    numerical_difference_profile,
)
from lowrank_tree.demo import compare

M, N, K = 5, 4, 3
LONGDOUBLE_IS_DOUBLE = np.finfo(np.longdouble).bits == 64


def family(seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((M, N))
    factors = [(rng.standard_normal((M, 1)), rng.standard_normal((N, 1))) for _ in range(K)]
    return base, factors


def dense(base, factors, k):
    return base + sum((U @ V.T for U, V in factors[:k]), np.zeros_like(base))


@pytest.fixture
def small(lib):
    base, factors = family()
    tree = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in factors])
    return lib, base, factors, tree


@contextlib.contextmanager
def raises(exc, *parts):
    """``pytest.raises`` whose message must contain every string in ``parts``."""
    with pytest.raises(exc) as info:
        yield info
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


# --------------------------------------------------------------------------
# Orders: integers only (Python, NumPy, 0-d arrays); bool and floats refused
# --------------------------------------------------------------------------
BAD_SCALAR_ORDERS = [float("inf"), float("nan"), 2.0, np.float64(1.0), True, np.bool_(True), "1", None, 1 + 0j]


@pytest.mark.parametrize("k", BAD_SCALAR_ORDERS, ids=repr)
def test_non_integer_order_is_refused_by_name(small, k):
    lib, base, factors, tree = small
    X = lib.asarray(np.ones((N, 2)))
    calls = [
        lambda: tree.query(k, X),
        lambda: tree.canonical_nodes(k),
        lambda: tree.query_cost(k),
        lambda: tree.range_query(k, K, X),
        lambda: tree.correction(k),
    ]
    for call in calls:
        with raises(TypeError, "must be an integer", repr(k) if not isinstance(k, str) else "'1'"):
            call()
    cascade = Cascade(lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in factors])
    with raises(TypeError, "k must be an integer"):
        cascade.matrix(k)


@pytest.mark.parametrize("k", [2, np.int64(2), np.uint8(2), np.int32(2), np.array(2)], ids=repr)
def test_numpy_integer_orders_are_accepted(small, rel_err, k):
    lib, base, factors, tree = small
    X = np.random.default_rng(1).standard_normal((N, 3))
    assert rel_err(lib.to_numpy(tree.query(k, lib.asarray(X))), dense(base, factors, 2) @ X) <= 1e-13
    assert (
        rel_err(lib.to_numpy(tree.range_query(np.int64(1), k, lib.asarray(X))), (dense(base, factors, 2) - base) @ X)
        <= 1e-13
    )


@pytest.mark.parametrize("k", [-1, K + 1, 2**70, int(np.iinfo(np.uint64).max), np.uint64(2**64 - 1)], ids=repr)
def test_order_out_of_range_names_the_range(small, k):
    lib, _, _, tree = small
    with raises(ValueError, f"k must be in [0, {K}]", str(int(k))):
        tree.query(k, lib.asarray(np.ones(N)))


# --------------------------------------------------------------------------
# Mixed orders (one per column)
# --------------------------------------------------------------------------
def test_empty_mixed_orders_with_an_empty_batch(small):
    lib, _, _, tree = small
    Y = tree.query(np.array([], dtype=np.int64), lib.asarray(np.zeros((N, 0))))
    assert tuple(Y.shape) == (M, 0)
    Y = tree.query([], lib.asarray(np.zeros((N, 0))))
    assert tuple(Y.shape) == (M, 0)


def test_range_and_tuple_orders(small, rel_err):
    lib, base, factors, tree = small
    X = np.random.default_rng(2).standard_normal((N, K + 1))
    ref = np.stack([dense(base, factors, k) @ X[:, k] for k in range(K + 1)], axis=1)
    for ks in (range(K + 1), tuple(range(K + 1)), [np.int64(k) for k in range(K + 1)]):
        assert rel_err(lib.to_numpy(tree.query(ks, lib.asarray(X))), ref) <= 1e-13


@pytest.mark.parametrize(
    "ks,exc,parts",
    [
        (
            np.array([np.iinfo(np.uint64).max, 0], dtype=np.uint64),
            ValueError,
            ["k must be in [0, 3]", "18446744073709551615"],
        ),
        ([2**70, 0], ValueError, ["k must be in [0, 3]", str(2**70)]),
        ([-1, 0], ValueError, ["k must be in [0, 3]", "-1"]),
        (np.array([-1, 0], dtype=np.int8), ValueError, ["k must be in [0, 3]", "-1"]),
        (np.array([True, False]), TypeError, ["k must hold integers", "bool"]),
        (np.array([1.0, 0.0]), TypeError, ["k must hold integers", "float64"]),
        ([1, 2.0], TypeError, ["k[1] must be an integer", "2.0"]),
        ([True, 0], TypeError, ["k[0] must be an integer", "bool"]),
        ([float("inf"), 0], TypeError, ["k[0] must be an integer", "inf"]),
        (np.array([[1, 0]]), ValueError, ["k must be an int or have shape (2,)", "(1, 2)"]),
        ([0, 1, 2], ValueError, ["k must be an int or have shape (2,)", "length 3"]),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_bad_mixed_orders(small, ks, exc, parts):
    lib, _, _, tree = small
    with raises(exc, *parts):
        tree.query(ks, lib.asarray(np.ones((N, 2))))


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@given(data=st.data())
def test_mixed_orders_any_integer_dtype(data):
    """Any integer dtype or a list: the dense answer column by column, or a ValueError naming k."""
    base, factors = family(3)
    tree = LowRankSegmentTree(base, factors)
    b = data.draw(st.integers(0, 5), label="b")
    values = data.draw(st.lists(st.integers(-3, K + 3), min_size=b, max_size=b), label="values")
    form = data.draw(st.sampled_from(["list"] + INT_DTYPES), label="form")
    if form == "list":
        ks = values
    else:
        info = np.iinfo(form)
        values = [v if info.min <= v <= info.max else int(info.max) for v in values]
        ks = np.array(values, dtype=form)
    X = np.random.default_rng(b).standard_normal((N, b))
    if all(0 <= v <= K for v in values):
        Y = tree.query(ks, X)
        for j, v in enumerate(values):
            ref = dense(base, factors, v) @ X[:, j]
            assert np.linalg.norm(Y[:, j] - ref) <= 1e-12 * max(1.0, np.linalg.norm(ref))
    else:
        with raises(ValueError, f"k must be in [0, {K}]"):
            tree.query(ks, X)


# --------------------------------------------------------------------------
# Ranks
# --------------------------------------------------------------------------
@pytest.mark.parametrize("r", [np.int64(2), np.uint8(2), np.array(2)], ids=repr)
def test_scalar_numpy_rank_means_every_order(r, rel_err):
    mats = lrt.synthetic_evolution(K=3, m=6, n=5, seed=1)
    got, want = cascade_fit(mats, ranks=r), cascade_fit(mats, ranks=2)
    assert got.ranks == want.ranks == [2, 2, 2]
    for k in range(4):
        assert rel_err(got.matrix(k), want.matrix(k)) <= 1e-14


@pytest.mark.parametrize(
    "r,exc,parts",
    [
        (True, TypeError, ["ranks must be an integer", "bool"]),
        (2.0, TypeError, ["ranks must be an integer", "2.0"]),
        (float("inf"), TypeError, ["ranks must be an integer", "inf"]),
        ("2", TypeError, ["ranks must be an integer", "'2'"]),
        ([1, 2.0, 1], TypeError, ["ranks[1] must be an integer", "2.0"]),
        ([1, True, 1], TypeError, ["ranks[1] must be an integer", "bool"]),
        (np.int64(-1), ValueError, ["ranks must be in [0, 5]", "-1"]),
        ([1, 1, 2**70], ValueError, ["ranks[2] must be in [0, 5]"]),
        ({1, 2, 3}, TypeError, ["ranks must be an integer"]),
    ],
    ids=repr,
)
def test_bad_ranks(r, exc, parts):
    mats = lrt.synthetic_evolution(K=3, m=6, n=5, seed=1)
    with raises(exc, *parts):
        cascade_fit(mats, ranks=r)


# --------------------------------------------------------------------------
# The dtype rule, in one place for every entry point
# --------------------------------------------------------------------------
def entry_points(backend, A, stack):
    """Every public way an array enters the library, with the argument name it must be reported under."""
    base, factors = family()
    rng = np.random.default_rng(4)
    tree = LowRankSegmentTree(base, factors, backend=backend)
    low = LowRank(factors[0][0], factors[0][1], backend=backend)
    U, V = A(rng.standard_normal((M, 1))), A(rng.standard_normal((N, 1)))
    return {
        "mats": lambda: cascade_fit(A(stack), backend=backend),
        "mats[1]": lambda: cascade_fit([stack[0], A(stack[1]), stack[2]], backend=backend),
        "U": lambda: LowRank(U, factors[0][1], backend=backend),
        "M": lambda: LowRank.from_dense(A(base), backend=backend),
        "base": lambda: LowRankSegmentTree(A(base), factors, backend=backend),
        "corrections[0]": lambda: LowRankSegmentTree(base, [(U, V)], backend=backend),
        "Cascade base": lambda: Cascade(A(base), factors, backend=backend),
        "difference mats": lambda: numerical_difference_profile(A(stack)),
        "X": lambda: tree.query(1, A(rng.standard_normal((N, 2)))),
        "range X": lambda: tree.range_query(1, 2, A(rng.standard_normal((N, 2)))),
        "all X": lambda: tree.all_orders(A(rng.standard_normal((N, 2)))),
        "delta": lambda: tree.update(1, (U, V)),
        "append delta": lambda: tree.append(A(np.outer(rng.standard_normal(M), rng.standard_normal(N)))),
        "LowRank X": lambda: low @ A(rng.standard_normal((N, 2))),
    }


NAMES = {
    "Cascade base": "base",
    "difference mats": "mats",
    "range X": "X",
    "all X": "X",
    "append delta": "delta",
    "LowRank X": "X",
}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(
    "bad,parts",
    [
        (lambda a: np.asarray(a) > 0, ["bool"]),
        (lambda a: np.asarray(a).astype(object), ["object"]),
        (lambda a: np.asarray(a).astype("U8"), ["dtype"]),
        (lambda a: np.ma.masked_array(a, mask=np.zeros(np.shape(a), bool)), ["masked array"]),
        pytest.param(
            lambda a: np.asarray(a).astype(np.longdouble),
            ["extended precision"],
            marks=pytest.mark.skipif(LONGDOUBLE_IS_DOUBLE, reason="longdouble is float64 here"),
        ),
        pytest.param(
            lambda a: np.asarray(a).astype(np.clongdouble),
            ["extended precision"],
            marks=pytest.mark.skipif(LONGDOUBLE_IS_DOUBLE, reason="longdouble is float64 here"),
        ),
    ],
    ids=["bool", "object", "str", "masked", "longdouble", "clongdouble"],
)
def test_refused_dtypes_are_named(backend, bad, parts):
    stack = lrt.synthetic_evolution(K=2, m=M, n=N, seed=0)
    for label, call in entry_points(backend, bad, stack).items():
        name = NAMES.get(label, label)
        with raises(TypeError, name, *parts):
            call()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_float16_becomes_float32_and_integers_float64(backend, rel_err):
    stack = lrt.synthetic_evolution(K=2, m=M, n=N, seed=0)
    half = stack.astype(np.float16)
    c = cascade_fit(half, backend=backend)
    assert c.dtype == np.float32
    for k in range(3):  # float16 -> float32 is exact, so the lossless fit reproduces the float16 values
        assert rel_err(c.matrix(k), half[k].astype(np.float64)) <= 1e-5
    assert LowRank(half[0][:, :2], half[1][:, :2], backend=backend).dtype == np.float32
    assert LowRank.from_dense(half[0], backend=backend).dtype == np.float32
    assert Cascade(half[0], [], backend=backend).dtype == np.float32
    step = half[1] - half[0]  # a float16 array
    tree = LowRankSegmentTree(half[0], [step], backend=backend)
    assert tree.dtype == np.float32
    X = np.random.default_rng(0).standard_normal((N, 2)).astype(np.float16)
    Y = tree.query(1, X)
    assert Y.dtype == np.float32
    W1 = half[0].astype(np.float64) + step.astype(np.float64)
    assert rel_err(Y, W1 @ X.astype(np.float64)) <= 1e-5
    assert numerical_difference_profile(half).ranks == numerical_difference_profile(half.astype(np.float32)).ranks
    ints = np.rint(10 * stack).astype(np.int32)
    c = cascade_fit(ints, backend=backend)
    assert c.dtype == np.float64
    assert rel_err(c.matrix(2), ints[2].astype(np.float64)) <= 1e-13
    assert LowRankSegmentTree(ints[0], backend=backend).query(0, np.ones(N, dtype=np.int64)).dtype == np.float64


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_numpy_matrix_is_a_plain_array(rel_err):
    base, factors = family()
    tree = LowRankSegmentTree(np.asmatrix(base), factors)
    X = np.random.default_rng(0).standard_normal((N, 2))
    Y = tree.query(3, np.asmatrix(X))
    assert type(Y) is np.ndarray
    assert rel_err(Y, dense(base, factors, 3) @ X) <= 1e-13


# --------------------------------------------------------------------------
# LowRank: products with NaN/Inf, scalar multiples
# --------------------------------------------------------------------------
@pytest.fixture
def low(lib):
    rng = np.random.default_rng(5)
    U, V = rng.standard_normal((M, 2)), rng.standard_normal((N, 2))
    return lib, LowRank(lib.asarray(U), lib.asarray(V)), U @ V.T


def test_products_refuse_nan_and_inf(low):
    lib, A, _ = low
    with raises(ValueError, "X contains NaN or Inf"):
        A @ lib.asarray(np.full(N, np.nan))
    with raises(ValueError, "X contains NaN or Inf"):
        A @ lib.asarray(np.array([[np.inf]] * N))
    with raises(ValueError, "Y contains NaN or Inf"):
        A.__rmatmul__(lib.asarray(np.full((2, M), np.nan)))  # what Y @ A calls (strict arrays do not defer)


@pytest.mark.parametrize(
    "alpha",
    [2, -3, 0.5, np.int64(2), np.uint8(3), np.float32(0.25), np.float64(-1.5), 1 + 2j, np.complex64(2 - 1j), 2**70],
    ids=repr,
)
def test_scalar_multiples_on_both_sides(low, rel_err, alpha):
    lib, A, D = low
    if lib.name == "array_api_strict" and isinstance(alpha, np.generic):
        pass  # NumPy scalars are converted to Python scalars first, so strict arrays accept them too
    for prod in (A * alpha, alpha * A):
        assert isinstance(prod, LowRank)
        want = complex(alpha) * D if isinstance(alpha, (complex, np.complexfloating)) else float(alpha) * D
        assert rel_err(lib.to_numpy(prod.to_dense()), want) <= 1e-14
        if not isinstance(alpha, (complex, np.complexfloating)):
            assert prod.dtype == A.dtype  # a real scalar keeps the precision


def test_scalar_multiple_keeps_float32():
    A = LowRank(np.ones((3, 1), np.float32), np.ones((2, 1), np.float32))
    for alpha in (np.float64(2), np.int64(2), 2.0):
        assert (alpha * A).dtype == np.float32 and (A * alpha).dtype == np.float32
    assert (np.complex128(1j) * A).dtype == np.complex64


@pytest.mark.parametrize(
    "alpha,parts",
    [
        (float("nan"), ["alpha must be finite", "nan"]),
        (np.float64("inf"), ["alpha must be finite", "inf"]),
        (complex(0, float("nan")), ["alpha must be finite"]),
        (10**400, ["alpha must be a finite number representable as a float"]),
    ],
    ids=repr,
)
def test_nonfinite_scalar_is_refused(low, alpha, parts):
    _, A, _ = low
    for call in (lambda: A * alpha, lambda: alpha * A):
        with raises(ValueError, *parts):
            call()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_scalar_overflow_is_refused():
    A = LowRank(np.full((3, 1), 1e30, np.float32), np.ones((2, 1), np.float32))
    with raises(ValueError, "alpha", "NaN or Inf"):
        A * 1e20
    with raises(ValueError, "alpha", "NaN or Inf"):
        np.float64(1e300) * LowRank(np.full((3, 1), 1e300), np.ones((2, 1)))


def test_non_scalars_do_not_multiply(low):
    _, A, _ = low
    for other in (True, np.bool_(False), "2", [2]):
        with pytest.raises(TypeError):
            A * other
        with pytest.raises(TypeError):
            other * A
    with pytest.raises(TypeError):  # no elementwise broadcasting into an object array
        np.ones(3) * A


# --------------------------------------------------------------------------
# Constructors and other arguments
# --------------------------------------------------------------------------
def test_corrections_must_be_a_sequence():
    base, factors = family()
    for bad in (None, 3, "abc", factors[0][0][0, 0]):
        with raises(TypeError, "corrections must be a sequence"):
            LowRankSegmentTree(base, bad)
        with raises(TypeError, "corrections must be a sequence"):
            Cascade(base, bad)


@pytest.mark.parametrize(
    "errors,exc,parts",
    [
        (["a", 0.1, 0.1, 0.1], TypeError, ["errors[0] must be a real number", "'a'"]),
        (["a"], ValueError, ["errors must have length K + 1 = 4", "got 1"]),
        ([0.0, -0.1, 0.1, 0.1], ValueError, ["errors[1] must be a finite real number >= 0.0", "-0.1"]),
        ([0.0, True, 0.1, 0.1], TypeError, ["errors[1] must be a real number"]),
        (3.0, TypeError, ["errors must be a sequence"]),
        ("abcd", TypeError, ["errors must be a sequence"]),
    ],
    ids=repr,
)
def test_cascade_errors_are_checked(errors, exc, parts):
    base, factors = family()
    with raises(exc, *parts):
        Cascade(base, factors, errors=errors)


def test_cascade_errors_accept_none_nan_and_numpy_floats():
    base, factors = family()
    c = Cascade(base, factors, errors=[0.0, None, np.float32(0.5), float("nan")])
    assert c.errors[0] == 0.0 and math.isnan(c.errors[1]) and c.errors[2] == 0.5 and math.isnan(c.errors[3])


@pytest.mark.parametrize(
    "kwargs,exc,parts",
    [
        ({"rank": -1}, ValueError, ["rank must be in [0, inf]", "-1"]),
        ({"K": -1}, ValueError, ["K must be in [0, inf]", "-1"]),
        ({"K": 2.0}, TypeError, ["K must be an integer", "2.0"]),
        ({"m": -2}, ValueError, ["m must be in"]),
        ({"terms": True}, TypeError, ["terms must be an integer"]),
        ({"drift_rank": -1}, ValueError, ["drift_rank must be in"]),
        ({"noise": float("nan")}, ValueError, ["noise must be a finite real number"]),
        ({"noise": -1.0}, ValueError, ["noise must be a finite real number >= 0.0"]),
        ({"noise": "big"}, TypeError, ["noise must be a real number"]),
        ({"dtype": bool}, TypeError, ["dtype must be float32, float64, complex64 or complex128"]),
        ({"dtype": "nonsense"}, TypeError, ["dtype must be float32", "nonsense"]),
        ({"dtype": np.float16}, TypeError, ["dtype must be float32"]),
        ({"seed": -1}, ValueError, ["seed must be in [0, inf]"]),
        ({"seed": "x"}, TypeError, ["seed must be None, a non-negative integer or a random generator"]),
    ],
    ids=repr,
)
def test_synthetic_evolution_arguments(kwargs, exc, parts):
    with raises(exc, *parts):
        lrt.synthetic_evolution(**{"K": 2, "m": 4, "n": 3, **kwargs})


def test_synthetic_evolution_rank_zero_is_only_drift():
    mats = lrt.synthetic_evolution(K=3, m=6, n=5, rank=0, noise=0.0, seed=2)
    assert [int(np.linalg.matrix_rank(mats[k + 1] - mats[k])) for k in range(3)] == [1, 1, 1]
    same = lrt.synthetic_evolution(K=3, m=6, n=5, rank=0, noise=0.0, seed=np.random.default_rng(2))
    np.testing.assert_array_equal(mats, same)


@pytest.mark.parametrize("method", ["exact", "randomized"])
@pytest.mark.parametrize(
    "seed,exc,parts",
    [
        ("x", TypeError, ["seed must be None, a non-negative integer or a random generator", "'x'"]),
        (2.5, TypeError, ["seed must be None"]),
        (True, TypeError, ["seed must be None"]),
        (-1, ValueError, ["seed must be in [0, inf]", "-1"]),
        ([1, -2], ValueError, ["seed[1] must be in [0, inf]"]),
    ],
    ids=repr,
)
def test_seed_is_checked_on_every_path(method, seed, exc, parts):
    mats = lrt.synthetic_evolution(K=2, m=6, n=5, seed=0)
    with raises(exc, *parts):
        cascade_fit(mats, ranks=1, method=method, seed=seed)
    with raises(exc, *parts):
        cascade_fit(mats, tol=1e-3, method=method, seed=seed)


def test_seed_accepts_integers_and_generators(rel_err):
    mats = lrt.synthetic_evolution(K=2, m=40, n=30, seed=0)
    a = cascade_fit(mats, ranks=3, method="randomized", seed=np.int64(7))
    b = cascade_fit(mats, ranks=3, method="randomized", seed=np.random.default_rng(7))
    assert a.ranks == b.ranks == [3, 3]
    assert rel_err(a.matrix(2), b.matrix(2)) <= 1e-12


def test_compare_checks_its_integers():
    mats = lrt.synthetic_evolution(K=2, m=6, n=5, seed=0)
    with raises(ValueError, "seed must be in [0, inf]"):
        compare(mats, seed=-1)
    with raises(ValueError, "b must be in [1, inf]"):
        compare(mats, b=0)
    with raises(TypeError, "repeat must be an integer"):
        compare(mats, repeat=1.5)


def test_tree_dtype_counts_both_factors(lib, rel_err):
    """A real U with a complex V is a complex correction (the imaginary part was once dropped)."""
    rng = np.random.default_rng(6)
    base = rng.standard_normal((M, N))
    U = rng.standard_normal((M, 1))
    V = rng.standard_normal((N, 1)) + 1j * rng.standard_normal((N, 1))
    tree = LowRankSegmentTree(lib.asarray(base), [(lib.asarray(U), lib.asarray(V))])
    assert tree.dtype == lib.xp.complex128
    X = rng.standard_normal((N, 2))
    assert rel_err(lib.to_numpy(tree.query(1, lib.asarray(X))), (base + U @ V.T) @ X) <= 1e-14
    assert rel_err(lib.to_numpy(tree.all_orders(lib.asarray(X)))[1], (base + U @ V.T) @ X) <= 1e-14


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_correction_that_overflows_the_tree_dtype_is_refused():
    base = np.ones((3, 2), dtype=np.float32)
    tree = LowRankSegmentTree(base, [(np.ones((3, 1), np.float32), np.ones((2, 1), np.float32))])
    before = tree.all_orders(np.eye(2, dtype=np.float32))
    for call in (
        lambda: tree.update(1, (np.full((3, 1), 1e39), np.ones((2, 1)))),
        lambda: tree.append(np.full((3, 2), 1e39)),
    ):
        with raises(ValueError, "delta", "float32", "NaN or Inf"):
            call()
    np.testing.assert_array_equal(tree.all_orders(np.eye(2, dtype=np.float32)), before)
