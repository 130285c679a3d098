"""A bounded fuzz test of the public API.

Odd dtypes (float16 .. object), shapes (0-sized, 1-D, 3-D, m != n), orders
(negative, > K, huge, float, bool, NumPy integers, arrays) and scales go into
``cascade_fit``, ``LowRank``, ``LowRank.from_dense``, ``LowRankSegmentTree``
(``query``, ``range_query``, ``all_orders``, ``update``, ``append``),
``Cascade``, ``numerical_difference_profile`` and ``synthetic_evolution``.  An oracle
written here from the documented rules (dtype rule, finiteness, shapes,
integer orders in range) says whether each call is valid:

* a valid call must return the right answer, checked against a dense NumPy
  reference at a tolerance suited to the working dtype (relative to the
  largest input, so that every scale is judged alike);
* an invalid call must raise ``ValueError`` or ``TypeError`` whose message
  names one of the bad arguments and says what was expected, and a failed
  ``update``/``append`` must leave the tree as it was.

Anything else (another exception, an unchecked result) fails.

Scales: each array's entries range over 1e-150 .. 1e150 in float64 and
1e-18 .. 1e18 in the single-precision dtypes, the square root of the normal
range, so that the product of two arguments (a query ``W_k X``) is itself
representable.  Fits, trees and diagnostics over the *whole* normal range are
tested in ``test_scale.py``.
"""

import math
import re

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lowrank_tree as lrt
from lowrank_tree import Cascade, LowRank, LowRankSegmentTree

#: Bounded for CI and derandomized so that a run is reproducible; explore further with e.g.
#: ``--hypothesis-seed=N`` and a larger ``max_examples`` (3000 per test ran clean when this was written).
FUZZ = settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

LONGDOUBLE_IS_DOUBLE = np.finfo(np.longdouble).bits == 64
DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
    np.longdouble,
    np.int32,
    np.int64,
    np.bool_,
    object,
]
#: Exponents of the entry scale, per working precision (see the module docstring).
SCALES = {"double": (-150, 150), "single": (-18, 18)}


def working_dtype(dtype):
    """The dtype the library computes in for input ``dtype``, or None if it must refuse it."""
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype in (np.float32, np.float64, np.complex64, np.complex128):
        return dtype
    if dtype.kind in "iu":
        return np.dtype(np.float64)
    if dtype.kind in "fc" and LONGDOUBLE_IS_DOUBLE:
        return np.dtype(np.float64 if dtype.kind == "f" else np.complex128)
    return None


def eps_of(*dtypes):
    return max(float(np.finfo(d).eps) for d in dtypes)


def to_ref(a):
    """Host float64/complex128 copy of what the library sees (after its conversion)."""
    a = np.asarray(a)
    work = working_dtype(a.dtype)
    with np.errstate(all="ignore"):
        a = a.astype(work) if work is not None else a.astype(np.complex128)
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)


VALID_DTYPES = [d for d in DTYPES if working_dtype(d) is not None]


@st.composite
def arrays(draw, shape, dtypes=None, finite=None, single=False):
    """An array of a drawn dtype and scale; an odd one (refused dtype, NaN, Inf) one time in four.

    ``single``: scales of the single-precision range whatever the dtype (for
    data that goes into a float32 object).
    """
    if dtypes == "valid":
        dtypes, finite = VALID_DTYPES, True
    if dtypes is None:
        dtypes = draw(weighted((3, st.just(VALID_DTYPES)), (1, st.just(DTYPES))), label="dtype set")
        finite = True if dtypes is VALID_DTYPES else None
    dtype = np.dtype(draw(st.sampled_from(dtypes), label="dtype"))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    if dtype.kind in "iub":
        a = rng.integers(-4, 5, size=shape)
        return (a > 0) if dtype.kind == "b" else a.astype(dtype)
    work = working_dtype(dtype) or np.dtype(np.float64)
    lo, hi = SCALES["single" if single or work in (np.float32, np.complex64) else "double"]
    scale = 10.0 ** draw(st.integers(lo, hi), label="log10 scale")
    a = rng.standard_normal(shape)
    if dtype.kind == "c" or dtype.kind == "O" and draw(st.booleans()):
        a = a + 1j * rng.standard_normal(shape)
    a = a * scale
    bad = draw(st.sampled_from([None] * 6 + [np.nan, np.inf, -np.inf]), label="special") if finite is None else None
    if bad is not None and a.size:
        a.flat[draw(st.integers(0, a.size - 1))] = bad
    with np.errstate(all="ignore"):
        return a.astype(dtype)


