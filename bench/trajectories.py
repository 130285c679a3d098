"""Does the cascade's assumption hold on real training runs?  Checkpoints every step, fitted and tested against noise.

Two training runs, a checkpoint after every optimiser step:

* **mlp** -- the digits MLP of ``bench/checkpoints.py`` (64-256-256-10, ReLU,
  SGD with momentum, float32), ``training_run`` imported from there;
* **flow** -- a flow-matching model of ``bench/flow_matching.py``: separate
  heads with one shared initialisation (orders 1..3, VP path, 8-mode 2-D
  mixture, width 64, depth 2, float64), trained with that file's loss and
  Adam schedule, its parameters copied every step in memory.

For each run, each 2-D parameter and each fit tolerance:

* **compression** -- numbers stored over the run's dense numbers for
  ``fit_checkpoints`` (the cascade, with error feedback) and the two
  baselines of ``bench/checkpoints.py`` at the same error target: the
  *star* (truncated SVD of every ``W_k − W_0`` on its own) and the *chain*
  (truncated adjacent deltas, no error feedback);
* **reconstruction error** -- the worst relative Frobenius error over all
  checkpoints, recomputed densely;
* **the model's behaviour** at reconstructed checkpoints ``k`` against the
  true checkpoint ``k``: the MLP's accuracy on the 1797 digits and the
  largest logit difference (and the fraction of inputs whose true top-two
  logit margin is at most twice that difference: only those can change
  their prediction); the flow model's energy distance to fresh target
  samples, the energy distance between its samples and the true
  checkpoint's samples from the same noise, and the largest displacement
  of a sample point.

And the assumption, measured with :func:`lowrank_tree.assumption_test`
against its two null models (random walk and smooth random trajectory with
the same step norms): on windows of consecutive checkpoints at the start,
middle and end of each run, per 2-D parameter; and on the flow model's
per-order heads (the heads' layer-``l`` weights as a family of ``K``
matrices), for the shared-initialisation heads and for independently
initialised ones, with the direct-sum test of the head differences.

Usage::

    python bench/trajectories.py            # default (500 MLP steps, 600 flow steps), JSON to bench/results/
    python bench/trajectories.py --quick    # seconds: a smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import pathlib
import sys
import tempfile
import time
import warnings

import numpy as np

import lowrank_tree as lrt
from lowrank_tree._threads import small_blas
from lowrank_tree.benchmark import machine_info, write_json
from lowrank_tree.fit import DenseCorrectionWarning

HERE = pathlib.Path(__file__).resolve().parent

QUICK = {
    "mlp_steps": 40,
    "flow_steps": 40,
    "flow_K": 3,
    "tols": [1e-2],
    "assumption_tol": 1e-2,
    "window": 8,
    "window_max_order": 2,
    "null_samples": 3,
    "eval_checkpoints": 3,
    "flow_eval_points": 150,
    "flow_sampler_steps": 4,
}
DEFAULT = {
    "mlp_steps": 500,
    "flow_steps": 600,
    "flow_K": 3,
    "tols": [1e-2, 1e-3],
    "assumption_tol": 1e-2,
    "window": 50,
    "window_max_order": 2,
    "null_samples": 19,
    "eval_checkpoints": 5,
    "flow_eval_points": 1000,
    "flow_sampler_steps": 8,
}
FLOW = {"dataset": "gmm8", "path": "vp", "family": "separate_shared_init", "width": 64, "depth": 2, "batch": 256}


def _sibling(name):
    """Import ``bench/<name>.py`` (the bench folder is not a package)."""
    key = f"bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


# --------------------------------------------------------------------------
# baselines with reconstructions
# --------------------------------------------------------------------------
def baselines(mats, tols, at):
    """The star and chain baselines of ``bench/checkpoints.py``, with the reconstructions at ``at`` kept."""
    return _sibling("checkpoints").baselines(mats, tols, at)


def cascade_numbers_and_error(cascade, mats):
    """Numbers a fitted cascade stores and its worst relative error against ``mats`` (``bench/checkpoints.py``)."""
    return _sibling("checkpoints").cascade_numbers_and_error(cascade, mats)


# --------------------------------------------------------------------------
# the runs
# --------------------------------------------------------------------------
def mlp_run(steps, folder):
    """The digits MLP: checkpoint paths, the 2-D parameters' stacks (float64), and a scorer."""
    ck = _sibling("checkpoints")
    from sklearn.datasets import load_digits

    paths = ck.training_run(steps, folder)
    first = lrt.fit_checkpoints(paths[:2], progress=False)
    mats = {name: ck.read_matrices(paths, name) for name in first}
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float64)

    def logits(sd):
        h = X
        layers = sorted({key.rsplit(".", 1)[0] for key in sd})
        for i, layer in enumerate(layers):
            h = h @ np.asarray(sd[f"{layer}.weight"], np.float64).T + np.asarray(sd[f"{layer}.bias"], np.float64)
            if i < len(layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def true_state(k):
        from safetensors.numpy import load_file

        return load_file(paths[k])

    return paths, mats, true_state, logits, y


def mlp_behaviour(logits_fn, y, true_sd, recon_sd):
    """Accuracy of the true and the reconstructed checkpoint, the max logit difference, the flippable fraction."""
    a, b = logits_fn(true_sd), logits_fn(recon_sd)
    diff = float(np.max(np.abs(a - b)))
    top2 = np.sort(a, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    return {
        "true_accuracy": float(np.mean(a.argmax(axis=1) == y)),
        "accuracy": float(np.mean(b.argmax(axis=1) == y)),
        "max_logit_difference": diff,
        "max_abs_logit": float(np.max(np.abs(a))),
        "flippable_fraction": float(np.mean(margin <= 2 * diff)),
    }


def flow_train(steps, K, seed, family=FLOW["family"]):
    """Train a flow model as ``bench/flow_matching.train`` does, copying every parameter after every step."""
    import torch

    fm = _sibling("flow_matching")
    torch.manual_seed(seed)
    model = fm.build_model(family, fm.DATASETS[FLOW["dataset"]], K, FLOW["width"], FLOW["depth"])
    path = fm.PATHS[FLOW["path"]]
    g = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    rng = np.random.default_rng([seed, 1])

    def snapshot():
        return {name: p.detach().numpy().copy() for name, p in model.state_dict().items()}

    states = [snapshot()]
    for _ in range(steps):
        x1 = torch.from_numpy(fm.sample_dataset(FLOW["dataset"], FLOW["batch"], int(rng.integers(2**31))))
        x0 = torch.randn(x1.shape, generator=g, dtype=x1.dtype)
        t = torch.rand((FLOW["batch"], 1), generator=g, dtype=x1.dtype)
        loss = ((model(path.derivative(x0, x1, t, 0), t) - fm.targets(path, x0, x1, t, K)) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        states.append(snapshot())
    return model, states


def flow_samples(model, state, K, n, steps, seed):
    """Samples of ``model`` with parameters ``state`` from fixed noise (order-K Taylor sampler)."""
    import torch

    fm = _sibling("flow_matching")
    model.load_state_dict({k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in state.items()})
    noise = torch.randn(
        (n, fm.DATASETS[FLOW["dataset"]]), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    with torch.no_grad():
        return fm.taylor_sample(model, noise, K, steps).numpy()


def flow_behaviour(model, K, true_sd, recon_sd, cfg, seed=0):
    fm = _sibling("flow_matching")
    n, steps = cfg["flow_eval_points"], cfg["flow_sampler_steps"]
    a = flow_samples(model, true_sd, K, n, steps, seed)
    b = flow_samples(model, recon_sd, K, n, steps, seed)
    target = fm.sample_dataset(FLOW["dataset"], n, seed + 10_000)
    return {
        "true_energy_distance": fm.energy_distance(a, target),
        "energy_distance": fm.energy_distance(b, target),
        "energy_distance_to_true_samples": fm.energy_distance(b, a),
        "max_point_displacement": float(np.max(np.linalg.norm(a - b, axis=1))),
    }


# --------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------
def eval_points(K1, count):
    return sorted({int(round(x)) for x in np.linspace(0, K1 - 1, count)})


def compression(run, mats, fit_source, rebuild_true, behaviour, tols, at):
    """Per tolerance: cascade, star and chain -- numbers, worst error, behaviour at the checkpoints ``at``."""
    names = list(mats)
    K1 = len(next(iter(mats.values())))
    dense = {name: K1 * mats[name][0].size for name in names}
    with small_blas(True):
        base = {name: baselines(mats[name], tols, set(at)) for name in names}
    rows = []
    for tol in tols:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DenseCorrectionWarning)
            fam = lrt.fit_checkpoints(fit_source, tol=tol, progress=False)
        row = {"run": run, "tol": tol, "layers": {}, "behaviour": {"cascade": [], "star": [], "chain": []}}
        totals = {"cascade": [0, 0.0], "star": [0, 0.0], "chain": [0, 0.0]}
        for name in names:
            numbers, worst = cascade_numbers_and_error(fam[name], mats[name])
            layer = {
                "shape": list(mats[name].shape[1:]),
                "cascade": {"numbers_ratio": numbers / dense[name], "worst_error": worst},
                "cascade_ranks_sum": int(sum(fam[name].ranks)),
            }
            totals["cascade"][0] += numbers
            totals["cascade"][1] = max(totals["cascade"][1], worst)
            for method in ("star", "chain"):
                b = base[name][tol][method]
                layer[method] = {"numbers_ratio": b["numbers"] / dense[name], "worst_error": b["worst_error"]}
                totals[method][0] += b["numbers"]
                totals[method][1] = max(totals[method][1], b["worst_error"])
            row["layers"][name] = layer
        row["total"] = {
            method: {"numbers_ratio": v[0] / sum(dense.values()), "worst_error": v[1]} for method, v in totals.items()
        }
        for k in at:
            true_sd = rebuild_true(k)
            recon = {
                "cascade": {
                    **true_sd,
                    **{name: np.asarray(v) for name, v in fam.state_dict(k, framework="numpy").items()},
                },
                "star": {**true_sd, **{name: base[name][tol]["star"]["at"][k] for name in names}},
                "chain": {**true_sd, **{name: base[name][tol]["chain"]["at"][k] for name in names}},
            }
            for method, sd in recon.items():
                row["behaviour"][method].append({"checkpoint": k, **behaviour(true_sd, sd)})
        rows.append(row)
    return rows


def _comparison_json(c):
    def num(x):
        return None if x is None or not math.isfinite(x) else float(x)

    return {
        "mean": num(c.mean),
        "std": num(c.std),
        "low": num(c.low),
        "high": num(c.high),
        "z": num(c.z) if not math.isinf(c.z) else ("-inf" if c.z < 0 else "inf"),
        "p_value": num(c.p_value),
    }


def assumption_json(t):
    """The parts of an :class:`~lowrank_tree.AssumptionTest` the report uses, JSON-ready."""

    def num(x):
        return None if not math.isfinite(x) else float(x)

    return {
        "shape": list(t.shape),
        "tol": t.tol,
        "null_samples": t.null_samples,
        "step_ranks_mean": float(np.mean(t.step_ranks)),
        "rank_profile": [float(r) for r in t.rank_profile],
        "null_rank_profiles": {k: [float(r) for r in v] for k, v in t.null_rank_profiles.items()},
        "energy_profile": [float(e) for e in t.energy_profile],
        "statistics": {k: num(v) for k, v in t.statistics.items()},
        "nulls": {null: {s: _comparison_json(c) for s, c in comps.items()} for null, comps in t.nulls.items()},
        # a verdict at p <= 0.05 needs at least 19 draws (the smallest p-value is 1 / (1 + draws))
        "better_than_noise": t.better_than_noise() if t.null_samples >= 19 else None,
        "shares_subspaces": t.shares_subspaces() if t.null_samples >= 19 else None,
    }


def windows(run, mats, cfg, seed=0):
    """The assumption test on windows of consecutive checkpoints at the start, middle and end, per parameter."""
    out = []
    K1 = len(next(iter(mats.values())))
    w = min(cfg["window"], K1)
    starts = {"start": 0, "middle": (K1 - w) // 2, "end": K1 - w}
    with small_blas(True):
        for name, M in mats.items():
            for where, s in starts.items():
                t = lrt.assumption_test(
                    M[s : s + w],
                    tol=cfg["assumption_tol"],
                    max_order=min(cfg["window_max_order"], w - 1),
                    null_samples=cfg["null_samples"],
                    seed=seed,
                )
                out.append(
                    {"run": run, "parameter": name, "window": where, "first": s, "length": w, **assumption_json(t)}
                )
    return out


def heads(states, K, cfg, label, seed=0):
    """The per-order heads at the last checkpoint: layer l of heads 1..K as a family of K matrices."""
    final = states[-1]
    out = []
    layer_names = sorted({key.split(".", 2)[2] for key in final if key.startswith("heads.0.") and final[key].ndim == 2})
    for layer in layer_names:
        fam = np.stack([final[f"heads.{h}.{layer}"] for h in range(K)])
        diffs = fam[1:] - fam[:-1]
        t = lrt.assumption_test(fam, tol=cfg["assumption_tol"], null_samples=cfg["null_samples"], seed=seed)
        entry = {"heads": label, "layer": layer, **assumption_json(t)}
        for side in ("column", "row"):
            c = lrt.direct_sum_check(diffs, side=side, rtol=cfg["assumption_tol"])
            entry[f"{side}_direct_sum"] = {
                "is_direct": bool(c.is_direct),
                "sum_of_ranks": c.sum_of_ranks,
                "rank_of_concatenation": c.rank_of_concatenation,
            }
        out.append(entry)
    return out


def blas_threads():
    try:
        from threadpoolctl import threadpool_info

        return [{"api": p.get("internal_api"), "threads": p.get("num_threads")} for p in threadpool_info()]
    except Exception:  # pragma: no cover - threadpoolctl is optional
        return None


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def _fmt(x, spec=".3g"):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    return format(x, spec)


def render_markdown(payload):
    """The report tables (Markdown) from a results payload of :func:`main`."""
    lines = []
    lines.append("### Compression and reconstruction (all 2-D parameters of the run)\n")
    lines.append("| run | tol | method | stored / dense | worst relative error |")
    lines.append("| --- | --- | --- | --- | --- |")
    for row in payload["compression"]:
        for method in ("cascade", "star", "chain"):
            t = row["total"][method]
            lines.append(
                f"| {row['run']} | {row['tol']:.0e} | {method} | {t['numbers_ratio']:.3f} | {t['worst_error']:.2e} |"
            )
    lines.append("\n### Per parameter (stored / dense; worst error)\n")
    lines.append("| run | tol | parameter | shape | cascade | star | chain |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for row in payload["compression"]:
        for name, layer in row["layers"].items():
            cells = [
                f"{layer[m]['numbers_ratio']:.3f}; {layer[m]['worst_error']:.1e}" for m in ("cascade", "star", "chain")
            ]
            shape = "×".join(str(v) for v in layer["shape"])
            lines.append(f"| {row['run']} | {row['tol']:.0e} | `{name}` | {shape} | " + " | ".join(cells) + " |")
    lines.append("\n### The model at reconstructed checkpoints\n")
    lines.append("MLP: accuracy on the 1797 digits (true checkpoint → reconstruction), largest logit difference, and")
    lines.append("the fraction of inputs whose true top-two margin is at most twice that difference.\n")
    lines.append("| tol | method | checkpoint | accuracy | max logit diff | flippable |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for row in payload["compression"]:
        if row["run"] != "mlp":
            continue
        for method in ("cascade", "star", "chain"):
            for b in row["behaviour"][method]:
                lines.append(
                    f"| {row['tol']:.0e} | {method} | {b['checkpoint']} "
                    f"| {b['true_accuracy']:.4f} → {b['accuracy']:.4f}"
                    f" | {b['max_logit_difference']:.2e} | {b['flippable_fraction']:.4f} |"
                )
    lines.append("\nFlow model: energy distance to target samples (true checkpoint → reconstruction), energy")
    lines.append("distance between the reconstruction's and the true checkpoint's samples (same noise), largest")
    lines.append(f"point displacement.  Target noise floor: {payload['flow']['noise_floor']:.2e}.\n")
    lines.append("| tol | method | checkpoint | energy distance | to true samples | max displacement |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for row in payload["compression"]:
        if row["run"] != "flow":
            continue
        for method in ("cascade", "star", "chain"):
            for b in row["behaviour"][method]:
                lines.append(
                    f"| {row['tol']:.0e} | {method} | {b['checkpoint']} | {b['true_energy_distance']:.2e} → "
                    f"{b['energy_distance']:.2e} | {b['energy_distance_to_true_samples']:.1e} | "
                    f"{b['max_point_displacement']:.1e} |"
                )
    lines.append("\n### The assumption on checkpoint windows, against the null models\n")
    lines.append(ASSUMPTION_LEGEND)
    lines.append(
        "| run | parameter | window | step_rank | p rw, sm | displacement_rank | p rw, sm, rot | energy_rate "
        "| below noise | shared |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in payload["windows"]:
        lines.append(_assumption_row(f"| {w['run']} | `{w['parameter']}` | {w['window']} (from {w['first']}) ", w))
    lines.append("\n### The per-order heads of the flow model (final checkpoint)\n")
    lines.append(
        "| heads | layer | step_rank | p rw, sm | displacement_rank | p rw, sm, rot | energy_rate "
        "| below noise | shared | direct sum (col, row) |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for h in payload["heads"]:
        ds = f"{h['column_direct_sum']['is_direct']}, {h['row_direct_sum']['is_direct']}"
        lines.append(_assumption_row(f"| {h['heads']} | `{h['layer']}` ", h) + f" {ds} |")
    return "\n".join(lines) + "\n"


ASSUMPTION_LEGEND = (
    "`step_rank`: mean rank fraction of the steps at the tolerance, family / random-walk null mean / smooth null "
    "mean; `displacement_rank`: rank fraction of the whole displacement, family / random-walk / smooth / "
    "rotated null means; p: one-sided Monte Carlo p-values against the random-walk (rw), smooth (sm) and rotated "
    "(rot) nulls (the smallest possible is 1/(1 + draws)); `energy_rate`: family (random-walk, smooth, rotated null "
    "means); *below noise*: `better_than_noise()`, *shared*: `shares_subspaces()` (p <= 0.05; – with fewer than 19 "
    "draws).\n"
)


def _assumption_row(prefix, a):
    s, nulls = a["statistics"], a["nulls"]
    iso = [n for n in ("random_walk", "smooth") if n in nulls]
    every = iso + [n for n in ("rotated",) if n in nulls]

    def values(stat, which):
        return " / ".join(_fmt(v, ".2f") for v in [s[stat]] + [nulls[n][stat]["mean"] for n in which])

    def ps(stat, which):
        return ", ".join(_fmt(nulls[n][stat]["p_value"], ".2f") for n in which)

    energy = (
        f"{_fmt(s['energy_rate'], '.2f')} ("
        + ", ".join(_fmt(nulls[n]["energy_rate"]["mean"], ".2f") for n in every)
        + ")"
    )
    verdicts = " | ".join(
        {True: "yes", False: "no", None: "–"}[a[k]] for k in ("better_than_noise", "shares_subspaces")
    )
    return (
        prefix
        + f"| {values('step_rank', iso)} | {ps('step_rank', iso)} | {values('displacement_rank', every)}"
        + f" | {ps('displacement_rank', every)} | {energy} | {verdicts} |"
    )


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    ap.add_argument("--out", default=str(HERE / "results" / "trajectories.json"))
    ap.add_argument("--markdown", default=None, help="also write the report tables to this file")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else DEFAULT
    import torch

    torch.set_num_threads(1)  # busy shared cores: one intra-op thread
    started = time.perf_counter()
    timings = {}
    fm = _sibling("flow_matching")
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        paths, mlp_mats, mlp_true, logits_fn, y = mlp_run(cfg["mlp_steps"], folder)
        timings["mlp_train"] = time.perf_counter() - t0
        print(f"mlp: {len(paths)} checkpoints, 2-D parameters {list(mlp_mats)}", flush=True)
        at = eval_points(len(paths), cfg["eval_checkpoints"])
        t0 = time.perf_counter()
        rows = compression(
            "mlp",
            mlp_mats,
            paths,
            mlp_true,
            lambda true_sd, sd: mlp_behaviour(logits_fn, y, true_sd, sd),
            cfg["tols"],
            at,
        )
        timings["mlp_compression"] = time.perf_counter() - t0
    print(f"mlp compression: {timings['mlp_compression']:.1f} s", flush=True)

    t0 = time.perf_counter()
    K = cfg["flow_K"]
    model, states = flow_train(cfg["flow_steps"], K, seed=0)
    _, indep_states = flow_train(cfg["flow_steps"], K, seed=0, family="separate")
    timings["flow_train"] = time.perf_counter() - t0
    flow_names = [name for name, v in states[0].items() if v.ndim == 2]
    flow_mats = {name: np.stack([s[name] for s in states]).astype(np.float64) for name in flow_names}
    print(f"flow: {len(states)} checkpoints, {len(flow_names)} 2-D parameters", flush=True)
    t0 = time.perf_counter()
    at = eval_points(len(states), cfg["eval_checkpoints"])
    rows += compression(
        "flow",
        flow_mats,
        states,
        lambda k: dict(states[k]),
        lambda true_sd, sd: flow_behaviour(model, K, true_sd, sd, cfg),
        cfg["tols"],
        at,
    )
    timings["flow_compression"] = time.perf_counter() - t0
    print(f"flow compression: {timings['flow_compression']:.1f} s", flush=True)

    t0 = time.perf_counter()
    # the flow model's six heads' parameters are one family per parameter name: test the first head's
    # layers (the other heads' windows behave alike and would triple the time)
    win = windows("mlp", mlp_mats, cfg) + windows(
        "flow", {k: v for k, v in flow_mats.items() if k.startswith("heads.0.")}, cfg
    )
    timings["windows"] = time.perf_counter() - t0
    print(f"windows: {timings['windows']:.1f} s", flush=True)
    head_results = heads(states, K, cfg, "shared init") + heads(indep_states, K, cfg, "independent init")
    n = cfg["flow_eval_points"]
    payload = {
        "benchmark": "trajectories",
        "command": "python bench/trajectories.py" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "machine": {**machine_info(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "blas_threads": blas_threads(),
        "load_average_at_start_and_end": None,
        "device": "CPU (no GPU was used for this run)",
        "config": cfg,
        "mlp": {
            "model": "MLP 64-256-256-10 (ReLU), SGD momentum 0.9, lr 0.05, batch 64, sklearn digits "
            "(bench/checkpoints.py)",
            "checkpoints": len(paths),
        },
        "flow": {
            **FLOW,
            "K": K,
            "checkpoints": len(states),
            "optimiser": "Adam lr 5e-3, cosine schedule (bench/flow_matching.py's train)",
            "noise_floor": fm.energy_distance(
                fm.sample_dataset(FLOW["dataset"], n, 20_000), fm.sample_dataset(FLOW["dataset"], n, 10_000)
            ),
        },
        "compression": rows,
        "windows": win,
        "heads": head_results,
        "seconds": {**timings, "total": time.perf_counter() - started},
    }
    payload["load_average_at_start_and_end"] = [LOAD_AT_START, list(os.getloadavg())]
    print(f"wrote {write_json(args.out, payload)}")
    report = render_markdown(payload)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(report)
    print(report)
    return 0


LOAD_AT_START = list(os.getloadavg())

if __name__ == "__main__":
    sys.exit(main())
