"""Tree operations benchmark: update and append vs K, cold/cached/folded queries, all orders vs their floors.

Writes ``bench/results/tree_ops.json`` (or ``--out``): machine, versions,
BLAS threads, command, medians and ratios.  Everything runs in one process
with BLAS on one thread (the machines are shared; ratios are what carry over).

* ``update``: ``tree.update`` (each of ``--timed-updates`` random updates timed
  on its own: median and mean) against the dense floor, one m×n add of a
  rank-2r term (``D + U @ V.T``, timed after every update), against ``append``, the eager incremental
  algorithm (every low-rank ancestor recompressed at once, rounding budget
  32 eps: the previous release) and the re-merge of every ancestor from its
  children (the algorithm before that, forced), for r = 4, K in {64, 256, 1024},
  n in {256, 1024};
* ``accuracy``: after many random updates, every order against the dense
  reference and against a tree rebuilt from the same corrections;
* ``query``: at the largest tree, order k = K - 1 (the most canonical nodes),
  b in {1, 64}: cold (cache cleared), cached (factors not folded), folded, the
  one-time fold, a dense GEMM with ``W_k`` (the floor) and the cache memory;
* ``all_orders``: numpy (tree) and the backend kernels on the same inputs
  (numba's default path and its fused kernel, with Numba's threads),
  against the output-write floor (``np.empty`` + fill of the (K+1, m, b)
  output), K + 1 dense GEMMs (one timed, times K + 1) and peak memory.

Usage::

    python bench/tree_ops.py              # the sizes above (a few minutes on 2 cores)
    python bench/tree_ops.py --quick      # small sizes, seconds
    python bench/tree_ops.py --updates 1000   # the accuracy check with 1,000 updates
"""

import argparse
import pathlib
import time
import tracemalloc

import numba
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import lowrank_tree.tree as tree_module
from lowrank_tree import LowRankSegmentTree
from lowrank_tree.backends import _numba, _numba_kernels, _numpy
from lowrank_tree.benchmark import median_time, write_json

TARGETS = {"update_over_dense_add_max": 10.0, "all_orders_over_floor_max": 2.0, "all_orders_peak_over_output_max": 1.1}


def _family(rng, n, K, r):
    base = rng.standard_normal((n, n))
    return base, [(rng.standard_normal((n, r)), rng.standard_normal((n, r))) for _ in range(K)]


def _remerge(tree):
    """The tree with incremental updates switched off (every ancestor merged from its children)."""
    tree._updated = lambda *args: None
    return tree