def array_ok(a, ndim=None):
    """Oracle: the dtype rule and finiteness (and optionally the number of dimensions)."""
    a = np.asarray(a)
    if working_dtype(a.dtype) is None:
        return False
    if ndim is not None and a.ndim != ndim:
        return False
    return bool(np.all(np.isfinite(to_ref(a))))


def weighted(*pairs):
    """One of the strategies, each drawn with its weight (``(weight, strategy), ...``)."""
    total = sum(w for w, _ in pairs)

    def pick(i):
        for w, strategy in pairs:
            if i < w:
                return strategy
            i -= w
        raise AssertionError(i)

    return st.integers(0, total - 1).flatmap(pick)


def mostly(good, *odd):
    """``good`` nine times in ten, else one of the ``odd`` values."""
    return weighted((9, good), (1, st.sampled_from(odd)))


def shapes_2d(max_side=5, min_side=0):
    """Mostly non-empty shapes, m != n as often as not; 0-sized ones when ``min_side`` is 0."""
    side = weighted((6, st.integers(max(min_side, 1), max_side)), (1, st.integers(min_side, max_side)))
    return st.tuples(side, side)


#: Single orders: valid integers of several types, and every kind of wrong one.
def orders(K):
    return weighted(
        (6, st.integers(0, K)),
        (
            1,
            st.one_of(
                st.integers(-2, K + 2),
                st.integers(0, max(K, 0)).map(np.int64),
                st.integers(0, max(K, 0)).map(np.uint8),
                st.just(2**70),
                st.just(np.uint64(2**64 - 1)),
                st.floats(allow_nan=True, allow_infinity=True),
                st.integers(0, K).map(float),
                st.booleans(),
                st.just(None),
                st.just("1"),
            ),
        ),
    )


def order_ok(k, low, high):
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        return False
    return low <= int(k) <= high


def check_refusal(exc, bad):
    """A ValueError/TypeError naming one of the ``bad`` arguments and what was expected."""
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {exc}"
    event(f"refused: {bad[0] if bad else '-'}")
    message = str(exc)
    assert bad, f"refused a valid call: {type(exc).__name__}: {message}"
    assert any(re.search(rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])", message) for name in bad), (
        f"message names none of {bad}: {message}"
    )
    assert re.search(r"must|expected", message), f"message says nothing of what was expected: {message}"


def close(got, want, scale, eps, factor=200, tiny=None):
    """``got`` equals ``want`` up to ``factor * eps * scale`` in the Frobenius norm.

    ``tiny``: entries below the dtype's normal range may underflow (gradual
    underflow is IEEE arithmetic, not a wrong answer), so that much absolute
    error per entry is allowed too.
    """
    event("result checked")
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if tiny is None:
        tiny = factor * float(np.finfo(got.dtype).tiny)
    err = fnorm(got.astype(np.complex128) - want)
    assert err <= factor * eps * scale + tiny * max(got.size, 1), (err, scale, eps)


def fnorm(a):
    """Frobenius norm without overflow or underflow (scaled by the largest entry, as LAPACK's nrm2)."""
    a = np.abs(np.asarray(a).ravel()).astype(np.float64)  # real: complex division misbehaves on subnormals
    big = float(np.max(a)) if a.size else 0.0
    if big == 0.0 or not math.isfinite(big):
        return big
    return big * float(np.linalg.norm(a / big))


