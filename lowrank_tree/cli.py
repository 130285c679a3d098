"""``lowrank-tree`` command line: demo, fit, fit-checkpoints, extract, check, bench.

Bad input never ends in a Python traceback: an option value, a file or a
stack the library refuses is reported as one line on stderr,
``lowrank-tree <command>: error: <what is wrong>``, with exit status 2, as
argparse reports its own usage errors.  Anything else (a bug) still raises.
"""

import argparse
import os
import sys
import zipfile

from ._version import __version__

__all__ = ["main"]


class _InputError(Exception):
    """Bad user input found after parsing (a file, a stack, an output path)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: message`` and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------
# Option value types (argparse reports their ArgumentTypeError on one line)
# --------------------------------------------------------------------------
def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _tolerance(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def _rank_list(text):
    """``4`` (every order) or ``4,4,2`` (one per order)."""
    parts = text.split(",")
    try:
        ranks = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a rank (an integer >= 0) or a comma-separated list of ranks, got {text!r}"
        ) from None
    if any(r < 0 for r in ranks):
        raise argparse.ArgumentTypeError(f"ranks must be >= 0, got {text!r}")
    return ranks[0] if len(ranks) == 1 else ranks


def _order_list(text):
    try:
        values = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers >= 1, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------
def _nearest_existing(path):
    """The longest existing prefix directory of ``path`` (where it would be created)."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent


