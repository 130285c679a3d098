"""lowrank_tree.torch.CascadedLinear against dense per-order NumPy references, gradients, exports, files."""

import importlib.util
import itertools
import json
import pathlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="lowrank_tree.torch needs PyTorch (pip install torch)")

import lowrank_tree.torch  # noqa: E402
from lowrank_tree import Cascade, cascade_fit  # noqa: E402
from lowrank_tree.torch import CascadedLinear  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------
# helpers: a layer with random parameters, and the dense reference
# --------------------------------------------------------------------------
def _randomise(layer, seed, scale=1.0):
    """Every parameter random (the initial U and β are zero, which would hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if p.is_complex():
                noise = noise + 1j * torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_(scale * noise)
    return layer


def _reference(layer):
    """(W_0..W_K, b_0..b_K) as dense NumPy arrays, summed order by order from the parameters."""
    W0 = layer.weight.detach().numpy().astype(np.complex128)
    U, V = layer.U.detach().numpy(), layer.V.detach().numpy()
    weights, offset = [W0], 0
    for r in layer.ranks:
        Ui, Vi = U[:, offset : offset + r], V[:, offset : offset + r]
        weights.append(weights[-1] + Ui @ Vi.T)
        offset += r
    m = layer.out_features
    if layer.bias is None:
        biases = [np.zeros(m)] * layer.num_orders
    else:
        biases = [layer.bias.detach().numpy().astype(np.complex128)]
        for beta in layer.bias_corrections.detach().numpy():
            biases.append(biases[-1] + beta)
    return weights, biases


def _dense_rows(weights, biases, x, orders):
    """Row j of x (leading dims flattened) through W_{orders[j]}."""
    n = weights[0].shape[1]
    X = x.reshape(-1, n)
    m = weights[0].shape[0]
    return np.array([weights[k] @ X[j] + biases[k] for j, k in enumerate(orders)]).reshape(len(orders), m)


def _assert_close(got, want, dtype):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape
    eps = np.finfo(np.float32 if dtype in (torch.float32, torch.complex64) else np.float64).eps
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=0, atol=200 * eps * scale)


@st.composite
def layers_and_inputs(draw, dtypes=(torch.float64,)):
    n, m = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    num_orders = draw(st.integers(1, 6))
    K = num_orders - 1
    uniform = draw(st.booleans())
    if uniform:
        rank = draw(st.integers(0, min(m, n)))
        ranks = [rank] * K
    else:
        ranks = draw(st.lists(st.integers(0, min(m, n)), min_size=K, max_size=K))
        rank = ranks
    bias = draw(st.booleans())
    batch = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**16))
    return n, m, num_orders, rank, ranks, bias, batch, dtype, seed


def _layer(n, m, num_orders, rank, bias, dtype, seed):
    return _randomise(CascadedLinear(n, m, num_orders, rank, bias=bias, dtype=dtype), seed)


def _x(batch, n, dtype, seed):
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn((*batch, n), generator=g, dtype=torch.float64)
    return x.to(dtype)


# --------------------------------------------------------------------------
# forward against the dense per-order reference
# --------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(case=layers_and_inputs(dtypes=(torch.float64, torch.float32, torch.complex128)), data=st.data())
def test_every_forward_mode_matches_dense_per_order_reference(case, data):
    n, m, num_orders, rank, ranks, bias, batch, dtype, seed = case
    layer = _layer(n, m, num_orders, rank, bias, dtype, seed)
    assert layer.ranks == tuple(ranks) and layer.max_order == num_orders - 1
    x = _x(batch, n, dtype, seed)
    weights, biases = _reference(layer)
    rows = int(np.prod(batch, dtype=int))
    xn = x.numpy()
    K = num_orders - 1
    # one order for every row, every order
    for k in range(num_orders):
        y = layer(x, k)
        assert y.shape == (*batch, m) and y.dtype == dtype
        _assert_close(y.detach().numpy().reshape(rows, m), _dense_rows(weights, biases, xn, [k] * rows), dtype)
    # one order per row; when the batch is big enough, every order is present
    orders = data.draw(st.lists(st.integers(0, K), min_size=rows, max_size=rows))
    if rows >= num_orders:
        orders[:num_orders] = range(num_orders)
    order_t = torch.tensor(orders, dtype=torch.int64).reshape(batch)
    y = layer(x, order_t)
    assert y.shape == (*batch, m)
    _assert_close(y.detach().numpy().reshape(rows, m), _dense_rows(weights, biases, xn, orders), dtype)
    # all orders in one pass, with autograd and without (the in-place inference path)
    Y = layer.all_orders(x)
    with torch.no_grad():
        Y_inference = layer.all_orders(x)
    assert Y.shape == Y_inference.shape == (num_orders, *batch, m)
    for k in range(num_orders):
        want = _dense_rows(weights, biases, xn, [k] * rows)
        _assert_close(Y[k].detach().numpy().reshape(rows, m), want, dtype)
        _assert_close(Y_inference[k].numpy().reshape(rows, m), want, dtype)


def test_mixed_batch_with_every_order_rank_zero_orders_and_int32_orders():
    layer = _layer(7, 5, 6, [2, 0, 3, 0, 1], True, torch.float64, 3)
    x = _x((2, 6), 7, torch.float64, 3)
    orders = torch.tensor([[5, 4, 3, 2, 1, 0], [0, 2, 4, 1, 3, 5]], dtype=torch.int32)
    weights, biases = _reference(layer)
    want = _dense_rows(weights, biases, x.numpy(), orders.reshape(-1).tolist())
    _assert_close(layer(x, orders).detach().numpy().reshape(12, 5), want, torch.float64)
    # a 0-d tensor is one order for every row, as an int is
    _assert_close(layer(x, torch.tensor(4)).detach(), layer(x, 4).detach(), torch.float64)
    # NumPy integers are orders too
    assert torch.equal(layer(x, np.int64(2)), layer(x, 2))


@pytest.mark.parametrize("ranks", [[3, 3, 3, 3], [2, 0, 3, 1], [0, 0, 0, 0]])
@pytest.mark.parametrize("bias", [True, False])
def test_all_orders_on_wide_batches(ranks, bias):
    """Batches of at least 4096 outputs per order sum the orders by additions instead of cumsum."""
    layer = _layer(5, 64, 5, ranks, bias, torch.float64, 12)
    x = _x((70,), 5, torch.float64, 12)
    weights, biases = _reference(layer)
    Y = layer.all_orders(x)
    with torch.no_grad():
        Y_inference = layer.all_orders(x)
    for k in range(5):
        want = _dense_rows(weights, biases, x.numpy(), [k] * 70)
        _assert_close(Y[k].detach().numpy(), want, torch.float64)
        _assert_close(Y_inference[k].numpy(), want, torch.float64)
    Y.sum().backward()  # the additions are differentiable
    assert layer.weight.grad is not None


def test_one_dimensional_input_is_one_row():
    layer = _layer(4, 3, 3, 1, True, torch.float64, 5)
    x = _x((), 4, torch.float64, 5)
    weights, biases = _reference(layer)
    for k in range(3):
        y = layer(x, k)
        assert y.shape == (3,)
        _assert_close(y.detach().numpy(), weights[k] @ x.numpy() + biases[k], torch.float64)
        _assert_close(layer(x, torch.tensor(k)).detach().numpy(), weights[k] @ x.numpy() + biases[k], torch.float64)
    assert layer.all_orders(x).shape == (3, 3)


def test_single_order_layer_is_a_linear_layer():
    torch.manual_seed(0)
    layer = CascadedLinear(6, 4, num_orders=1, rank=3)
    assert layer.U.shape == (4, 0) and layer.bias_corrections.shape == (0, 4)
    x = torch.randn(2, 3, 6)
    assert torch.equal(layer(x, 0), torch.nn.functional.linear(x, layer.weight, layer.bias))
    assert torch.equal(layer.all_orders(x)[0], layer(x, 0))
    assert layer.weight.dtype == torch.get_default_dtype()


def test_initialisation_like_linear_and_lora():
    torch.manual_seed(0)
    layer = CascadedLinear(64, 32, num_orders=4, rank=[4, 0, 2])
    bound = 1 / np.sqrt(64)
    layer.requires_grad_(False)
    assert layer.weight.dtype == torch.get_default_dtype()
    assert float(layer.weight.abs().max()) <= bound and float(layer.bias.abs().max()) <= bound
    assert float(layer.V.abs().max()) <= bound and float(layer.V.abs().max()) > bound / 2
    assert not layer.U.any() and not layer.bias_corrections.any()
    layer.requires_grad_(True)
    x = torch.randn(5, 64)
    Y = layer.all_orders(x)
    for k in range(4):  # every order starts equal to the base ...
        assert torch.equal(layer(x, k), layer(x, 0))
        assert torch.allclose(Y[k], layer(x, 0))
    layer(x, 3).square().sum().backward()
    assert layer.U.grad[:, :4].abs().sum() > 0 and layer.U.grad[:, 4:].abs().sum() > 0  # ... and U learns
    assert layer.bias_corrections.grad.abs().sum() > 0
    assert not layer.V.grad.any()  # zero while U is zero, as in LoRA
    # the factor views are the parameters' columns
    U3, V3 = layer.factors(3)
    assert U3.shape == (32, 2) and torch.equal(V3, layer.V[:, 4:6])
    assert layer.factors(2)[0].shape == (32, 0)


# --------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------
@pytest.mark.parametrize("ranks", [[2, 2, 2], [2, 0, 3], [0, 0, 0]], ids=["uniform", "mixed-with-zero", "all-zero"])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_every_parameter_every_mode(ranks, bias, monkeypatch):
    layer = _layer(4, 3, 4, ranks, bias, torch.float64, 11)
    names = [name for name, _ in layer.named_parameters()]
    assert len(names) == (5 if bias else 3)
    x = _x((2, 4), 4, torch.float64, 11).requires_grad_(True)
    orders = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])

    def run(mode):
        def fn(x, *ps):
            state = dict(zip(names, ps))
            if mode == "all_orders":
                return _call_all(layer, state, x)
            return torch.func.functional_call(layer, state, (x, mode))

        params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
        assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-7)

    run(3)  # int order: every correction used
    run(1)
    run(orders)  # one order per row, all present
    run("all_orders")  # the orders summed by cumsum (a small batch) ...
    monkeypatch.setattr(lowrank_tree.torch, "_CPU_CUMSUM_MAX", 1)
    run("all_orders")  # ... and by one addition per order (what wide batches use)


def _call_all(layer, state, x):
    """``layer.all_orders(x)`` with the parameters in ``state`` (functional_call runs forward only)."""

    class AllOrders(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner.all_orders(x)

    return torch.func.functional_call(AllOrders(layer), {f"inner.{k}": v for k, v in state.items()}, (x,))


# --------------------------------------------------------------------------
# exports and imports
# --------------------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(case=layers_and_inputs())
def test_to_tree_queries_equal_the_layer(lib, case):
    n, m, num_orders, rank, ranks, bias, batch, dtype, seed = case
    layer = _layer(n, m, num_orders, rank, bias, dtype, seed)
    x = _x((5,), n, dtype, seed)
    tree = layer.to_tree(backend=lib.name)
    assert tree.backend == lib.name and tree.max_order == num_orders - 1 and tree.ranks == list(ranks)
    b = layer.order_biases(backend=lib.name)
    b = np.zeros((num_orders, m)) if b is None else lib.to_numpy(b)
    X = lib.asarray(x.numpy().T)
    for k in range(num_orders):
        _assert_close(lib.to_numpy(tree.query(k, X)).T + b[k], layer(x, k).detach().numpy(), dtype)
    orders = [k % num_orders for k in range(5)]
    want = layer(x, torch.tensor(orders)).detach().numpy()
    _assert_close(lib.to_numpy(tree.query(orders, X)).T + b[orders], want, dtype)
    _assert_close(
        np.swapaxes(lib.to_numpy(tree.all_orders(X)), 1, 2) + b[:, None, :], layer.all_orders(x).detach().numpy(), dtype
    )


def test_to_cascade_is_a_detached_copy():
    layer = _layer(5, 4, 3, [1, 2], True, torch.float64, 2)
    c = layer.to_cascade()
    assert isinstance(c, Cascade) and c.ranks == [1, 2] and c.shape == (4, 5)
    weights, biases = _reference(layer)
    for k in range(3):
        _assert_close(c.matrix(k), weights[k], torch.float64)
    np.testing.assert_allclose(layer.order_biases(), np.stack(biases), rtol=1e-15)
    before = c.matrix(2).copy()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(1.0)
    np.testing.assert_array_equal(c.matrix(2), before)
    assert _layer(5, 4, 3, 1, False, torch.float64, 2).order_biases() is None


def test_from_cascade_of_a_fit_on_any_backend(lib):
    rng = np.random.default_rng(4)
    steps = rng.standard_normal((4, 7, 2)) @ rng.standard_normal((4, 2, 6))
    mats = np.cumsum(steps, axis=0)
    cascade = cascade_fit(lib.asarray(mats), backend=lib.name)
    biases = rng.standard_normal((4, 7))
    layer = CascadedLinear.from_cascade(cascade, biases=biases)
    assert layer.weight.dtype == torch.float64 and layer.ranks == (2, 2, 2)
    assert all(p.requires_grad for p in layer.parameters())
    # a torch cascade's layer stays on the cascade's device; other backends' on the default device
    x = torch.from_numpy(rng.standard_normal((3, 6))).to(layer.weight.device)
    for k in range(4):
        got = layer(x, k).detach().cpu().numpy()
        _assert_close(got, x.cpu().numpy() @ mats[k].T + biases[k], torch.float64)
    frozen = CascadedLinear.from_cascade(cascade, dtype=torch.float32, requires_grad=False)
    assert frozen.bias is None and frozen.weight.dtype == torch.float32
    assert not any(p.requires_grad for p in frozen.parameters())


def test_torch_exports_and_imports_stay_on_the_device_without_host_copies(monkeypatch):
    layer = _layer(6, 5, 4, [2, 0, 1], True, torch.float64, 3)
    weights, _ = _reference(layer)
    host = [torch.Tensor.numpy, torch.Tensor.cpu]

    def refuse(*args, **kwargs):
        raise AssertionError("host copy")

    with monkeypatch.context() as patch:
        patch.setattr(torch.Tensor, "numpy", refuse)
        patch.setattr(torch.Tensor, "cpu", refuse)
        cascade = layer.to_cascade(backend="torch")
        tree = layer.to_tree(backend="torch")
        again = CascadedLinear.from_cascade(cascade)
        X = torch.ones(6, 2, dtype=torch.float64)
        Y = tree.query(3, X)
    assert host == [torch.Tensor.numpy, torch.Tensor.cpu]
    assert cascade.backend == "torch" and isinstance(cascade.base, torch.Tensor)
    assert cascade.device == layer.weight.device and again.weight.device == layer.weight.device
    for k in range(4):
        _assert_close(cascade.matrix(k).numpy(), weights[k], torch.float64)
    _assert_close(Y.numpy(), weights[3] @ np.ones((6, 2)), torch.float64)
    for name in ("weight", "U", "V"):
        assert torch.equal(getattr(again, name), getattr(layer, name)), name
    # the export is a copy: training the layer further leaves the cascade as it was
    before = cascade.matrix(3).clone()
    with torch.no_grad():
        layer.U.add_(1.0)
    assert torch.equal(cascade.matrix(3), before)


def test_from_cascade_to_cascade_round_trip():
    layer = _layer(6, 5, 5, [3, 0, 1, 2], True, torch.float64, 8)
    again = CascadedLinear.from_cascade(layer.to_cascade(), biases=layer.order_biases())
    assert again.ranks == layer.ranks
    for name in ("weight", "U", "V", "bias"):
        assert torch.equal(getattr(again, name), getattr(layer, name)), name
    torch.testing.assert_close(again.bias_corrections, layer.bias_corrections, rtol=0, atol=1e-14)
    x = _x((4,), 6, torch.float64, 8)
    torch.testing.assert_close(again.all_orders(x), layer.all_orders(x), rtol=0, atol=1e-13)


def _heads(rng, n, m, K, rank, noise, bias=True, dtype=torch.float64):
    """K + 1 nn.Linear heads whose weights change by rank-``rank`` steps plus noise."""
    W = rng.standard_normal((m, n))
    heads = []
    for _ in range(K + 1):
        head = torch.nn.Linear(n, m, bias=bias, dtype=dtype)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(W))
            if bias:
                head.bias.copy_(torch.from_numpy(rng.standard_normal(m)))
        heads.append(head)
        W = W + rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) + noise * rng.standard_normal((m, n))
    return heads


@pytest.mark.parametrize("tol", [0.3, 1e-2, 1e-6])
def test_from_linears_reproduces_the_heads_within_tol(tol):
    rng = np.random.default_rng(1)
    heads = _heads(rng, 24, 16, 4, 2, 1e-3)
    layer = CascadedLinear.from_linears(heads, tol=tol)
    weights, biases = _reference(layer)
    for k, head in enumerate(heads):
        M = head.weight.detach().numpy()
        assert np.linalg.norm(weights[k] - M) <= tol * np.linalg.norm(M) * (1 + 1e-9)
        np.testing.assert_allclose(biases[k].real, head.bias.detach().numpy(), rtol=0, atol=1e-14)
    # cheaper than the heads once the tolerance lets the noise go
    n_layer = sum(p.numel() for p in layer.parameters())
    n_heads = sum(p.numel() for h in heads for p in h.parameters())
    assert (n_layer < n_heads) == (tol > 1e-3)


def test_from_linears_ranks_budget_and_dtype():
    rng = np.random.default_rng(2)
    heads = _heads(rng, 12, 10, 3, 1, 0.0, bias=False, dtype=torch.float32)
    layer = CascadedLinear.from_linears(torch.nn.ModuleList(heads), ranks=[1, 1, 0])
    assert layer.ranks == (1, 1, 0) and layer.bias is None and layer.weight.dtype == torch.float32
    fitted = cascade_fit([h.weight.detach().double().numpy() for h in heads], ranks=[1, 1, 0])
    _assert_close(layer.to_cascade().matrix(3), fitted.matrix(3), torch.float32)
    exact = CascadedLinear.from_linears(heads)  # lossless: float32 rounding of the factors only
    x = torch.randn(3, 12)
    for k, head in enumerate(heads):
        torch.testing.assert_close(exact(x, k), head(x), rtol=1e-5, atol=1e-5)
    assert CascadedLinear.from_linears(heads, budget=22, dtype=torch.float64).ranks == tuple(
        cascade_fit([h.weight.detach().double().numpy() for h in heads], budget=22).ranks
    )


def test_from_linears_refuses_bad_heads():
    heads = [torch.nn.Linear(4, 3) for _ in range(2)]
    with pytest.raises(ValueError, match="at least one"):
        CascadedLinear.from_linears([])
    with pytest.raises(TypeError, match="single nn.Linear"):
        CascadedLinear.from_linears(heads[0])
    with pytest.raises(TypeError, match=r"linears\[1\] must be a torch.nn.Linear"):
        CascadedLinear.from_linears([heads[0], torch.nn.ReLU()])
    with pytest.raises(ValueError, match=r"linears\[1\] has weight shape \(3, 5\)"):
        CascadedLinear.from_linears([heads[0], torch.nn.Linear(5, 3)])
    with pytest.raises(ValueError, match=r"linears\[1\] has no bias"):
        CascadedLinear.from_linears([heads[0], torch.nn.Linear(4, 3, bias=False)])
    with pytest.raises(ValueError, match="at most one of ranks, tol, budget"):
        CascadedLinear.from_linears(heads, tol=0.1, ranks=1)


# --------------------------------------------------------------------------
# state_dict, repr, torch.compile
# --------------------------------------------------------------------------
def test_state_dict_round_trip_and_rank_layout_check(tmp_path):
    layer = _layer(5, 4, 4, [2, 0, 1], True, torch.float64, 6)
    path = tmp_path / "layer.pt"
    torch.save(layer.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert set(state) == {"weight", "bias", "U", "V", "bias_corrections", "factor_ranks"}
    fresh = CascadedLinear(5, 4, 4, [2, 0, 1], dtype=torch.float64)
    fresh.load_state_dict(state)
    x = _x((3,), 5, torch.float64, 6)
    assert torch.equal(fresh.all_orders(x), layer.all_orders(x))
    # the same total rank split otherwise: refused, and nothing is loaded
    other = CascadedLinear(5, 4, 4, [1, 1, 1], dtype=torch.float64)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"ranks \(2, 0, 1\).*this layer has ranks \(1, 1, 1\)"):
        other.load_state_dict(state)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(RuntimeError, match=r"this layer has ranks \(2, 2, 2\)"):
        CascadedLinear(5, 4, 4, 2, dtype=torch.float64).load_state_dict(state)
    with pytest.raises(RuntimeError, match="size mismatch"):
        CascadedLinear(5, 3, 4, [2, 0, 1], dtype=torch.float64).load_state_dict(state)


def test_extra_repr():
    layer = CascadedLinear(8, 3, num_orders=3, rank=[2, 0], bias=False)
    assert repr(layer) == "CascadedLinear(in_features=8, out_features=3, num_orders=3, ranks=(2, 0), bias=False)"


def test_works_under_torch_compile():
    """Dynamo traces every mode as one graph (no graph breaks) and autograd runs through it.

    ``backend="aot_eager"`` exercises the capture without Inductor's C++ compilation, which takes
    about a minute on a small CPU machine; the docs say how the default backend was checked.
    """
    torch._dynamo.reset()
    layer = _layer(6, 4, 4, [2, 0, 1], True, torch.float64, 9)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = _x((3, 2), 6, torch.float64, 9)
    orders = torch.tensor([[0, 3], [1, 2], [3, 3]])
    torch.testing.assert_close(compiled(x, 2), layer(x, 2), rtol=0, atol=1e-14)
    torch.testing.assert_close(compiled(x, orders), layer(x, orders), rtol=0, atol=1e-14)
    all_orders = torch.compile(layer.all_orders, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(all_orders(x), layer.all_orders(x), rtol=0, atol=1e-14)
    compiled(x, orders).sum().backward()
    grads = {k: p.grad.clone() for k, p in layer.named_parameters()}
    layer.zero_grad()
    layer(x, orders).sum().backward()
    for k, p in layer.named_parameters():
        torch.testing.assert_close(grads[k], p.grad, rtol=0, atol=1e-13)
    torch._dynamo.reset()


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
def test_constructor_refuses_bad_arguments():
    with pytest.raises(TypeError, match="in_features must be an integer"):
        CascadedLinear(4.0, 3, 2, 1)
    with pytest.raises(ValueError, match="out_features must be at least 1"):
        CascadedLinear(4, 0, 2, 1)
    with pytest.raises(ValueError, match="num_orders must be at least 1"):
        CascadedLinear(4, 3, 0, 1)
    with pytest.raises(TypeError, match="num_orders must be an integer, got the bool"):
        CascadedLinear(4, 3, True, 1)
    with pytest.raises(ValueError, match=r"rank must be in \[0, min\(in_features, out_features\)\] = \[0, 3\], got 4"):
        CascadedLinear(4, 3, 2, 4)
    with pytest.raises(ValueError, match=r"rank\[1\] must be at least 0, got -1"):
        CascadedLinear(4, 3, 3, [1, -1])
    with pytest.raises(ValueError, match="num_orders - 1 = 2 ranks, got 3"):
        CascadedLinear(4, 3, 3, [1, 1, 1])
    with pytest.raises(TypeError, match="rank must be an integer"):
        CascadedLinear(4, 3, 3, 1.5)
    with pytest.raises(TypeError, match="floating or complex"):
        CascadedLinear(4, 3, 3, 1, dtype=torch.int32)
    with pytest.raises(TypeError, match="bias must be True or False"):
        CascadedLinear(4, 3, 3, 1, bias=None)
    with pytest.raises(TypeError, match="cascade must be a lowrank_tree.Cascade"):
        CascadedLinear.from_cascade(np.eye(3))
    c = Cascade(np.eye(3), [(np.ones((3, 1)), np.ones((3, 1)))])
    with pytest.raises(ValueError, match=r"biases must have shape \(K \+ 1, out_features\) = \(2, 3\)"):
        CascadedLinear.from_cascade(c, biases=np.zeros(3))
    with pytest.raises(ValueError, match="biases must be finite"):
        CascadedLinear.from_cascade(c, biases=np.full((2, 3), np.nan))
    layer = CascadedLinear(3, 3, 2, 1)
    with pytest.raises(ValueError, match="backend must be one of"):
        layer.to_cascade(backend="tensorflow")


def test_forward_refuses_bad_input():
    layer = CascadedLinear(4, 3, 3, 1, dtype=torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        layer(x.numpy(), 0)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, in_features\) = \(\*, 4\), got shape \(2, 5\)"):
        layer(torch.randn(2, 5, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="got shape"):
        layer(torch.tensor(1.0, dtype=torch.float64), 0)
    with pytest.raises(TypeError, match=r"x has dtype torch.float32 but the layer's parameters are torch.float64"):
        layer(x.float(), 0)
    with pytest.raises(ValueError, match=r"order must be in \[0, 2\], got 3"):
        layer(x, 3)
    with pytest.raises(ValueError, match=r"order must be in \[0, 2\], got -1"):
        layer(x, -1)
    with pytest.raises(TypeError, match="order must be an int or an integer tensor, got the bool"):
        layer(x, True)
    with pytest.raises(TypeError, match=r"got 1.0 \(float\)"):
        layer(x, 1.0)
    with pytest.raises(TypeError, match="dtype torch.float32"):
        layer(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="dtype torch.bool"):
        layer(x, torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"order must be in \[0, 2\], got values from 0 to 3"):
        layer(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"shape of x without its last dimension, \(2,\), got \(3,\)"):
        layer(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"order\[:, None\].expand"):
        layer(torch.randn(2, 5, 4, dtype=torch.float64), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        layer.all_orders([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"i must be in \[1, 2\], got 0"):
        layer.factors(0)


def test_compiled_forward_still_refuses_orders_out_of_range():
    torch._dynamo.reset()
    layer = _layer(3, 2, 3, 1, True, torch.float64, 1)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = _x((2,), 3, torch.float64, 1)
    compiled(x, torch.tensor([0, 2]))
    with pytest.raises(RuntimeError, match=r"order must be in \[0, 2\]"):
        compiled(x, torch.tensor([0, 3]))
    torch._dynamo.reset()


# --------------------------------------------------------------------------
# the benchmark script and the docs page
# --------------------------------------------------------------------------
def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_benchmark_json(data):
    assert data["benchmark"] == "torch_layer"
    assert data["machine"]["torch"] and data["torch_threads"] >= 1
    assert "cpu" in data["devices"]
    if "cuda" not in data["devices"]:
        assert data["skipped"]["cuda"]  # says why
    runs = data["runs"]
    grid = data["grid"]
    for device in data["devices"]:
        cases = sorted((r["n"], r["K"], r["r"], r["b"]) for r in runs if r["device"] == device)
        assert cases == sorted(itertools.product(grid["n"], grid["K"], grid["r"], grid["b"]))
    for run in runs:
        s, r = run["seconds"], run["ratios"]
        assert all(v > 0 for v in s.values())
        assert r["fixed_over_linear"] == pytest.approx(s["fixed"] / s["linear"])
        assert r["mixed_over_fixed"] == pytest.approx(s["mixed"] / s["fixed"])
        assert r["mixed_over_grouped"] == pytest.approx(s["mixed"] / s["grouped"])
        assert r["all_orders_over_heads"] == pytest.approx(s["all_orders"] / s["heads_all"])
        assert r["all_orders_over_layer_loop"] == pytest.approx(s["all_orders"] / s["layer_loop_all"])
        assert r["fixed_fwd_bwd_over_linear"] == pytest.approx(s["fixed_fwd_bwd"] / s["linear_fwd_bwd"])
        fastest = run["seconds_min"]
        assert set(fastest) == set(s) == set(run["relative_iqr"])
        assert all(0 < fastest[k] <= s[k] for k in s)
        minima = run["ratios_of_minima"]
        assert minima["fixed_over_linear"] == pytest.approx(fastest["fixed"] / fastest["linear"])
        assert minima["all_orders_over_heads"] == pytest.approx(fastest["all_orders"] / fastest["heads_all"])
        n, K, rank = run["n"], run["K"], run["r"]
        assert run["parameters"]["layer"] == n * n + n + K * (2 * n * rank + n)
        assert run["parameters"]["heads"] == (K + 1) * (n * n + n)
        assert run["mixed_vs_grouped_max_abs_diff"] < 1e-3  # the timed mixed forward answered right
    assert set(data["verdicts"]) == {f"{name}@{d}" for name in data["targets"] for d in data["devices"]}
    for key, v in data["verdicts"].items():
        name, device = key.split("@")
        cases = [r for r in runs if r["device"] == device and (v["where"] != "K <= 8" or r["K"] <= 8)]
        ratios = [r["ratios"][name] for r in cases]
        assert v["worst"] == max(ratios)
        missed = [x for x in ratios if (x > v["target"] if v["kind"] == "max" else x >= v["target"])]
        assert v["met"] == (not missed) and len(v["missed"]) == len(missed)
        assert v["met_in"] == f"{len(cases) - len(missed)} of {len(cases)}"
        assert all(m["why"] and m["over_target"] == pytest.approx(m["ratio"] / v["target"]) for m in v["missed"])


def test_benchmark_quick_mode_writes_consistent_json(tmp_path):
    bench = _load(ROOT / "bench" / "torch_layer.py", "bench_torch_layer")
    out = tmp_path / "torch_layer.json"
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["grid"] == bench.QUICK_GRID
    assert data["machine"]["torch"] == torch.__version__
    if not torch.cuda.is_available():
        assert data["devices"] == ["cpu"]
    _check_benchmark_json(data)
    report = _load(ROOT / "bench" / "report.py", "bench_report")
    table = report.torch_layer_tables(out)
    assert table.count("\n| cpu | 32 |") == len(data["runs"])


def test_committed_benchmark_is_the_full_grid():
    bench = _load(ROOT / "bench" / "torch_layer.py", "bench_torch_layer")
    data = json.loads((ROOT / "bench" / "results" / "torch_layer.json").read_text())
    assert data["quick"] is False and data["grid"] == bench.GRID
    _check_benchmark_json(data)


def test_pytorch_docs_page_examples_print_what_the_page_shows(tmp_path, monkeypatch):
    docs = _load(ROOT / "tests" / "test_docs_examples.py", "docs_examples")
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threads only wait for each other on busy cores
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the page's examples run clean
            docs.run_examples((ROOT / "docs" / "pytorch.md").read_text(), "docs/pytorch.md")
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------
# inference: rent-or-buy folding of a fixed order
# --------------------------------------------------------------------------
def _folded_orders(layer):
    return sorted(k for k, entry in layer._fold.items() if entry[2] is not None)


def test_inference_folds_an_order_after_it_paid_for_it_and_stays_exact():
    layer = _layer(6, 5, 4, [2, 0, 1], True, torch.float64, 11)
    weights, biases = _reference(layer)
    threshold = 5 * 6 / (5 + 6)  # rows after which folding has paid: m n / (m + n)
    x = _x((1,), 6, torch.float64, 12)
    with torch.no_grad():
        for call in range(1, 6):
            y = layer(x, 3)
            _assert_close(y.numpy(), x.numpy() @ weights[3].T.real + biases[3].real, torch.float64)
            assert _folded_orders(layer) == ([3] if call >= threshold else []), call
        # order 0 has no correction: never folded; a second order replaces the first (limit 1)
        layer(x, 0)
        assert _folded_orders(layer) == [3]
        for _ in range(5):
            _assert_close(layer(x, 1).numpy(), x.numpy() @ weights[1].T.real + biases[1].real, torch.float64)
        assert _folded_orders(layer) == [1]
        layer.inference_cache_orders = 2
        for _ in range(5):
            layer(x, 3)
        assert _folded_orders(layer) == [1, 3]


def test_a_parameter_change_invalidates_folded_orders():
    layer = _layer(4, 3, 3, 1, True, torch.float64, 13)
    x = _x((8,), 4, torch.float64, 14)
    with torch.no_grad():
        layer(x, 2)
        assert _folded_orders(layer) == [2]
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(x, 2).square().sum().backward()  # with gradients: factored, no fold used or made
    opt.step()
    weights, biases = _reference(layer)
    with torch.no_grad():
        _assert_close(layer(x, 2).numpy(), x.numpy() @ weights[2].T.real + biases[2].real, torch.float64)
        state = dict(layer.state_dict())
        state["U"] = state["U"] + 1.0
        layer.load_state_dict(state)
        weights, biases = _reference(layer)
        _assert_close(layer(x, 2).numpy(), x.numpy() @ weights[2].T.real + biases[2].real, torch.float64)
        layer.to(torch.float32)
        y = layer(x.float(), 2)
        assert y.dtype == torch.float32
        _assert_close(y.numpy(), x.numpy() @ weights[2].T.real + biases[2].real, torch.float32)


def test_training_forwards_and_disabled_cache_never_fold():
    layer = _layer(4, 3, 3, 1, True, torch.float64, 15)
    x = _x((64,), 4, torch.float64, 16)
    layer(x, 2).sum().backward()
    assert layer._fold == {}
    layer.inference_cache_orders = 0
    with torch.no_grad():
        layer(x, 2)
    assert _folded_orders(layer) == []
    # folded weights are a cache, never state: the state dict holds the parameters and the ranks only
    with torch.no_grad():
        layer.inference_cache_orders = 1
        layer(x, 2)
    assert _folded_orders(layer) == [2]
    assert sorted(layer.state_dict()) == ["U", "V", "bias", "bias_corrections", "factor_ranks", "weight"]


def test_folding_from_several_threads_stays_exact():
    # a serving layer called from several threads at once: folds and evictions interleave
    import threading

    layer = _layer(8, 6, 4, [2, 1, 3], True, torch.float64, 17)
    weights, biases = _reference(layer)
    x = _x((1,), 8, torch.float64, 18)
    want = {k: x.numpy() @ weights[k].T.real + biases[k].real for k in range(4)}
    failures = []

    def serve(seed):
        rng = np.random.default_rng(seed)
        try:
            with torch.no_grad():
                for _ in range(400):
                    k = int(rng.integers(0, 4))
                    np.testing.assert_allclose(layer(x, k).numpy(), want[k], rtol=1e-12, atol=1e-12)
        except Exception as exc:  # reported below: a thread's exception would otherwise vanish
            failures.append(exc)

    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: interleave inside the fold bookkeeping
    try:
        threads = [threading.Thread(target=serve, args=(seed,)) for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert len(_folded_orders(layer)) <= layer.inference_cache_orders


def test_a_layer_with_folded_orders_deep_copies_and_pickles_exactly():
    # the fold cache's lock lives in the module, not on the layer: copies and pickles still work,
    # and a copy's cache entries name the original's storage, so they are dropped, never served
    import copy
    import io

    layer = _layer(6, 5, 4, [2, 1, 1], True, torch.float64, 19)
    weights, biases = _reference(layer)
    x = _x((8,), 6, torch.float64, 20)
    with torch.no_grad():
        layer(x, 3)
    assert _folded_orders(layer) == [3]
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    for twin in (copy.deepcopy(layer), torch.load(buffer, weights_only=False)):
        with torch.no_grad():
            twin.U.add_(1.0)  # the twin moves; the original must not
        twin_weights, twin_biases = _reference(twin)
        assert not np.allclose(twin_weights[3], weights[3])
        with torch.no_grad():
            for k in range(4):
                want = x.numpy() @ twin_weights[k].T.real + twin_biases[k].real
                _assert_close(twin(x, k).numpy(), want, torch.float64)
                _assert_close(layer(x, k).numpy(), x.numpy() @ weights[k].T.real + biases[k].real, torch.float64)