def outcome(call):
    """``(result, None)`` or ``(None, exception)`` for ValueError/TypeError; anything else propagates."""
    try:
        return call(), None
    except (ValueError, TypeError) as exc:
        return None, exc


# --------------------------------------------------------------------------
# cascade_fit
# --------------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_fuzz_cascade_fit(data):
    draw = data.draw
    K = draw(st.integers(0, 3), label="K")
    m, n = draw(shapes_2d(), label="m, n")
    form = draw(st.sampled_from(["array"] * 3 + ["list", "iterator", "wrong ndim"]), label="form")
    ndim = 3 if form != "wrong ndim" else draw(st.sampled_from([1, 2, 4]))
    shape = {1: (m,), 2: (m, n), 3: (K + 1, m, n), 4: (K + 1, 1, m, n)}[ndim]
    stack = draw(arrays(shape), label="mats")
    mats = {
        "array": stack,
        "list": list(stack) if ndim == 3 else stack,
        "iterator": iter(list(stack)) if ndim == 3 else stack,
        "wrong ndim": stack,
    }[form]
    bound = min(m, n)
    mode = draw(st.sampled_from(["lossless", "ranks", "tol"]), label="mode")
    ranks = tol = None
    if mode == "ranks":
        ranks = draw(
            st.one_of(
                st.integers(-1, bound + 1),
                st.integers(0, bound).map(np.int64),
                st.lists(st.integers(0, bound), min_size=K, max_size=K),
                st.lists(st.integers(-1, bound + 1), min_size=0, max_size=K + 1),
                st.just(2.0),
                st.just(True),
                st.just("2"),
            ),
            label="ranks",
        )
    elif mode == "tol":
        tol = draw(st.sampled_from([0.0, 1e-3, 0.5, -0.1, 1.0, float("nan"), "x"]), label="tol")
    method = draw(st.sampled_from(["exact", "randomized", "auto"] * 3 + ["svd"]), label="method")
    seed = draw(st.sampled_from([None, 0, 7] * 4 + [-1, "x", 2.5]), label="seed")

    bad = []
    if not array_ok(stack) or ndim != 3:
        bad.append("mats")
    if mode == "ranks":
        if isinstance(ranks, list):
            if len(ranks) != K or not all(0 <= r <= bound for r in ranks):
                bad.append("ranks")
        elif not order_ok(ranks, 0, bound):
            bad.append("ranks")
    if mode == "tol" and not (isinstance(tol, float) and 0.0 <= tol < 1.0):
        bad.append("tol")
    if method not in ("exact", "randomized", "auto"):
        bad.append("method")
    if not (seed is None or order_ok(seed, 0, math.inf)):
        bad.append("seed")

    c, exc = outcome(lambda: lrt.cascade_fit(mats, ranks=ranks, tol=tol, method=method, seed=seed))
    if exc is not None:
        # a bad stack entry of a streamed family is reported under its own name, mats[k]
        check_refusal(exc, bad)
        return
    assert not bad, f"accepted bad {bad}"
    ref = to_ref(stack)
    work = working_dtype(stack.dtype)
    assert c.dtype == work and c.max_order == K and c.shape == (m, n)
    eps = eps_of(work)
    scale = max(fnorm(M) for M in ref)
    fitted = [to_ref(c.matrix(k)) for k in range(K + 1)]
    close(fitted[0], ref[0], scale, eps, factor=1)  # the base is M_0 exactly
    for k in range(1, K + 1):
        err = fnorm(fitted[k] - ref[k])
        rel = err / fnorm(ref[k]) if fnorm(ref[k]) > 0 else err
        assert abs(c.errors[k] - rel) <= 200 * eps * scale / max(fnorm(ref[k]), 1e-300) + 1e-6 * rel
        if mode == "lossless" or (mode == "tol" and tol == 0.0):
            assert err <= 200 * (m + n + 1) * eps * scale
        elif mode == "tol":  # relative to ||M_k||, absolute when M_k = 0 (as documented)
            assert err <= tol * (fnorm(ref[k]) or 1.0) + 200 * (m + n + 1) * eps * scale
        else:  # fixed rank: never above the requested rank; exact SVD meets Eckart-Young
            r_req = int(ranks if not isinstance(ranks, list) else ranks[k - 1])
            assert c.ranks[k - 1] <= r_req
            s = np.linalg.svd(ref[k] - fitted[k - 1], compute_uv=False) if bound else np.zeros(0)
            tail = float(np.sqrt(np.sum(s[r_req:] ** 2)))
            assert err >= tail - 200 * (m + n + 1) * eps * scale
            if c.method == "exact":
                assert err <= tail + 200 * (m + n + 1) * eps * scale


