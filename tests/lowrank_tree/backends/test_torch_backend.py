"""The torch backend: tensors in, tensors out, on the input's device and dtype, and no host copies.

The whole behavioural suite also runs on ``torch`` (and on ``torch-cuda`` where
PyTorch sees a GPU) through the ``lib`` fixture; this file checks what is
particular to torch: devices, dtypes torch has and NumPy lacks (bfloat16),
``requires_grad``, the ``backend=``/``device=`` arguments, persistence, and that
no tensor is copied to the host inside the algorithms.  Two-device mixes are
checked without a GPU on torch's ``meta`` device (tensors with a shape and no
data), and the core's device plumbing on ``array_api_strict``'s second device.
"""

import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowrank_tree as lrt
from lowrank_tree import Cascade, LowRank, LowRankSegmentTree, cascade_fit, load, save
from lowrank_tree.backends import get_func, operations, unavailable_reason

torch = pytest.importorskip("torch", reason="needs PyTorch: pip install torch")

ROOT = pathlib.Path(__file__).resolve().parents[3]
CUDA = torch.cuda.is_available()
#: The devices the torch backend is checked on here.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs PyTorch with a CUDA GPU"))]
DTYPES = {
    torch.float32: (np.float32, 2e-5),
    torch.float64: (np.float64, 1e-12),
    torch.complex64: (np.complex64, 2e-5),
    torch.complex128: (np.complex128, 1e-12),
}


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.complex128), np.asarray(b, dtype=np.complex128)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (nb if nb > 0 else 1.0))


def host(t):
    return t.detach().cpu().resolve_conj().numpy()


