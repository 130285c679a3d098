"""Whole-model checkpoint families on a real training run (``fit_checkpoints``, ``CheckpointFamily``).

A small MLP (64-32-10) is trained here with torch on scikit-learn's digits,
one checkpoint per step, saved as safetensors.  References are independent:
the original checkpoints, logits recomputed densely from them, and a bound on
the logits' change derived from the weights' reported errors.
"""

import concurrent.futures as cf
import multiprocessing
import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowrank_tree import CheckpointFamily, fit_checkpoints, load
from lowrank_tree.cli import main

try:
    import torch
except ImportError:  # the tests on NumPy state dicts and .npz files still run
    torch = None
try:
    import safetensors.numpy as safetensors_numpy
    import safetensors.torch as safetensors_torch
except ImportError:
    safetensors_numpy = safetensors_torch = None

NO_TORCH = "needs PyTorch (pip install torch): the run is a torch model trained in the test"
NO_SAFETENSORS = "needs safetensors (pip install 'lowrank-tree[checkpoints]')"
requires_torch = pytest.mark.skipif(torch is None, reason=NO_TORCH)
requires_run = pytest.mark.skipif(torch is None or safetensors_torch is None, reason=f"{NO_TORCH}; {NO_SAFETENSORS}")

STEPS = 150
TOL = 1e-3


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """A tiny model: torch's threads would only contend for the (shared) cores."""
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    if torch is None:
        pytest.skip(NO_TORCH)
    load_digits = pytest.importorskip(
        "sklearn.datasets", reason="the training run uses scikit-learn's digits (pip install scikit-learn)"
    ).load_digits

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)


