"""Backend benchmark: numpy, numba and cupy side by side, each against its own baselines.

For every backend available on the machine and every size of the grid
(n in {256, 1024, 4096}, K in {64, 1024}, b in {1, 64}, r_i = 4, m = n) this
times, in one process and with medians of repeated runs:

* ``build`` of the tree, ``update`` of the middle correction, ``append``;
* ``query`` at the worst order k (cached, and the first query after a change)
  against the backend's own dense GEMM ``W_k @ X`` and per-correction loop
  ``W_0 X + Σ U_i (V_iᵀ X)``, plus one GEMM with the same total inner
  dimension ``n + inner_dim`` (the throughput yardstick of the GPU target);
* ``all_orders`` against the per-correction running loop and, where it takes
  seconds rather than minutes, the K + 1 dense GEMMs;
* ``fit`` (``cascade_fit``, randomized, ranks 4) of the K = 64 family.

and the build of the K = 4096, n = 256 tree (the Numba build target).  Results
go to ``bench/results/backends.json`` with the machine, library versions, the
command, the targets and whether each was met.

Usage::

    python bench/backends.py                    # the full grid (most of an hour on 2 cores)
    python bench/backends.py --quick            # small sizes, under a minute
    python bench/backends.py --backends numpy,numba --n 256,1024
"""

import argparse
import gc
import math
import pathlib
import sys
import time

import numpy as np

from lowrank_tree import LowRankSegmentTree, cascade_fit
from lowrank_tree.backends import get_func, namespace_for
from lowrank_tree.benchmark import loop_all_orders, loop_query, median_time, worst_order, write_json

TARGETS = {
    "gpu_query_throughput_over_gemm_min": 0.5,
    "numba_build_speedup_min": 2.0,
    "numba_b1_query_speedup_min": 2.0,
}
#: Skip the K + 1 dense GEMMs of the all-orders baseline above this many flops.
DENSE_ALL_ORDERS_MAX_FLOPS = 1e11


def available(names):
    out, skipped = [], {}
    for name in names:
        try:
            namespace_for(name)
            if name == "numba":  # compile outside the timings (cache=True: once per machine)
                LowRankSegmentTree(np.eye(3), [(np.ones((3, 1)), np.ones((3, 1)))] * 2, backend="numba")
            out.append(name)
        except ImportError as exc:
            skipped[name] = str(exc)
    return out, skipped


def timer(backend, repeat):
    """``time(fn)``: median seconds of ``fn`` on ``backend`` (device work finished)."""
    sync = get_func("synchronize", backend, default=lambda: None)

    def run(fn):
        def call():
            fn()
            sync()

        t0 = time.perf_counter()
        call()
        once = time.perf_counter() - t0
        # calls of a second or more: three samples are enough and the grid stays within the hour
        return median_time(call, repeat=repeat if once < 1.0 else min(repeat, 3), min_time=0.02)

    return run


def family(n, K, r, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, n))
    factors = [(rng.standard_normal((n, r)) / math.sqrt(n), rng.standard_normal((n, r))) for _ in range(K)]
    return base, factors


class Workload:
    """One backend at one (n, K): the family on the device, its tree and the timers."""

    def __init__(self, backend, n, K, r, repeat):
        self.backend, self.n, self.K, self.r = backend, n, K, r
        self.put = get_func("asarray", backend)
        self.to_host = get_func("to_numpy", backend)
        self.sync = get_func("synchronize", backend, default=lambda: None)
        self.time_it = timer(backend, repeat)
        self.time_slow = timer(backend, min(repeat, 3))  # build and fit take seconds: fewer repeats
        base_h, factors_h = family(n, K, r)
        self.base = self.put(base_h)
        self.factors = [(self.put(U), self.put(V)) for U, V in factors_h]
        self.tree = None

    def build(self):
        """Seconds to build the tree (kept in ``self.tree``)."""
        t0 = time.perf_counter()
        self.tree = LowRankSegmentTree(self.base, self.factors, backend=self.backend)
        self.sync()
        once = time.perf_counter() - t0
        if self.n * self.n * self.K > 2**30:  # one build takes many seconds: time it once
            return once
        return self.time_slow(lambda: LowRankSegmentTree(self.base, self.factors, backend=self.backend))


