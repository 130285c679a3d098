"""CascadedLinear against nn.Linear and K + 1 separate heads (the HOMO layout), side by side in one run.

For every in = out = n, number of corrections K, rank r (every correction) and
batch b, in float32 on each available device, medians of:

* ``linear``: one ``nn.Linear(n, n)`` forward (the floor for one order);
* ``fixed``: ``layer(x, K)``, the highest (most expensive) order, for every row, factored
  (base product plus one GEMM pair: what a training forward computes; the layer's inference
  folding switched off);
* ``fixed_folded``: the same call on a copy of the layer in inference with its default
  rent-or-buy folding, after the order has been folded (one dense product);
* ``mixed``: ``layer(x, orders)`` with one order per row drawn uniformly from 0..K;
* ``grouped``: the same rows grouped by order, one ``layer(x[rows], k)`` per distinct order;
* ``heads_grouped``: the same with the K + 1 separate heads, ``heads[k](x[rows])``;
* ``all_orders``: ``layer.all_orders(x)``;
* ``layer_loop_all``: ``layer(x, k)`` for k = 0..K;
* ``heads_all``: every head, ``heads[k](x)`` for k = 0..K;
* ``*_fwd_bwd``: forward plus backward of a sum of the outputs, for ``linear``,
  ``fixed``, ``all_orders`` and ``heads_all``.

Forwards run under ``torch.no_grad()``; the functions of one case are timed
round-robin (every round times each once), so that the load of a shared
machine shifts all of them alike.  Parameter memory: the layer's numbers
``n² + n + K (2 n r + n)`` against ``(K + 1)(n² + n)`` for the heads.  Targets:
fixed-order forward <= 1.5x one nn.Linear at K <= 8 (factored, and folded); mixed-order forward <= 2x
a fixed-order forward; all_orders faster than the K + 1 heads.  Where a target
is missed, the JSON says by how much and what the time goes to.  Writes
``bench/results/torch_layer.json``.

Usage::

    python bench/torch_layer.py              # the grid above, one torch thread (several minutes)
    python bench/torch_layer.py --quick      # a tiny grid, seconds
"""

import argparse
import copy
import itertools
import os
import pathlib
import statistics
import sys
import time

import numpy as np
import torch

from lowrank_tree.benchmark import interleaved_samples, machine_info, write_json
from lowrank_tree.torch import CascadedLinear

TARGETS = {
    "fixed_over_linear": {"target": 1.5, "kind": "max", "where": "K <= 8"},
    "fixed_folded_over_linear": {"target": 1.5, "kind": "max", "where": "K <= 8"},
    "mixed_over_fixed": {"target": 2.0, "kind": "max", "where": "every case"},
    "all_orders_over_heads": {"target": 1.0, "kind": "below", "where": "every case"},
}
GRID = {"n": [256, 1024], "K": [2, 4, 8, 64], "r": [4, 16], "b": [1, 256]}
QUICK_GRID = {"n": [32], "K": [2, 4], "r": [2], "b": [1, 8]}


def _interleaved(fns, device, repeat, min_time):
    """Median seconds per call of every function in ``fns``, timed round-robin, and their spread.

    Each function is first calibrated to a loop of about ``min_time`` seconds;
    then ``repeat`` rounds time every loop once, in turn, so that a change in
    the load of a shared machine hits all of them alike.  Returns the medians
    and each function's interquartile range over its median.
    """

    def synced(fn):
        if device.type != "cuda":
            return fn

        def call():
            fn()
            torch.cuda.synchronize(device)

        return call

    samples = interleaved_samples({name: synced(fn) for name, fn in fns.items()}, repeat=repeat, min_time=min_time)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    # interquartile range over the median: how much the load of the machine moved each timing
    spreads = {name: float(np.subtract(*np.percentile(v, [75, 25])) / medians[name]) for name, v in samples.items()}
    return medians, spreads, {name: min(v) for name, v in samples.items()}