@pytest.fixture(scope="module")
def run(digits, tmp_path_factory):
    """(state dicts, safetensors paths) of a ``STEPS``-step SGD run, one checkpoint per step."""
    if torch is None or safetensors_torch is None:
        pytest.skip(f"{NO_TORCH}; {NO_SAFETENSORS}")
    X, y = digits
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    folder = tmp_path_factory.mktemp("run")
    states, paths = [], []

    def keep():
        sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        path = folder / f"step{len(states):04d}.safetensors"
        safetensors_torch.save_file(sd, str(path))
        states.append(sd)
        paths.append(str(path))

    keep()
    for _ in range(STEPS):
        idx = torch.randint(0, X.shape[0], (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        keep()
    return states, paths


@pytest.fixture(scope="module")
def family(run):
    return fit_checkpoints(run[1], tol=TOL, progress=False)


def _logits(sd, X):
    model = _mlp()
    model.load_state_dict(sd)
    with torch.no_grad():
        return model(X).double()


# --------------------------------------------------------------------------
# The real run
# --------------------------------------------------------------------------
def test_fitted_and_exact_parameters(family, run):
    states, _ = run
    assert family.num_checkpoints == STEPS + 1
    assert sorted(family) == ["0.weight", "2.weight"]
    assert family.exact_names == ["0.bias", "2.bias"]
    assert family.framework == "torch"
    for name, c in family.items():
        assert c.shape == tuple(states[0][name].shape) and c.max_order == STEPS
    assert family.nbytes < family.dense_nbytes
    dense = sum(v.numel() * v.element_size() for sd in states for v in sd.values())
    assert family.dense_nbytes == dense


def test_reconstructed_logits_within_the_tolerance(family, run, digits):
    """Every checkpoint: logits within the bound the weights' reported errors imply, same predictions."""
    states, _ = run
    X, _ = digits
    Xd = X.double()
    for k in range(0, STEPS + 1, 10):
        sd = family.state_dict(k)
        assert set(sd) == set(states[k]) and all(sd[n].dtype == states[k][n].dtype for n in sd)
        # biases are stored exactly
        assert all(torch.equal(sd[n], states[k][n]) for n in family.exact_names)
        z_true, z_hat = _logits(states[k], X), _logits(sd, X)
        W1, W2 = states[k]["0.weight"].double(), states[k]["2.weight"].double()
        e1 = family.errors["0.weight"][k] * torch.linalg.norm(W1)
        e2 = family.errors["2.weight"][k] * torch.linalg.norm(W2)
        h_hat = torch.relu(Xd @ sd["0.weight"].double().T + sd["0.bias"].double())
        # |z_hat - z| <= ‖ΔW2‖ ‖ĥ‖ + ‖W2‖ ‖ΔW1‖ ‖x‖ (ReLU is 1-Lipschitz), per sample
        bound = e2 * torch.linalg.norm(h_hat, dim=1) + torch.linalg.matrix_norm(W2, 2) * e1 * torch.linalg.norm(
            Xd, dim=1
        )
        gap = torch.linalg.norm(z_hat - z_true, dim=1)
        assert bool((gap <= 1.01 * bound + 1e-4).all()), (k, float((gap - bound).max()))
        agree = (z_hat.argmax(1) == z_true.argmax(1)).double().mean()
        assert agree >= 0.99


def test_reported_errors_are_true_errors(family, run):
    states, _ = run
    for k in (0, 1, STEPS // 2, STEPS):
        sd = family.state_dict(k, framework="numpy")
        for name in family:
            M = states[k][name].double().numpy()
            true = np.linalg.norm(sd[name] - M) / np.linalg.norm(M)
            reported = family.errors[name][k]
            assert reported <= TOL * (1 + 1e-5)
            assert true == pytest.approx(reported, rel=1e-3, abs=1e-6)


def test_append_equals_refit(run, family):
    _, paths = run
    grown = fit_checkpoints(paths[:-1], tol=TOL, progress=False)
    tree = grown.tree("2.weight")  # a tree built before the append is appended to
    grown.append(run[0][-1])
    assert grown.num_checkpoints == family.num_checkpoints
    X = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
    for name in family:
        assert grown[name].ranks == family[name].ranks
        np.testing.assert_allclose(grown.errors[name], family.errors[name], rtol=1e-3, atol=1e-7)
        np.testing.assert_allclose(grown[name].matrix(STEPS), family[name].matrix(STEPS), rtol=0, atol=1e-5)
    assert tree.max_order == STEPS
    np.testing.assert_allclose(
        grown.query("2.weight", STEPS, X), family["2.weight"].matrix(STEPS) @ X, rtol=1e-5, atol=1e-5
    )


def test_in_memory_state_dicts_and_iterator_equal_files(run, family):
    states, paths = run
    few = 12
    from_files = fit_checkpoints(paths[:few], tol=TOL, progress=False)
    from_dicts = fit_checkpoints(states[:few], tol=TOL, progress=False)
    from_iter = fit_checkpoints(iter(states[:few]), tol=TOL, progress=False)
    for other in (from_dicts, from_iter):
        assert other.framework == "torch"
        for name in from_files:
            assert other[name].ranks == from_files[name].ranks
            np.testing.assert_array_equal(other[name].matrix(few - 1), from_files[name].matrix(few - 1))


def test_save_load_round_trip(family, tmp_path):
    path = family.save(tmp_path / "family")
    assert path.name == "family.npz"
    again = CheckpointFamily.load(path)
    assert isinstance(load(path), CheckpointFamily)
    assert again.names == family.names and again.errors == family.errors
    for k in (0, 7, STEPS):
        a, b = again.state_dict(k), family.state_dict(k)
        assert all(torch.equal(a[n], b[n]) for n in a)
    # the appended order after a load equals the one appended to the original
    assert repr(again) == repr(family)


def test_damaged_family_file_is_refused(family, tmp_path):
    path = family.save(tmp_path / "family.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="family.npz"):
        load(path)


def test_summary_and_repr(family):
    text = str(family)
    assert text == family.summary()
    lines = text.splitlines()
    assert lines[0].startswith(f"CheckpointFamily: {STEPS + 1} checkpoints, 2 fitted parameters, 2 exact")
    row = next(line for line in lines if line.startswith("0.weight"))
    c = family["0.weight"]
    assert "32x64" in row and f"{sum(c.ranks)}/{max(c.ranks)}" in row and f"{max(c.errors):.2e}" in row
    assert "exact" in next(line for line in lines if line.startswith("0.bias"))
    assert "CheckpointFamily(num_checkpoints=151" in repr(family)


# --------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------
def _assert_same(a, b):
    # names in the order of checkpoint 0: a safetensors file lists them sorted, a state dict as inserted
    assert sorted(a.names) == sorted(b.names) and a.errors == b.errors
    for name in a:
        assert a[name].ranks == b[name].ranks
        for (Ua, Va), (Ub, Vb) in zip(
            [(d.U, d.V) for d in a[name].corrections], [(d.U, d.V) for d in b[name].corrections]
        ):
            np.testing.assert_array_equal(Ua, Ub)
            np.testing.assert_array_equal(Va, Vb)


def test_process_pool_equals_serial(run):
    states, paths = run
    few = 30
    serial = fit_checkpoints(paths[:few], tol=TOL, progress=False)
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        parallel_files = fit_checkpoints(paths[:few], tol=TOL, executor=pool, progress=False)
        parallel_dicts = fit_checkpoints(states[:few], tol=TOL, executor=pool, progress=False)
    _assert_same(parallel_files, serial)
    _assert_same(parallel_dicts, serial)


def test_dask_local_cluster_equals_serial(run, tmp_path, capsys):
    distributed = pytest.importorskip(
        "distributed", reason="needs Dask distributed (pip install 'lowrank-tree[distributed]')"
    )
    _, paths = run
    few = 30
    serial = fit_checkpoints(paths[:few], tol=TOL, progress=False)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        parallel = fit_checkpoints(paths[:few], tol=TOL, executor=client.get_executor(), progress=False)
        out = tmp_path / "family.npz"
        argv = ["fit-checkpoints", *paths[:few], "--tol", str(TOL), "--scheduler", cluster.scheduler_address]
        assert main([*argv, "--out", str(out)]) == 0
    _assert_same(parallel, serial)
    _assert_same(CheckpointFamily.load(out), serial)


# --------------------------------------------------------------------------
# Streaming memory
# --------------------------------------------------------------------------
def _lowrank_walk(tmp_path, K, n=160):
    rng = np.random.default_rng(3)
    W = rng.standard_normal((n, n))
    paths = []
    for k in range(K + 1):
        if k:
            W = W + np.outer(rng.standard_normal(n), rng.standard_normal(n))
        path = tmp_path / f"c{k}.npz"
        np.savez(path, w=W)
        paths.append(str(path))
    return paths


def _peak(paths, **kw):
    tracemalloc.start()
    try:
        fam = fit_checkpoints(iter(paths), tol=1e-8, progress=False, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fam["w"].ranks == [1] * (len(paths) - 1)
    return peak


def test_memory_stays_bounded_as_the_run_grows(tmp_path):
    K = 12
    (tmp_path / "short").mkdir()
    (tmp_path / "long").mkdir()
    short, long = _lowrank_walk(tmp_path / "short", K), _lowrank_walk(tmp_path / "long", 4 * K)
    p_short, p_long = _peak(short), _peak(long)
    one = 160 * 160 * 8
    # the run is 49 dense matrices; the fit holds a handful (running fit, M_k, residual, SVD)
    assert p_long <= 1.25 * p_short, (p_short, p_long)
    assert p_long < 10 * one < (4 * K + 1) * one


def test_iterator_of_state_dicts_holds_one_checkpoint(tmp_path):
    rng = np.random.default_rng(4)
    n = 120
    base = rng.standard_normal((n, n))
    live = []

    def stream(K):
        W = base.copy()
        for k in range(K + 1):
            if k:
                W = W + np.outer(rng.standard_normal(n), rng.standard_normal(n))
            live.append(k)
            yield {"w": W.copy(), "b": np.full(n, float(k))}

    peaks = []
    for K in (10, 40):
        tracemalloc.start()
        fam = fit_checkpoints(stream(K), tol=1e-8, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert fam.num_checkpoints == K + 1 and fam["w"].ranks == [1] * K
    assert peaks[1] <= 1.25 * peaks[0], peaks


# --------------------------------------------------------------------------
# Inputs, kinds and dtypes
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fmt",
    [
        "npz",
        pytest.param("pt", marks=requires_torch),
        pytest.param("safetensors", marks=pytest.mark.skipif(safetensors_numpy is None, reason=NO_SAFETENSORS)),
    ],
)
def test_file_formats(tmp_path, fmt):
    rng = np.random.default_rng(5)
    W = rng.standard_normal((9, 7)).astype(np.float32)
    states = []
    for k in range(4):
        W = W + np.outer(rng.standard_normal(9), rng.standard_normal(7)).astype(np.float32)
        states.append({"w": W.copy(), "n": np.array([k, 2 * k], dtype=np.int64)})
    paths = []
    for k, sd in enumerate(states):
        path = tmp_path / f"c{k}.{fmt}"
        if fmt == "npz":
            np.savez(path, **sd)
        elif fmt == "pt":
            torch.save({n: torch.from_numpy(v) for n, v in sd.items()}, path)
        else:
            safetensors_numpy.save_file(sd, str(path))
        paths.append(str(path))
    fam = fit_checkpoints(paths, tol=1e-5, progress=False)
    assert fam.framework == ("numpy" if fmt == "npz" or torch is None else "torch")
    for k, sd in enumerate(states):
        got = fam.state_dict(k, framework="numpy")
        np.testing.assert_array_equal(got["n"], sd["n"])
        assert got["w"].dtype == np.float32
        assert np.linalg.norm(got["w"] - sd["w"]) <= 1e-5 * np.linalg.norm(sd["w"]) * 1.01


@requires_run
def test_bfloat16_and_float16_come_back_in_their_dtype(tmp_path):
    rng = np.random.default_rng(6)
    W = torch.tensor(rng.standard_normal((8, 6)), dtype=torch.float32)
    states = [{"a": (W + k).to(torch.bfloat16), "h": (W * k).to(torch.float16), "s": torch.tensor(k)} for k in range(3)]
    paths = []
    for k, sd in enumerate(states):
        paths.append(str(tmp_path / f"c{k}.safetensors"))
        safetensors_torch.save_file(sd, paths[-1])
    for source in (states, paths):
        fam = fit_checkpoints(source, tol=0, progress=False)
        for k in range(3):
            sd = fam.state_dict(k)
            assert sd["a"].dtype == torch.bfloat16 and sd["h"].dtype == torch.float16
            # fitted losslessly in float32, then cast back: the original values
            assert torch.equal(sd["a"], states[k]["a"]) and torch.equal(sd["h"], states[k]["h"])
            assert torch.equal(sd["s"], states[k]["s"])
        np_sd = fam.state_dict(2, framework="numpy")
        assert np_sd["a"].dtype == np.float32


def test_include_exclude_and_fixed_ranks(run):
    states = run[0][:6]
    fam = fit_checkpoints(states, exclude="2.*", ranks=2, progress=False)
    assert list(fam) == ["0.weight"] and fam["0.weight"].ranks == [2] * 5
    assert "2.weight" in fam.exact_names
    assert torch.equal(fam.state_dict(5)["2.weight"], states[5]["2.weight"])
    fam = fit_checkpoints(states, include=["2.weight"], ranks={"2.weight": [1, 2, 3, 4, 5]}, progress=False)
    assert list(fam) == ["2.weight"] and fam["2.weight"].ranks == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="include: pattern 'nope' matches no parameter"):
        fit_checkpoints(states, include="nope")
    with pytest.raises(KeyError, match="stored exactly"):
        fam["0.bias"]


def test_budget(run):
    states = run[0][:6]
    fam = fit_checkpoints(states, budget=4 * (64 + 32), include="0.weight", progress=False)
    assert sum(fam["0.weight"].ranks) * (64 + 32) <= 4 * (64 + 32)
    with pytest.raises(ValueError, match="budget"):
        fam.append(states[0])


@given(
    K=st.integers(0, 4),
    m=st.integers(1, 6),
    n=st.integers(1, 6),
    shape=st.sampled_from([(), (3,), (2, 0), (2, 2, 2)]),
    sparse_changes=st.booleans(),
)
def test_exact_parameters_rebuilt_bit_for_bit(K, m, n, shape, sparse_changes):
    rng = np.random.default_rng(K * 100 + m * 10 + n)
    states = []
    x = rng.standard_normal(shape)
    for k in range(K + 1):
        if k and x.size:
            if sparse_changes:
                x = x.copy()
                x.reshape(-1)[0] = -0.0 if k % 2 else rng.standard_normal()
            else:
                x = rng.standard_normal(shape)
        states.append({"x": x, "w": rng.standard_normal((m, n)), "i": np.arange(k, k + 3, dtype=np.int32)})
    fam = fit_checkpoints(states, tol=0, progress=False)
    for k, sd in enumerate(states):
        got = fam.state_dict(k)
        for name in ("x", "i"):
            assert got[name].dtype == sd[name].dtype and got[name].shape == sd[name].shape
            assert got[name].tobytes() == np.asarray(sd[name]).tobytes()
        assert np.linalg.norm(got["w"] - sd["w"]) <= 1e-12 * max(np.linalg.norm(sd["w"]), 1)


def test_trees_on_every_backend(lib):
    """``tree(name, backend=...)`` places a parameter's tree on any array library; queries match dense."""
    rng = np.random.default_rng(7)
    W = rng.standard_normal((12, 9))
    run = []
    for k in range(6):
        W = W + np.outer(rng.standard_normal(12), rng.standard_normal(9))
        run.append({"w": W.copy(), "b": np.full(12, float(k))})
    fam = fit_checkpoints(run, tol=1e-12, progress=False)
    X = rng.standard_normal((9, 3))
    tree = fam.tree("w", backend=lib.name)
    for k in (0, 3, 5):
        got = lib.to_numpy(tree.query(k, lib.asarray(X)))
        np.testing.assert_allclose(got, run[k]["w"] @ X, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(fam.query("w", k, X), run[k]["w"] @ X, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------
def test_missing_parameter_names_checkpoint_path_and_parameter(run, tmp_path):
    states, paths = run
    sd = dict(states[3])
    del sd["2.bias"]
    bad = tmp_path / "bad3.safetensors"
    safetensors_torch.save_file(sd, str(bad))
    files = [*paths[:3], str(bad), *paths[4:6]]
    with pytest.raises(ValueError, match=r"checkpoint 3 \(file .*bad3\.safetensors\): parameter '2\.bias' is missing"):
        fit_checkpoints(files, tol=TOL)
    with pytest.raises(ValueError, match=r"checkpoint 3 \(a state dict\): parameter '2\.bias' is missing"):
        fit_checkpoints(iter([*states[:3], sd]), tol=TOL)


def test_other_shape_names_checkpoint_and_parameter(run, tmp_path):
    states, paths = run
    sd = dict(states[2])
    sd["0.weight"] = torch.zeros(32, 63)
    bad = tmp_path / "bad2.safetensors"
    safetensors_torch.save_file(sd, str(bad))
    with pytest.raises(ValueError, match=r"checkpoint 2 \(file .*bad2\.safetensors\): parameter '0\.weight' has shape"):
        fit_checkpoints([*paths[:2], str(bad)], tol=TOL)
    fam = fit_checkpoints(paths[:2], tol=TOL, progress=False)
    before = fam.state_dict(1)
    with pytest.raises(ValueError, match=r"checkpoint 2 .*'0\.weight' has shape"):
        fam.append(sd)
    assert fam.num_checkpoints == 2 and all(torch.equal(before[n], fam.state_dict(1)[n]) for n in before)


def test_truncated_and_damaged_safetensors_named(run, tmp_path):
    _, paths = run
    data = open(paths[1], "rb").read()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"checkpoint 1 \(file .*cut\.safetensors\): cannot read"):
        fit_checkpoints([paths[0], str(cut)], tol=TOL)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"junk\.safetensors"):
        fit_checkpoints([paths[0], str(junk)], tol=TOL)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        fit_checkpoints([paths[0], str(tmp_path / "missing.safetensors")], tol=TOL)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_inf_named(run, value):
    states, _ = run
    sd = {n: v.clone() for n, v in states[2].items()}
    sd["2.bias"][3] = value
    with pytest.raises(ValueError, match=r"checkpoint 2 \(a state dict\): parameter '2\.bias' holds 1 NaN or Inf"):
        fit_checkpoints([states[0], states[1], sd], tol=TOL)


def test_bad_arguments(run):
    states, paths = run
    with pytest.raises(TypeError, match="checkpoints must be a sequence"):
        fit_checkpoints(paths[0])
    with pytest.raises(ValueError, match="no checkpoint"):
        fit_checkpoints([])
    with pytest.raises(TypeError, match=r"checkpoints\[1\] must be a state dict"):
        fit_checkpoints([states[0], 3])
    with pytest.raises(ValueError, match="tol must be in"):
        fit_checkpoints(states[:2], tol=2.0)
    with pytest.raises(ValueError, match="method must be"):
        fit_checkpoints(states[:2], method="svd")
    with pytest.raises(ValueError, match="at most one of ranks and budget"):
        fit_checkpoints(states[:2], ranks=1, budget=10)
    with pytest.raises(ValueError, match=r"ranks must be in \[0, 10\]"):
        fit_checkpoints(states[:2], ranks=11)
    with pytest.raises(ValueError, match="executor needs"):
        with cf.ThreadPoolExecutor(1) as ex:
            fit_checkpoints(iter(states[:2]), executor=ex)
    with pytest.raises(ValueError, match="expected a .safetensors"):
        fit_checkpoints(["model.ckpt"])
    fam = fit_checkpoints(states[:2], progress=False)
    with pytest.raises(ValueError, match=r"k must be in \[0, 1\]"):
        fam.state_dict(2)
    with pytest.raises(ValueError, match="framework must be"):
        fam.state_dict(0, framework="jax")


def test_progress_bar_counts_parameters_times_checkpoints(run, capsys):
    pytest.importorskip("tqdm", reason="needs tqdm (pip install 'lowrank-tree[checkpoints]')")
    fit_checkpoints(run[1][:5], tol=TOL, progress=True)
    err = capsys.readouterr().err
    assert "20/20" in err  # 4 parameters x 5 checkpoints
    fit_checkpoints(run[1][:5], tol=TOL, progress=False)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------
def _cli_fails(capsys, argv, match):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0] and match in lines[0], lines
    return lines[0]


def test_cli_round_trip(run, tmp_path, capsys):
    states, paths = run
    out = tmp_path / "family.npz"
    assert main(["fit-checkpoints", *paths[:8], "--tol", "1e-3", "--out", str(out), "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "CheckpointFamily: 8 checkpoints, 2 fitted parameters, 2 exact" in text and f"saved to {out}" in text
    fam = CheckpointFamily.load(out)
    reference = fit_checkpoints(paths[:8], tol=1e-3, progress=False)
    _assert_same(fam, reference)
    for ext in ("safetensors", "npz", "pt"):
        target = tmp_path / f"ckpt5.{ext}"
        assert main(["extract", str(out), "--checkpoint", "5", "--out", str(target)]) == 0
        if ext == "npz":
            with np.load(target) as data:
                got = {n: torch.from_numpy(data[n]) for n in data.files}
        elif ext == "pt":
            got = torch.load(target, weights_only=True)
        else:
            got = safetensors_torch.load_file(str(target))
        want = reference.state_dict(5)
        assert set(got) == set(states[5]) and all(torch.equal(got[n], want[n]) for n in want)
        model = _mlp()
        model.load_state_dict(got)  # a real checkpoint again


def test_cli_bad_input_writes_nothing(run, tmp_path, capsys):
    states, paths = run
    sd = dict(states[2])
    sd["0.bias"] = torch.zeros(31)
    bad = tmp_path / "bad.safetensors"
    safetensors_torch.save_file(sd, str(bad))
    out = tmp_path / "family.npz"
    line = _cli_fails(capsys, ["fit-checkpoints", paths[0], paths[1], bad, "--out", out], "checkpoint 2")
    assert "bad.safetensors" in line and "'0.bias'" in line
    _cli_fails(capsys, ["fit-checkpoints", paths[0], tmp_path / "nope.safetensors", "--out", out], "no such")
    _cli_fails(capsys, ["fit-checkpoints", paths[0], "--out", tmp_path / "missing" / "f.npz"], "does not exist")
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["bad.safetensors"]
    family = fit_checkpoints(paths[:3], progress=False).save(out)
    _cli_fails(capsys, ["extract", family, "--checkpoint", "3", "--out", tmp_path / "c.npz"], "[0, 2]")
    _cli_fails(
        capsys, ["extract", family, "--checkpoint", "1", "--out", tmp_path / "c.bin"], ".safetensors, .npz or .pt"
    )
    _cli_fails(capsys, ["extract", bad, "--checkpoint", "0", "--out", tmp_path / "c.npz"], "bad.safetensors")
    assert not (tmp_path / "c.npz").exists()


# --------------------------------------------------------------------------
# The Checkpoints page
# --------------------------------------------------------------------------
@requires_run
def test_docs_page_examples_run_and_print_what_the_page_shows():
    import importlib.util
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("_docs_examples", root / "tests" / "test_docs_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.run_examples((root / "docs" / "checkpoints.md").read_text(), "docs/checkpoints.md")