def time_batch(w, k, W_k, inner, X, rng):
    """Seconds, flops and ratios of every query against its baselines for one batch ``X``."""
    tree, n, K = w.tree, w.n, w.K
    b = X.shape[1]
    ref = w.to_host(W_k @ X)
    err = float(np.linalg.norm(w.to_host(tree.query(k, X)) - ref) / np.linalg.norm(ref))

    def cold():
        tree.clear_cache()
        tree.query(k, X)

    # a GEMM with the query's total inner dimension: the throughput yardstick
    G = w.put(rng.standard_normal((n, n + inner)))
    XG = w.put(rng.standard_normal((n + inner, b)))
    s = {
        "query": w.time_it(lambda: tree.query(k, X)),
        "query_first": w.time_it(cold),
        "dense_gemm": w.time_it(lambda: W_k @ X),
        "loop": w.time_it(lambda: loop_query(w.base, w.factors, k, X)),
        "gemm_same_inner_dim": w.time_it(lambda: G @ XG),
        "all_orders": w.time_it(lambda: tree.all_orders(X)),
        "loop_all_orders": w.time_it(lambda: loop_all_orders(w.base, w.factors, X)),
    }
    dense_all_flops = 2.0 * (K + 1) * n * n * b
    if dense_all_flops <= DENSE_ALL_ORDERS_MAX_FLOPS:
        s["dense_all_orders"] = w.time_it(lambda: [W_k @ X for _ in range(K + 1)])
    useful = 2.0 * b * (n * n + inner * 2 * n)
    gemm = 2.0 * b * n * (n + inner)
    return {
        "b": b,
        "relative_error_vs_dense": err,
        "seconds": s,
        "flops": {"query_useful": useful, "gemm_same_inner_dim": gemm, "dense_all_orders": dense_all_flops},
        "ratios": {
            "query_over_dense_gemm": s["query"] / s["dense_gemm"],
            "loop_over_query": s["loop"] / s["query"],
            "query_throughput_over_gemm": (useful / s["query"]) / (gemm / s["gemm_same_inner_dim"]),
            "loop_all_orders_over_all_orders": s["loop_all_orders"] / s["all_orders"],
            "dense_all_orders_over_all_orders": (
                s["dense_all_orders"] / s["all_orders"] if "dense_all_orders" in s else None
            ),
        },
    }


def time_update(w):
    """Median seconds of ``update`` at the middle order."""
    # alternate two corrections so that every call re-merges a real path
    i = w.K // 2 + 1
    U, V = w.factors[i - 1]
    alternatives = [(U, V), (U, 2 * V)]
    state = [0]

    def update():
        state[0] ^= 1
        w.tree.update(i, alternatives[state[0]])

    return w.time_it(update)


def time_appends(w, count=8):
    """Seconds of ``count`` appends (they change K, so each is timed once)."""
    times = []
    for j in range(count):
        t0 = time.perf_counter()
        w.tree.append(w.factors[j % len(w.factors)])
        w.sync()
        times.append(time.perf_counter() - t0)
    return times


def time_fit(w):
    """Median seconds of a randomized ``cascade_fit`` of the family, streamed order by order."""
    xp = namespace_for(w.backend)

    def stream():
        M = w.base
        yield M
        for U, V in w.factors:
            M = M + U @ xp.matrix_transpose(V)
            yield M

    return w.time_slow(lambda: cascade_fit(stream(), ranks=w.r, method="randomized", seed=0, backend=w.backend))


def one_size(backend, n, K, bs, r, repeat):
    """Every measurement of one backend at one (n, K), for each batch size in ``bs``."""
    w = Workload(backend, n, K, r, repeat)
    build = w.build()
    k = worst_order(w.tree)
    cost = w.tree.query_cost(k)
    W_k = w.tree.matrix(k)
    res = {
        "backend": backend,
        "n": n,
        "m": n,
        "K": K,
        "r": r,
        "k": k,
        "inner_dim": cost["inner_dim"],
        "dense_canonical_nodes": cost["dense_nodes"],
        "tree_nbytes": w.tree.nbytes,
        "seconds": {"build": build},
        "by_batch": [],
    }
    rng = np.random.default_rng(1)
    for b in bs:
        X = w.put(rng.standard_normal((n, b)))
        res["by_batch"].append(time_batch(w, k, W_k, cost["inner_dim"], X, rng))
    res["seconds"]["update"] = time_update(w)
    # append last: it changes K.  The first append past a power of two grows a new root.
    appends = time_appends(w)
    res["seconds"]["append_median"] = float(np.median(appends))
    res["seconds"]["append_max"] = float(max(appends))
    if K <= 64:
        res["seconds"]["fit"] = time_fit(w)
    return res


