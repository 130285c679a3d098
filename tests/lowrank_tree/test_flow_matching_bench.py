"""bench/flow_matching.py against closed forms: path derivatives, Taylor sampler, metrics, models, --quick."""

import importlib.util
import json
import math
import pathlib

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="bench/flow_matching.py needs PyTorch (pip install torch)")

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("bench_flow_matching", ROOT / "bench" / "flow_matching.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fm = _load()


# --------------------------------------------------------------------------
# targets: the closed-form derivatives against autograd
# --------------------------------------------------------------------------
@settings(max_examples=25)
@given(
    path=st.sampled_from(["ot", "vp"]),
    t=st.floats(0.0, 1.0),
    d=st.integers(1, 4),
    K=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_path_derivatives_match_autograd(path, t, d, K, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn((1, d), generator=g, dtype=torch.float64)
    x1 = torch.randn((1, d), generator=g, dtype=torch.float64)
    P = fm.PATHS[path]
    tt = torch.tensor([[t]], dtype=torch.float64, requires_grad=True)
    # d^k/dt^k of every coordinate of x_t, by repeated differentiation of the path itself (written out here)
    if path == "ot":
        columns = [(1 - tt) * x0[0, j] + tt * x1[0, j] for j in range(d)]
    else:
        columns = [torch.sin(math.pi * tt / 2) * x1[0, j] + torch.cos(math.pi * tt / 2) * x0[0, j] for j in range(d)]
    expected = fm.targets(P, x0, x1, tt.detach(), K)
    assert expected.shape == (K, 1, d)
    for j, f in enumerate(columns):
        for k in range(1, K + 1):
            # a derivative that no longer depends on t is constant: its own derivative is zero
            (f,) = torch.autograd.grad(f.sum(), tt, create_graph=True) if f.requires_grad else (0 * f.detach(),)
            assert float(expected[k - 1, 0, j]) == pytest.approx(float(f.detach()), abs=1e-12, rel=1e-12)
    # order 0 is the path itself, and the endpoints are noise and data
    assert torch.allclose(P.derivative(x0, x1, torch.zeros(1, 1, dtype=torch.float64), 0), x0, atol=1e-15)
    assert torch.allclose(P.derivative(x0, x1, torch.ones(1, 1, dtype=torch.float64), 0), x1, atol=1e-15)


# --------------------------------------------------------------------------
# the Taylor sampler on closed forms
# --------------------------------------------------------------------------
@settings(max_examples=25)
@given(K=st.integers(1, 4), steps=st.sampled_from([1, 2, 4, 8, 16]), seed=st.integers(0, 2**16))
def test_taylor_sampler_is_exact_on_polynomial_trajectories_of_degree_K(K, steps, seed):
    # x(t) = Σ_{j<=K} c_j t^j: the order-K Taylor step is exact for it, whatever the step count
    c = np.random.default_rng(seed).standard_normal((K + 1, 3))

    def field(x, t):
        tt = t[:, 0].numpy()
        out = []
        for k in range(1, K + 1):
            coeff = [math.perm(j, k) * tt ** (j - k) if j >= k else 0 * tt for j in range(K + 1)]
            out.append(sum(a[:, None] * c[j][None, :] for j, a in enumerate(coeff)))
        return torch.from_numpy(np.stack(out))

    start = torch.from_numpy(np.repeat(c[:1], 2, axis=0))
    end = fm.taylor_sample(field, start, K, steps)
    np.testing.assert_allclose(end.numpy(), np.repeat(c.sum(axis=0, keepdims=True), 2, axis=0), rtol=1e-12, atol=1e-12)


@settings(max_examples=20)
@given(K=st.integers(1, 4), steps=st.sampled_from([1, 2, 4, 8, 16]), seed=st.integers(0, 2**16))
def test_taylor_sampler_on_the_ot_field_of_one_point_lands_on_it(K, steps, seed):
    # one data point c: the conditional OT trajectories are straight lines to c, the velocity is
    # (c - x) / (1 - t) and every higher derivative is zero; any order and step count lands on c
    g = torch.Generator().manual_seed(seed)
    c = torch.randn((1, 2), generator=g, dtype=torch.float64)
    x0 = torch.randn((5, 2), generator=g, dtype=torch.float64)

    def field(x, t):
        return torch.stack([(c - x) / (1 - t)] + [torch.zeros_like(x)] * (K - 1))

    end = fm.taylor_sample(field, x0, K, steps)
    np.testing.assert_allclose(end.numpy(), c.expand(5, 2).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_taylor_sampler_converges_at_the_expected_rate_on_the_vp_field_of_one_point(K):
    """One data point c: on the VP path x_t = α(t) c + σ(t) x0, so x0 = (x - α c) / σ and the k-th
    derivative field is α^{(k)} c + σ^{(k)} (x - α c) / σ, exactly the derivatives of the ODE solution.

    The exact flow maps every start to c at t = 1 (its Jacobian from t to 1 is σ(1)/σ(t) = 0), so errors
    made early are forgotten and the endpoint error is that of the last steps: O(h^{K+1}), one order
    above a K-th order method's generic O(h^K).
    """
    P = fm.VPPath
    c = torch.tensor([[1.5, -2.0]], dtype=torch.float64)
    x0 = torch.tensor([[0.3, 0.7], [-1.0, 0.2]], dtype=torch.float64)

    def field(x, t):
        a, s = P.coefficients(t, 0)
        z = (x - a * c) / s
        return torch.stack([P.derivative(z, c, t, k) for k in range(1, K + 1)])

    errors = [float((fm.taylor_sample(field, x0, K, n) - c).abs().max()) for n in (8, 16, 32, 64)]
    rates = [math.log2(errors[i] / errors[i + 1]) for i in range(3)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert K + 0.8 < rates[-1] < K + 1.5, (errors, rates)


def test_taylor_sampler_refuses_bad_order_and_steps():
    x = torch.zeros((1, 2), dtype=torch.float64)
    with pytest.raises(ValueError, match="K must be"):
        fm.taylor_sample(lambda x, t: x[None], x, 0, 4)
    with pytest.raises(ValueError, match="steps must be"):
        fm.taylor_sample(lambda x, t: x[None], x, 1, 0)


# --------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------
@settings(max_examples=25)
@given(a=st.floats(-5, 5), b=st.floats(-5, 5), n=st.integers(2, 20), m=st.integers(2, 20))
def test_energy_distance_of_two_point_masses_is_twice_their_distance(a, b, n, m):
    x, y = np.full((n, 1), a), np.full((m, 1), b)
    assert fm.energy_distance(x, y) == pytest.approx(2 * abs(a - b), abs=1e-12)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 40), m=st.integers(2, 40), shift=st.floats(-3, 3))
def test_energy_distance_is_symmetric_and_scipys_v_statistic_plus_the_diagonal_terms(seed, n, m, shift):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, 1)), rng.standard_normal((m, 1)) + shift
    ours = fm.energy_distance(x, y)
    assert ours == pytest.approx(fm.energy_distance(y, x), abs=1e-12)
    # scipy's energy_distance is the square root of the V-statistic (within-sample pairs include i = i')
    v_statistic = scipy.stats.energy_distance(x[:, 0], y[:, 0]) ** 2
    within_x = np.abs(x - x.T).sum() / (n * (n - 1))
    within_y = np.abs(y - y.T).sum() / (m * (m - 1))
    assert ours == pytest.approx(v_statistic - within_x / n - within_y / m, abs=1e-10)


@pytest.mark.parametrize("mu", [0.0, 0.5, 1.0, 3.0])
def test_energy_distance_of_shifted_gaussians_matches_the_closed_form(mu):
    # X ~ N(0, 1), Y ~ N(μ, 1) in 1-D: E|X - Y| = E|N(μ, 2)| (a folded normal) and E|X - X'| = 2 / sqrt(π).
    # The samples are the n quantiles Φ⁻¹((i + 1/2) / n), not random draws, so the estimate's error is a
    # deterministic O(1/n) (about 2.3 / n) rather than sampling noise.
    n, s = 1000, math.sqrt(2)
    folded = s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2)) + mu * (1 - 2 * scipy.stats.norm.cdf(-mu / s))
    closed = 2 * folded - 2 * 2 / math.sqrt(math.pi)
    x = scipy.stats.norm.ppf((np.arange(n) + 0.5) / n)[:, None]
    assert fm.energy_distance(x, x + mu) == pytest.approx(closed, abs=5 / n)
    assert closed >= 0 and (closed > 0.1 if mu > 0 else closed == pytest.approx(0, abs=1e-15))


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 50), d=st.integers(1, 4))
def test_energy_distance_of_a_sample_with_itself_is_minus_its_diagonal_correction(seed, n, d):
    # D(x, x) = 2 S / n² - 2 S / (n (n - 1)) = -2 S / (n² (n - 1)) with S the sum of all pairwise distances
    x = np.random.default_rng(seed).standard_normal((n, d))
    S = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2).sum()
    assert fm.energy_distance(x, x) == pytest.approx(-2 * S / (n * n * (n - 1)), rel=1e-10, abs=1e-300)


