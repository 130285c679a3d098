"""Prefix-query benchmark: low-rank segment tree vs dense, per-order dense and per-correction loop.

Writes ``bench/results/query.json`` (or ``--out``): machine, versions, command,
each baseline side by side, medians and ratios, for n = 1024, b = 64, r_i = 4
and K in {64, 256, 1024} at the worst order k of each tree.

Usage::

    python bench/query.py            # the sizes above (about 2 minutes on 2 cores)
    python bench/query.py --quick    # small sizes, seconds
"""

import argparse
import pathlib
import sys

from lowrank_tree.benchmark import query_benchmark, write_json

TARGETS = {"loop_over_tree_min": 10.0, "tree_over_dense_max": 5.0, "tree_memory_over_bound_max": 1.0}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "query.json"))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    if args.quick:
        sizes = {"n": 128, "b": 16, "r": 4, "Ks": [16, 64]}
    else:
        sizes = {"n": 1024, "b": 64, "r": 4, "Ks": [64, 256, 1024]}
    runs = []
    for K in sizes["Ks"]:
        res = query_benchmark(n=sizes["n"], b=sizes["b"], r=sizes["r"], K=K, repeat=args.repeat)
        runs.append(res)
        rat = res["ratios"]
        print(
            f"K={K:5d} k={res['params']['k']:5d}  loop/tree={rat['loop_over_tree']:6.2f}x  "
            f"tree/dense={rat['tree_over_dense']:5.2f}x  tree mem/bound={rat['tree_memory_over_bound']:.2f}",
            flush=True,
        )
    last = runs[-1]["ratios"]
    verdict = {
        "K": sizes["Ks"][-1],
        "loop_over_tree": last["loop_over_tree"],
        "loop_over_tree_met": last["loop_over_tree"] >= TARGETS["loop_over_tree_min"],
        "tree_over_dense": last["tree_over_dense"],
        "tree_over_dense_met": last["tree_over_dense"] <= TARGETS["tree_over_dense_max"],
        "tree_memory_over_bound": last["tree_memory_over_bound"],
        "memory_met": last["tree_memory_over_bound"] <= TARGETS["tree_memory_over_bound_max"],
    }
    path = write_json(
        args.out,
        {"benchmark": "query", "quick": args.quick, "targets": TARGETS, "verdict_at_largest_K": verdict, "runs": runs},
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
