"""What limiting BLAS to one thread does to the cascading fit of small matrices.

``cascade_fit`` runs its per-order SVDs and QRs with one BLAS thread when
``min(m, n) <= lowrank_tree.fit.SMALL_BLAS_MAX`` (threadpoolctl installed).
This script times, in one process, the fit of
``synthetic_evolution(K=32, m=192, n=192)`` (``tol=1e-6``, the demo's
setting) with that limit and without it (the threshold set to -1, so BLAS
keeps all its threads), and the same for a few sizes around the threshold,
and writes medians and ratios to ``bench/results/blas_threads.json`` with the
machine, the library versions, the BLAS thread count and the command.

Usage::

    python bench/blas_threads.py
    python bench/blas_threads.py --sizes 128,512,1024 --repeat 5
"""

import argparse
import pathlib
import sys

from lowrank_tree import cascade_fit, fit, synthetic_evolution
from lowrank_tree.benchmark import median_time, write_json


def timed_fit(mats, limited, repeat):
    saved = fit.SMALL_BLAS_MAX
    fit.SMALL_BLAS_MAX = max(saved, 10**9) if limited else -1
    try:
        return median_time(lambda: cascade_fit(mats, tol=1e-6), repeat=repeat, min_time=0.0)
    finally:
        fit.SMALL_BLAS_MAX = saved


def compare(K, m, n, repeat):
    mats = synthetic_evolution(K=K, m=m, n=n, seed=0)
    free = timed_fit(mats, False, repeat)
    one = timed_fit(mats, True, repeat)
    return {
        "family": f"synthetic_evolution(K={K}, m={m}, n={n}, seed=0)",
        "fit": "cascade_fit(mats, tol=1e-6)",
        "median_s_all_blas_threads": free,
        "median_s_one_blas_thread": one,
        "ratio_all_over_one": free / one,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per setting (median; default 5)")
    parser.add_argument(
        "--sizes",
        default="128,256,512,768",
        help="m = n of the K = 4 families of the size sweep (default 128,256,512,768)",
    )
    parser.add_argument(
        "--out", default=str(pathlib.Path(__file__).parent / "results" / "blas_threads.json"), help="output JSON path"
    )
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_info

    blas = [
        {k: lib.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]
    main_case = compare(32, 192, 192, args.repeat)
    sweep = [compare(4, s, s, max(3, args.repeat // 2)) for s in map(int, args.sizes.split(","))]
    result = {
        "benchmark": "blas_threads",
        "blas_libraries": blas,
        "small_blas_max": fit.SMALL_BLAS_MAX,
        "main": main_case,
        "size_sweep": sweep,
    }
    for case in [main_case] + sweep:
        print(
            f"{case['family']}: all threads {case['median_s_all_blas_threads']:.3f} s, one thread "
            f"{case['median_s_one_blas_thread']:.3f} s, ratio {case['ratio_all_over_one']:.2f}"
        )
    print(f"wrote {write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