def random(rng, shape, np_dtype):
    a = rng.standard_normal(shape)
    if np.dtype(np_dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(np_dtype)


def family(rng, m, n, ranks, np_dtype):
    base = random(rng, (m, n), np_dtype)
    deltas = [(random(rng, (m, r), np_dtype), random(rng, (n, r), np_dtype)) for r in ranks]
    return base, deltas


def dense_orders(base, deltas):
    """``W_0..W_K`` in complex128 (the imaginary parts are exactly 0 for real input)."""
    out = [base.astype(np.complex128)]
    for U, V in deltas:
        out.append(out[-1] + U.astype(np.complex128) @ V.T.astype(np.complex128))
    return out


def stack_as(mats, np_dtype):
    stack = np.stack(mats)
    return (stack if np.dtype(np_dtype).kind == "c" else stack.real).astype(np_dtype)


def on(device, a):
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


# --------------------------------------------------------------------------
# dtype and device in = out, every operation
# --------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
@settings(max_examples=10)
@given(
    m=st.integers(1, 7),
    n=st.integers(1, 7),
    ranks=st.lists(st.integers(0, 3), min_size=0, max_size=6),
    b=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_tree_results_keep_device_and_dtype(device, dtype, m, n, ranks, b, seed):
    np_dtype, tol = DTYPES[dtype]
    rng = np.random.default_rng(seed)
    base, deltas = family(rng, m, n, ranks, np_dtype)
    tree = LowRankSegmentTree(on(device, base), [(on(device, U), on(device, V)) for U, V in deltas])
    K = len(ranks)
    assert tree.backend == "torch" and tree.dtype == dtype and tree.max_order == K
    W = dense_orders(base, deltas)
    X = random(rng, (n, b), np_dtype)
    Xt = on(device, X)
    ks = rng.integers(0, K + 1, size=b)
    results = {
        "query": (tree.query(K, Xt), W[K] @ X),
        "query_vector": (tree.query(K // 2, Xt[:, 0]), W[K // 2] @ X[:, 0]),
        "mixed": (tree.query(on(device, ks), Xt), np.stack([W[k] @ X[:, j] for j, k in enumerate(ks)], axis=1)),
        "all_orders": (tree.all_orders(Xt), np.stack([Wk @ X for Wk in W])),
        "matrix": (tree.matrix(K), W[K]),
        "base": (tree.base, base),
    }
    if K:
        results["range"] = (tree.range_query(1, K, Xt), (W[K] - W[0]) @ X)
    for name, (got, want) in results.items():
        assert isinstance(got, torch.Tensor), name
        assert got.device.type == device and got.dtype == dtype, (name, got.device, got.dtype)
        assert rel_err(host(got), want) <= tol, name
    if K:
        U, V = random(rng, (m, 2), np_dtype), random(rng, (n, 2), np_dtype)
        tree.update(1, (on(device, U), on(device, V)))
        tree.append((on(device, U), on(device, V)))
        W = dense_orders(base, [(U, V)] + deltas[1:] + [(U, V)])
        got = tree.query(K + 1, Xt)
        assert got.device.type == device and got.dtype == dtype
        assert rel_err(host(got), W[K + 1] @ X) <= tol
        tree._check()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
@pytest.mark.parametrize(
    "mode",
    [dict(ranks=2), dict(tol=1e-3), dict(ranks=2, method="randomized", seed=3), dict(tol=1e-3, method="randomized")],
    ids=["ranks", "tol", "randomized-ranks", "randomized-tol"],
)
def test_fit_and_cascade_keep_device_and_dtype(device, dtype, mode):
    np_dtype, tol = DTYPES[dtype]
    rng = np.random.default_rng(1)
    base, deltas = family(rng, 40, 30, [2] * 5, np_dtype)
    mats = stack_as(dense_orders(base, deltas), np_dtype)
    casc = cascade_fit(on(device, mats), **mode)
    assert casc.backend == "torch" and casc.dtype == dtype and casc.device.type == device
    for k in range(mats.shape[0]):
        fitted = casc.matrix(k)
        assert fitted.device.type == device and fitted.dtype == dtype
        # rank-2 corrections: ranks=2 is lossless (rounding only); tol=1e-3 meets its tolerance,
        # and the cascade reports the error it measured
        limit = 1e-3 * (1 + 1e-3) if "tol" in mode else 10 * tol
        assert rel_err(host(fitted), mats[k]) <= limit
        assert casc.errors[k] <= limit
    tree = casc.tree()
    assert tree.backend == "torch" and tree.dtype == dtype
    X = on(device, random(rng, (30, 3), np_dtype))
    assert tree.query(5, X).device.type == device


def test_budget_fit_on_torch_matches_numpy():
    rng = np.random.default_rng(2)
    base, deltas = family(rng, 20, 16, [1, 3, 2, 1], np.float64)
    mats = np.stack(dense_orders(base, deltas)).real
    want = cascade_fit(mats, budget=5 * 36)
    got = cascade_fit(torch.from_numpy(mats), budget=5 * 36)
    assert got.ranks == want.ranks
    assert np.allclose(got.errors, want.errors, rtol=1e-8, atol=1e-12)


def test_difference_profiles_take_tensors():
    # A(j) = M0 + j M1 + C(j, 2) M2 with rank(M1) = 3, rank(M2) = 1: Δ A has rank <= 4, Δ² A rank 1
    rng = np.random.default_rng(3)
    M0 = rng.standard_normal((9, 8))
    M1 = rng.standard_normal((9, 3)) @ rng.standard_normal((3, 8))
    M2 = np.outer(rng.standard_normal(9), rng.standard_normal(8))
    mats = np.stack([M0 + j * M1 + j * (j - 1) / 2 * M2 for j in range(6)])
    want = lrt.numerical_difference_profile(mats)
    got = lrt.numerical_difference_profile(torch.from_numpy(mats))
    assert list(got.ranks) == list(want.ranks) == [8, 4, 1, 0, 0, 0]
    # the row spaces of M1 and M2 are independent: their sum is direct, as NumPy finds too
    pieces = [torch.from_numpy(M1), torch.from_numpy(M2)]
    assert lrt.direct_sum_check(pieces) == lrt.direct_sum_check([M1, M2])
    assert lrt.direct_sum_check(pieces).is_direct


# --------------------------------------------------------------------------
# float16 / bfloat16: computed (and returned) in float32
# --------------------------------------------------------------------------
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_input_computes_in_float32(half):
    rng = np.random.default_rng(4)
    base, deltas = family(rng, 12, 10, [1, 2], np.float32)
    t_base = torch.from_numpy(base).to(half)
    t_deltas = [(torch.from_numpy(U).to(half), torch.from_numpy(V).to(half)) for U, V in deltas]
    # the reference: the half-precision values, exactly widened to float32 (what the library computes with)
    widened = [(U.to(torch.float32).numpy(), V.to(torch.float32).numpy()) for U, V in t_deltas]
    W = dense_orders(t_base.to(torch.float32).numpy(), widened)
    tree = LowRankSegmentTree(t_base, t_deltas)
    assert tree.dtype == torch.float32
    X = torch.from_numpy(rng.standard_normal((10, 2))).to(half)
    Y = tree.query(2, X)
    assert Y.dtype == torch.float32
    assert rel_err(Y.numpy(), W[2] @ X.to(torch.float32).numpy()) <= 1e-5
    mats = torch.stack([torch.from_numpy(w.real.astype(np.float32)) for w in W]).to(half)
    casc = cascade_fit(mats)  # lossless: the half values widened are fitted to float32 rounding
    assert casc.dtype == torch.float32 and casc.base.dtype == torch.float32
    assert rel_err(casc.matrix(2).numpy(), mats[2].to(torch.float32).numpy()) <= 1e-5
    low = LowRank(*t_deltas[1])
    assert low.dtype == torch.float32


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental:UserWarning")
def test_complex32_becomes_complex64_and_bool_is_refused():
    tree = LowRankSegmentTree(torch.eye(3).to(torch.complex32))
    assert tree.dtype == torch.complex64
    with pytest.raises(TypeError, match="base must have a real or complex floating dtype.*got bool"):
        LowRankSegmentTree(torch.ones((2, 2), dtype=torch.bool))
    tree = LowRankSegmentTree(torch.eye(3, dtype=torch.int32))  # integers become float64, as in NumPy
    assert tree.dtype == torch.float64


def test_mixed_precision_query_promotes_as_numpy_does():
    # torch's own @ refuses mixed dtypes; the library promotes (xp.matmul), as on every backend
    rng = np.random.default_rng(5)
    base, deltas = family(rng, 6, 5, [1, 2], np.float32)
    tree = LowRankSegmentTree(torch.from_numpy(base), [(torch.from_numpy(U), torch.from_numpy(V)) for U, V in deltas])
    np_tree = LowRankSegmentTree(base, deltas)
    for X in (rng.standard_normal((5, 2)), rng.standard_normal((5, 2)) + 1j * rng.standard_normal((5, 2))):
        want = np_tree.query(2, X)
        got = tree.query(2, torch.from_numpy(X))
        assert str(got.dtype).split(".")[-1] == want.dtype.name
        assert rel_err(got.numpy(), want) <= 1e-6
        assert rel_err(tree.all_orders(torch.from_numpy(X)).numpy(), np_tree.all_orders(X)) <= 1e-6
        assert rel_err(tree.query([2, 0], torch.from_numpy(X)).numpy(), np_tree.query([2, 0], X)) <= 1e-6
    A = LowRank(torch.from_numpy(deltas[0][0]), torch.from_numpy(deltas[0][1]))
    assert (A * (1 + 2j)).dtype == torch.complex64  # both factors follow a complex scalar
    assert rel_err((A * (1 + 2j)).to_dense().numpy(), (1 + 2j) * deltas[0][0] @ deltas[0][1].T) <= 1e-6


# --------------------------------------------------------------------------
# requires_grad: refused, never silently detached; a refused call changes nothing
# --------------------------------------------------------------------------
def test_requires_grad_is_refused_with_a_pointer_to_the_trainable_layer():
    rng = np.random.default_rng(6)
    base = torch.from_numpy(rng.standard_normal((4, 3)))
    U, V = torch.ones((4, 1), dtype=torch.float64), torch.ones((3, 1), dtype=torch.float64)
    tracked = base.clone().requires_grad_()
    message = r"requires grad.*\.detach\(\).*lowrank_tree\.torch\.CascadedLinear"
    with pytest.raises(TypeError, match="base is a tensor that requires grad"):
        LowRankSegmentTree(tracked, [(U, V)])
    with pytest.raises(TypeError, match=message):
        LowRankSegmentTree(base, [(U.clone().requires_grad_(), V)])
    with pytest.raises(TypeError, match="mats is a tensor that requires grad"):
        cascade_fit(torch.stack([base, base]).requires_grad_())
    with pytest.raises(TypeError, match=r"mats\[1\] is a tensor that requires grad"):
        cascade_fit([base, tracked])
    with pytest.raises(TypeError, match="V is a tensor that requires grad"):
        LowRank(U, V.clone().requires_grad_())
    with pytest.raises(TypeError, match="requires grad"):
        Cascade(tracked, [])
    tree = LowRankSegmentTree(base, [(U, V)])
    X = torch.ones((3, 2), dtype=torch.float64)
    before = tree.query(1, X).clone()
    with pytest.raises(TypeError, match="X is a tensor that requires grad"):
        tree.query(1, X.clone().requires_grad_())
    with pytest.raises(TypeError, match="requires grad"):
        tree.update(1, (2 * U, V.clone().requires_grad_()))
    with pytest.raises(TypeError, match="requires grad"):
        tree.append((U.clone().requires_grad_(), V))
    assert tree.max_order == 1 and torch.equal(tree.query(1, X), before)
    with pytest.raises(TypeError, match="requires grad"):
        lrt.numerical_difference_profile(torch.stack([base, base, base]).requires_grad_())
    # a detached tensor is fine, and inference mode tensors too
    with torch.no_grad():
        assert torch.equal(tree.query(1, X), before)


# --------------------------------------------------------------------------
# mixing devices and libraries
# --------------------------------------------------------------------------
def test_two_devices_are_refused_naming_the_arguments():
    # the meta device stands in for a GPU: a tensor there has a device, a shape and no data
    cpu = torch.eye(3, dtype=torch.float64)
    meta = torch.empty((3, 1), dtype=torch.float64, device="meta")
    ones = torch.ones((3, 1), dtype=torch.float64)
    with pytest.raises(
        TypeError, match=r"more than one device \(base, corrections\[0\]\[1\] on cpu; corrections\[0\]\[0\] on meta\)"
    ):
        LowRankSegmentTree(cpu, [(meta, ones)])
    with pytest.raises(TypeError, match=r"more than one device \(U on meta; V on cpu\)"):
        LowRank(meta, ones)
    with pytest.raises(TypeError, match=r"mats\[0\] on cpu; mats\[1\] on meta"):
        cascade_fit([cpu, torch.empty((3, 3), dtype=torch.float64, device="meta")])
    tree = LowRankSegmentTree(cpu, [(ones, ones)])
    with pytest.raises(TypeError, match="X is on device meta but this object's arrays are on cpu"):
        tree.query(1, torch.empty((3, 2), dtype=torch.float64, device="meta"))
    with pytest.raises(TypeError, match=r"delta U factor is on device meta but this object's arrays are on cpu"):
        tree.update(1, (meta, ones))
    with pytest.raises(TypeError, match="on device meta"):
        tree.append((ones, meta))
    with pytest.raises(TypeError, match="LowRank on device meta"):
        Cascade(cpu, [LowRank._from_factors(meta, meta, tree._xp)])

    # an iterator's later matrices must follow the first one's device
    def stream():
        yield cpu
        yield torch.empty((3, 3), dtype=torch.float64, device="meta")

    with pytest.raises(TypeError, match=r"mats\[1\] is on device meta but this object's arrays are on cpu"):
        cascade_fit(stream())
    assert tree.max_order == 1 and tree._check() is None


def test_torch_mixed_with_numpy_or_strict_is_refused_naming_the_arguments():
    import array_api_strict as xps

    t = torch.ones((3, 1), dtype=torch.float64)
    with pytest.raises(
        TypeError, match=r"mixed array libraries \(base from numpy; corrections\[0\]\[0\], .* from torch\)"
    ):
        LowRankSegmentTree(np.eye(3), [(t, t)])
    with pytest.raises(TypeError, match="mixed array libraries"):
        LowRank(xps.ones((3, 1), dtype=xps.float64), t)
    tree = LowRankSegmentTree(torch.eye(3, dtype=torch.float64), [(t, t)])
    with pytest.raises(TypeError, match="X is a array_api_strict array but this object uses the torch backend"):
        tree.query(1, xps.ones((3, 1), dtype=xps.float64))
    np_tree = LowRankSegmentTree(np.eye(3), [(np.ones((3, 1)), np.ones((3, 1)))])
    with pytest.raises(TypeError, match="X is a torch array but this object uses the numpy backend"):
        np_tree.query(1, torch.ones((3, 2), dtype=torch.float64))
    # NumPy input to a torch object is copied to its device, as for CuPy
    Y = tree.query(1, np.ones((3, 2)))
    assert isinstance(Y, torch.Tensor) and torch.allclose(Y, torch.full((3, 2), 4.0, dtype=torch.float64))


# --------------------------------------------------------------------------
# backend="torch" and device=
# --------------------------------------------------------------------------
@pytest.mark.parametrize("device", [None, "cpu", pytest.param("cuda", marks=DEVICES[1].marks)])
def test_backend_torch_moves_numpy_input(device):
    rng = np.random.default_rng(7)
    base, deltas = family(rng, 8, 6, [1, 2, 1], np.float64)
    where = device or "cpu"
    kw = {"backend": "torch"} if device is None else {"backend": "torch", "device": device}
    tree = LowRankSegmentTree(base, deltas, **kw)
    assert tree.backend == "torch" and tree.base.device.type == where
    X = rng.standard_normal((6, 2))
    W = dense_orders(base, deltas)
    Y = tree.query(3, X)
    assert isinstance(Y, torch.Tensor) and Y.device.type == where and rel_err(host(Y), W[3] @ X) <= 1e-12
    low = LowRank(*deltas[1], **kw)
    assert low.device.type == where and low.U.device.type == where
    assert LowRank.from_dense(base, rank=2, **kw).device.type == where
    mats = np.stack(W).real
    casc = cascade_fit(mats, ranks=2, **kw)
    assert casc.device.type == where and casc.base.device.type == where
    assert rel_err(host(casc.matrix(3)), mats[3]) <= 1e-10
    casc = cascade_fit(iter(list(mats)), tol=1e-10, method="randomized", seed=0, **kw)
    assert casc.device.type == where and rel_err(host(casc.matrix(3)), mats[3]) <= 1e-9
    c2 = Cascade(base, deltas, **kw)
    assert c2.device.type == where and c2.tree().base.device.type == where


def test_explicit_device_moves_tensors_and_bad_devices_are_named():
    cpu = torch.eye(3, dtype=torch.float64)
    # device="cpu" on CPU tensors: nothing to move, and the values are the caller's
    tree = LowRankSegmentTree(cpu, [(torch.ones((3, 1), dtype=torch.float64),) * 2], device="cpu")
    assert tree.base.device.type == "cpu"
    with pytest.raises(ValueError, match="device must be a device of the numpy backend.*'cuda'"):
        LowRankSegmentTree(np.eye(3), device="cuda")
    with pytest.raises(ValueError, match="device must be a device of the torch backend.*'nowhere'"):
        cascade_fit(np.zeros((2, 3, 3)), backend="torch", device="nowhere")
    if not CUDA:
        with pytest.raises(ValueError, match="device must be a device of the torch backend.*'cuda'"):
            LowRank(np.ones((3, 1)), np.ones((3, 1)), backend="torch", device="cuda")


def test_explicit_device_copies_tensors_there():
    # meta tensors carry no data, so only the placement can be checked: the copy lands on meta
    cpu = torch.eye(3, dtype=torch.float64)
    from lowrank_tree._validation import as_array, resolve_device

    xp = LowRankSegmentTree(cpu)._xp
    dev = resolve_device(xp, "meta")
    moved = as_array(cpu, xp, "base", device=dev, move=True)
    assert moved.device.type == "meta" and cpu.device.type == "cpu"
    with pytest.raises(TypeError, match="base is on device cpu but this object's arrays are on meta"):
        as_array(cpu, xp, "base", device=dev)


# --------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex128], ids=str)
def test_save_load_round_trip(tmp_path, device, dtype):
    np_dtype, _ = DTYPES[dtype]
    rng = np.random.default_rng(8)
    base, deltas = family(rng, 7, 5, [2, 0, 1], np_dtype)
    tree = LowRankSegmentTree(on(device, base), [(on(device, U), on(device, V)) for U, V in deltas], rtol=1e-6)
    path = save(tree, tmp_path / "tree")
    again = load(path, backend="torch", device=device)
    assert isinstance(again, LowRankSegmentTree) and again.backend == "torch" and again.rtol == 1e-6
    assert again.base.device.type == device and again.dtype == dtype
    assert torch.equal(again.base, tree.base)
    for a, b in zip(again.corrections, tree.corrections):
        assert torch.equal(a.U, b.U) and torch.equal(a.V, b.V)
    on_numpy = load(path)
    assert type(on_numpy.base) is np.ndarray and np.array_equal(on_numpy.base, host(tree.base))
    mats = on(device, stack_as(dense_orders(base, deltas), np_dtype))
    casc = cascade_fit(mats, ranks=2)
    path = save(casc, tmp_path / "casc.npz")
    back = load(path, backend="torch", device=device)
    assert isinstance(back, Cascade) and back.ranks == casc.ranks and back.errors == casc.errors
    assert back.device.type == device and torch.equal(back.matrix(3), casc.matrix(3))


# --------------------------------------------------------------------------
# no host round trip inside the algorithms
# --------------------------------------------------------------------------
@pytest.fixture
def no_tensor_to_host(monkeypatch):
    """Copying a tensor to the host (or to NumPy) raises while the fixture is active.

    Scalar reads (``float``, ``int``, ``bool`` of 0-d tensors, ``.item()``:
    norms, ranks, finiteness flags, the distinct orders of a mixed batch)
    stay allowed: they are one small synchronisation each, as on CuPy.  So
    does ``cascade_fit(budget=...)``'s copy of the singular values it
    allocates ranks with (not checked here), and ``save``.
    """

    def refuse(*_args, **_kwargs):
        raise AssertionError("a tensor was copied to the host")

    original_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        target = kwargs.get("device", args[0] if args and isinstance(args[0], (str, torch.device)) else None)
        if target is not None and torch.device(target).type == "cpu" and self.device.type != "cpu":
            refuse()
        return original_to(self, *args, **kwargs)

    for name in ("numpy", "cpu", "tolist", "__array__", "__dlpack__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    monkeypatch.setattr(torch.Tensor, "to", to)


@pytest.mark.parametrize("device", DEVICES)
def test_no_host_round_trip_inside_query_update_append_fit(device, no_tensor_to_host):
    rng = np.random.default_rng(9)
    m, n, K = 12, 9, 11
    # host -> device copies are allowed (the data comes from the host); device -> host ones are not
    mats = torch.tensor(rng.standard_normal((K + 1, m, n)), device=device)
    for kwargs in (
        dict(ranks=2),
        dict(tol=1e-3),
        dict(ranks=3, method="randomized", seed=0),
        dict(tol=1e-2, method="randomized", seed=0),
    ):
        casc = cascade_fit(mats, **kwargs)
        tree = casc.tree()
        X = torch.tensor(rng.standard_normal((n, 4)), device=device)
        outs = [
            tree.query(K, X),
            tree.query(K, X),  # the cached path
            tree.query(torch.tensor([0, 3, K, 7], device=device), X),
            tree.query([0, 3, K, 7], X),
            tree.range_query(2, 9, X),
            tree.all_orders(X),
            tree.matrix(5),
            casc.matrix(K),
        ]
        ones = torch.ones((m, 1), dtype=torch.float64, device=device)
        tree.update(3, (ones, torch.ones((n, 1), dtype=torch.float64, device=device)))
        tree.append(
            (
                torch.ones((m, 2), dtype=torch.float64, device=device),
                torch.ones((n, 2), dtype=torch.float64, device=device),
            )
        )
        outs.append(tree.query(K + 1, X))
        assert all(isinstance(o, torch.Tensor) and o.device.type == device for o in outs)
    low = LowRank.from_dense(mats[1] - mats[0], rank=3)
    assert (low @ X).device.type == device and low.compress().rank <= 3


def test_no_host_fixture_catches_a_host_copy(no_tensor_to_host):
    t = torch.ones(3)
    for export in (lambda: t.numpy(), lambda: np.asarray(t), lambda: t.tolist(), lambda: t.cpu()):
        with pytest.raises(AssertionError, match="copied to the host"):
            export()


# --------------------------------------------------------------------------
# the backend module's own operations
# --------------------------------------------------------------------------
def test_random_streams_are_reproducible_and_complex_has_unit_variance():
    make, normal = get_func("make_rng", "torch"), get_func("standard_normal", "torch")
    a = normal(make(5), (4, 3), torch.float64)
    assert torch.equal(a, normal(make(5), (4, 3), torch.float64))
    assert not torch.equal(a, normal(make(6), (4, 3), torch.float64))
    assert torch.equal(
        normal(make(np.random.default_rng(1)), (2,), torch.float32),
        normal(make(np.random.default_rng(1)), (2,), torch.float32),
    )
    g = torch.Generator().manual_seed(3)
    assert make(g) is g
    z = normal(make(0), (200_000,), torch.complex128)
    assert z.dtype == torch.complex128
    # E|z|² = 1, each part variance 1/2; 200 000 samples: standard error about 0.003
    assert abs(float((z.abs() ** 2).mean()) - 1.0) < 0.02
    assert abs(float(z.real.var()) - 0.5) < 0.01 and abs(float(z.imag.var()) - 0.5) < 0.01
    with pytest.raises(ValueError, match="torch.Generator on cpu, but the arrays are on meta"):
        make(g, "meta")
    casc_a = cascade_fit(
        torch.from_numpy(np.random.default_rng(2).standard_normal((3, 40, 30))),
        ranks=2,
        method="randomized",
        seed=torch.Generator().manual_seed(1),
    )
    casc_b = cascade_fit(
        torch.from_numpy(np.random.default_rng(2).standard_normal((3, 40, 30))),
        ranks=2,
        method="randomized",
        seed=torch.Generator().manual_seed(1),
    )
    assert torch.equal(casc_a.matrix(2), casc_b.matrix(2))
    with pytest.raises(TypeError, match="seed is a torch.Generator, which only the torch backend draws from"):
        cascade_fit(np.zeros((2, 3, 3)), seed=torch.Generator())
    with pytest.raises(TypeError, match="seed is a torch.Generator"):
        lrt.synthetic_evolution(K=2, m=3, n=3, seed=torch.Generator())


def test_asarray_copies_foreign_memory_and_keeps_float64():
    asarray = get_func("asarray", "torch")
    a = np.arange(6.0).reshape(2, 3)
    t = asarray(a)
    a[0, 0] = 99.0
    assert t.dtype == torch.float64 and float(t[0, 0]) == 0.0  # a copy, not a view of the caller's array
    assert asarray([[1.0, 2.0]]).dtype == torch.float64  # NumPy's default, not torch's float32
    x = torch.ones(2)
    assert asarray(x) is x
    assert asarray(np.arange(3, dtype=">f8")).tolist() == [0.0, 1.0, 2.0]
    stacked = asarray([torch.ones(2), torch.zeros(2)])
    assert stacked.shape == (2, 2)
    with pytest.raises(TypeError, match="expected numbers"):
        asarray(["a"])


def test_operations_of_the_torch_backend():
    ops = operations("torch")
    first = torch.arange(3.0)
    C = torch.arange(12.0).reshape(4, 3)
    want = np.concatenate([first.numpy()[None], first.numpy()[None] + np.cumsum(C.numpy(), axis=0)])
    assert np.array_equal(ops.prefix_sum(first, C).numpy(), want)
    ops.synchronize()  # no CUDA work queued: returns at once
    assert ops.linear_operator is None
    tree = LowRankSegmentTree(torch.eye(3, dtype=torch.float64))
    with pytest.raises(NotImplementedError, match="operation 'linear_operator' is not available for backend 'torch'"):
        tree.operator(0)
    t = torch.ones((2, 2))
    copy = ops.read_only(t)
    copy[0, 0] = 5.0
    assert float(t[0, 0]) == 1.0  # handed-out arrays are copies: writing to them changes nothing
    assert ops.to_numpy(torch.tensor([1 + 2j]).conj()).tolist() == [1 - 2j]
    assert unavailable_reason("torch") is None


def test_small_fits_hold_torch_at_one_thread_and_restore_it():
    from lowrank_tree._threads import small_blas

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a, b = small_blas(True), small_blas(True)
        a.__enter__()
        assert torch.get_num_threads() == 1
        b.__enter__()
        a.__exit__(None, None, None)  # interleaved exits: the limit stays while b is inside
        assert torch.get_num_threads() == 1
        b.__exit__(None, None, None)
        assert torch.get_num_threads() == 2
        with small_blas(False):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_handed_out_tensors_cannot_change_the_objects():
    base = torch.eye(3, dtype=torch.float64)
    U = torch.ones((3, 1), dtype=torch.float64)
    tree = LowRankSegmentTree(base, [(U, U)])
    base[0, 0] = 7.0  # the caller's tensors were copied
    U[0, 0] = 7.0
    tree.base[1, 1] = 9.0  # and what the tree hands out are copies
    tree.correction(1).U[2, 0] = 9.0
    assert torch.equal(tree.matrix(1), torch.eye(3, dtype=torch.float64) + 1.0)


# --------------------------------------------------------------------------
# the core's device plumbing, without a GPU: array_api_strict's second device
# --------------------------------------------------------------------------
def test_core_creates_every_array_on_the_inputs_device():
    """Any array made on the default device (a missing ``device=``) meets one from device1 and raises."""
    import array_api_strict as xps

    dev = xps.Device("device1")
    rng = np.random.default_rng(10)
    m, n, K = 10, 8, 7
    mats = xps.asarray(rng.standard_normal((K + 1, m, n)), device=dev)
    for kwargs in (
        dict(ranks=2),
        dict(tol=1e-3),
        dict(ranks=2, method="randomized", seed=0),
        dict(tol=1e-2, method="randomized", seed=0),
        dict(budget=150),
    ):
        casc = cascade_fit(mats, **kwargs)
        assert casc.device == dev
        tree = casc.tree()
        X = xps.asarray(rng.standard_normal((n, 3)), device=dev)
        outs = [
            tree.query(K, X),
            tree.query(K, X),
            tree.query([0, 3, K], X),
            tree.query([K, 0, 3], X),
            tree.range_query(2, 5, X),
            tree.all_orders(X),
            tree.matrix(4),
        ]
        tree.update(
            2, (xps.ones((m, 1), dtype=xps.float64, device=dev), xps.ones((n, 1), dtype=xps.float64, device=dev))
        )
        tree.append(([[1.0]] * m, [[2.0]] * n))  # a list goes to the tree's device
        outs.append(tree.query(K + 1, X))
        assert all(o.device == dev for o in outs)
    empty = (xps.asarray(np.zeros((m, 0)), device=dev), xps.asarray(np.zeros((n, 0)), device=dev))
    zero = LowRankSegmentTree(xps.asarray(np.zeros((m, n)), device=dev), [empty])
    assert zero.query(1, X).device == dev
    assert LowRank.from_dense(xps.asarray(np.zeros((0, 3)), device=dev)).device == dev


def test_ci_installs_the_pinned_cpu_torch_before_the_readme_test_command():
    """CI runs the torch cases: ``.ci/run`` installs ``torch==2.13.0`` (a CPU build here) before the tests."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    test_line = next(i for i, line in enumerate(lines) if "-m pytest" in line and not line.startswith("#"))
    installs = [
        i for i, line in enumerate(lines) if "torch" in line and "pip install" in line and not line.startswith("#")
    ]
    assert installs and max(installs) < test_line
    assert all('"torch==2.13.0"' in lines[i] for i in installs)  # never an unpinned torch (a CUDA build of GBs)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'torch = ["torch>=2.1"]' in pyproject


def test_without_torch_the_package_imports_and_the_backend_says_what_to_install():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, lowrank_tree as lrt\n"
        "from lowrank_tree.backends import unavailable_reason\n"
        "print(unavailable_reason('torch'))\n"
        "try:\n"
        "    lrt.LowRankSegmentTree(np.eye(2), backend='torch')\n"
        "except ImportError as exc:\n"
        "    print('ImportError', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == 'the "torch" backend needs PyTorch: pip install torch (or "lowrank-tree[torch]")'
    assert lines[1].startswith("ImportError") and "pip install torch" in lines[1]