def test_energy_distance_refuses_bad_shapes():
    with pytest.raises(ValueError, match="same d"):
        fm.energy_distance(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="at least 2 points"):
        fm.energy_distance(np.zeros((1, 2)), np.zeros((3, 2)))


@settings(max_examples=25)
@given(dataset=st.sampled_from(["gmm4", "gmm5", "gmm8", "gmm16d"]), seed=st.integers(0, 2**16))
def test_nearest_mode_distance_is_the_offset_for_small_offsets(dataset, seed):
    centres = fm.mode_centres(dataset)
    rng = np.random.default_rng(seed)
    offset = 0.1 * rng.standard_normal(centres.shape)  # far below half the distance between modes
    expected = np.linalg.norm(offset, axis=1).mean()
    assert fm.nearest_mode_distance(centres + offset, centres) == pytest.approx(expected, rel=1e-12)


def test_mean_interval_is_the_student_t_interval():
    out = fm.mean_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2}, sample standard deviation 1
    assert out == pytest.approx({"mean": 2.0, "low": 2.0 - half, "high": 2.0 + half, "n": 3})
    assert fm.mean_interval([5.0]) == {"mean": 5.0, "low": None, "high": None, "n": 1}


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(fm.DATASETS))
def test_datasets_are_reproducible_and_shaped(name):
    if name == "digits":
        pytest.importorskip("sklearn", reason="the digits dataset needs scikit-learn")
    a, b = fm.sample_dataset(name, 3000, 7), fm.sample_dataset(name, 3000, 7)
    assert a.shape == (3000, fm.DATASETS[name]) and np.array_equal(a, b)
    assert not np.array_equal(a, fm.sample_dataset(name, 3000, 8))
    centres = fm.mode_centres(name)
    if centres is not None:
        # every point is near its mode: mean distance to the nearest centre is E|N(0, std² I_d)|
        d = centres.shape[1]
        chi_mean = math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
        assert fm.nearest_mode_distance(a, centres) == pytest.approx(fm.MODE_STD * chi_mean, rel=0.05)
    elif name == "circles":
        radius = np.linalg.norm(a, axis=1)
        assert np.all((np.abs(radius - 2) < 0.6) | (np.abs(radius - 4) < 0.6))
    elif name == "digits":
        from sklearn.datasets import load_digits

        images = load_digits().data / 4.0 - 2.0  # every point is one of the images, pixels 0..16 on [-2, 2]
        assert np.isin(a.view([("", a.dtype)] * 64), images.view([("", images.dtype)] * 64)).all()
    assert fm.sample_dataset(name, 0, 1).shape == (0, fm.DATASETS[name])