def _grouped(apply, x, orders, m):
    """Rows grouped by order, one call per distinct order (what a server without a mixed kernel does)."""
    out = x.new_empty(x.shape[0], m)
    sorted_orders, perm = torch.sort(orders)
    distinct, counts = torch.unique_consecutive(sorted_orders, return_counts=True)
    start = 0
    for k, c in zip(distinct.tolist(), counts.tolist()):
        rows = perm[start : start + c]
        out[rows] = apply(x[rows], k)
        start += c
    return out


def run_case(n, K, r, b, device, time_it, seed):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float32
    layer = CascadedLinear(n, n, K + 1, r, device=device, dtype=dtype)
    with torch.no_grad():  # trained-looking corrections (they start at zero)
        layer.U.copy_(torch.randn(layer.U.shape, generator=g) / np.sqrt(n))
        layer.bias_corrections.copy_(torch.randn(layer.bias_corrections.shape, generator=g) / np.sqrt(n))
    linear = torch.nn.Linear(n, n, device=device, dtype=dtype)
    heads = torch.nn.ModuleList([torch.nn.Linear(n, n, device=device, dtype=dtype) for _ in range(K + 1)])
    x = torch.randn((b, n), generator=g).to(device, dtype)
    orders = torch.randint(0, K + 1, (b,), generator=g).to(device)
    served = copy.deepcopy(layer)  # inference with the default folding: fold order K before timing
    layer.inference_cache_orders = 0  # the factored forward, as in training
    with torch.no_grad():
        while not any(entry[2] is not None for entry in served._fold.values()):
            served(x, K)
        s, spread, fastest = time_it(
            {
                "linear": lambda: linear(x),
                "fixed": lambda: layer(x, K),
                "fixed_folded": lambda: served(x, K),
                "mixed": lambda: layer(x, orders),
                "grouped": lambda: _grouped(layer, x, orders, n),
                "heads_grouped": lambda: _grouped(lambda xs, k: heads[k](xs), x, orders, n),
                "all_orders": lambda: layer.all_orders(x),
                "layer_loop_all": lambda: [layer(x, k) for k in range(K + 1)],
                "heads_all": lambda: [h(x) for h in heads],
            }
        )
        # the mixed forward's answer, checked against the grouped one (no timing without a check)
        err = float((layer(x, orders) - _grouped(layer, x, orders, n)).abs().max())

    def fwd_bwd(fn, params):
        def step():
            for p in params:
                p.grad = None
            fn().sum().backward()

        return step

    s_bwd, spread_bwd, fastest_bwd = time_it(
        {
            "linear_fwd_bwd": fwd_bwd(lambda: linear(x), list(linear.parameters())),
            "fixed_fwd_bwd": fwd_bwd(lambda: layer(x, K), list(layer.parameters())),
            "all_orders_fwd_bwd": fwd_bwd(lambda: layer.all_orders(x), list(layer.parameters())),
            "heads_all_fwd_bwd": fwd_bwd(lambda: torch.stack([h(x) for h in heads]), list(heads.parameters())),
        }
    )
    s.update(s_bwd)
    spread.update(spread_bwd)
    fastest.update(fastest_bwd)
    params = {
        "layer": sum(p.numel() for p in layer.parameters()),
        "heads": sum(p.numel() for p in heads.parameters()),
        "linear": sum(p.numel() for p in linear.parameters()),
    }
    ratios = {
        "fixed_over_linear": s["fixed"] / s["linear"],
        "fixed_folded_over_linear": s["fixed_folded"] / s["linear"],
        "mixed_over_fixed": s["mixed"] / s["fixed"],
        "mixed_over_grouped": s["mixed"] / s["grouped"],
        "mixed_over_heads_grouped": s["mixed"] / s["heads_grouped"],
        "all_orders_over_heads": s["all_orders"] / s["heads_all"],
        "all_orders_over_layer_loop": s["all_orders"] / s["layer_loop_all"],
        "fixed_fwd_bwd_over_linear": s["fixed_fwd_bwd"] / s["linear_fwd_bwd"],
        "all_orders_fwd_bwd_over_heads": s["all_orders_fwd_bwd"] / s["heads_all_fwd_bwd"],
        "heads_params_over_layer": params["heads"] / params["layer"],
        # multiply-adds of the fixed-order forward against nn.Linear's: what the ratio would be
        # if time followed arithmetic
        "fixed_flops_over_linear": (n * n + 2 * n * K * r) / (n * n),
    }
    return {
        "device": device.type,
        "n": n,
        "K": K,
        "r": r,
        "b": b,
        "seconds": s,
        "relative_iqr": spread,
        "seconds_min": fastest,
        "ratios": ratios,
        # the target ratios from the fastest rounds instead of the medians: a second view where the
        # load of the machine spread the timings
        "ratios_of_minima": {
            "fixed_over_linear": fastest["fixed"] / fastest["linear"],
            "fixed_folded_over_linear": fastest["fixed_folded"] / fastest["linear"],
            "mixed_over_fixed": fastest["mixed"] / fastest["fixed"],
            "all_orders_over_heads": fastest["all_orders"] / fastest["heads_all"],
        },
        "parameters": params,
        "parameter_bytes": {k: 4 * v for k, v in params.items()},
        "mixed_vs_grouped_max_abs_diff": err,
    }