# --------------------------------------------------------------------------
# LowRank
# --------------------------------------------------------------------------
SCALARS = st.one_of(
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.complex_numbers(max_magnitude=10),
    st.integers(-3, 3).map(np.int64),
    st.floats(-2, 2, width=32).map(np.float32),
    st.just(10**400),
    st.just(True),
)


@FUZZ
@given(data=st.data())
def test_fuzz_lowrank(data):
    draw = data.draw
    m, n = draw(shapes_2d(), label="m, n")
    r = draw(st.integers(0, 3), label="r")
    ru = draw(st.sampled_from([r, r, r, r + 1]), label="U width")
    U = draw(arrays(draw(st.sampled_from([(m, ru)] * 6 + [(m,), (1, m, ru)]))), label="U")
    V = draw(arrays((n, r)), label="V")
    bad = [name for name, a in (("U", U), ("V", V)) if not array_ok(a, 2)]
    if not bad and U.shape[1] != V.shape[1]:
        bad = ["U", "V"]
    A, exc = outcome(lambda: LowRank(U, V))
    if exc is not None:
        check_refusal(exc, bad)
        return
    assert not bad, f"accepted bad {bad}"
    Ur, Vr = to_ref(U), to_ref(V)
    D = Ur @ Vr.T
    eps = eps_of(A.dtype)
    scale = fnorm(Ur) * fnorm(Vr)
    close(A.to_dense(), D, scale, eps, factor=4 * (r + 1))

    # products with X
    X = draw(arrays(draw(st.sampled_from([(n,), (n, 2), (n, 0), (n + 1, 2), (n, 2, 1)]))), label="X")
    Y, exc = outcome(lambda: A @ X)
    if exc is not None:
        check_refusal(exc, [] if array_ok(X) and X.ndim in (1, 2) and X.shape[0] == n else ["X"])
    else:
        assert array_ok(X) and X.ndim in (1, 2) and X.shape[0] == n
        Xr = to_ref(X)
        close(Y, D @ Xr, scale * fnorm(Xr), eps_of(A.dtype, working_dtype(X.dtype)), factor=8 * (r + 1))

    # scalar multiples, both sides
    alpha = draw(SCALARS, label="alpha")
    is_number = not isinstance(alpha, (bool, np.bool_))
    finite = is_number and (
        isinstance(alpha, int) and abs(alpha) < 1e300 or not isinstance(alpha, int) and np.isfinite(complex(alpha))
    )
    for side in ("left", "right"):
        try:
            P = alpha * A if side == "left" else A * alpha
        except (ValueError, TypeError) as exc:
            if not is_number:
                assert "unsupported operand" in str(exc)  # Python's own refusal of a bool
            else:
                # alpha or the product beyond the dtype's range: refused by name, never inf
                limit = float(np.finfo(A.dtype).max)
                fits = (
                    finite
                    and abs(complex(alpha)) <= limit
                    and np.max(np.abs(Ur), initial=0) * abs(complex(alpha)) <= limit
                )
                check_refusal(exc, [] if fits else ["alpha"])
            continue
        assert is_number and finite
        # alpha scales U and leaves V: compare the factors, whose product may lie
        # beyond the dtype's range (then to_dense() is inf, as NumPy's product is)
        close(P.U, complex(alpha) * Ur, abs(complex(alpha)) * fnorm(Ur), eps, factor=4)
        close(P.V, Vr, fnorm(Vr), eps, factor=0)
        if abs(complex(alpha)) * scale < 1e-3 * float(np.finfo(P.dtype).max):
            close(
                P.to_dense(),
                complex(alpha) * D,
                abs(complex(alpha)) * scale,
                eps,
                factor=4 * (r + 1),
                tiny=float(np.finfo(P.dtype).tiny) * fnorm(Vr) * (r + 1),
            )

    # from_dense: truncated SVD, checked by Eckart-Young
    M = draw(arrays(draw(st.sampled_from([(m, n)] * 6 + [(m,)]))), label="M")
    rank = draw(st.one_of(st.none(), st.integers(-1, min(m, n) + 1), st.just(1.5)), label="rank")
    bad = [] if array_ok(M, 2) else ["M"]
    if rank is not None and not order_ok(rank, 0, min(M.shape) if M.ndim == 2 else math.inf):
        bad.append("rank")
    B, exc = outcome(lambda: LowRank.from_dense(M, rank=rank))
    if exc is not None:
        check_refusal(exc, bad)
        return
    assert not bad, f"accepted bad {bad}"
    Mr = to_ref(M)
    s = np.linalg.svd(Mr, compute_uv=False) if Mr.size else np.zeros(0)
    keep = min(m, n) if rank is None else rank
    eps = eps_of(B.dtype)
    tail = fnorm(s[keep:])  # scaled: squares of entries near 1e-160 are subnormal
    err = fnorm(to_ref(B.to_dense()) - Mr)
    assert B.rank <= keep
    assert tail - 50 * (m + n + 1) * eps * fnorm(Mr) <= err <= tail + 50 * (m + n + 1) * eps * fnorm(Mr)