def test_datasets_refuse_bad_names_and_sizes():
    with pytest.raises(ValueError, match="dataset must be one of"):
        fm.sample_dataset("moons", 10, 0)
    with pytest.raises(ValueError, match="n must be"):
        fm.sample_dataset("gmm8", -1, 0)


def test_models_targets_and_intervals_refuse_bad_arguments():
    with pytest.raises(ValueError, match="K must be >= 1"):
        fm.build_model("separate", 2, 0, 4, 1)
    with pytest.raises(TypeError, match="width must be an int"):
        fm.build_model("shared", 2, 2, 4.0, 1)
    with pytest.raises(ValueError, match="rank must be >= 0"):
        fm.build_model("cascaded", 2, 2, 4, 1, rank=-1)
    x = torch.zeros((3, 2), dtype=torch.float64)
    with pytest.raises(ValueError, match="K must be >= 1"):
        fm.targets(fm.VPPath, x, x, x[:, :1], 0)
    with pytest.raises(ValueError, match="values must be a non-empty"):
        fm.mean_interval([])
    with pytest.raises(ValueError, match="confidence must be in"):
        fm.mean_interval([1.0, 2.0], confidence=95)


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def _dense_mlp(weights, biases, z):
    for i, (W, b) in enumerate(zip(weights, biases)):
        z = z @ W.T + b
        if i < len(weights) - 1:
            z = torch.nn.functional.silu(z)
    return z


