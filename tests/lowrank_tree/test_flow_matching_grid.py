"""bench/flow_matching.py's grid (parameter counts, matched widths, slices, resume) and bench/flow_report.py."""

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


def _load(name, file):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fm = _load("bench_flow_matching_grid", "flow_matching.py")
report = _load("bench_flow_report", "flow_report.py")
FAMILIES = ["separate", "separate_shared_init", "shared", "cascaded"]


# --------------------------------------------------------------------------
# parameter counts and matched widths
# --------------------------------------------------------------------------
@settings(max_examples=30)
@given(
    family=st.sampled_from(FAMILIES),
    d=st.integers(1, 70),
    K=st.integers(1, 4),
    width=st.integers(1, 40),
    depth=st.integers(0, 3),
    rank=st.integers(0, 20),
)
def test_parameter_formula_is_the_built_models_count(family, d, K, width, depth, rank):
    model = fm.build_model(family, d, K, width, depth, rank)
    assert fm.parameter_formula(family, d, K, width, depth, rank) == fm.parameter_count(model)


@settings(max_examples=60)
@given(
    family=st.sampled_from(FAMILIES),
    d=st.integers(1, 70),
    K=st.integers(1, 4),
    depth=st.integers(0, 3),
    rank=st.integers(0, 20),
    target=st.integers(1, 200_000),
)
def test_matched_width_gives_the_count_nearest_the_target(family, d, K, depth, rank, target):
    width = fm.matched_width(family, d, K, depth, target, rank)
    count = lambda w: fm.parameter_formula(family, d, K, w, depth, rank)  # noqa: E731
    if depth == 0:  # no hidden layer: the width is not a parameter
        assert width == 1
        return
    miss = abs(count(width) - target)
    # nearest of all widths: the count grows with the width, so both neighbours are at least as far
    assert miss <= abs(count(width + 1) - target)
    assert width == 1 or miss < abs(count(width - 1) - target) or count(width - 1) < target < count(width)
    assert width == 1 or miss <= (count(width + 1) - count(width - 1)) / 2


def test_matched_widths_of_the_default_grid_are_within_one_percent_of_their_budget():
    matched = [c for c in fm.grid_cells(fm.GRID) if c["width_rule"] == "matched"]
    assert matched
    for cell in matched:
        d = fm.DATASETS[cell["dataset"]]
        budget = fm.parameter_count(fm.build_model("separate", d, cell["K"], fm.GRID["width"], fm.GRID["depth"]))
        assert cell["budget"] == budget
        model = fm.build_model(cell["family"], d, cell["K"], cell["width"], fm.GRID["depth"], cell["rank"])
        assert abs(fm.parameter_count(model) - budget) <= 0.01 * budget, cell


def test_matched_width_refuses_bad_arguments():
    with pytest.raises(ValueError, match="target must be >= 1"):
        fm.matched_width("shared", 2, 2, 2, 0)
    with pytest.raises(ValueError, match="family must be"):
        fm.matched_width("lora", 2, 2, 2, 100)
    with pytest.raises(TypeError, match="target must be an int"):
        fm.matched_width("shared", 2, 2, 2, 100.0)


