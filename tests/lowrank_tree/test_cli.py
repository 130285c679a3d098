"""The lowrank-tree command line, run in-process on small sizes."""

import json

import numpy as np
import pytest

import lowrank_tree as lrt
from lowrank_tree.cli import main


@pytest.mark.slow
def test_demo_prints_table_and_writes_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["demo", "--K", "12", "--n", "40", "--b", "4", "--repeat", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Cascading fit: K = 12 orders, 40 x 40" in out
    assert "Query W_k X" in out and "loop/tree" in out
    png = tmp_path / "demo.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_report_values_match_dense():
    from lowrank_tree.demo import run_demo

    rep = run_demo(K=10, m=30, n=24, b=3, tol=1e-6, repeat=1)
    mats = lrt.synthetic_evolution(K=10, m=30, n=24, seed=0)
    assert max(rep["errors"]) <= 1e-6
    for k in range(11):  # the reported errors are the true errors
        W = rep["cascade"].matrix(k)
        assert rep["errors"][k] == pytest.approx(
            np.linalg.norm(W - mats[k]) / np.linalg.norm(mats[k]), rel=1e-6, abs=1e-15
        )
    assert all(q["error_vs_fit"] <= 1e-12 for q in rep["queries"])
    assert rep["memory"]["per_order_dense"] == 11 * 30 * 24 * 8


@pytest.mark.parametrize("fmt", ["npy", "npz-one", "npz-many"])
def test_fit_saves_a_loadable_cascade(tmp_path, capsys, fmt):
    mats = lrt.synthetic_evolution(K=6, m=20, n=15, seed=3)
    if fmt == "npy":
        path = tmp_path / "stack.npy"
        np.save(path, mats)
    elif fmt == "npz-one":
        path = tmp_path / "stack.npz"
        np.savez(path, heads=mats)
    else:
        path = tmp_path / "stack.npz"
        np.savez(path, *mats)
    out_file = tmp_path / "fitted.npz"
    assert main(["fit", str(path), "--tol", "1e-8", "--repeat", "1", "--out", str(out_file)]) == 0
    assert "cascade saved to" in capsys.readouterr().out
    cascade = lrt.load(out_file)
    assert isinstance(cascade, lrt.Cascade)
    for k in range(7):
        assert np.linalg.norm(cascade.matrix(k) - mats[k]) <= 1e-8 * np.linalg.norm(mats[k]) * (1 + 1e-6)


def test_fit_with_ranks_and_bad_files(tmp_path, capsys):
    mats = lrt.synthetic_evolution(K=4, m=10, n=8, seed=1)
    path = tmp_path / "s.npy"
    np.save(path, mats)
    assert main(["fit", str(path), "--ranks", "2", "--repeat", "1"]) == 0
    assert lrt.load(tmp_path / "s.cascade.npz").ranks == [2, 2, 2, 2]
    capsys.readouterr()
    np.save(tmp_path / "flat.npy", np.ones((3, 3)))
    (tmp_path / "x.txt").write_text("1 2 3")
    for name, match in [
        ("missing.npy", "no such file"),
        ("flat.npy", "expected a stack of shape (K+1, m, n)"),
        ("x.txt", "expected a .npy or .npz"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(["fit", str(tmp_path / name)])
        assert info.value.code == 2
        assert match in capsys.readouterr().err


def test_bench_writes_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--K", "4,8", "--n", "24", "--b", "3", "--repeat", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [run["params"]["K"] for run in data["runs"]] == [4, 8]
    for run in data["runs"]:
        assert run["tree"]["relative_error_vs_dense"] <= 1e-12
        assert run["memory_bytes"]["tree"] <= run["memory_bytes"]["tree_bound"]
        assert set(run["seconds"]) >= {"tree_query", "dense", "per_order", "loop"}
    assert "numpy" in data["machine"]


def test_check_runs_theory(theory_claim_results, monkeypatch, capsys):
    import theory.cli

    # the claim suite runs once per session (the fixture); here: that `check` reaches it
    seeds = []
    monkeypatch.setattr(theory.cli, "run_checks", lambda seed=0: seeds.append(seed) or theory_claim_results)
    assert main(["check"]) == 0 and seeds == [0]
    out = capsys.readouterr().out
    n = len(theory_claim_results)
    assert f"{n}/{n} claims pass" in out and "C1 monotonicity" in out
    assert "fail" not in out.split("claims pass")[0].lower()


def test_check_passes_leading_options_to_theory(capsys):
    # "--seed 3" before the subcommand used to be refused by argparse's REMAINDER
    assert main(["check", "--seed", "3", "table", "--K", "2"]) == 0
    out = capsys.readouterr().out
    assert "(2, 1)" in out and "(1, 2)" in out