def bench_update(n, K, r, repeat, rng, calls):
    base, deltas = _family(rng, n, K, r)
    t0 = time.perf_counter()
    tree = LowRankSegmentTree(base, deltas)
    build = time.perf_counter() - t0
    picks = iter(rng.integers(1, K + 1, size=10**6))
    # a fresh correction per call (a few reused ones would make leaves equal and ranks drop)
    news = [(rng.standard_normal((n, r)), rng.standard_normal((n, r))) for _ in range(calls + 2 * repeat + 8)]
    count = iter(range(10**6))

    def update():
        tree.update(int(next(picks)), news[next(count) % len(news)])

    # every call timed on its own: an update that recompresses an ancestor's
    # appended columns costs more than one that appends, so the median and the
    # mean (the amortised cost) are both reported
    D = base.copy()
    U2, V2 = rng.standard_normal((n, 2 * r)), rng.standard_normal((n, 2 * r))
    update()
    D + U2 @ V2.T
    times, dense = [], []
    for _ in range(calls):  # the floor timed after every update: the ratio is measured side by side
        t0 = time.perf_counter()
        update()
        t1 = time.perf_counter()
        D + U2 @ V2.T
        times.append(t1 - t0)
        dense.append(time.perf_counter() - t1)
    t_update, t_mean = float(np.median(times)), float(np.mean(times))
    t_dense = float(np.median(dense))
    t_append = median_time(lambda: tree.append(news[next(count) % len(news)]), repeat=repeat, min_time=0.0)
    # the previous incremental algorithm: every ancestor recompressed at once
    # (no appended columns), rounding budget 32 eps whatever the size
    saved = tree_module._TAIL_FRACTION, tree_module._MERGE_BELOW
    tree_module._TAIL_FRACTION, tree_module._MERGE_BELOW = 2**62, 0
    tree._drift_budget = lambda: tree_module._DRIFT_LIMIT
    times_eager = []
    for _ in range(max(8, calls // 4)):
        t0 = time.perf_counter()
        update()
        times_eager.append(time.perf_counter() - t0)
    tree_module._TAIL_FRACTION, tree_module._MERGE_BELOW = saved
    del tree._drift_budget
    old = _remerge(tree)
    t_remerge = median_time(update, repeat=max(3, repeat // 2), min_time=0.0)
    del old._updated
    nodes = tree.nodes()
    return {
        "params": {
            "n": n,
            "K": K,
            "r": r,
            "levels": max(nd.level for nd in nodes) + 1,
            "dense_levels": sorted({nd.level for nd in nodes if nd.dense}),
            "updates_timed": calls,
        },
        "seconds": {
            "build": build,
            "update": t_update,
            "update_mean": t_mean,
            "update_max": float(np.max(times)),
            "append": t_append,
            "update_remerge": t_remerge,
            "update_eager": float(np.median(times_eager)),
            "update_eager_mean": float(np.mean(times_eager)),
            "dense_rank2r_add": t_dense,
        },
        "ratios": {
            "update_over_dense_add": t_update / t_dense,
            "update_mean_over_dense_add": t_mean / t_dense,
            "append_over_dense_add": t_append / t_dense,
            "remerge_over_update": t_remerge / t_update,
            "eager_over_update": float(np.median(times_eager)) / t_update,
        },
    }


def bench_accuracy(n, K, r, updates, rng):
    base, deltas = _family(rng, n, K, r)
    tree = LowRankSegmentTree(base, deltas)
    for _ in range(updates):
        i = int(rng.integers(1, K + 1))
        deltas[i - 1] = (rng.standard_normal((n, r)) * 10.0 ** rng.integers(-2, 3), rng.standard_normal((n, r)))
        tree.update(i, deltas[i - 1])
    tree._check()
    rebuilt = LowRankSegmentTree(base, deltas)
    X = rng.standard_normal((n, 8))
    W = base.copy()
    ref = [W @ X]
    for U, V in deltas:
        W += U @ V.T
        ref.append(W @ X)
    ref = np.stack(ref)
    got, fresh = tree.all_orders(X), rebuilt.all_orders(X)
    # queries read the internal nodes (all_orders reads the leaves): these carry the updates' rounding
    q = np.stack([tree.query(k, X) for k in range(K + 1)])
    q_fresh = np.stack([rebuilt.query(k, X) for k in range(K + 1)])
    scale = np.abs(ref).max()
    eps = np.finfo(float).eps
    return {
        "params": {"n": n, "K": K, "r": r, "updates": updates},
        "max_abs_error_over_eps_scale": {
            "all_orders_vs_dense": float(np.abs(got - ref).max() / (eps * scale)),
            "query_vs_dense": float(np.abs(q - ref).max() / (eps * scale)),
            "all_orders_vs_rebuilt": float(np.abs(got - fresh).max() / (eps * scale)),
            "query_vs_rebuilt_query": float(np.abs(q - q_fresh).max() / (eps * scale)),
            "rebuilt_query_vs_dense": float(np.abs(q_fresh - ref).max() / (eps * scale)),
        },
    }


def bench_query(tree, bs, repeat, rng):
    n = tree.shape[1]
    k = tree.max_order - 1 if tree.max_order > 1 else tree.max_order
    W = tree.matrix(k)
    out = {"params": {"k": k, "canonical": tree.query_cost(k)}, "by_b": {}}
    for b in bs:
        X = rng.standard_normal((n, b))

        def cold(X=X):
            tree.clear_cache()
            return tree.query(k, X)

        t_cold = median_time(cold, repeat=repeat)
        saved = tree_module._FOLD_MIN_ENTRIES
        tree_module._FOLD_MIN_ENTRIES = float("inf")  # the unfolded entry, kept hot
        tree.clear_cache()
        for _ in range(2):  # a cold query applies the nodes; the second use of the order builds the entry
            tree.query(k, X)
        t_cached = median_time(lambda X=X: tree.query(k, X), repeat=repeat)
        mem_cached = tree.cache_nbytes
        tree_module._FOLD_MIN_ENTRIES = saved
        entry = tree._prefix(k)
        t0 = time.perf_counter()
        tree._fold(k, entry, tree._version)
        t_fold = time.perf_counter() - t0
        t_folded = median_time(lambda X=X: tree.query(k, X), repeat=repeat)
        mem_folded = tree.cache_nbytes
        t_dense = median_time(lambda X=X: W @ X, repeat=repeat)
        out["by_b"][str(b)] = {
            "seconds": {
                "cold": t_cold,
                "cached": t_cached,
                "folded": t_folded,
                "fold_once": t_fold,
                "dense_Wk_gemm": t_dense,
            },
            "cache_bytes": {"cached": mem_cached, "folded": mem_folded, "dense_Wk": W.nbytes},
            "ratios": {
                "cold_over_cached": t_cold / t_cached,
                "cached_over_folded": t_cached / t_folded,
                "folded_over_dense": t_folded / t_dense,
                "cached_over_dense": t_cached / t_dense,
                "queries_to_pay_fold": t_fold / max(t_cached - t_folded, 1e-12),
            },
        }
    return out


def bench_all_orders(tree, b, repeat, rng):
    K, (m, n) = tree.max_order, tree.shape
    X = rng.standard_normal((n, b))
    shape = (K + 1, m, b)

    def floor():
        out = np.empty(shape)
        out.fill(1.0)
        return out

    tree.all_orders(X)  # the leaf stacks, cached
    Ust, Vst = tree._stacks
    Y0, Z = tree._base @ X, np.matmul(np.swapaxes(Vst, 1, 2), X)
    res = {
        "floor": median_time(floor, repeat=repeat),
        "tree_numpy": median_time(lambda: tree.all_orders(X), repeat=repeat),
        "kernel_numpy_inplace": median_time(lambda: _numpy.accumulate_orders(Y0, Ust, Z), repeat=repeat),
        "kernel_previous_numpy": median_time(lambda: _numpy.prefix_sum(Y0, Ust @ Z), repeat=repeat),
    }
    res["kernel_numba"] = median_time(lambda: _numba.accumulate_orders(Y0, Ust, Z), repeat=repeat)
    fused = _numba_kernels.all_orders  # the fused kernel itself (off by default)
    threads = numba.get_num_threads()
    fused(Y0, Ust, Z, threads)  # compile / load from cache
    res["kernel_numba_fused"] = median_time(lambda: fused(Y0, Ust, Z, threads), repeat=repeat)
    W = tree.matrix(K)
    res["one_dense_gemm"] = median_time(lambda: W @ X, repeat=repeat)
    res["K_plus_1_dense_gemms"] = res["one_dense_gemm"] * (K + 1)
    peaks = {}
    for name, fn in (
        ("tree_numpy", lambda: tree.all_orders(X)),
        ("previous_numpy", lambda: _numpy.prefix_sum(Y0, Ust @ Z)),
    ):
        tracemalloc.start()
        fn()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    out_bytes = int(np.prod(shape)) * 8
    return {
        "params": {"K": K, "m": m, "n": n, "b": b},
        "seconds": res,
        "peak_bytes": peaks,
        "output_bytes": out_bytes,
        "ratios": {
            "tree_numpy_over_floor": res["tree_numpy"] / res["floor"],
            "numba_over_floor": res["kernel_numba"] / res["floor"],
            "numba_fused_over_floor": res["kernel_numba_fused"] / res["floor"],
            "previous_numpy_over_floor": res["kernel_previous_numpy"] / res["floor"],
            "dense_gemms_over_tree": res["K_plus_1_dense_gemms"] / res["tree_numpy"],
            "tree_peak_over_output": peaks["tree_numpy"] / out_bytes,
            "previous_peak_over_output": peaks["previous_numpy"] / out_bytes,
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "tree_ops.json"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--updates", type=int, default=200, help="random updates of the accuracy check")
    parser.add_argument("--timed-updates", type=int, default=64, help="updates timed one by one per size")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    if args.quick:
        ns, Ks, acc, b_all = [64, 128], [16, 64], (64, 32), 16
    else:
        ns, Ks, acc, b_all = [256, 1024], [64, 256, 1024], (256, 256), 64
    r = 4
    payload = {"targets": TARGETS}
    with threadpool_limits(1):
        payload["blas"] = [
            {k: v for k, v in d.items() if k in ("internal_api", "num_threads", "version")} for d in threadpool_info()
        ]
        updates = []
        for n in ns:
            for K in Ks:
                res = bench_update(n, K, r, args.repeat, rng, args.timed_updates)
                updates.append(res)
                s, q = res["seconds"], res["ratios"]
                print(
                    f"n={n:5d} K={K:5d} build {s['build']:7.2f}s  update {1e3 * s['update']:7.2f} ms "
                    f"(mean {1e3 * s['update_mean']:7.2f})  "
                    f"append {1e3 * s['append']:7.2f} ms  eager {1e3 * s['update_eager']:7.2f} ms  "
                    f"re-merge {1e3 * s['update_remerge']:7.2f} ms  "
                    f"dense add {1e3 * s['dense_rank2r_add']:6.2f} ms  update/add {q['update_over_dense_add']:6.1f}x "
                    f"(mean {q['update_mean_over_dense_add']:6.1f}x)",
                    flush=True,
                )
        payload["update"] = updates
        payload["accuracy"] = bench_accuracy(acc[0], acc[1], r, args.updates, rng)
        print("accuracy", payload["accuracy"]["max_abs_error_over_eps_scale"], flush=True)
        n, K = ns[-1], Ks[-1]
        base, deltas = _family(rng, n, K, r)
        tree = LowRankSegmentTree(base, deltas)
        payload["query"] = bench_query(tree, [1, 64], args.repeat, rng)
        for b, res in payload["query"]["by_b"].items():
            s = res["seconds"]
            print(
                f"query b={b:>3}: cold {1e3 * s['cold']:.2f} ms  cached {1e3 * s['cached']:.2f} ms  "
                f"folded {1e3 * s['folded']:.2f} ms  fold once {1e3 * s['fold_once']:.2f} ms  "
                f"dense {1e3 * s['dense_Wk_gemm']:.2f} ms  cache {res['cache_bytes']}",
                flush=True,
            )
        payload["all_orders"] = bench_all_orders(tree, b_all, max(3, args.repeat // 2), rng)
        print(
            "all_orders",
            {k: round(v, 4) for k, v in payload["all_orders"]["seconds"].items()},
            payload["all_orders"]["ratios"],
            flush=True,
        )
    big = payload["update"][-1]["ratios"]["update_over_dense_add"]
    ao = payload["all_orders"]["ratios"]
    payload["verdicts"] = {
        "update_within_10x_of_dense_add": big <= TARGETS["update_over_dense_add_max"],
        "all_orders_numpy_within_2x_of_floor": ao["tree_numpy_over_floor"] <= TARGETS["all_orders_over_floor_max"],
        "all_orders_numba_within_2x_of_floor": ao["numba_over_floor"] <= TARGETS["all_orders_over_floor_max"],
        "all_orders_peak_about_output": ao["tree_peak_over_output"] <= TARGETS["all_orders_peak_over_output_max"],
    }
    print(payload["verdicts"])
    print("wrote", write_json(args.out, payload))


if __name__ == "__main__":
    main()