# --------------------------------------------------------------------------
# the grid's slices
# --------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [fm.GRID, fm.QUICK_GRID], ids=["default", "quick"])
def test_grid_cells_are_every_slices_models_once(grid):
    cells = fm.grid_cells(grid)
    keys = [(c["dataset"], c["path"], c["K"], c["family"], c["rank"], c["width"]) for c in cells]
    assert len(keys) == len(set(keys))
    pieces = fm.grid_slices(grid)
    expected = set()
    for piece in pieces:
        for dataset in piece["datasets"]:
            for path in piece["paths"]:
                for K in piece["K"]:
                    for family, rank, *rule in piece["models"]:
                        if family == "cascaded" and K == 1 and rank > 0:
                            continue
                        rule = rule[0] if rule else grid["width"]
                        width = (
                            fm.matched_width(
                                family,
                                fm.DATASETS[dataset],
                                K,
                                grid["depth"],
                                fm.parameter_formula("separate", fm.DATASETS[dataset], K, grid["width"], grid["depth"]),
                                rank,
                            )
                            if rule == "matched"
                            else rule
                        )
                        key = (dataset, path, K, family, rank, width)
                        expected.add(key)
                        assert piece["name"] in cells[keys.index(key)]["slices"]
    assert set(keys) == expected
    assert fm._tasks(grid) == [k + (seed,) for k in keys for seed in grid["seeds"]]
    # what the issue asks of the default grid, slice by slice
    if grid is fm.GRID:
        assert len(grid["seeds"]) >= 3 and grid["sampler_steps"] == [1, 2, 4, 8, 16]
        covered = {(c["dataset"], c["path"], c["K"], c["family"], c["rank"]) for c in cells}
        assert {c[0] for c in covered} >= {"gmm4", "gmm5", "gmm8", "spirals", "circles", "digits"}
        assert {c[1] for c in covered} == {"ot", "vp"} and {c[2] for c in covered} == {1, 2, 3, 4}
        assert {c[4] for c in covered if c[3] == "cascaded"} >= {0, 1, 2, 4, 8, 16}
        assert {c[3] for c in covered} == set(FAMILIES)


def test_resumed_run_keeps_logged_runs_and_equals_a_fresh_one(tmp_path, monkeypatch):
    tiny = {
        **fm.QUICK_GRID,
        "models": [["separate", 0], ["cascaded", 1]],
        "width": 4,
        "train_steps": 5,
        "batch": 16,
        "eval_points": 20,
        "seeds": [0, 1],
    }
    monkeypatch.setattr(fm, "QUICK_GRID", tiny)
    threads = torch.get_num_threads()
    try:
        fresh = tmp_path / "fresh.json"
        assert fm.main(["--quick", "--out", str(fresh)]) == 0
        fresh_data = json.loads(fresh.read_text())
        # an interrupted run: the log holds the first task's runs, with a marker a rerun would not produce
        resumed = tmp_path / "resumed.json"
        first = fm._tasks(tiny)[0]
        logged = [{**run, "train_seconds": -1.0} for run in fresh_data["runs"] if run["family"].startswith("separate")]
        logged = [run for run in logged if run["seed"] == first[-1]]
        pathlib.Path(str(resumed) + ".partial.jsonl").write_text(
            json.dumps({"task": list(first), "runs": logged}) + "\n"
        )
        assert fm.main(["--quick", "--resume", "--out", str(resumed)]) == 0
    finally:
        torch.set_num_threads(threads)
    data = json.loads(resumed.read_text())
    assert not pathlib.Path(str(resumed) + ".partial.jsonl").exists()
    assert data["resumed_runs"] == len(logged) == 1 + len(tiny["compress_tols"])
    assert [r["train_seconds"] for r in data["runs"][: len(logged)]] == [-1.0] * len(logged)

    def untimed(runs):
        drop = ("train_seconds", "sampling_seconds")
        strip = lambda scores: {N: {k: v for k, v in s.items() if k not in drop} for N, s in scores.items()}  # noqa: E731
        return [
            {
                **{k: v for k, v in r.items() if k not in drop},
                "trained": strip(r["trained"]),
                "untrained": strip(r["untrained"]),
            }
            for r in runs
        ]

    assert untimed(data["runs"]) == untimed(fresh_data["runs"])
    assert data["load_average"]["start"] is None or len(data["load_average"]["start"]) == 3


