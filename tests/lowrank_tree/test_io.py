"""save/load: bit-exact round trips, and every kind of broken file fails loudly."""

import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowrank_tree import LowRankSegmentTree, load, save
from lowrank_tree.fit import Cascade, cascade_fit
from lowrank_tree.io import FORMAT_VERSION, _metadata_digest

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
tmp_settings = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def random(rng, shape, dtype):
    a = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


@st.composite
def trees(draw, max_K=6, max_dim=6):
    K = draw(st.integers(0, max_K))
    m, n = draw(st.integers(1, max_dim)), draw(st.integers(1, max_dim))
    ranks = draw(st.lists(st.integers(0, 3), min_size=K, max_size=K))
    dtype = draw(st.sampled_from(DTYPES))
    tol = draw(st.sampled_from([None, 0.0, 1e-6]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = random(rng, (m, n), dtype)
    deltas = [(random(rng, (m, r), dtype), random(rng, (n, r), dtype)) for r in ranks]
    return base, deltas, tol, rng


def host(lib, a):
    return lib.to_numpy(a)


def assert_same_tree(lib, a, b):
    assert type(a) is type(b)
    assert a.shape == b.shape and a.max_order == b.max_order
    assert a.dtype == b.dtype and a.backend == b.backend
    assert a._tol == b._tol and a.rtol == b.rtol
    assert np.array_equal(host(lib, a.base), host(lib, b.base))
    for ca, cb in zip(a.corrections, b.corrections, strict=True):
        assert np.array_equal(host(lib, ca.U), host(lib, cb.U))
        assert np.array_equal(host(lib, ca.V), host(lib, cb.V))
    assert [(x.level, x.index, x.rank, x.dense) for x in a.nodes()] == [
        (x.level, x.index, x.rank, x.dense) for x in b.nodes()
    ]


@tmp_settings
@given(trees())
def test_tree_round_trip(lib, tmp_path, fam):
    base, deltas, tol, rng = fam
    tree = LowRankSegmentTree(
        lib.asarray(base), [(lib.asarray(U), lib.asarray(V)) for U, V in deltas], rtol=tol, **lib.kw
    )
    path = save(tree, tmp_path / "tree.npz")
    assert path == tmp_path / "tree.npz"
    again = load(path, backend=lib.name)
    assert_same_tree(lib, tree, again)
    assert again.dtype == tree.dtype  # float32 stays float32, complex stays complex
    X = lib.asarray(random(rng, (base.shape[1], 3), base.dtype))
    for k in range(tree.max_order + 1):
        assert np.array_equal(host(lib, again.query(k, X)), host(lib, tree.query(k, X)))
    assert np.array_equal(host(lib, again.all_orders(X)), host(lib, tree.all_orders(X)))


def test_tree_after_update_and_append(tmp_path):
    rng = np.random.default_rng(0)
    tree = LowRankSegmentTree(
        rng.standard_normal((5, 4)), [(rng.standard_normal((5, 2)), rng.standard_normal((4, 2))) for _ in range(3)]
    )
    tree.update(2, (rng.standard_normal((5, 1)), rng.standard_normal((4, 1))))
    tree.append((rng.standard_normal((5, 3)), rng.standard_normal((4, 3))))
    again = load(save(tree, tmp_path / "t"))
    assert again.ranks == tree.ranks == [2, 1, 2, 3]
    X = rng.standard_normal((4, 2))
    for k in range(5):
        # the loaded tree is built from the leaves, the updated one changed its
        # ancestors incrementally: equal to rounding, not bit for bit
        np.testing.assert_allclose(again.query(k, X), tree.query(k, X), rtol=1e-12, atol=1e-12)
    assert [c.U.tobytes() for c in again.corrections] == [c.U.tobytes() for c in tree.corrections]


def test_strict_tree_loads_on_numpy_and_back(tmp_path):
    from lowrank_tree.backends import get_func

    to_strict = get_func("asarray", "array_api_strict")
    rng = np.random.default_rng(4)
    tree = LowRankSegmentTree(
        to_strict(rng.standard_normal((3, 4))),
        [(to_strict(rng.standard_normal((3, 1))), to_strict(rng.standard_normal((4, 1))))],
    )
    path = save(tree, tmp_path / "strict.npz")
    on_numpy = load(path)
    assert on_numpy.backend == "numpy" and isinstance(on_numpy.base, np.ndarray)
    assert np.array_equal(on_numpy.base, np.from_dlpack(tree.base))
    assert load(path, backend="array_api_strict").backend == "array_api_strict"


@pytest.mark.parametrize("dtype", DTYPES)
def test_cascade_round_trip(lib, tmp_path, dtype):
    rng = np.random.default_rng(1)
    mats = np.stack([random(rng, (6, 5), dtype) for _ in range(4)])
    casc = cascade_fit(lib.asarray(mats), ranks=2, **lib.kw)
    path = save(casc, tmp_path / "casc.npz")
    again = load(path, backend=lib.name)
    assert isinstance(again, Cascade)
    assert again.dtype == casc.dtype and again.shape == casc.shape
    assert again.ranks == casc.ranks and again.max_order == casc.max_order == 3
    assert again.errors == casc.errors and again.method == casc.method
    assert again.n_params == casc.n_params and again.dense_params == casc.dense_params
    assert np.array_equal(host(lib, again.base), host(lib, casc.base))
    for ca, cb in zip(casc.corrections, again.corrections, strict=True):
        assert np.array_equal(host(lib, ca.U), host(lib, cb.U))
        assert np.array_equal(host(lib, ca.V), host(lib, cb.V))
    for k in range(4):
        assert np.array_equal(host(lib, again.matrix(k)), host(lib, casc.matrix(k)))


def test_cascade_with_unknown_errors_and_zero_rank(tmp_path):
    casc = Cascade(
        np.eye(3), [(np.ones((3, 1)), np.ones((3, 1))), (np.zeros((3, 0)), np.zeros((3, 0)))], method="randomized"
    )
    again = load(save(casc, tmp_path / "c"))
    assert again.ranks == [1, 0] and again.method == "randomized"
    assert again.errors[0] == 0.0 and np.isnan(again.errors[1]) and np.isnan(again.errors[2])
    with np.load(tmp_path / "c.npz") as raw:
        meta = json.loads(raw["__metadata__"].tobytes())
    assert meta["errors"] == [0.0, None, None]
    assert meta["kind"] == "cascade" and meta["format_version"] == 2 and meta["ranks"] == [1, 0]


def test_metadata_contents(tmp_path):
    tree = LowRankSegmentTree(np.ones((2, 3), np.float32), [(np.ones((2, 1), np.float32), np.ones((3, 1), np.float32))])
    path = save(tree, tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as raw:
        assert sorted(raw.files) == ["U_1", "V_1", "__metadata__", "base"]
        meta = json.loads(raw["__metadata__"].tobytes().decode("utf-8"))
    import lowrank_tree

    assert meta["format"] == "lowrank-tree" and meta["format_version"] == FORMAT_VERSION == 2
    assert meta["kind"] == "tree" and meta["library_version"] == lowrank_tree.__version__
    assert meta["dtype"] == "float32" and meta["shape"] == [2, 3]
    assert meta["num_orders"] == 1 and meta["ranks"] == [1] and meta["tol"] is None
    assert meta["checksum"]["algorithm"] == "sha256" and len(meta["checksum"]["value"]) == 64
    assert len(meta["arrays_sha256"]) == 64


def test_path_suffix_and_no_leftovers(tmp_path):
    tree = LowRankSegmentTree(np.eye(2))
    path = save(tree, str(tmp_path / "model"))
    assert path == tmp_path / "model.npz" and path.exists()
    assert load(tmp_path / "model").max_order == 0  # the suffix is tried on load too
    save(tree, path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


# -- broken files ------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(9)
    tree = LowRankSegmentTree(
        rng.standard_normal((40, 30)), [(rng.standard_normal((40, 3)), rng.standard_normal((30, 3))) for _ in range(4)]
    )
    return save(tree, tmp_path / "good.npz")


def rewrite(path, meta_edit=None, array_edit=None, raw_meta=None, resign=True):
    """Re-pack an archive after editing its metadata and/or arrays.

    With ``resign`` the metadata checksum is recomputed after the edit (as a careless or
    malicious writer could), so the checks behind it are reached; the arrays' checksum is
    left untouched either way.
    """
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["__metadata__"].tobytes())
    if meta_edit:
        meta_edit(meta)
        if resign:
            meta["checksum"]["value"] = _metadata_digest(meta)
    if array_edit:
        array_edit(arrays)
    if raw_meta is not None:
        arrays["__metadata__"] = np.frombuffer(raw_meta, dtype=np.uint8)
    elif "__metadata__" in arrays:
        arrays["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    os.remove(path)
    np.savez(path, **arrays)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load(tmp_path / "nothere.npz")


def test_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        load(tmp_path)


def test_not_a_zip(tmp_path):
    p = tmp_path / "text.npz"
    p.write_text("hello, not an archive\n")
    with pytest.raises(ValueError, match=r"text\.npz: not a readable \.npz \(zip\) archive"):
        load(p)
    np.save(tmp_path / "plain.npy", np.ones(3))
    with pytest.raises(ValueError, match="not a readable"):
        load(tmp_path / "plain.npy")


def test_truncated_to_half(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"good\.npz: .*truncated"):
        load(saved)


@pytest.mark.parametrize("where", [0.3, 0.5, 0.7])
def test_flipped_bytes(saved, where):
    data = bytearray(saved.read_bytes())
    i = int(len(data) * where)
    data[i : i + 4] = bytes(b ^ 0xFF for b in data[i : i + 4])
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"good\.npz: corrupted"):
        load(saved)


@pytest.mark.parametrize(
    "version, message",
    [
        (3, "format_version 3 is newer than this library supports"),
        (0, "unsupported format_version 0"),
        ("1", "format_version must be an integer"),
    ],
)
def test_wrong_version(saved, version, message):
    rewrite(saved, meta_edit=lambda m: m.update(format_version=version))
    with pytest.raises(ValueError, match=rf"good\.npz: {message}"):
        load(saved)


def test_wrong_format(saved):
    rewrite(saved, meta_edit=lambda m: m.update(format="something-else"))
    with pytest.raises(ValueError, match="not a lowrank-tree file \\(format 'something-else'"):
        load(saved)


def test_missing_array(saved):
    rewrite(saved, array_edit=lambda a: a.pop("U_3"))
    with pytest.raises(ValueError, match="missing array 'U_3'"):
        load(saved)


def test_missing_metadata(saved):
    rewrite(saved, array_edit=lambda a: a.pop("__metadata__"))
    with pytest.raises(ValueError, match="no '__metadata__' entry"):
        load(saved)


def test_missing_metadata_field(saved):
    rewrite(saved, meta_edit=lambda m: m.pop("ranks"))
    with pytest.raises(ValueError, match="metadata field 'ranks' is missing"):
        load(saved)


def test_bad_json(saved):
    rewrite(saved, raw_meta=b"{not json")
    with pytest.raises(ValueError, match="metadata is not valid UTF-8 JSON"):
        load(saved)


def test_unexpected_entry(saved):
    rewrite(saved, array_edit=lambda a: a.update(extra=np.zeros(2)))
    with pytest.raises(ValueError, match="unexpected entry 'extra'"):
        load(saved)


def test_shapes_inconsistent_with_metadata(saved):
    rewrite(saved, meta_edit=lambda m: m.update(ranks=[3, 2, 3, 3]))
    with pytest.raises(ValueError, match=r"array 'U_2' has shape \(40, 3\) but the metadata implies \(40, 2\)"):
        load(saved)


def test_dtype_inconsistent_with_metadata(saved):
    rewrite(saved, meta_edit=lambda m: m.update(dtype="float32"))
    with pytest.raises(ValueError, match="array 'base' has dtype float64 but the metadata implies float32"):
        load(saved)


def test_checksum_mismatch(saved):
    def nudge(arrays):
        arrays["V_2"] = arrays["V_2"].copy()
        arrays["V_2"][1, 1] = np.nextafter(arrays["V_2"][1, 1], np.inf)  # one ulp

    rewrite(saved, array_edit=nudge)
    with pytest.raises(ValueError, match=r"good\.npz: checksum mismatch: the SHA-256 of the arrays"):
        load(saved)


def test_pickled_object_array_refused(saved):
    with np.load(saved) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["base"] = np.array([None, 1], dtype=object)
    os.remove(saved)
    np.savez(saved, **arrays)
    with pytest.raises(ValueError, match=r"good\.npz: corrupted"):
        load(saved)


def test_bad_arguments(tmp_path, saved):
    with pytest.raises(TypeError, match="obj must be a LowRankSegmentTree or a Cascade"):
        save(np.eye(2), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        save(LowRankSegmentTree(np.eye(2)), 3)
    with pytest.raises(ValueError, match="backend must be one of"):
        load(saved, backend="tensorflow")
    assert zipfile.is_zipfile(saved)  # nothing above touched the good file
    assert load(saved).max_order == 4
