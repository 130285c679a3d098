"""``lowrank-tree`` command line: demo, fit, check, bench."""

import argparse
import os
import sys

__all__ = ["main"]


def _demo(args):
    from .demo import format_report, plot_report, run_demo

    rep = run_demo(K=args.K, m=args.n, n=args.n, b=args.b, tol=args.tol, seed=args.seed, repeat=args.repeat)
    print(format_report(rep))
    if not args.no_plot:
        try:
            path = plot_report(rep, os.path.join(args.out, "demo.png"))
            print(f"\nplot written to {path}")
        except ImportError:
            print('\nno plot: matplotlib is not installed (pip install "lowrank-tree[plot]")')
    return 0


def _load_stack(path, key):
    import numpy as np

    if not os.path.exists(path):
        raise SystemExit(f"lowrank-tree fit: no such file: {path}")
    if path.endswith(".npy"):
        mats = np.load(path, allow_pickle=False)
    elif path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            if key is not None:
                if key not in names:
                    raise SystemExit(f"lowrank-tree fit: {path} has no array {key!r} (it has {names})")
                mats = data[key]
            elif len(names) == 1:
                mats = data[names[0]]
            else:  # several 2-D arrays: orders in the order they were saved
                mats = np.stack([data[nm] for nm in names])
    else:
        raise SystemExit(f"lowrank-tree fit: expected a .npy or .npz file, got {path}")
    if mats.ndim != 3:
        raise SystemExit(f"lowrank-tree fit: expected a stack of shape (K+1, m, n), got shape {mats.shape}")
    return mats


def _fit(args):
    from .demo import compare, format_report, plot_report
    from .io import save

    mats = _load_stack(args.file, args.key)
    ranks = None
    if args.ranks is not None:
        ranks = [int(r) for r in args.ranks.split(",")]
        ranks = ranks[0] if len(ranks) == 1 else ranks
    tol = args.tol if ranks is None and args.budget is None else None
    rep = compare(mats, tol=tol, ranks=ranks, budget=args.budget, b=args.b, method=args.method,
                  repeat=args.repeat)
    print(f"file: {args.file}, stack {mats.shape}, {mats.dtype}\n")
    print(format_report(rep))
    out = args.out or os.path.splitext(args.file)[0] + ".cascade.npz"
    written = save(rep["cascade"], out)
    print(f"\ncascade saved to {written}")
    if args.plot:
        print(f"plot written to {plot_report(rep, os.path.splitext(out)[0] + '.png')}")
    return 0


def _check(args):
    try:
        from theory.__main__ import main as theory_main
    except ImportError as exc:
        print(f'lowrank-tree check needs the theory extra (pip install "lowrank-tree[theory]"): {exc}',
              file=sys.stderr)
        return 2
    return theory_main(args.rest)


def _bench(args):
    from .benchmark import query_benchmark, write_json

    Ks = [int(k) for k in args.K.split(",")]
    runs = []
    print(f"{'K':>6} {'k':>6} {'inner':>6} {'tree ms':>8} {'dense ms':>9} {'loop ms':>8} "
          f"{'loop/tree':>9} {'tree/dense':>10} {'mem/bound':>9}")
    for K in Ks:
        res = query_benchmark(n=args.n, b=args.b, r=args.r, K=K, repeat=args.repeat)
        runs.append(res)
        s, rat = res["seconds"], res["ratios"]
        print(f"{K:>6} {res['params']['k']:>6} {res['tree']['inner_dim']:>6} {1e3 * s['tree_query']:>8.3f} "
              f"{1e3 * s['dense']:>9.3f} {1e3 * s['loop']:>8.3f} {rat['loop_over_tree']:>9.2f} "
              f"{rat['tree_over_dense']:>10.2f} {rat['tree_memory_over_bound']:>9.2f}")
    if args.out:
        print(f"wrote {write_json(args.out, {'benchmark': 'query', 'runs': runs})}")
    return 0


def build_parser():
    """The argument parser of ``lowrank-tree``."""
    parser = argparse.ArgumentParser(
        prog="lowrank-tree",
        description="Evolving matrix families as a shared base plus cascaded low-rank corrections.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="fit, build, query and compare on a built-in synthetic evolution")
    p.add_argument("--out", default="lowrank-tree-demo", help="folder for demo.png (default: %(default)s)")
    p.add_argument("--K", type=int, default=128, help="highest order (default: %(default)s)")
    p.add_argument("--n", type=int, default=384, help="matrix size n x n (default: %(default)s)")
    p.add_argument("--b", type=int, default=32, help="query batch size (default: %(default)s)")
    p.add_argument("--tol", type=float, default=1e-6, help="relative fit tolerance (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=5, help="timed repeats (default: %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.set_defaults(func=_demo)

    p = sub.add_parser("fit", help="fit a cascade to a .npy/.npz stack (K+1, m, n) and save it")
    p.add_argument("file")
    p.add_argument("--key", help="array name inside an .npz holding several arrays")
    p.add_argument("--tol", type=float, default=1e-6, help="relative tolerance (default: %(default)s)")
    p.add_argument("--ranks", help="rank of every order, or a comma-separated list (overrides --tol)")
    p.add_argument("--budget", type=int, help="total correction parameters (overrides --tol)")
    p.add_argument("--method", default="auto", choices=["auto", "exact", "randomized"])
    p.add_argument("--b", type=int, default=32, help="query batch size for the timing table")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", help="output .npz (default: FILE stem + .cascade.npz)")
    p.add_argument("--plot", action="store_true", help="also write a PNG next to the output")
    p.set_defaults(func=_fit)

    p = sub.add_parser("check", help="run the theory package's claim checks (needs sympy)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to python -m theory")
    p.set_defaults(func=_check)

    p = sub.add_parser("bench", help="time tree queries against dense and per-correction baselines")
    p.add_argument("--K", default="16,64,256", help="comma-separated orders (default: %(default)s)")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--b", type=int, default=32)
    p.add_argument("--r", type=int, default=4)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", help="also write the JSON here")
    p.set_defaults(func=_bench)
    return parser


def main(argv=None):
    """Entry point of the ``lowrank-tree`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