def _check_output_file(path, option, create_dirs=False):
    """Refuse an output file that cannot be written, before any work is done.

    The folder must exist (or, with ``create_dirs``, be creatable: its nearest
    existing ancestor is a writable folder) and ``path`` must not be a folder.
    """
    if not path:
        raise _InputError(f"{option}: expected a file path, got an empty string")
    if os.path.isdir(path):
        raise _InputError(f"{option}: {path} is a directory; expected a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if create_dirs:
        folder = _nearest_existing(path)
    if not os.path.isdir(folder):
        why = "is not a directory" if os.path.exists(folder) else "does not exist"
        raise _InputError(f"{option}: cannot write {path}: the folder {folder} {why}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _InputError(f"{option}: cannot write {path}: the folder {folder} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise _InputError(f"{option}: cannot write {path}: the file is not writable")


def _check_output_folder(path, option):
    """Refuse an output folder that is a file or cannot be created."""
    if not path:
        raise _InputError(f"{option}: expected a folder, got an empty string")
    if os.path.exists(path) and not os.path.isdir(path):
        raise _InputError(f"{option}: {path} exists and is not a directory")
    where = path if os.path.isdir(path) else _nearest_existing(os.path.join(path, "x"))
    if not os.path.isdir(where) or not os.access(where, os.W_OK | os.X_OK):
        raise _InputError(f"{option}: cannot write into {path}: {where} is not a writable directory")


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------
def _demo(args):
    from .demo import format_report, plot_report, run_demo

    if not args.no_plot:
        _check_output_folder(args.out, "--out")
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
    """The stack ``(K + 1, m, n)`` in a ``.npy`` or ``.npz`` file, checked as the library would."""
    import numpy as np

    from ._validation import as_array, check_finite
    from .backends import namespace_for

    if not os.path.exists(path):
        raise _InputError(f"no such file: {path}")
    if os.path.isdir(path):
        raise _InputError(f"{path} is a directory; expected a .npy or .npz file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", ".npz"):
        raise _InputError(f"expected a .npy or .npz file, got {path}")
    try:
        # np.load decides by content and would call anything else "pickled data"
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if ext == ".npy" and magic != b"\x93NUMPY":
            raise _InputError(f"{path} is not a NumPy .npy file (no .npy header)")
        if ext == ".npz" and not zipfile.is_zipfile(path):
            raise _InputError(f"{path} is not a NumPy .npz file (not a zip archive)")
        if ext == ".npy":
            mats = np.load(path, allow_pickle=False)
            if not isinstance(mats, np.ndarray):
                raise _InputError(f"{path} is not a .npy array file")
        else:
            with np.load(path, allow_pickle=False) as data:
                if not hasattr(data, "files"):
                    raise _InputError(f"{path} is not a .npz archive")
                names = list(data.files)
                if "__metadata__" in names:
                    raise _InputError(
                        f"{path} is a saved tree or cascade (lowrank_tree.save), not a stack "
                        f"of matrices; open it with lowrank_tree.load"
                    )
                if key is not None:
                    if key not in names:
                        raise _InputError(f"{path} has no array {key!r} (it has {names})")
                    mats = data[key]
                elif not names:
                    raise _InputError(f"{path} holds no arrays")
                elif len(names) == 1:
                    mats = data[names[0]]
                else:  # several 2-D arrays: orders in the order they were saved
                    parts = [data[nm] for nm in names]
                    shapes = {nm: p.shape for nm, p in zip(names, parts)}
                    if any(p.ndim != 2 for p in parts) or len(set(shapes.values())) > 1:
                        raise _InputError(
                            f"{path} holds several arrays that are not 2-D arrays of one shape "
                            f"({', '.join(f'{nm} {s}' for nm, s in shapes.items())}); expected one "
                            f"(K+1, m, n) stack or one 2-D array per order (--key picks one array)"
                        )
                    mats = np.stack(parts)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, PermissionError):
            raise _InputError(f"cannot read {path}: permission denied") from None
        raise _InputError(f"cannot read {path} as a {ext} file: {exc}") from None
    if mats.ndim != 3:
        raise _InputError(f"expected a stack of shape (K+1, m, n) in {path}, got shape {mats.shape}")
    # The library's dtype rule (float16 -> float32, integers -> float64, others refused).
    mats = np.asarray(as_array(mats, namespace_for("numpy"), f"the stack in {path}"))
    if not np.isfinite(mats).all():
        k = int(np.flatnonzero(~np.isfinite(mats).reshape(mats.shape[0], -1).all(axis=1))[0])
        check_finite(mats[k], np, f"the stack in {path}, order {k},")
    return mats


def _fit_output(args):
    """The file ``save`` will write, checked before any work is done (``save``'s own rules)."""
    from .io import check_writable

    out = args.out if args.out is not None else os.path.splitext(args.file)[0] + ".cascade.npz"
    try:
        return check_writable(out)
    except OSError as exc:  # str(exc) would read "[Errno 2] ...: 'path'"
        raise _InputError(f"--out: {exc.strerror or exc}: {exc.filename}") from None
    except (ValueError, TypeError) as exc:
        raise _InputError(f"--out: {exc}") from None


def _fit(args):
    from .demo import compare, format_report, plot_report
    from .io import save

    mats = _load_stack(args.file, args.key)
    out = _fit_output(args)
    K, m, n = mats.shape[0] - 1, mats.shape[1], mats.shape[2]
    ranks = args.ranks
    if isinstance(ranks, list) and len(ranks) != K:
        raise _InputError(f"--ranks: expected one rank or {K} (one per order 1..K), got {len(ranks)}")
    for r in ranks if isinstance(ranks, list) else [ranks] if ranks is not None else []:
        if r > min(m, n):
            raise _InputError(f"--ranks: a rank must be at most min(m, n) = {min(m, n)}, got {r}")
    tol = args.tol if ranks is None and args.budget is None else None
    rep = compare(mats, tol=tol, ranks=ranks, budget=args.budget, b=args.b, method=args.method, repeat=args.repeat)
    print(f"file: {args.file}, stack {mats.shape}, {mats.dtype}\n")
    print(format_report(rep))
    written = save(rep["cascade"], out)
    print(f"\ncascade saved to {written}")
    if args.plot:
        print(f"plot written to {plot_report(rep, os.path.splitext(str(written))[0] + '.png')}")
    return 0


def _executor(args):
    """(executor, closer) for ``--workers`` / ``--scheduler``; (None, None) for a serial fit."""
    if args.scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise _InputError('--scheduler needs Dask distributed (pip install "lowrank-tree[distributed]")') from None
        try:
            client = Client(args.scheduler, timeout="10s")
        except (OSError, ValueError) as exc:
            raise _InputError(f"--scheduler: cannot connect to {args.scheduler}: {exc}") from None
        return client.get_executor(), client.close
    if args.workers is not None and args.workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fresh worker processes: a fork of a process that used torch's or BLAS's thread pools can hang
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        pool = ProcessPoolExecutor(args.workers, mp_context=ctx)
        return pool, pool.shutdown
    return None, None


def _fit_checkpoints(args):
    from .checkpoints import fit_checkpoints
    from .io import save

    for path in args.checkpoints:
        if not os.path.isfile(path):
            raise _InputError(
                f"no such checkpoint file: {path}" if not os.path.exists(path) else f"{path} is not a file"
            )
    out = _fit_output(args)  # checked before any work; nothing is written unless the fit succeeds
    executor, close = _executor(args)
    try:
        family = fit_checkpoints(
            args.checkpoints,
            tol=args.tol if args.ranks is None else None,
            ranks=args.ranks,
            include=args.include,
            exclude=args.exclude,
            method=args.method,
            executor=executor,
            progress=False if args.no_progress else None,
            reshape_conv=args.reshape_conv,
        )
    finally:
        if close is not None:
            close()
    print(family.summary())
    written = save(family, out)
    print(f"\nfamily saved to {written}")
    return 0


_EXTRACT_FORMATS = (".safetensors", ".npz", ".pt")


def _extract(args):
    from .checkpoints import CheckpointFamily

    ext = os.path.splitext(args.out)[1].lower()
    if ext not in _EXTRACT_FORMATS:
        raise _InputError(f"--out: expected a .safetensors, .npz or .pt file name, got {args.out}")
    _check_output_file(args.out, "--out")
    if not os.path.exists(args.family) and not os.path.exists(args.family + ".npz"):
        raise _InputError(f"no such file: {args.family}")
    family = CheckpointFamily.load(args.family)
    k = args.checkpoint
    if k >= family.num_checkpoints:
        raise _InputError(
            f"--checkpoint: expected an index in [0, {family.num_checkpoints - 1}] "
            f"(the family holds {family.num_checkpoints} checkpoints), got {k}"
        )
    framework = "numpy" if ext == ".npz" else "torch" if ext == ".pt" else family.framework
    if framework == "torch":
        try:
            import torch
        except ImportError:
            if ext == ".pt":
                raise _InputError("--out: writing a .pt file needs PyTorch") from None
            framework = "numpy"
    sd = family.state_dict(k, framework=framework)
    tmp = f"{args.out}.{os.getpid()}.tmp"
    try:
        if ext == ".npz":
            with open(tmp, "wb") as fh:
                _savez(fh, sd)
        elif ext == ".pt":
            torch.save(sd, tmp)
        else:
            try:
                if framework == "torch":
                    from safetensors.torch import save_file
                else:
                    from safetensors.numpy import save_file
            except ImportError:
                raise _InputError(
                    '--out: writing .safetensors needs safetensors (pip install "lowrank-tree[checkpoints]")'
                ) from None
            save_file({n: v.contiguous() if framework == "torch" else v for n, v in sd.items()}, tmp)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"checkpoint {k} of {args.family} written to {args.out}")
    return 0