def _op_overhead(device, time_it):
    """Seconds of one tiny tensor operation: the fixed cost every extra op of a forward pays."""
    t = torch.ones(4, device=device)
    return time_it({"add": lambda: t.add(1.0)})[0]["add"]


#: the two timings behind each target ratio
_TIMINGS = {
    "fixed_over_linear": ("fixed", "linear"),
    "fixed_folded_over_linear": ("fixed_folded", "linear"),
    "mixed_over_fixed": ("mixed", "fixed"),
    "all_orders_over_heads": ("all_orders", "heads_all"),
}


def _noise(name, run):
    """A note when the case's timings spread widely (a loaded machine), else an empty string."""
    spread = max(run["relative_iqr"][t] for t in _TIMINGS[name])
    if spread <= 0.25:
        return ""
    return (
        f"; the timings of this case spread by {100 * spread:.0f}% (interquartile range over median) while "
        f"the machine was loaded, and the ratio of the fastest rounds is {run['ratios_of_minima'][name]:.2f}"
    )


def _why(name, run, overhead):
    s, r = run["seconds"], run["ratios"]
    if name == "fixed_over_linear":
        extra = s["fixed"] - s["linear"]
        flops = r["fixed_flops_over_linear"]
        if r["fixed_over_linear"] <= 1.5 * flops:
            return (
                f"the corrections' GEMM pair is {flops - 1:.2f}x the base's multiply-adds "
                f"(inner dimension K r = {run['K'] * run['r']}), and a thin GEMM runs below the base GEMM's rate"
            )
        if extra <= 30 * overhead:
            return (
                f"nn.Linear takes {1e6 * s['linear']:.1f} us here; the layer's forward adds about "
                f"{1e6 * extra:.1f} us, {extra / overhead:.0f}x the {1e6 * overhead:.1f} us of one tiny tensor "
                f"op: per-call overhead of its extra ops (the bias sum, the GEMM pair, the add), while the "
                f"arithmetic is only {flops:.2f}x"
            )
        return (
            f"{r['fixed_over_linear'] / flops:.1f}x more than the arithmetic ({flops:.2f}x) and more than "
            f"per-call overhead explains ({1e6 * extra:.0f} us added, one tiny op costs {1e6 * overhead:.1f} us): "
            f"the memory traffic of reading U and V besides W_0, or the load of the machine"
        )
    if name == "fixed_folded_over_linear":
        return (
            f"the folded forward is one dense product like nn.Linear's plus the layer's checks and the fold "
            f"lookup ({1e6 * (s['fixed_folded'] - s['linear']):.1f} us added, one tiny op costs "
            f"{1e6 * overhead:.1f} us)"
        )
    if name == "mixed_over_fixed":
        return (
            f"the mixed forward adds the masks (a {run['b']} x {run['K'] * run['r']} multiply for the factors, "
            f"a {run['b']} x {run['K']} by {run['K']} x {run['n']} product for the bias corrections) and the "
            f"orders' range check (a read back to the host) to the fixed forward's {1e6 * s['fixed']:.1f} us; "
            f"with one tiny op at {1e6 * overhead:.1f} us these fixed costs weigh most on small batches"
        )
    return (
        f"all_orders does one base GEMM, one GEMM with V, a batched GEMM over the K = {run['K']} corrections, "
        f"and a running sum over the (K + 1) x b x n outputs; at b = {run['b']} the K + 1 heads "
        f"are {run['K'] + 1} GEMVs of {1e6 * s['heads_all'] / (run['K'] + 1):.1f} us each"
    )