# --------------------------------------------------------------------------
# LowRankSegmentTree: construction, then a few operations against a dense model
# --------------------------------------------------------------------------
@st.composite
def correction(draw, m, n, name, dtypes=None, single=False):
    """A correction in one of the accepted forms, sometimes of the wrong shape; ``(value, dense ref, ok)``."""
    kinds = ["pair"] * 4 + ["lowrank"] * 2 + ["dense"] * 2 + (["wrong"] if dtypes is None else [])
    kind = draw(st.sampled_from(kinds), label=f"{name} kind")
    r = draw(st.integers(0, 2), label=f"{name} rank")
    if kind == "wrong":
        return (np.ones((m + 1, 1)), np.ones((n, 1))), None, False
    if kind == "dense":
        D = draw(arrays((m, n), dtypes, single=single), label=name)
        return D, to_ref(D), array_ok(D, 2)
    U = draw(arrays((m, r), dtypes, single=single), label=f"{name} U")
    V = draw(arrays((n, r), dtypes, single=single), label=f"{name} V")
    ok = array_ok(U, 2) and array_ok(V, 2)
    if kind == "lowrank":
        if not ok:
            return (U, V), None, False
        return LowRank(U, V), to_ref(U) @ to_ref(V).T, True
    return (U, V), (to_ref(U) @ to_ref(V).T if ok else None), ok


def ref_dtype(*arrays_in):
    kinds = [working_dtype(np.asarray(a).dtype) for a in arrays_in]
    return np.result_type(*kinds)


def tree_state(tree, n):
    X = np.eye(n, dtype=tree.dtype)
    return np.asarray(tree.all_orders(X))