def _savez(fh, arrays):
    import numpy as np

    np.savez(fh, **arrays)


def _check(args):
    try:
        from theory.cli import main as theory_main
    except ImportError as exc:
        print(
            f'lowrank-tree check: error: the theory extra is needed (pip install "lowrank-tree[theory]"): {exc}',
            file=sys.stderr,
        )
        return 2
    return theory_main(args.rest)


def _bench(args):
    from .benchmark import query_benchmark, write_json

    if args.out is not None:
        _check_output_file(args.out, "--out", create_dirs=True)
    runs = []
    print(
        f"{'K':>6} {'k':>6} {'inner':>6} {'tree ms':>8} {'dense ms':>9} {'loop ms':>8} "
        f"{'loop/tree':>9} {'tree/dense':>10} {'mem/bound':>9}"
    )
    for K in args.K:
        res = query_benchmark(n=args.n, b=args.b, r=args.r, K=K, repeat=args.repeat)
        runs.append(res)
        s, rat = res["seconds"], res["ratios"]
        print(
            f"{K:>6} {res['params']['k']:>6} {res['tree']['inner_dim']:>6} {1e3 * s['tree_query']:>8.3f} "
            f"{1e3 * s['dense']:>9.3f} {1e3 * s['loop']:>8.3f} {rat['loop_over_tree']:>9.2f} "
            f"{rat['tree_over_dense']:>10.2f} {rat['tree_memory_over_bound']:>9.2f}"
        )
    if args.out:
        print(f"wrote {write_json(args.out, {'benchmark': 'query', 'runs': runs})}")
    return 0