def verdicts(runs, overheads):
    out = {}
    for name, spec in TARGETS.items():
        for device in sorted({run["device"] for run in runs}):
            cases = [r for r in runs if r["device"] == device and (spec["where"] != "K <= 8" or r["K"] <= 8)]
            if not cases:
                continue
            worst = max(cases, key=lambda run: run["ratios"][name])
            value = worst["ratios"][name]

            def ok(v, spec=spec):
                return v <= spec["target"] if spec["kind"] == "max" else v < spec["target"]

            missed = [run for run in cases if not ok(run["ratios"][name])]
            out[f"{name}@{device}"] = {
                "target": spec["target"],
                "kind": spec["kind"],
                "where": spec["where"],
                "worst": value,
                "worst_case": {k: worst[k] for k in ("n", "K", "r", "b")},
                "met": ok(value),
                "met_in": f"{len(cases) - len(missed)} of {len(cases)}",
                "missed": [
                    {
                        **{k: run[k] for k in ("n", "K", "r", "b")},
                        "ratio": run["ratios"][name],
                        "over_target": run["ratios"][name] / spec["target"],
                        "why": _why(name, run, overheads[device]) + _noise(name, run),
                    }
                    for run in missed
                ],
            }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny grid for a smoke run")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "torch_layer.json"))
    parser.add_argument("--repeat", type=int, default=11, help="rounds of the round-robin timing")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: busy shared cores)")
    args = parser.parse_args(argv)
    grid = QUICK_GRID if args.quick else GRID
    repeat, min_time = (2, 0.002) if args.quick else (args.repeat, 0.02)
    torch.set_num_threads(args.threads)
    devices, skipped = [torch.device("cpu")], {}
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    else:
        skipped["cuda"] = (
            f"torch.cuda.is_available() is False (torch {torch.__version__}, CUDA build: {torch.version.cuda}): "
            "no CUDA device on the machine that ran the benchmark"
        )
    runs, overheads, gpu = [], {}, None
    started, load_before = time.perf_counter(), os.getloadavg()
    for device in devices:

        def time_it(fns, device=device):
            return _interleaved(fns, device, repeat, min_time)

        overheads[device.type] = _op_overhead(device, time_it)
        if device.type == "cuda":
            gpu = torch.cuda.get_device_name(device)
        for n, K, r, b in itertools.product(grid["n"], grid["K"], grid["r"], grid["b"]):
            run = run_case(n, K, r, b, device, time_it, seed=len(runs))
            runs.append(run)
            q = run["ratios"]
            print(
                f"{device.type} n={n:5d} K={K:3d} r={r:3d} b={b:4d}  fixed/linear={q['fixed_over_linear']:5.2f}"
                f"  mixed/fixed={q['mixed_over_fixed']:5.2f}  mixed/grouped={q['mixed_over_grouped']:5.2f}"
                f"  all/heads={q['all_orders_over_heads']:5.2f}"
                f"  fwd+bwd fixed/linear={q['fixed_fwd_bwd_over_linear']:5.2f}",
                flush=True,
            )
    payload = {
        # write_json records the machine too; this entry (the same plus the torch version) replaces it
        "machine": {**machine_info(), "torch": torch.__version__},
        "benchmark": "torch_layer",
        "quick": args.quick,
        "torch_threads": torch.get_num_threads(),
        "dtype": "float32",
        "grid": grid,
        "devices": [d.type for d in devices],
        "gpu": gpu,
        "skipped": skipped,
        "op_overhead_seconds": overheads,
        "targets": TARGETS,
        "verdicts": verdicts(runs, overheads),
        "wall_seconds": time.perf_counter() - started,
        # 1-, 5- and 15-minute load averages of the machine before and after the run
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "runs": runs,
    }
    path = write_json(args.out, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