# --------------------------------------------------------------------------
# the report: tables from the --quick JSON, paired intervals, plots
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow") / "quick.json"
    threads = torch.get_num_threads()
    try:
        assert fm.main(["--quick", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _table_rows(markdown):
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def test_cell_table_holds_the_json_values(quick_json):
    data = json.loads(quick_json.read_text())
    finest = max(data["grid"]["sampler_steps"])
    for steps in data["grid"]["sampler_steps"]:
        rows = _table_rows(report.cell_table(data, "main", steps))
        entries = [e for e in data["summary"] if e["sampler_steps"] == steps]
        assert len(rows) == len(entries) == len(data["runs"])
        for entry in entries:
            (row,) = [r for r in rows if r["model"] == report.model_label(entry)]
            run = [
                r
                for r in data["runs"]
                if (r["family"], r["rank"], r["tol"]) == (entry["family"], entry["rank"], entry["tol"])
            ]
            scores = run[0]["trained"][str(steps)]
            assert row["dataset"] == entry["dataset"] and row["path"] == entry["path"] and row["K"] == str(entry["K"])
            assert row["parameters"] == f"{run[0]['parameters']:.3g}"
            # one seed: the mean alone, no interval
            assert row["energy distance [95 % CI]"] == f"{scores['energy_distance']:.3g}"
            assert row["nearest-mode distance [95 % CI]"] == f"{scores['mode_distance']:.3g}"
            assert row["train s"] == f"{run[0]['train_seconds']:.3g}"
            assert row["sample s"] == f"{scores['sampling_seconds']:.3g}"
    # the default table is the finest step count's
    assert report.cell_table(data, "main") == report.cell_table(data, "main", finest)
    comparison = _table_rows(report.comparison_table(data, "main"))
    separate = next(e for e in data["summary"] if e["family"] == "separate" and e["sampler_steps"] == finest)
    assert len(comparison) == len(data["runs"]) - 1
    for row in comparison:
        entry = next(
            e for e in data["summary"] if e["sampler_steps"] == finest and report.model_label(e) == row["model"]
        )
        assert row["parameters / separate"] == f"{entry['parameters']['mean'] / separate['parameters']['mean']:.3g}"
        assert row["verdict"] == "–"  # one seed: no paired interval
    text = report.report(data)
    assert f"{data['noise_floor']['gmm8']['mean']:.3g}" in text and data["machine"]["command"] in text


def test_paired_difference_is_scipys_paired_t_interval():
    rng = np.random.default_rng(5)
    a, b = rng.uniform(0.01, 0.1, 4), rng.uniform(0.01, 0.1, 4)

    def runs(family, values):
        return [
            {
                "dataset": "gmm8",
                "path": "vp",
                "K": 2,
                "family": family,
                "rank": 0,
                "tol": None,
                "width": 8,
                "seed": seed,
                "trained": {"4": {"energy_distance": float(v), "mode_distance": None}},
            }
            for seed, v in enumerate(values)
        ]

    data = {"runs": runs("shared", a) + runs("separate", b)}
    entry = {"dataset": "gmm8", "path": "vp", "K": 2, "rank": 0, "tol": None, "width": 8, "sampler_steps": 4}
    diff = report.paired_difference(data, {**entry, "family": "shared"}, {**entry, "family": "separate"})
    ci = scipy.stats.ttest_rel(a, b).confidence_interval(0.95)
    assert diff["mean"] == pytest.approx(float(np.mean(a - b)), rel=1e-12)
    assert (diff["low"], diff["high"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert report.verdict(diff) == ("better" if ci.high < 0 else "worse" if ci.low > 0 else "no difference resolved")
    assert report.verdict({"low": -2.0, "high": -1.0}) == "better"
    assert report.verdict({"low": 1.0, "high": 2.0}) == "worse"
    assert report.verdict({"low": -1.0, "high": 1.0}) == "no difference resolved"
    # no metric (a dataset without modes), or one common seed: no interval
    assert (
        report.paired_difference(data, {**entry, "family": "shared"}, {**entry, "family": "separate"}, "mode_distance")
        is None
    )


def test_pareto_front_is_the_non_dominated_points():
    points = [(3.0, 0.5), (1.0, 2.0), (2.0, 1.0), (2.5, 1.5), (4.0, 0.5), (1.0, 3.0)]

    def dominated(p):  # another point is no larger in both and smaller in one
        return any(q != p and q[0] <= p[0] and q[1] <= p[1] for q in points)

    expected = sorted(p for p in points if not dominated(p))
    assert report._front(points) == expected == [(1.0, 2.0), (2.0, 1.0), (3.0, 0.5)]


def test_plot_only_draws_the_figures_from_the_json(quick_json, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib")
    out = tmp_path / "figures"
    assert fm.main(["--plot-only", str(quick_json), "--plot-dir", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"{kind}_{m}.png" for kind in ("pareto", "sampler") for m in ("energy_distance", "mode_distance")
    )
    for name in names:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert report.report(json.loads(quick_json.read_text())) in printed


def test_noise_floor_line_is_the_upper_bound_and_never_a_non_positive_value():
    data = {
        "noise_floor": {
            "a": {"mean": -0.01, "low": -0.03, "high": 0.02, "n": 3},
            "b": {"mean": -1e-3, "low": None, "high": None, "n": 1},
            "c": {"mean": -0.5, "low": -0.9, "high": -0.1, "n": 3},
        }
    }
    assert report._floor_line(data, "a") == 0.02
    assert report._floor_line(data, "b") == pytest.approx(1e-3)
    assert report._floor_line(data, "c") is None and report._floor_line(data, "d") is None
    assert math.isclose(report._floor_line(data, "a"), data["noise_floor"]["a"]["high"])


def _synthetic(values: dict, seeds=(0, 1, 2), steps=(4, 16)):
    """A results dict of one 'families' slice: ``values[(dataset, family, rank)]`` is one metric value per seed."""
    grid = {
        "width": 8,
        "depth": 1,
        "train_steps": 10,
        "batch": 4,
        "eval_points": 10,
        "sampler_steps": list(steps),
        "seeds": list(seeds),
        "compress_tols": [],
        "slices": [
            {"name": "families", "datasets": sorted({k[0] for k in values}), "paths": ["vp"], "K": [2], "models": []}
        ],
    }
    runs, summary = [], []
    for (dataset, family, rank), per_seed in values.items():
        params = {"separate": 200, "shared": 110, "cascaded": 120}[family]
        mine = []
        for seed, v in zip(seeds, per_seed):
            scores = {
                str(N): {"energy_distance": v * N, "mode_distance": v + N, "sampling_seconds": 0.1} for N in steps
            }
            mine.append(
                {
                    "dataset": dataset,
                    "path": "vp",
                    "K": 2,
                    "family": family,
                    "rank": rank,
                    "tol": None,
                    "width": 8,
                    "seed": seed,
                    "parameters": params,
                    "train_seconds": 1.0,
                    "trained": scores,
                }
            )
        runs += mine
        for N in steps:
            stat = lambda key: {
                "mean": float(np.mean([r["trained"][str(N)][key] for r in mine])),
                "low": 0.0,
                "high": 1.0,
                "n": 3,
            }  # noqa: E731
            summary.append(
                {
                    "dataset": dataset,
                    "path": "vp",
                    "K": 2,
                    "family": family,
                    "rank": rank,
                    "tol": None,
                    "width": 8,
                    "width_rule": "fixed",
                    "budget": 200,
                    "slices": ["families"],
                    "sampler_steps": N,
                    "parameters": {"mean": params, "low": params, "high": params, "n": 3},
                    "energy_distance": stat("energy_distance"),
                    "mode_distance": stat("mode_distance"),
                    "train_seconds": stat("energy_distance"),
                    "sampling_seconds": stat("energy_distance"),
                }
            )
    return {"grid": grid, "runs": runs, "summary": summary}


def test_comparison_and_verdict_tables_count_the_paired_intervals():
    sep = {"a": [1.0, 2.0, 3.0], "b": [1.0, 1.5, 2.0], "c": [2.0, 2.0, 2.5]}
    values = {}
    for dataset, base in sep.items():
        values[(dataset, "separate", 0)] = base
    # shared: clearly better on a, clearly worse on b, unresolved on c; cascaded: better on all three
    values[("a", "shared", 0)] = [v - 0.5 + 0.01 * i for i, v in enumerate(sep["a"])]
    values[("b", "shared", 0)] = [v + 0.3 + 0.02 * i for i, v in enumerate(sep["b"])]
    values[("c", "shared", 0)] = [v + d for v, d in zip(sep["c"], (-0.5, 0.6, 0.1))]
    for dataset, base in sep.items():
        values[(dataset, "cascaded", 4)] = [v - 0.2 - 0.01 * i for i, v in enumerate(base)]
    data = _synthetic(values)

    def scipy_verdict(dataset, family, rank, N, metric):
        mine = np.array(values[(dataset, family, rank)])
        ref = np.array(sep[dataset])
        f = (lambda v: v * N) if metric == "energy_distance" else (lambda v: v + N)
        ci = scipy.stats.ttest_rel(f(mine), f(ref)).confidence_interval(0.95)
        return "better" if ci.high < 0 else "worse" if ci.low > 0 else "no difference resolved"

    for N in (4, 16):
        rows = _table_rows(report.comparison_table(data, "families", N))
        assert len(rows) == 6
        for row in rows:
            family, rank = ("cascaded", 4) if row["model"] == "cascaded r=4" else ("shared", 0)
            assert row["verdict"] == scipy_verdict(row["dataset"], family, rank, N, "energy_distance")
            assert row["parameters / separate"] == f"{(120 if family == 'cascaded' else 110) / 200:.3g}"
        assert [r["verdict"] for r in rows if r["model"] == "shared network"] == [
            "better",
            "worse",
            "no difference resolved",
        ]
        tally = {r["model"]: r for r in _table_rows(report.verdict_summary(data, "families", N))}
        assert tally["shared network (width 8)"]["energy distance: better / unresolved / worse"] == "1 / 1 / 1"
        assert tally["cascaded r=4 (width 8)"]["energy distance: better / unresolved / worse"] == "3 / 0 / 0"
        assert tally["cascaded r=4 (width 8)"]["nearest-mode distance: better / unresolved / worse"] == "3 / 0 / 0"
    assert report.middle_steps(data) == 16 and report.middle_steps({"grid": {"sampler_steps": [1, 2, 4, 8, 16]}}) == 4
    data.update(machine={"command": "python bench/flow_matching.py"}, torch_threads=1, wall_seconds=60.0)
    data["noise_floor"] = {d: {"mean": 0.01, "low": None, "high": None, "n": 1} for d in sep}
    pieces = report.docs_fragments(data)
    assert set(pieces) == {
        "flow_matching_run.md",
        "flow_matching_families_table.md",
        "flow_matching_families_comparison.md",
        "flow_matching_families_verdicts.md",
        "flow_matching_families_verdicts_mid.md",
    }
    assert pieces["flow_matching_families_comparison.md"] == report.comparison_table(data, "families")
    assert (
        "python bench/flow_matching.py" in pieces["flow_matching_run.md"] and "1 min" in pieces["flow_matching_run.md"]
    )


@settings(max_examples=10)
@given(K=st.integers(1, 4), rank=st.integers(0, 4), depth=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_cascaded_mlp_gradients_are_those_of_the_dense_order_k_networks(K, rank, depth, seed):
    # the training signal, not only the forward: every parameter's gradient of the loss over all
    # orders equals the gradient through dense networks built from W_k = W_0 + Σ_{i<=k} U_i V_iᵀ
    torch.manual_seed(seed)
    d = 2
    model = fm.build_model("cascaded", d, K, 5, depth, rank)
    with torch.no_grad():  # random corrections (they start at zero)
        for p in model.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    x, t = torch.randn((4, d), dtype=torch.float64), torch.rand((4, 1), dtype=torch.float64)
    target = torch.randn((K, 4, d), dtype=torch.float64)
    ((model(x, t) - target) ** 2).mean().backward()
    # parameters that take no part (the empty factors of a one-order layer) have no gradient: zero
    grads = lambda: [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]  # noqa: E731
    ours = grads()
    model.zero_grad()
    z = torch.cat([x, fm.time_features(t)], dim=1)
    outputs = []
    for k in range(K):
        h = z
        for i, layer in enumerate(model.layers):
            W, b = layer.weight, layer.bias
            for j in range(1, k + 1):
                U, V = layer.factors(j)
                W, b = W + U @ V.T, b + layer.bias_corrections[j - 1]
            h = h @ W.T + b
            h = torch.nn.functional.silu(h) if i < len(model.layers) - 1 else h
        outputs.append(h)
    ((torch.stack(outputs) - target) ** 2).mean().backward()
    for mine, dense in zip(ours, grads()):
        torch.testing.assert_close(mine, dense, rtol=1e-10, atol=1e-12)