@FUZZ
@given(data=st.data())
def test_fuzz_tree(data):
    draw = data.draw
    m, n = draw(shapes_2d(min_side=0), label="m, n")
    K = draw(st.integers(0, 4), label="K")
    clean = draw(weighted((2, st.just("valid")), (1, st.none())), label="clean")
    base = draw(arrays((m, n) if clean else draw(st.sampled_from([(m, n)] * 8 + [(m,)])), clean), label="base")
    corr = [draw(correction(m, n, f"corrections[{i}]", clean)) for i in range(K)]
    bad = [] if array_ok(base, 2) and m > 0 and n > 0 else ["base"]
    bad += [f"corrections[{i}]" for i, (_, _, ok) in enumerate(corr) if not ok]
    corrections = [c for c, _, _ in corr]
    if not bad and draw(st.integers(0, 9), label="corrections=None") == 0:
        corrections = None
    if corrections is None:
        bad = ["corrections"]
    backend = draw(st.sampled_from(["numpy", "numba"]), label="backend")  # NumPy arrays either way
    tree, exc = outcome(lambda: LowRankSegmentTree(base, corrections, backend=backend))
    if exc is not None:
        check_refusal(exc, bad)
        return
    assert not bad, f"accepted bad {bad}"
    dts = [base]
    for c, _, _ in corr:
        dts += list(c) if isinstance(c, tuple) else [c.U, c.V] if isinstance(c, LowRank) else [c]
    work = np.result_type(*[working_dtype(np.asarray(a).dtype) for a in dts])
    assert tree.dtype == work
    model = [to_ref(base)] + [D for _, D, _ in corr]
    scale = max(fnorm(x) for x in model)
    # a dense correction is factorised in its own precision: the least precise input sets the accuracy
    eps = eps_of(*[working_dtype(np.asarray(a).dtype) for a in dts])

    def prefix(k):
        return sum(model[: k + 1], np.zeros((m, n), dtype=np.complex128))

    for _ in range(draw(st.integers(1, 3), label="operations")):
        K = len(model) - 1
        op = draw(st.sampled_from(["query", "mixed", "range", "all", "update", "append"]), label="op")
        X = draw(arrays(draw(st.sampled_from([(n, 2)] * 4 + [(n,)] * 2 + [(n + 1, 2), (n, 1, 1), (n, 0)]))), label="X")
        x_ok = array_ok(X) and X.ndim in (1, 2) and X.shape[0] == n
        Xr = to_ref(X)
        xeps = max(eps, eps_of(working_dtype(X.dtype) or np.float64))
        xscale = scale * fnorm(Xr) * (K + 1)
        before = tree_state(tree, n)
        if op == "query":
            k = draw(orders(K), label="k")
            bad = ([] if order_ok(k, 0, K) else ["k"]) + ([] if x_ok else ["X"])
            Y, exc = outcome(lambda: tree.query(k, X))
            want = lambda: prefix(int(k)) @ Xr
        elif op == "mixed":
            b = X.shape[1] if X.ndim == 2 else 1
            ks = draw(
                st.one_of(
                    st.lists(st.integers(-1, K + 1), min_size=b, max_size=b),
                    st.lists(st.integers(0, K), min_size=b, max_size=b).map(np.array),
                    st.lists(st.integers(0, K), min_size=b, max_size=b).map(lambda v: np.array(v, np.uint64)),
                    st.lists(st.integers(0, K), min_size=b, max_size=b).map(lambda v: np.array(v, float)),
                    st.lists(st.integers(0, K), min_size=b + 1, max_size=b + 1),
                ),
                label="ks",
            )
            arr = np.asarray(ks)
            ks_ok = (
                (arr.dtype.kind in "iu" or (isinstance(ks, list) and not ks))
                and arr.shape == (b,)
                and all(0 <= int(v) <= K for v in arr.ravel())
            )
            bad = ([] if ks_ok else ["k"]) + ([] if x_ok else ["X"])
            Y, exc = outcome(lambda: tree.query(ks, X))

            def want():
                Xm = Xr if Xr.ndim == 2 else Xr[:, None]
                cols = [prefix(int(v)) @ Xm[:, j] for j, v in enumerate(arr)]
                out = np.stack(cols, axis=1) if cols else np.zeros((m, 0))
                return out if Xr.ndim == 2 else out[:, 0]
        elif op == "range":
            lo, hi = draw(orders(K), label="first"), draw(orders(K), label="last")
            bad = [] if order_ok(lo, 1, K) else ["first"]
            bad += [] if order_ok(hi, int(lo) if "first" not in bad else 1, K) else ["last"]
            bad += [] if x_ok else ["X"]
            Y, exc = outcome(lambda: tree.range_query(lo, hi, X))
            want = lambda: (prefix(int(hi)) - prefix(int(lo) - 1)) @ Xr
        elif op == "all":
            bad = [] if x_ok else ["X"]
            Y, exc = outcome(lambda: tree.all_orders(X))
            want = lambda: np.stack([prefix(k) @ Xr for k in range(K + 1)])
        else:
            # float64 data into a float32 tree at float32-safe scales (beyond them: see test_validation_errors)
            delta, D, ok = draw(correction(m, n, "delta", single=work in (np.float32, np.complex64)))
            is_complex = np.iscomplexobj(
                delta.U if isinstance(delta, LowRank) else (delta[0] if isinstance(delta, tuple) else delta)
            ) or (isinstance(delta, tuple) and np.iscomplexobj(delta[1]))
            if ok and is_complex and work.kind != "c":
                ok = False  # complex data into a real tree
            bad = [] if ok else ["delta"]
            if op == "update":
                i = draw(orders(K), label="i")
                bad += [] if order_ok(i, 1, K) else ["i"]
                _, exc = outcome(lambda: tree.update(i, delta))
            else:
                _, exc = outcome(lambda: tree.append(delta))
            if exc is not None:
                check_refusal(exc, bad)
                np.testing.assert_array_equal(tree_state(tree, n), before)  # nothing changed
                continue
            assert not bad, f"accepted bad {bad}"
            if op == "update":
                model[int(i)] = D
            else:
                model.append(D)
            first = delta.U if isinstance(delta, LowRank) else (delta[0] if isinstance(delta, tuple) else delta)
            eps = max(
                eps,
                eps_of(
                    *[
                        working_dtype(np.asarray(a).dtype)
                        for a in ([first, delta[1]] if isinstance(delta, tuple) else [first])
                    ]
                ),
            )
            scale = max(fnorm(x) for x in model)
            assert tree.max_order == len(model) - 1
            got = tree_state(tree, n)
            for k in range(len(model)):
                close(got[k], prefix(k), scale * (len(model)), eps)
            continue
        if exc is not None:
            check_refusal(exc, bad)
        else:
            assert not bad, f"accepted bad {bad}"
            close(Y, want(), xscale, xeps)
        np.testing.assert_array_equal(tree_state(tree, n), before)  # queries change nothing