def build_target(backends, n, K, r, repeat):
    out = {"n": n, "K": K, "r": r, "seconds": {}}
    for backend in backends:
        w = Workload(backend, n, K, r, repeat)
        out["seconds"][backend] = w.time_it(lambda w=w: LowRankSegmentTree(w.base, w.factors, backend=w.backend))
    if "numba" in out["seconds"] and "numpy" in out["seconds"]:
        out["numba_speedup"] = out["seconds"]["numpy"] / out["seconds"]["numba"]
    return out


def verdicts(runs, build):
    v = {}
    if "numba_speedup" in build:
        v["numba_build_speedup"] = {
            "value": build["numba_speedup"],
            "met": build["numba_speedup"] >= TARGETS["numba_build_speedup_min"],
        }
    by = {(r["backend"], r["n"], r["K"], bb["b"]): bb for r in runs for bb in r["by_batch"]}
    for (be, n, K, b), bb in sorted(by.items()):
        if be == "numba" and b == 1 and ("numpy", n, K, 1) in by:
            for key in ("query", "query_first"):
                ratio = by[("numpy", n, K, 1)]["seconds"][key] / bb["seconds"][key]
                v[f"numba_b1_{key}_speedup_n{n}_K{K}"] = {
                    "value": ratio,
                    "met": ratio >= TARGETS["numba_b1_query_speedup_min"],
                }
        if be == "cupy":
            ratio = bb["ratios"]["query_throughput_over_gemm"]
            v[f"gpu_query_throughput_over_gemm_n{n}_K{K}_b{b}"] = {
                "value": ratio,
                "met": ratio >= TARGETS["gpu_query_throughput_over_gemm_min"],
            }
    return v


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--backends", default="numpy,numba,cupy")
    parser.add_argument("--n", default="256,1024,4096")
    parser.add_argument("--K", default="64,1024")
    parser.add_argument("--b", default="1,64")
    parser.add_argument("--r", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--build-target", default="256,4096", help="n,K of the Numba build target")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "backends.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.K, args.build_target, args.repeat = "32,64", "8,32", "32,64", 3
    ns, Ks, bs = ([int(v) for v in s.split(",")] for s in (args.n, args.K, args.b))
    backends, skipped = available(args.backends.split(","))
    runs = []
    for n in ns:
        for K in Ks:
            for backend in backends:
                t0 = time.perf_counter()
                res = one_size(backend, n, K, bs, args.r, args.repeat)
                res["bench_seconds"] = time.perf_counter() - t0
                runs.append(res)
                gc.collect()
                s = res["seconds"]
                line = "  ".join(
                    f"b={bb['b']}: query {1e3 * bb['seconds']['query']:.3f} ms "
                    f"(dense {bb['ratios']['query_over_dense_gemm']:.2f}x, "
                    f"loop/query {bb['ratios']['loop_over_query']:.1f}x)"
                    for bb in res["by_batch"]
                )
                print(
                    f"[{res['bench_seconds']:.0f} s] {backend:6s} n={n:5d} K={K:5d} build {s['build']:.3f} s  update "
                    f"{1e3 * s['update']:.2f} ms  {line}",
                    flush=True,
                )
    bn, bK = (int(v) for v in args.build_target.split(","))
    build = build_target(backends, bn, bK, args.r, max(1, min(args.repeat, 3)))
    print(
        f"build target n={bn} K={bK}: " + ", ".join(f"{k} {v:.3f} s" for k, v in build["seconds"].items()), flush=True
    )
    payload = {
        "benchmark": "backends",
        "quick": args.quick,
        "targets": TARGETS,
        "backends": backends,
        "backends_skipped": skipped,
        "build_target": build,
        "verdicts": verdicts(runs, build),
        "runs": runs,
    }
    if "cupy" in backends:
        import cupy

        payload["gpu"] = {
            "device": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
            "cupy": cupy.__version__,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        }
    try:
        import numba

        payload["numba"] = numba.__version__
    except ImportError:
        pass
    print(f"wrote {write_json(args.out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
