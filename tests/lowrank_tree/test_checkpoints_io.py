"""Checkpoint-family files from anywhere: forged or damaged files are refused, never half-loaded.

The forgeries recompute both checksums (as an attacker or a buggy writer
would), so what refuses them is the validation of every metadata field and
array against the others.  NumPy state dicts only: no torch needed.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowrank_tree import CheckpointFamily, fit_checkpoints, load, save
from lowrank_tree.io import _checksum, _metadata_digest


def _run(K=4, m=7, n=5, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, n))
    out = []
    for k in range(K + 1):
        if k:
            W = W + np.outer(rng.standard_normal(m), rng.standard_normal(n))
        b = np.zeros(40)
        b[: k % 3] = k  # a sparse change (k = 1, 2), none (k = 3), ...
        out.append({"w": W.copy(), "b": b, "step": np.array(k, dtype=np.int64), "d": rng.standard_normal((2, 3, 2))})
    return out


@pytest.fixture
def saved(tmp_path):
    fam = fit_checkpoints(_run(), tol=1e-10, progress=False)
    return fam, save(fam, tmp_path / "family.npz")


def _read(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("__metadata__").tobytes())
    return meta, arrays


def _forge(path, meta, arrays):
    """Write ``meta``/``arrays`` with both checksums recomputed."""
    meta = dict(meta)
    meta["arrays_sha256"] = _checksum(arrays)
    meta["checksum"] = {"algorithm": "sha256", "value": _metadata_digest(meta)}
    out = dict(arrays)
    out["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **out)


def test_round_trip_bit_for_bit(saved):
    fam, path = saved
    again = load(path)
    assert isinstance(again, CheckpointFamily)
    assert again.names == fam.names and again.exact_names == ["b", "step", "d"]
    assert again.framework == "numpy" and again.num_checkpoints == 5
    for k in range(5):
        a, b = again.state_dict(k), fam.state_dict(k)
        for name in a:
            assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes()
    meta, _ = _read(path)
    assert meta["kind"] == "checkpoints" and meta["format_version"] == 2
    changes = meta["parameters"][1]["changes"]
    assert changes[0] == ["sparse", 1] and changes[2] is None  # b: 1 entry changed, then none


def test_append_after_load_equals_append_before(saved):
    fam, path = saved
    again = load(path)
    new = _run(K=5)[5]
    fam.append(new)
    again.append(new)
    for name in fam:
        assert again[name].ranks == fam[name].ranks
        np.testing.assert_array_equal(again[name].matrix(5), fam[name].matrix(5))
    assert again.state_dict(5)["b"].tobytes() == new["b"].tobytes()


def test_flipped_byte_is_refused(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[200] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="family.npz"):
        load(path)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m, a: m["parameters"][0].update(role="weights"), "role must be"),
        (lambda m, a: m["parameters"][0].update(ranks=[1, 1]), "ranks must be a list of 4"),
        (lambda m, a: m["parameters"][0].update(ranks=[9, 1, 1, 1]), "exceed min"),
        (lambda m, a: m["parameters"][1].update(name="w"), "unique string"),
        (lambda m, a: m["parameters"][1].update(changes=[["sparse", 999], None, None, None]), "changes must be"),
        (lambda m, a: m["parameters"][1].update(storage_dtype="object"), "storage_dtype"),
        (lambda m, a: m.update(num_checkpoints=0), "num_checkpoints"),
        (lambda m, a: m.update(framework="jax"), "framework"),
        (lambda m, a: m["parameters"][1].update(shape=[41]), "has shape"),
        (lambda m, a: a.update(p1_i_1=np.array([40], dtype=np.int64)), "indexes outside"),
        (lambda m, a: a.pop("p0_U_2"), "missing array 'p0_U_2'"),
        (lambda m, a: a.update(extra=np.zeros(1)), "unexpected entry 'extra'"),
    ],
)
def test_forged_metadata_or_arrays_are_refused(saved, tmp_path, edit, match):
    _, path = saved
    meta, arrays = _read(path)
    edit(meta, arrays)
    forged = tmp_path / "forged.npz"
    _forge(forged, meta, arrays)
    with pytest.raises(ValueError, match=match):
        load(forged)


def test_family_file_is_not_a_cascade(saved, tmp_path):
    _, path = saved
    from lowrank_tree import cascade_fit

    other = save(cascade_fit(np.stack([np.eye(3)] * 2)), tmp_path / "cascade.npz")
    with pytest.raises(ValueError, match="not a checkpoint family"):
        CheckpointFamily.load(other)
    # the metadata's checksum covers the family fields too
    meta, arrays = _read(path)
    meta["tol"] = 0.5
    out = dict(arrays)
    out["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "edited.npz", **out)
    with pytest.raises(ValueError, match="checksum mismatch"):
        load(tmp_path / "edited.npz")


def test_executor_task_errors_reach_the_caller():
    run = _run()
    run[3]["w"] = run[3]["w"].copy()
    run[3]["w"][0, 0] = np.inf
    with ThreadPoolExecutor(2) as ex, pytest.raises(ValueError, match=r"checkpoint 3 \(a state dict\): parameter 'w'"):
        fit_checkpoints(run, executor=ex, progress=False)


def test_numpy_iterator_equals_sequence_and_executor():
    run = _run(K=6, m=30, n=20, seed=2)
    seq = fit_checkpoints(run, tol=1e-3, method="randomized", progress=False)
    it = fit_checkpoints(iter(run), tol=1e-3, method="randomized", progress=False)
    with ThreadPoolExecutor(2) as ex:
        par = fit_checkpoints(run, tol=1e-3, method="randomized", executor=ex, progress=False)
    for other in (it, par):
        assert other.errors == seq.errors
        for a, b in zip(other["w"].corrections, seq["w"].corrections):
            np.testing.assert_array_equal(a.U, b.U)
            np.testing.assert_array_equal(a.V, b.V)


@given(
    K=st.integers(0, 4),
    m=st.integers(1, 6),
    n=st.integers(1, 6),
    scale=st.sampled_from([1e-200, 1.0, 1e200]),
    tol=st.sampled_from([0.0, 1e-3, 0.3]),
    repeat=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_reported_errors_are_true_and_append_equals_refit(K, m, n, scale, tol, repeat, seed):
    """Any shape, K = 0, unchanged checkpoints (rank 0), extreme scales: errors are true, append == refit."""
    rng = np.random.default_rng(seed)
    mats = [scale * rng.standard_normal((m, n))]
    for _ in range(K + 1):
        mats.append(mats[-1] if repeat else mats[-1] + scale * rng.standard_normal((m, n)))
    run = [{"w": M, "t": np.array([k])} for k, M in enumerate(mats)]
    full = fit_checkpoints(run, tol=tol, progress=False)
    for k, M in enumerate(mats):
        # divided by the scale first: squaring 1e-200 underflows in the reference norm
        true = np.linalg.norm((full.state_dict(k)["w"] - M) / scale) / np.linalg.norm(M / scale)
        assert true == pytest.approx(full.errors["w"][k], rel=1e-6, abs=1e-12)
        assert full.errors["w"][k] <= max(tol, 1e-12)
    if repeat:
        assert full["w"].ranks == [0] * (K + 1)
    grown = fit_checkpoints(run[:-1], tol=tol, progress=False)
    assert grown.num_checkpoints == K + 1
    grown.append(run[-1])
    assert grown["w"].ranks == full["w"].ranks
    np.testing.assert_allclose(grown.errors["w"], full.errors["w"], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(grown["w"].matrix(K + 1), full["w"].matrix(K + 1), rtol=1e-10, atol=1e-12 * scale)


def _conv_run(K=5, seed=5):
    """A conv kernel (out 8, in 3, 3x3) changing by rank-1 steps of its (8, 27) matrix, and a bias."""
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((8, 3, 3, 3))
    out = []
    for k in range(K + 1):
        if k:
            kernel = kernel + np.outer(rng.standard_normal(8), rng.standard_normal(27)).reshape(8, 3, 3, 3)
        out.append({"conv.weight": kernel.copy(), "conv.bias": np.full(8, float(k))})
    return out


def test_conv_kernels_exact_by_default_and_fitted_as_matrices_on_request(tmp_path):
    run = _conv_run()
    exact = fit_checkpoints(run, tol=1e-10, progress=False)
    assert list(exact) == [] and exact.exact_names == ["conv.weight", "conv.bias"]
    fam = fit_checkpoints(run, tol=1e-10, reshape_conv=True, progress=False)
    assert list(fam) == ["conv.weight"] and fam["conv.weight"].shape == (8, 27)
    assert fam["conv.weight"].ranks == [1] * 5 and fam.shape("conv.weight") == (8, 3, 3, 3)
    X = np.random.default_rng(0).standard_normal((27, 4))
    again = load(save(fam, tmp_path / "conv.npz"))
    for k, sd in enumerate(run):
        got = again.state_dict(k)["conv.weight"]
        assert got.shape == (8, 3, 3, 3)
        np.testing.assert_allclose(got, sd["conv.weight"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(fam.query("conv.weight", k, X), sd["conv.weight"].reshape(8, 27) @ X, atol=1e-9)
    fam.append(_conv_run(K=6)[6])
    np.testing.assert_allclose(fam.state_dict(6)["conv.weight"], _conv_run(K=6)[6]["conv.weight"], atol=1e-9)


def test_forged_conv_matrix_shape_is_refused(tmp_path):
    path = save(fit_checkpoints(_conv_run(), reshape_conv=True, progress=False), tmp_path / "conv.npz")
    meta, arrays = _read(path)
    meta["parameters"][0]["matrix_shape"] = [24, 9]
    _forge(tmp_path / "forged.npz", meta, arrays)
    with pytest.raises(ValueError, match="matrix_shape must be"):
        load(tmp_path / "forged.npz")


def test_append_with_fixed_and_per_checkpoint_ranks():
    run = _run(K=5, m=8, n=6, seed=9)
    fixed = fit_checkpoints(run[:-1], ranks=2, progress=False)
    fixed.append(run[-1])
    assert fixed["w"].ranks == fit_checkpoints(run, ranks=2, progress=False)["w"].ranks == [1] * 5
    each = fit_checkpoints(run[:-1], ranks=[1, 0, 1, 1], progress=False)
    before = each.state_dict(4)
    with pytest.raises(ValueError, match="one rank per checkpoint"):
        each.append(run[-1])
    with pytest.raises(ValueError, match=r"rank must be in \[0, 6\]"):
        each.append(run[-1], rank=7)
    with pytest.raises(ValueError, match="no fitted parameter 'b'"):
        each.append(run[-1], rank={"b": 1})
    assert each.num_checkpoints == 5 and all(each.state_dict(4)[n].tobytes() == before[n].tobytes() for n in before)
    each.append(run[-1], rank={"w": 1})
    refit = fit_checkpoints(run, ranks=[1, 0, 1, 1, 1], progress=False)
    assert each["w"].ranks == refit["w"].ranks == [1, 0, 1, 1, 1]
    np.testing.assert_allclose(each["w"].matrix(5), refit["w"].matrix(5), rtol=1e-12, atol=1e-12)
    assert _reloaded(each)["w"].ranks == [1, 0, 1, 1, 1]


def _reloaded(fam):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return load(save(fam, f"{d}/f.npz"))