# --------------------------------------------------------------------------
# Cascade, numerical_difference_profile
# --------------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_fuzz_cascade_and_difference_profile(data):
    draw = data.draw
    m, n = draw(shapes_2d(min_side=0), label="m, n")
    K = draw(st.integers(0, 3), label="K")
    clean = draw(weighted((2, st.just("valid")), (1, st.none())), label="clean")
    base = draw(arrays((m, n), clean), label="base")
    corr = [draw(correction(m, n, f"corrections[{i}]", clean)) for i in range(K)]
    corr = [
        (c, D, ok) if not (isinstance(c, np.ndarray)) else ((np.ones((m, 1)), np.ones((n, 1))), None, True)
        for c, D, ok in corr
    ]  # Cascade takes factors only; a dense one becomes a known pair
    corr = [(c, np.ones((m, 1)) @ np.ones((n, 1)).T if D is None and ok else D, ok) for c, D, ok in corr]
    errors = draw(
        st.one_of(
            st.none(),
            st.lists(st.sampled_from([0.0, 0.5, None, float("nan"), -1.0, "a"]), min_size=K + 1, max_size=K + 1),
            st.just(["a"]),
        ),
        label="errors",
    )
    bad = [] if array_ok(base, 2) else ["base"]
    bad += [f"corrections[{i}]" for i, (_, _, ok) in enumerate(corr) if not ok]
    if errors is not None and (
        len(errors) != K + 1 or any(isinstance(e, str) or (e is not None and e < 0) for e in errors)
    ):
        bad.append("errors")
    c, exc = outcome(lambda: Cascade(base, [x for x, _, _ in corr], errors=errors))
    if exc is not None:
        check_refusal(exc, bad)
    else:
        assert not bad, f"accepted bad {bad}"
        model = [to_ref(base)] + [D for _, D, _ in corr]
        scale = max(fnorm(x) for x in model)
        total = np.zeros((m, n), dtype=np.complex128)
        for k in range(K + 1):
            total = total + model[k]
            close(c.matrix(k), total, scale * (K + 1), eps_of(c.dtype))

    stack = draw(arrays(draw(st.sampled_from([(K + 1, m, n)] * 6 + [(m, n)]))), label="mats")
    bad = [] if array_ok(stack, 3) and m > 0 and n > 0 and K + 1 >= 1 else ["mats"]
    prof, exc = outcome(lambda: lrt.numerical_difference_profile(stack))
    if exc is not None:
        check_refusal(exc, bad)
        return
    assert not bad, f"accepted bad {bad}"
    ref = to_ref(stack)
    assert len(prof.ranks) == K + 1
    for k in range(K + 1):
        D = np.diff(ref, n=k, axis=0) if k else ref
        # every difference has rank <= min(m, n); the profile is the max over j of the numerical ranks
        counts = [int(np.sum(np.linalg.svd(Dj, compute_uv=False) > prof.thresholds[k] * (1 + 1e-6))) for Dj in D]
        counts_lo = [int(np.sum(np.linalg.svd(Dj, compute_uv=False) > prof.thresholds[k] * (1 - 1e-6))) for Dj in D]
        assert max(counts) <= prof.ranks[k] <= max(counts_lo) <= min(m, n)


