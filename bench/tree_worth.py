"""How large a K makes the segment tree worth it: one query against the alternatives, K from 1 to 1024.

For each number of corrections ``K`` in {1, 2, 4, ..., 1024} (n = m = 512,
r = 4 per correction, independent Gaussian factors -- nothing compresses, the
tree's worst case -- and batches of b = 1 and b = 64 columns), the worst
order ``k`` of the tree is applied to a batch by

* **tree (cached)** -- ``tree.query(k, X)`` once its cache entry exists (and
  has folded, when the rent-or-buy policy folds it);
* **tree (cold)** -- the first query of ``k`` after ``clear_cache()``;
* **loop** -- the cascade as it is stored, ``W_0 X + Σ_{i<=k} U_i (V_iᵀ X)``:
  the same memory as the cascade, no tree;
* **dense per order** -- ``W_k X`` with ``W_k`` materialised beforehand
  (HOMO's layout: one dense matrix per order, ``K + 1`` of them in memory).

and the memory of each layout is reported: the tree (nodes, without the
query cache), the cascade (base plus factors), and ``K + 1`` dense matrices.
The tree is worth it where it is faster than the loop and much smaller than
the dense stack; the script reports the smallest ``K`` from which the cached
and the cold tree query beat the loop at each batch size.  BLAS runs on one
thread (recorded), medians of ``--repeat`` runs; the machine may be shared,
so read the ratios.

Usage::

    python bench/tree_worth.py            # JSON to bench/results/tree_worth.json (a few minutes)
    python bench/tree_worth.py --quick    # n = 128, K up to 64 (seconds)
"""

import argparse
import os
import pathlib
import sys

from threadpoolctl import threadpool_info, threadpool_limits

from lowrank_tree.benchmark import query_benchmark, write_json


def crossover(runs, b, key):
    """Smallest K from which ``loop / key`` stays above 1 for every larger K measured (None if never)."""
    rows = [r for r in runs if r["params"]["b"] == b]
    best = None
    for r in reversed(rows):
        if r["seconds"]["loop"] / r["seconds"][key] > 1.0:
            best = r["params"]["K"]
        else:
            break
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--out", default=None, help="output JSON (default bench/results/tree_worth[_quick].json)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    n, Ks, bs = (128, [1, 2, 4, 8, 16, 32, 64], [1, 16]) if args.quick else (512, [2**i for i in range(11)], [1, 64])
    name = "tree_worth_quick.json" if args.quick else "tree_worth.json"
    out = args.out or str(pathlib.Path(__file__).parent / "results" / name)
    runs = []
    with threadpool_limits(1):
        keep = ("internal_api", "version", "num_threads")
        blas = [{k: v for k, v in lib.items() if k in keep} for lib in threadpool_info()]
        for b in bs:
            for K in Ks:
                res = query_benchmark(n=n, b=b, r=4, K=K, repeat=args.repeat, per_order_limit=2**30)
                s = res["seconds"]
                print(
                    f"b={b:3d} K={K:5d} tree {1e3 * s['tree_query']:8.3f} ms  "
                    f"cold {1e3 * s['tree_query_uncached']:8.3f} ms"
                    f"  loop {1e3 * s['loop']:8.3f} ms  dense {1e3 * s['per_order']:8.3f} ms",
                    flush=True,
                )
                runs.append(res)
    verdict = {
        f"b={b}": {
            "cached_tree_beats_loop_from_K": crossover(runs, b, "tree_query"),
            "cold_tree_beats_loop_from_K": crossover(runs, b, "tree_query_uncached"),
        }
        for b in bs
    }
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    path = write_json(
        out,
        {
            "benchmark": "tree_worth",
            "quick": args.quick,
            "blas_libraries": blas,
            "load_average": load,
            "verdict": verdict,
            "runs": runs,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
