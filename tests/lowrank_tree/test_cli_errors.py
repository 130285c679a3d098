"""The command line on bad input: one line on stderr, exit status 2, never a traceback.

Everything runs in-process (``cli.main``).  The report's timings are not what
these tests are about, so ``median_time`` is replaced by a single call of the
timed function (the code paths still run and the results are still checked).
"""

import argparse
import os

import numpy as np
import pytest

import lowrank_tree as lrt
import lowrank_tree.demo as demo_module
from lowrank_tree.cli import build_parser, main


@pytest.fixture(autouse=True)
def one_call_timings(monkeypatch):
    monkeypatch.setattr(demo_module, "median_time", lambda fn, repeat=7, min_time=0.05: (fn(), 1e-3)[1])


@pytest.fixture
def stack():
    return lrt.synthetic_evolution(K=3, m=6, n=5, seed=0)


@pytest.fixture
def good(tmp_path, stack):
    path = tmp_path / "good.npy"
    np.save(path, stack)
    return path


def fails(capsys, argv, match):
    """``main(argv)`` exits with status 2 after one stderr line naming the problem."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lowrank-tree") and ": error: " in lines[0], lines[0]
    assert match in lines[0], lines[0]
    return lines[0]


# -- the stack ------------------------------------------------------------
def test_nan_stack(tmp_path, capsys, stack):
    stack[2, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", stack)
    line = fails(capsys, ["fit", tmp_path / "nan.npy"], "NaN or Inf")
    assert "order 2" in line


def test_inf_stack_in_npz_of_matrices(tmp_path, capsys, stack):
    stack[1, 0, 0] = -np.inf
    np.savez(tmp_path / "inf.npz", *stack)
    assert "order 1" in fails(capsys, ["fit", tmp_path / "inf.npz"], "NaN or Inf")


@pytest.mark.parametrize("dtype,match", [(bool, "got bool"), (np.longdouble, "extended precision"), ("U3", "dtype")])
def test_refused_dtypes(tmp_path, capsys, stack, dtype, match):
    if dtype is np.longdouble and np.finfo(np.longdouble).bits == 64:
        pytest.skip("longdouble is float64 on this platform (converted, not refused)")
    np.save(tmp_path / "s.npy", stack.astype(dtype))
    fails(capsys, ["fit", tmp_path / "s.npy"], match)


def test_object_array(tmp_path, capsys, stack):
    np.save(tmp_path / "o.npy", stack.astype(object), allow_pickle=True)
    fails(capsys, ["fit", tmp_path / "o.npy"], "cannot read")


def test_float16_upper_case_npy_is_fitted_in_float32(tmp_path, capsys, stack):
    path = tmp_path / "HALF.NPY"
    with open(path, "wb") as fh:  # np.save(path) would append ".npy"
        np.save(fh, stack.astype(np.float16))
    assert main(["fit", str(path), "--tol", "1e-5", "--repeat", "1", "--out", str(tmp_path / "c.npz")]) == 0
    c = lrt.load(tmp_path / "c.npz")
    assert c.dtype == np.float32
    ref = stack.astype(np.float16).astype(np.float64)
    for k in range(4):
        assert np.linalg.norm(c.matrix(k) - ref[k]) <= 1e-4 * np.linalg.norm(ref[k])


def test_upper_case_npz(tmp_path, capsys, stack):
    path = tmp_path / "STACK.NPZ"
    with open(path, "wb") as fh:
        np.savez(fh, *stack)
    assert main(["fit", str(path), "--ranks", "5", "--repeat", "1"]) == 0
    c = lrt.load(tmp_path / "STACK.cascade.npz")
    np.testing.assert_allclose(c.matrix(3), stack[3], atol=1e-12)


def test_npz_of_mismatched_shapes(tmp_path, capsys):
    np.savez(tmp_path / "m.npz", a=np.ones((3, 3)), b=np.ones((4, 4)))
    fails(capsys, ["fit", tmp_path / "m.npz"], "(3, 3)")


def test_npz_without_arrays_and_missing_key(tmp_path, capsys, stack):
    np.savez(tmp_path / "e.npz")
    fails(capsys, ["fit", tmp_path / "e.npz"], "holds no arrays")
    np.savez(tmp_path / "k.npz", heads=stack)
    fails(capsys, ["fit", tmp_path / "k.npz", "--key", "tails"], "no array 'tails'")


def test_saved_cascade_and_tree_are_not_stacks(tmp_path, capsys, stack):
    c = lrt.cascade_fit(stack)
    lrt.save(c, tmp_path / "c.npz")
    lrt.save(c.tree(), tmp_path / "t.npz")
    fails(capsys, ["fit", tmp_path / "c.npz"], "saved tree or cascade")
    fails(capsys, ["fit", tmp_path / "t.npz"], "lowrank_tree.load")


def test_not_numpy_files(tmp_path, capsys):
    (tmp_path / "t.npy").write_text("hello")
    (tmp_path / "t.npz").write_text("hello")
    (tmp_path / "t.txt").write_text("1 2 3")
    fails(capsys, ["fit", tmp_path / "t.npy"], "not a NumPy .npy file")
    fails(capsys, ["fit", tmp_path / "t.npz"], "not a NumPy .npz file")
    fails(capsys, ["fit", tmp_path / "t.txt"], "expected a .npy or .npz file")


def test_truncated_npy(tmp_path, capsys, good):
    data = good.read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    fails(capsys, ["fit", tmp_path / "cut.npy"], "cannot read")


def test_missing_file_and_directory(tmp_path, capsys):
    fails(capsys, ["fit", tmp_path / "missing.npy"], "no such file")
    (tmp_path / "d.npy").mkdir()
    fails(capsys, ["fit", tmp_path / "d.npy"], "is a directory")


def test_not_a_stack(tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.ones((3, 3)))
    fails(capsys, ["fit", tmp_path / "flat.npy"], "expected a stack of shape (K+1, m, n)")


# -- option values ----------------------------------------------------------
@pytest.mark.parametrize(
    "argv,match",
    [
        (["--ranks", "a"], "argument --ranks"),
        (["--ranks", "2,x"], "argument --ranks"),
        (["--ranks", "-1"], "argument --ranks"),
        (["--repeat", "0"], "argument --repeat"),
        (["--b", "-1"], "argument --b"),
        (["--b", "1.5"], "argument --b"),
        (["--tol", "2"], "argument --tol"),
        (["--tol", "nan"], "argument --tol"),
        (["--budget", "-5"], "argument --budget"),
        (["--method", "magic"], "argument --method"),
        (["--ranks", "9"], "at most min(m, n) = 5"),
        (["--ranks", "1,2"], "expected one rank or 3"),
    ],
)
def test_bad_fit_options(capsys, good, argv, match):
    fails(capsys, ["fit", good, *argv], match)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["bench", "--K", "4,x"], "argument --K"),
        (["bench", "--K", "0"], "argument --K"),
        (["bench", "--n", "0"], "argument --n"),
        (["demo", "--K", "-3"], "argument --K"),
        (["demo", "--seed", "-1"], "argument --seed"),
        (["demo", "--repeat", "zero"], "argument --repeat"),
        (["nonsense"], "invalid choice"),
        (["fit"], "required"),
    ],
)
def test_bad_options_of_other_commands(capsys, argv, match):
    fails(capsys, argv, match)


# -- output paths: refused before any work --------------------------------------
@pytest.fixture
def no_fit(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the fit ran although the output cannot be written")

    monkeypatch.setattr(demo_module, "compare", refuse)
    monkeypatch.setattr(demo_module, "run_demo", refuse)


def test_out_into_missing_directory_fails_before_the_fit(tmp_path, capsys, good, no_fit):
    fails(capsys, ["fit", good, "--out", tmp_path / "nodir" / "c.npz"], "does not exist")


def test_out_is_a_directory(tmp_path, capsys, good, no_fit):
    (tmp_path / "d.npz").mkdir()
    fails(capsys, ["fit", good, "--out", tmp_path / "d.npz"], "is a directory")
    fails(capsys, ["bench", "--out", tmp_path / "d.npz"], "is a directory")
    (tmp_path / "file").write_text("")
    fails(capsys, ["demo", "--out", tmp_path / "file"], "is not a directory")
    fails(capsys, ["bench", "--out", tmp_path / "file" / "b.json"], "is not a directory")


def test_out_into_unwritable_directory(tmp_path, capsys, good, no_fit, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    # os.access rather than chmod: root (CI containers) may write anywhere
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else access(p, mode))
    fails(capsys, ["fit", good, "--out", locked / "c.npz"], "not writable")
    fails(capsys, ["demo", "--out", locked / "plots"], "not a writable directory")


# -- bugs are not hidden ------------------------------------------------------
def test_internal_errors_still_raise(monkeypatch, good):
    def bug(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(demo_module, "compare", bug)
    with pytest.raises(KeyError, match="internal"):
        main(["fit", str(good)])


# -- help, version --------------------------------------------------------------
def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    raise AssertionError("no subcommands")


def test_every_option_has_help_with_its_default():
    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            if action.required:
                continue
            assert "default" in action.help, (name, action.dest, action.help)
            if action.default not in (None, False) and "%(default)s" not in action.help:
                shown = ",".join(map(str, action.default)) if isinstance(action.default, list) else str(action.default)
                assert shown in action.help, (name, action.dest, action.help)


def test_help_renders(capsys):
    for name in ["demo", "fit", "check", "bench"]:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        assert "default" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lowrank-tree {lrt.__version__}"


# -- report text --------------------------------------------------------------
def test_parameter_ratio_above_one_prints_more(tmp_path, capsys):
    rng = np.random.default_rng(1)
    mats = rng.standard_normal((3, 4, 4))  # full-rank differences: the cascade stores more
    np.save(tmp_path / "r.npy", mats)
    assert main(["fit", str(tmp_path / "r.npy"), "--ranks", "4", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    c = lrt.load(tmp_path / "r.cascade.npz")
    assert c.n_params == 16 + 2 * 4 * 8 and c.dense_params == 48
    assert f"({c.n_params / c.dense_params:.1f}x more)" in out  # 80 vs 48: 1.7x more
    assert "fewer" not in out
    assert "(1.67x more)" in c.summary()


def test_ratio_text():
    assert demo_module.ratio_text(10, 30) == "3.0x fewer"
    assert demo_module.ratio_text(80, 48) == "1.7x more"
    assert demo_module.ratio_text(5, 5) == "as many"


@pytest.mark.parametrize("dtype", [np.complex128, np.float32])
def test_queries_are_timed_with_an_x_of_the_stack_dtype(monkeypatch, dtype):
    seen = []
    query = lrt.LowRankSegmentTree.query

    def spy(self, k, X):
        seen.append(X.dtype)
        return query(self, k, X)

    monkeypatch.setattr(lrt.LowRankSegmentTree, "query", spy)
    rng = np.random.default_rng(2)
    mats = rng.standard_normal((3, 5, 4)) + (1j * rng.standard_normal((3, 5, 4)) if dtype == np.complex128 else 0)
    rep = demo_module.compare(mats.astype(dtype), ranks=4, b=3, repeat=1)
    assert seen and set(seen) == {np.dtype(dtype)}
    tol = 1e-12 if dtype == np.complex128 else 1e-5
    assert all(q["error_vs_fit"] <= tol for q in rep["queries"])