# --------------------------------------------------------------------------
# synthetic_evolution
# --------------------------------------------------------------------------
@FUZZ
@given(
    K=mostly(st.integers(0, 4), -1, 2.0),
    m=mostly(st.integers(0, 5), -1, True),
    n=st.integers(0, 5),
    terms=mostly(st.integers(0, 3), -1),
    rank=mostly(st.integers(0, 3), -1, True),
    drift=mostly(st.integers(0, 2), -1),
    noise=mostly(st.sampled_from([0.0, 1e-3]), -1.0, float("nan"), float("inf")),
    seed=mostly(st.sampled_from([0, 5, None]), -1, "s"),
    dtype=mostly(st.sampled_from(["float64", "float32", np.complex128, "complex64"]), bool, "float16", "int64", "nope"),
)
def test_fuzz_synthetic_evolution(K, m, n, terms, rank, drift, noise, seed, dtype):
    bad = [
        name
        for name, v in (("K", K), ("m", m), ("n", n), ("terms", terms), ("rank", rank), ("drift_rank", drift))
        if not order_ok(v, 0, math.inf)
    ]
    if not (noise >= 0 and math.isfinite(noise)):
        bad.append("noise")
    if not (seed is None or order_ok(seed, 0, math.inf)):
        bad.append("seed")
    if str(np.dtype(dtype) if dtype != "nope" else "nope") not in ("float32", "float64", "complex64", "complex128"):
        bad.append("dtype")
    mats, exc = outcome(
        lambda: lrt.synthetic_evolution(
            K=K, m=m, n=n, terms=terms, rank=rank, drift_rank=drift, noise=noise, seed=seed, dtype=dtype
        )
    )
    if exc is not None:
        check_refusal(exc, bad)
        return
    assert not bad, f"accepted bad {bad}"
    assert mats.shape == (K + 1, m, n) and mats.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(mats))
    if noise == 0.0 and m and n:
        # successive differences: the polynomial terms plus the drift, nothing else
        for k in range(K):
            D = mats[k + 1].astype(np.complex128) - mats[k]
            tol = 100 * max(m, n) * np.finfo(mats.dtype).eps * fnorm(mats[k + 1])  # rounding of W + drift
            assert np.linalg.matrix_rank(D, tol=tol) <= terms * rank + drift