@settings(max_examples=15)
@given(K=st.integers(1, 4), rank=st.integers(0, 5), depth=st.integers(1, 3), d=st.sampled_from([2, 3]))
def test_cascaded_mlp_order_k_is_the_dense_mlp_of_the_order_k_weights(K, rank, depth, d):
    torch.manual_seed(K * 100 + rank * 10 + depth)
    model = fm.build_model("cascaded", d, K, 6, depth, rank)
    with torch.no_grad():  # random corrections (they start at zero)
        for p in model.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    x, t = torch.randn((4, d), dtype=torch.float64), torch.rand((4, 1), dtype=torch.float64)
    out = model(x, t)
    assert out.shape == (K, 4, d)
    z = torch.cat([x, fm.time_features(t)], dim=1)
    for k in range(K):
        weights, biases = [], []
        for layer in model.layers:
            W, b = layer.weight.detach().clone(), layer.bias.detach().clone()
            for i in range(1, k + 1):
                U, V = layer.factors(i)
                W += U.detach() @ V.detach().T
                b += layer.bias_corrections[i - 1].detach()
            weights.append(W)
            biases.append(b)
        torch.testing.assert_close(out[k], _dense_mlp(weights, biases, z), rtol=1e-12, atol=1e-12)
    # parameter count: base layers, plus per order a bias and min(rank, in, out) (in + out) factor numbers
    sizes = [d + fm.TIME_FEATURES] + [6] * depth + [d]
    expected = sum(a * b + b + (K - 1) * (b + min(rank, a, b) * (a + b)) for a, b in zip(sizes[:-1], sizes[1:]))
    assert fm.parameter_count(model) == expected


@settings(max_examples=10)
@given(K=st.integers(1, 4), depth=st.integers(1, 3))
def test_separate_and_shared_models_match_their_dense_mlps(K, depth):
    torch.manual_seed(K + 10 * depth)
    d, width = 2, 5
    x, t = torch.randn((3, d), dtype=torch.float64), torch.rand((3, 1), dtype=torch.float64)
    z = torch.cat([x, fm.time_features(t)], dim=1)
    separate = fm.build_model("separate", d, K, width, depth)
    shared = fm.build_model("shared", d, K, width, depth)
    out_sep, out_shared = separate(x, t), shared(x, t)
    linears = lambda net: [m for m in net if isinstance(m, torch.nn.Linear)]  # noqa: E731
    for k in range(K):
        head = linears(separate.heads[k])
        torch.testing.assert_close(out_sep[k], _dense_mlp([m.weight for m in head], [m.bias for m in head], z))
        onehot = torch.zeros((3, K), dtype=torch.float64)
        onehot[:, k] = 1
        net = linears(shared.net)
        expected = _dense_mlp([m.weight for m in net], [m.bias for m in net], torch.cat([z, onehot], dim=1))
        torch.testing.assert_close(out_shared[k], expected)
    sizes = [d + fm.TIME_FEATURES] + [width] * depth + [d]
    per_head = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    assert fm.parameter_count(separate) == K * per_head
    assert fm.parameter_count(shared) == per_head + K * width
    # (e): the heads start equal, and train apart
    shared_init = fm.build_model("separate_shared_init", d, K, width, depth)
    for head in shared_init.heads[1:]:
        for p, q in zip(head.parameters(), shared_init.heads[0].parameters()):
            assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()
    with pytest.raises(ValueError, match="family must be"):
        fm.build_model("lora", d, K, width, depth)


