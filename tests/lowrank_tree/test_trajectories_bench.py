"""bench/trajectories.py: the --quick run end to end, its baselines against bench/checkpoints.py, its report."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

pytest.importorskip("torch", reason="bench/trajectories.py trains a flow-matching model with PyTorch")
pytest.importorskip("safetensors", reason="bench/trajectories.py saves the MLP's checkpoints with safetensors")
pytest.importorskip("sklearn", reason="bench/trajectories.py trains on scikit-learn's digits")

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}_under_test", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tr = _load("trajectories")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("traj") / "quick.json"
    md = out.with_suffix(".md")
    assert tr.main(["--quick", "--out", str(out), "--markdown", str(md)]) == 0
    return json.loads(out.read_text()), md.read_text()


def test_quick_run_writes_every_part(quick):
    payload, _ = quick
    for key in ("machine", "blas_threads", "load_average_at_start_and_end", "command", "config", "compression"):
        assert key in payload
    assert payload["command"] == "python bench/trajectories.py --quick"
    assert {row["run"] for row in payload["compression"]} == {"mlp", "flow"}
    assert payload["mlp"]["checkpoints"] == tr.QUICK["mlp_steps"] + 1
    assert payload["flow"]["checkpoints"] == tr.QUICK["flow_steps"] + 1
    assert {w["window"] for w in payload["windows"]} == {"start", "middle", "end"}
    assert {h["heads"] for h in payload["heads"]} == {"shared init", "independent init"}


def test_cascade_and_star_meet_the_tolerance_and_the_model_follows(quick):
    payload, _ = quick
    for row in payload["compression"]:
        tol = row["tol"]
        for name, layer in row["layers"].items():
            # the fit's and the star's guarantee, recomputed densely by the script
            assert layer["cascade"]["worst_error"] <= tol * (1 + 1e-6), name
            assert layer["star"]["worst_error"] <= tol * (1 + 1e-6), name
            assert 0 < layer["cascade"]["numbers_ratio"]
        for evals in row["behaviour"].values():
            assert [b["checkpoint"] for b in evals] == tr.eval_points(payload[row["run"]]["checkpoints"], 3)
            first = evals[0]
            if row["run"] == "mlp":
                # checkpoint 0 is the base: every method stores it exactly
                assert first["max_logit_difference"] == 0.0 and first["accuracy"] == first["true_accuracy"]
                for b in evals:
                    # a prediction can only change where the true top-two margin is <= 2 x the largest logit change
                    assert abs(b["accuracy"] - b["true_accuracy"]) <= b["flippable_fraction"] + 1e-12
            else:
                assert first["max_point_displacement"] == 0.0
                assert first["energy_distance"] == pytest.approx(first["true_energy_distance"], abs=1e-12)


def test_assumption_results_are_consistent(quick):
    payload, _ = quick
    n = tr.QUICK["null_samples"]
    for entry in payload["windows"] + payload["heads"]:
        assert 0.0 <= entry["statistics"]["step_rank"] <= 1.0
        for null in ("random_walk", "smooth"):
            c = entry["nulls"][null]["step_rank"]
            assert 1 / (n + 1) - 1e-12 <= c["p_value"] <= 1.0
            # the p-value counts the draws at or below the family's value
            if entry["statistics"]["step_rank"] < c["low"]:
                assert c["p_value"] == pytest.approx(1 / (n + 1))
    for entry in payload["heads"]:
        assert entry["shape"][0] == tr.QUICK["flow_K"]


def test_report_renders_every_row(quick):
    payload, md = quick
    assert md == tr.render_markdown(payload)
    for row in payload["compression"]:
        for method in ("cascade", "star", "chain"):
            t = row["total"][method]
            assert f"| {row['run']} | {row['tol']:.0e} | {method} | {t['numbers_ratio']:.3f} |" in md
    assert md.count("| mlp | `layers.") == sum(w["run"] == "mlp" for w in payload["windows"])
    assert md.count("| mlp | 1e-02 | `layers.") == 3
    assert md.count("| shared init |") == md.count("| independent init |") == 3
    # every table row has as many cells as its header
    for table in md.split("\n\n"):
        rows = [line for line in table.splitlines() if line.startswith("|")]
        if rows:
            assert {row.count(" | ") for row in rows} == {rows[0].count(" | ")}, rows[0]
    # every table row has as many cells as its header
    for table in md.split("\n\n"):
        rows = [line for line in table.splitlines() if line.startswith("|")]
        if rows:
            assert {row.count(" | ") for row in rows} == {rows[0].count(" | ")}, rows[0]


def _optimal_truncation(D, budget):
    """The best rank-r approximation of D with the smallest r whose error is within budget (dense SVD)."""
    U, s, Vt = np.linalg.svd(D, full_matrices=False)
    for r in range(len(s) + 1):
        if np.sqrt(np.sum(s[r:] ** 2)) <= budget:
            return r, (U[:, :r] * s[:r]) @ Vt[:r]
    raise AssertionError("unreachable")


def test_baselines_against_an_independent_reference():
    # star: every W_k - W_0 truncated on its own; chain: every step truncated, summed without feedback
    rng = np.random.default_rng(0)
    steps = [
        np.outer(rng.standard_normal(9), rng.standard_normal(6)) + 1e-3 * rng.standard_normal((9, 6)) for _ in range(7)
    ]
    mats = np.cumsum([rng.standard_normal((9, 6))] + steps, axis=0)
    tols = (1e-1, 1e-2)
    got = tr.baselines(mats, tols, at={0, 3, 7})
    m, n = mats.shape[1:]
    for tol in tols:
        star_numbers = chain_numbers = m * n
        star_err = chain_err = 0.0
        chain = mats[0].copy()
        for k in range(1, len(mats)):
            norm_k = np.linalg.norm(mats[k])
            r, T = _optimal_truncation(mats[k] - mats[0], tol * norm_k)
            star_numbers += r * (m + n)
            star_err = max(star_err, np.linalg.norm(mats[0] + T - mats[k]) / norm_k)
            if k in (3, 7):
                np.testing.assert_allclose(got[tol]["star"]["at"][k], mats[0] + T, rtol=1e-12, atol=1e-12)
            r, T = _optimal_truncation(mats[k] - mats[k - 1], tol * norm_k)
            chain_numbers += r * (m + n)
            chain = chain + T
            chain_err = max(chain_err, np.linalg.norm(chain - mats[k]) / norm_k)
            if k in (3, 7):
                np.testing.assert_allclose(got[tol]["chain"]["at"][k], chain, rtol=1e-12, atol=1e-12)
        assert got[tol]["star"]["numbers"] == star_numbers and got[tol]["chain"]["numbers"] == chain_numbers
        assert got[tol]["star"]["worst_error"] == pytest.approx(star_err, rel=1e-10)
        assert got[tol]["chain"]["worst_error"] == pytest.approx(chain_err, rel=1e-10)
        assert star_err <= tol * (1 + 1e-12)
        assert np.array_equal(got[tol]["chain"]["at"][0], mats[0])


def test_cascade_numbers_and_error_against_dense():
    import lowrank_tree as lrt

    rng = np.random.default_rng(1)
    mats = np.cumsum(rng.standard_normal((5, 7, 4)), axis=0)
    cascade = lrt.cascade_fit(mats, tol=0.2)
    numbers, worst = tr.cascade_numbers_and_error(cascade, mats)
    assert numbers == 7 * 4 + sum(r * 11 for r in cascade.ranks)
    ref = max(np.linalg.norm(np.asarray(cascade.matrix(k)) - mats[k]) / np.linalg.norm(mats[k]) for k in range(5))
    assert worst == pytest.approx(ref, rel=1e-10)
    assert 0 < worst <= 0.2


def test_docs_page_shows_the_committed_results():
    payload = json.loads((ROOT / "bench" / "results" / "trajectories.json").read_text())
    assert payload["command"] == "python bench/trajectories.py" and not payload["quick"]
    assert payload["mlp"]["checkpoints"] >= 501 and payload["flow"]["checkpoints"] >= 501
    page = (ROOT / "docs" / "evaluation-trajectories.md").read_text()
    assert tr.render_markdown(payload) in page
    assert "python bench/trajectories.py" in page