def build_parser():
    """The argument parser of ``lowrank-tree``."""
    parser = _Parser(
        prog="lowrank-tree", description="Evolving matrix families as a shared base plus cascaded low-rank corrections."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", help="fit, build, query and compare on a built-in synthetic evolution")
    p.add_argument(
        "--out", default="lowrank-tree-demo", help="folder for demo.png, created if missing (default: %(default)s)"
    )
    p.add_argument("--K", type=_positive_int, default=128, help="highest order (default: %(default)s)")
    p.add_argument("--n", type=_positive_int, default=384, help="matrix size n x n (default: %(default)s)")
    p.add_argument("--b", type=_positive_int, default=32, help="query batch size (default: %(default)s)")
    p.add_argument(
        "--tol", type=_tolerance, default=1e-6, help="relative fit tolerance, in [0, 1) (default: %(default)s)"
    )
    p.add_argument(
        "--seed", type=_nonnegative_int, default=0, help="seed of the family and the query batch (default: %(default)s)"
    )
    p.add_argument("--repeat", type=_positive_int, default=5, help="timed repeats (default: %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot (default: write it)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("fit", help="fit a cascade to a .npy/.npz stack (K+1, m, n) and save it")
    p.add_argument(
        "file",
        help="a .npy stack (K+1, m, n), or a .npz holding one such stack or one 2-D "
        "array per order (extensions in any case)",
    )
    p.add_argument(
        "--key",
        help="array name inside an .npz holding several arrays (default: the only array, or all of them in order)",
    )
    p.add_argument(
        "--tol", type=_tolerance, default=1e-6, help="relative tolerance per order, in [0, 1) (default: %(default)s)"
    )
    p.add_argument(
        "--ranks",
        type=_rank_list,
        help="rank of every order, or a comma-separated list with one per order; "
        "overrides --tol (default: chosen by --tol)",
    )
    p.add_argument(
        "--budget", type=_nonnegative_int, help="total correction parameters; overrides --tol (default: no budget)"
    )
    p.add_argument(
        "--method",
        default="auto",
        choices=["auto", "exact", "randomized"],
        help="SVD method (default: %(default)s: exact up to min(m, n) = 512)",
    )
    p.add_argument(
        "--b", type=_positive_int, default=32, help="query batch size for the timing table (default: %(default)s)"
    )
    p.add_argument("--repeat", type=_positive_int, default=3, help="timed repeats (default: %(default)s)")
    p.add_argument("--out", help="output .npz; its folder must exist (default: FILE stem + .cascade.npz)")
    p.add_argument("--plot", action="store_true", help="also write a PNG next to the output (default: off)")
    p.set_defaults(func=_fit)

    p = sub.add_parser(
        "fit-checkpoints", help="fit every 2-D parameter of a run's checkpoint files and save the family"
    )
    p.add_argument(
        "checkpoints", nargs="+", metavar="CKPT", help=".safetensors, .npz or .pt checkpoint files, in time order"
    )
    p.add_argument(
        "--tol",
        type=_tolerance,
        default=1e-4,
        help="relative tolerance per parameter and checkpoint (default: %(default)s)",
    )
    p.add_argument(
        "--ranks",
        type=_nonnegative_int,
        help="fixed rank of every correction; overrides --tol (default: chosen by --tol)",
    )
    p.add_argument(
        "--include",
        action="append",
        metavar="PATTERN",
        help="fit only parameters matching this glob (repeatable; default: every 2-D float parameter)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="store parameters matching this glob exactly (repeatable; default: none)",
    )
    p.add_argument(
        "--method", default="auto", choices=["auto", "exact", "randomized"], help="SVD method (default: %(default)s)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=_positive_int, help="fit parameters in N local worker processes (default: serial)"
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="fit on a Dask cluster, e.g. tcp://host:8786 (needs distributed; default: no cluster)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (default: shown on a terminal if tqdm is installed)"
    )
    p.add_argument(
        "--reshape-conv",
        action="store_true",
        help="also fit kernels of 3+ dimensions as (out, in * prod(kernel)) matrices (default: stored exactly)",
    )
    p.add_argument(
        "--out", required=True, help="output family file (.npz appended when missing); its folder must exist"
    )
    p.set_defaults(func=_fit_checkpoints)

    p = sub.add_parser("extract", help="rebuild one checkpoint of a saved family as a checkpoint file")
    p.add_argument("family", help="a family saved by fit-checkpoints")
    p.add_argument("--checkpoint", type=_nonnegative_int, required=True, help="checkpoint index k")
    p.add_argument("--out", required=True, help="output file: .safetensors, .npz or .pt (by extension)")
    p.set_defaults(func=_extract)

    p = sub.add_parser("check", help="run the theory package's claim checks (needs sympy)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to python -m theory (default: none)")
    p.set_defaults(func=_check)

    p = sub.add_parser("bench", help="time tree queries against dense and per-correction baselines")
    p.add_argument(
        "--K", type=_order_list, default=[16, 64, 256], help="comma-separated numbers of orders (default: 16,64,256)"
    )
    p.add_argument("--n", type=_positive_int, default=256, help="matrix size n x n (default: %(default)s)")
    p.add_argument("--b", type=_positive_int, default=32, help="query batch size (default: %(default)s)")
    p.add_argument("--r", type=_positive_int, default=4, help="rank of every correction (default: %(default)s)")
    p.add_argument("--repeat", type=_positive_int, default=5, help="timed repeats (default: %(default)s)")
    p.add_argument("--out", help="also write the JSON here (default: print only)")
    p.set_defaults(func=_bench)
    return parser


def main(argv=None):
    """Entry point of the ``lowrank-tree`` console script.

    Returns the exit status; bad input raises ``SystemExit(2)`` after one line
    on stderr.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:
        # everything after "check" belongs to the theory command line, options
        # first included (argparse's REMAINDER would refuse a leading "--seed 3")
        args = argparse.Namespace(command="check", rest=argv[1:], func=_check)
    else:
        args = parser.parse_args(argv)
    prog = f"{parser.prog} {args.command}"
    try:
        return args.func(args)
    except _InputError as exc:
        parser.exit(2, f"{prog}: error: {exc}\n")
    except (ValueError, TypeError, OSError) as exc:
        # The library refuses bad input with ValueError/TypeError naming the
        # argument; files fail with OSError.  Other exceptions are bugs: let them show.
        message = " ".join(str(exc).split()) or type(exc).__name__
        parser.exit(2, f"{prog}: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