# --------------------------------------------------------------------------
# --quick end to end
# --------------------------------------------------------------------------
def test_quick_mode_writes_json_and_a_trained_model_beats_an_untrained_one(tmp_path):
    out = tmp_path / "flow.json"
    threads = torch.get_num_threads()
    try:
        assert fm.main(["--quick", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    data = json.loads(out.read_text())
    grid = fm.QUICK_GRID
    assert data["benchmark"] == "flow_matching" and data["quick"] is True and data["grid"] == grid
    assert data["machine"]["torch"] == torch.__version__ and data["machine"]["cpu_count"]
    runs = data["runs"]
    trained_models = [r for r in runs if r["tol"] is None]
    assert len(trained_models) == len(grid["datasets"]) * len(grid["paths"]) * len(grid["K"]) * len(
        grid["models"]
    ) * len(grid["seeds"])
    separate = [r for r in trained_models if r["family"].startswith("separate")]
    assert len(runs) == len(trained_models) + len(separate) * len(grid["compress_tols"])
    for run in runs:
        assert set(run["trained"]) == set(run["untrained"]) == {str(n) for n in grid["sampler_steps"]}
        if run["tol"] is None:
            model = fm.build_model(
                run["family"], fm.DATASETS[run["dataset"]], run["K"], grid["width"], grid["depth"], run["rank"]
            )
            assert run["parameters"] == fm.parameter_count(model)
        else:
            # the compressed heads: base layers of the heads' shapes plus the fitted corrections' factors
            assert run["family"].endswith("+compressed") and run["tol"] in grid["compress_tols"]
            sizes = [fm.DATASETS[run["dataset"]] + fm.TIME_FEATURES] + [grid["width"]] * grid["depth"] + [2]
            assert run["parameters"] == sum(
                a * b + b + (run["K"] - 1) * b + sum(run["layer_ranks"][i]) * (a + b)
                for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
            )
        finest = str(max(grid["sampler_steps"]))
        trained, untrained = run["trained"][finest], run["untrained"][finest]
        assert trained["energy_distance"] < untrained["energy_distance"]
        assert trained["mode_distance"] < untrained["mode_distance"]
    # the summary is the runs', cell by cell (one seed: no interval)
    assert len(data["summary"]) == len(runs) * len(grid["sampler_steps"])
    for entry in data["summary"]:
        (run,) = [
            r for r in runs if (r["family"], r["rank"], r["tol"]) == (entry["family"], entry["rank"], entry["tol"])
        ]
        scores = run["trained"][str(entry["sampler_steps"])]
        assert entry["parameters"]["mean"] == run["parameters"]
        assert entry["energy_distance"]["mean"] == scores["energy_distance"]
        assert entry["mode_distance"]["mean"] == scores["mode_distance"]
        assert entry["energy_distance"]["low"] is None
    floor = data["noise_floor"]["gmm8"]["mean"]
    assert floor == pytest.approx(
        fm.energy_distance(
            fm.sample_dataset("gmm8", grid["eval_points"], 20_000),
            fm.sample_dataset("gmm8", grid["eval_points"], 10_000),
        )
    )


@settings(max_examples=10)
@given(K=st.integers(2, 4), depth=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_compressed_separate_heads_fit_every_layer_within_tol_and_keep_biases(K, depth, seed):
    torch.manual_seed(seed)
    d, width = 2, 6
    model = fm.build_model("separate", d, K, width, depth)
    x, t = torch.randn((5, d), dtype=torch.float64), torch.rand((5, 1), dtype=torch.float64)
    # lossless (a tolerance far below float64 rounding of the weights): the same model
    lossless = fm.CascadedMLP.from_separate(model, 1e-13)
    torch.testing.assert_close(lossless(x, t), model(x, t), rtol=1e-10, atol=1e-10)
    # lossy: every order's weight of every layer within tol of its head's, every bias exact
    tol = 0.5
    compressed = fm.CascadedMLP.from_separate(model, tol)
    heads = [[m for m in head if isinstance(m, torch.nn.Linear)] for head in model.heads]
    for i, layer in enumerate(compressed.layers):
        W, b = layer.weight.detach().clone(), layer.bias.detach().clone()
        for k in range(K):
            if k:
                U, V = layer.factors(k)
                W += U.detach() @ V.detach().T
                b += layer.bias_corrections[k - 1].detach()
            M = heads[k][i].weight.detach()
            assert float(torch.linalg.norm(W - M) / torch.linalg.norm(M)) <= tol * (1 + 1e-9)
            torch.testing.assert_close(b, heads[k][i].bias.detach(), rtol=1e-12, atol=1e-12)
    assert fm.parameter_count(compressed) <= fm.parameter_count(lossless)
