"""bench/tree_worth.py: the crossover it reports and the table the docs render from its JSON."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(K, b, tree, cold, loop):
    return {
        "params": {"K": K, "b": b, "n": 8, "r": 4, "dtype": "float64"},
        "seconds": {"tree_query": tree, "tree_query_uncached": cold, "loop": loop, "per_order": 0.5 * tree},
        "memory_bytes": {"tree": 2**21 * K, "raw_factors": 2**20 * K, "base": 2**20, "per_order": 2**20 * (K + 1)},
    }


def test_crossover_is_the_smallest_K_from_which_the_tree_stays_ahead():
    tw = _load("tree_worth")
    runs = [
        _run(1, 1, tree=2.0, cold=3.0, loop=1.0),
        _run(2, 1, tree=1.0, cold=3.0, loop=1.5),  # ahead, but not from here on (K = 4 is behind)
        _run(4, 1, tree=2.0, cold=3.0, loop=1.9),
        _run(8, 1, tree=1.0, cold=3.0, loop=2.0),
        _run(16, 1, tree=1.0, cold=1.0, loop=4.0),
        _run(1, 64, tree=9.0, cold=9.0, loop=1.0),
    ]
    assert tw.crossover(runs, 1, "tree_query") == 8
    assert tw.crossover(runs, 1, "tree_query_uncached") == 16
    assert tw.crossover(runs, 64, "tree_query") is None


def test_table_renders_the_json_values(tmp_path):
    report = _load("report")
    runs = [_run(1, 1, tree=2e-3, cold=3e-3, loop=1e-3), _run(16, 1, tree=1e-3, cold=2e-3, loop=4e-3)]
    payload = {
        "machine": {"cpu_count": 2, "processor": "x86_64", "numpy": "2"},
        "blas_libraries": [{"internal_api": "openblas", "num_threads": 1}],
        "load_average": [1.5, 1.0, 1.0],
        "verdict": {"b=1": {"cached_tree_beats_loop_from_K": 16, "cold_tree_beats_loop_from_K": None}},
        "runs": runs,
    }
    path = tmp_path / "tw.json"
    path.write_text(json.dumps(payload))
    table = report.tree_worth_table(path)
    rows = [line for line in table.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[1].strip("|").split("|")]
    # b, K, cached ms, cold ms, loop ms, dense ms, loop/cached, loop/cold, tree MiB, cascade MiB, dense MiB
    assert cells[:6] == ["1", "16", "1", "2", "4", "0.5"]
    assert float(cells[6]) == pytest.approx(4.0) and float(cells[7]) == pytest.approx(2.0)
    assert [float(c) for c in cells[8:]] == [32.0, 17.0, 17.0]
    assert "from K = 16" in table and "at no K measured" in table and "openblas 1" in table
