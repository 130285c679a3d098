"""The one-command GPU check runs end to end without a GPU (dry run) and writes its JSON."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.py"


def test_dry_run_writes_the_report(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--dry-run",
        "--no-tests",
        "--no-install",
        "--n",
        "24",
        "--K",
        "6",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "DRY RUN: GPU parts skipped: --dry-run given" in proc.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "dry-run" and report["gpu"] is None
    assert report["gpu_skipped_reason"] == "--dry-run given"
    assert report["dependencies"]["versions"]["numpy"] == np.__version__
    assert report["tests"]["cupy"]["status"].startswith("skipped")
    assert "torch" in report["lowrank_tree_backends"]
    assert report["tests"]["torch-cuda"]["status"] == "skipped: --no-tests"
    assert report["torch_cuda"] is None  # --dry-run: not even looked for
    assert "--dry-run" in report["command"]
    bm = report["benchmarks"]
    assert (bm["backend"], bm["n"], bm["K"]) == ("numpy", 24, 6)
    # six rank-4 leaves on 24 x 24: the canonical inner dimension is at most the summed rank
    assert bm["inner_dim"] <= 4 * 6 and bm["dense_nodes"] == 0
    assert np.isclose(bm["query_fraction_of_gemm_flops"], bm["query_gflops"] / bm["gemm_gflops"])
    # the fitted family is W_0 + cumulative rank-4 corrections: every fitted rank is exactly 4
    assert bm["fit_ranks"] == [4] * bm["fit_K"]
    for key in (
        "build_s",
        "query_s",
        "query_cold_s",
        "gemm_same_inner_s",
        "mixed_query_s",
        "all_orders_s",
        "update_s",
        "append_s",
        "fit_s",
    ):
        assert bm[key] > 0, key
    assert report["within_budget"] is True


def test_missing_module_without_wheels_says_how_to_fill_the_folder(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "NEEDED", {"numpy": "numpy", "no_such_module_xyz": "no-such-module-xyz"})
    report = mod.ensure_dependencies(tmp_path / ".whl", install=True)
    assert report["missing"] == ["no_such_module_xyz"]
    assert report["installed"] == []
    assert "pip download --no-deps no-such-module-xyz -d" in report["note"]
    assert report["versions"]["numpy"] == np.__version__
