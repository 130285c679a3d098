"""What the first call of the numba backend costs: JIT compilation, then loading from the cache.

Runs the same small workload (build a tree, update, append, query and all orders
with a batch wide enough for the fused kernel, for float64 and float32) in
fresh Python processes: first with an empty Numba cache directory (every
kernel compiles), then twice more with the cache that run left behind (the
kernels load from disk), and once on the numpy backend for comparison.
Writes ``bench/results/numba_first_call.json``.

Usage::

    python bench/numba_first_call.py
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from lowrank_tree.benchmark import write_json

WORKLOAD = """
import time
t0 = time.perf_counter()
import numpy as np
import lowrank_tree as lrt
t1 = time.perf_counter()
rng = np.random.default_rng(0)
for dtype in (np.float64, np.float32):
    base = rng.standard_normal((20, 16)).astype(dtype)
    deltas = [(rng.standard_normal((20, 2)).astype(dtype), rng.standard_normal((16, 2)).astype(dtype))
              for _ in range(9)]
    tree = lrt.LowRankSegmentTree(base, deltas, backend=BACKEND)
    tree.update(3, deltas[0])
    tree.append(deltas[1])
    X = rng.standard_normal((16, 32)).astype(dtype)
    tree.query(7, X)
    tree.all_orders(X)
t2 = time.perf_counter()
print(f"{t1 - t0} {t2 - t1}")
"""


def run(backend, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", WORKLOAD.replace("BACKEND", repr(backend))],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    imp, work = (float(v) for v in out.stdout.split())
    return {"import_s": imp, "workload_s": work}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "numba_first_call.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        cold = run("numba", cache)
        warm = [run("numba", cache) for _ in range(2)]
        numpy = run("numpy", cache)
    result = {
        "benchmark": "numba_first_call",
        "cold_cache": cold,
        "warm_cache": warm,
        "numpy_backend": numpy,
        "compile_overhead_s": cold["workload_s"] - numpy["workload_s"],
        "cached_overhead_s": min(w["workload_s"] for w in warm) - numpy["workload_s"],
    }
    import numba

    result["numba"] = numba.__version__
    print(json.dumps({k: v for k, v in result.items() if k != "benchmark"}, indent=1))
    print(f"wrote {write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
