"""One-command GPU check: the CuPy and torch-cuda test cases and the GPU benchmarks, with versions, as JSON.

On a machine with a CUDA GPU and CuPy this

1. installs what is missing among the test dependencies (``array-api-compat``,
   ``array-api-strict``, ``threadpoolctl``, ``pytest``, ``hypothesis``) from wheels
   placed beside the checkout (``.whl/`` at the repository root), without a
   network: ``pip install --no-index --find-links .whl NAME``;
2. runs every ``cupy`` test case (``pytest -k cupy``) and every ``torch-cuda``
   one (``pytest -k torch-cuda``: the torch backend on device ``'cuda'``, when
   PyTorch sees a CUDA GPU; CuPy is not needed for those) and reports the counts;
3. times on the GPU, ``backend="cupy"``: the tree query at the worst order
   against one cuBLAS GEMM of the same total inner dimension ``n + c`` (the
   achieved fraction of the GEMM's FLOP/s; target >= 0.5), ``all_orders``
   against ``K + 1`` separate GEMM pairs and against ``K`` empty kernel launches
   (a pass made of a handful of kernels costs far less than ``K`` launches),
   the build, ``update``, ``append`` and ``cascade_fit``;
4. writes ``bench/results/gpu_check.json``: device, driver, CUDA runtime, CuPy,
   NumPy versions, the command, every step's result or the reason it was skipped.

Without a GPU (or with ``--dry-run``) the same steps run on the CPU with the
``numpy`` backend at a small size, the GPU parts skipped with a printed reason,
and the JSON says so (``"mode": "dry-run"``).

Usage::

    python bench/gpu_check.py                 # on the GPU machine, about 2-5 minutes
    python bench/gpu_check.py --dry-run       # anywhere, seconds
    pip download --no-deps array-api-compat -d .whl   # beforehand, on a machine with a network

The whole run is bounded by ``--budget`` seconds (default 480): a step that
would start after the budget is skipped and reported as such.
"""

import argparse
import importlib
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: import name -> distribution name, for what the test suite needs beyond CuPy and the core
NEEDED = {
    "numpy": "numpy",
    "scipy": "scipy",
    "sympy": "sympy",
    "numba": "numba",
    "pytest": "pytest",
    "hypothesis": "hypothesis",
    "array_api_compat": "array-api-compat",
    "array_api_strict": "array-api-strict",
    "threadpoolctl": "threadpoolctl",
}


def log(msg):
    print(f"[gpu_check] {msg}", flush=True)


def _version(mod):
    try:
        return getattr(importlib.import_module(mod), "__version__", "installed")
    except Exception:  # ImportError, or a library that fails to initialise
        return None


def ensure_dependencies(wheels, install):
    """Versions of the needed modules; install the missing ones from ``wheels`` (no network)."""
    versions = {mod: _version(mod) for mod in NEEDED}
    missing = [mod for mod, v in versions.items() if v is None]
    report = {"versions": versions, "missing": missing, "installed": [], "wheels_dir": str(wheels)}
    if not missing:
        return report
    if not install:
        report["note"] = "not installing (--no-install)"
        return report
    if not wheels.is_dir() or not any(wheels.iterdir()):
        report["note"] = (
            f"no wheels in {wheels}; fill it on a machine with a network: "
            f"pip download --no-deps {' '.join(NEEDED[m] for m in missing)} -d {wheels}"
        )
        log(report["note"])
        return report
    for mod in missing:
        cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), NEEDED[mod]]
        log("installing: " + " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            report["installed"].append(NEEDED[mod])
        else:
            report.setdefault("install_errors", {})[NEEDED[mod]] = proc.stderr[-2000:]
    importlib.invalidate_caches()
    report["versions"] = {mod: _version(mod) for mod in NEEDED}
    return report


def detect_gpu():
    """``(info, None)`` for a usable CUDA GPU with CuPy, else ``(None, reason)``."""
    try:
        import cupy
    except Exception as exc:
        return None, f"CuPy not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"no CUDA device ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "no CUDA device"
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])

    def cuda_version(v):
        return f"{v // 1000}.{(v % 1000) // 10}"

    return {
        "device": name,
        "device_count": count,
        "cupy": cupy.__version__,
        "driver_cuda": cuda_version(cupy.cuda.runtime.driverGetVersion()),
        "runtime_cuda": cuda_version(cupy.cuda.runtime.runtimeGetVersion()),
        "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
    }, None


def detect_torch_cuda():
    """``(info, None)`` when PyTorch is installed and sees a CUDA GPU, else ``(None, reason)``."""
    try:
        import torch
    except Exception as exc:
        return None, f"PyTorch not importable ({type(exc).__name__}: {exc})"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__}: torch.cuda.is_available() is False"
    return {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "device": torch.cuda.get_device_name(0)}, None


def nvidia_smi():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_tests(keyword, timeout):
    """``pytest -k keyword`` over the suite; counts parsed from the summary line."""
    cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "-k", keyword, "-rs"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(cmd), "status": f"timed out after {timeout} s"}
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    counts = {}
    for part in tail[0].replace("=", " ").split(","):
        words = part.split()
        if len(words) >= 2 and words[0].isdigit():
            counts[words[1]] = int(words[0])
    return {
        "command": " ".join(cmd),
        "returncode": proc.returncode,
        "summary": tail[0].strip(),
        "counts": counts,
        "seconds": round(time.perf_counter() - t0, 1),
        "output_tail": proc.stdout[-3000:] if proc.returncode else "",
    }


def _timer(sync):
    def time_it(fn, repeat=5):
        fn()
        sync()
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            sync()
            samples.append(time.perf_counter() - t0)
        samples.sort()
        return samples[len(samples) // 2]

    return time_it


def benchmarks(backend, n, K, r, b, deadline):
    """Timings of the tree on ``backend`` (one dict per measurement)."""
    import numpy as np

    from lowrank_tree import LowRankSegmentTree, cascade_fit
    from lowrank_tree.backends import namespace_for
    from lowrank_tree.benchmark import worst_order

    xp = namespace_for(backend)
    if backend == "cupy":
        import cupy

        sync = cupy.cuda.get_current_stream().synchronize
    else:

        def sync():
            return None

    time_it = _timer(sync)
    rng = np.random.default_rng(0)
    out = {"backend": backend, "n": n, "K": K, "r": r, "b": b, "dtype": "float64"}
    base = rng.standard_normal((n, n))
    factors = [(rng.standard_normal((n, r)), rng.standard_normal((n, r))) for _ in range(K)]
    t0 = time.perf_counter()
    tree = LowRankSegmentTree(xp.asarray(base), [(xp.asarray(U), xp.asarray(V)) for U, V in factors], backend=backend)
    sync()
    out["build_s"] = time.perf_counter() - t0
    k = worst_order(tree)
    c = tree.query_cost(k)
    X = xp.asarray(rng.standard_normal((n, b)))
    out["order"], out["inner_dim"], out["dense_nodes"] = k, c["inner_dim"], c["dense_nodes"]
    out["query_s"] = time_it(lambda: tree.query(k, X))
    out["query_cold_s"] = time_it(lambda: (tree.clear_cache(), tree.query(k, X)))
    # one GEMM of the same total inner dimension: what the hardware does with the same work
    inner = n + c["inner_dim"]
    A, B = xp.asarray(rng.standard_normal((n, inner))), xp.asarray(rng.standard_normal((inner, b)))
    out["gemm_same_inner_s"] = time_it(lambda: A @ B)
    # useful work of the query: one m x n GEMM (base and dense nodes folded) and the pair U (Vᵀ X)
    useful = 2 * n * b * (n + 2 * c["inner_dim"])
    gemm_flops = 2 * n * inner * b
    out["query_gflops"] = useful / out["query_s"] / 1e9
    out["gemm_gflops"] = gemm_flops / out["gemm_same_inner_s"] / 1e9
    out["query_fraction_of_gemm_flops"] = out["query_gflops"] / out["gemm_gflops"]
    out["query_fraction_target_met"] = out["query_fraction_of_gemm_flops"] >= 0.5
    ks = xp.asarray(rng.integers(0, K + 1, b))
    out["mixed_query_s"] = time_it(lambda: tree.query(ks, X))
    if time.perf_counter() < deadline:
        out["all_orders_s"] = time_it(lambda: tree.all_orders(X), repeat=3)
        leaves, W0 = tree.corrections, tree.base  # fetched once: on CuPy these are copies
        out["k_plus_1_gemm_pairs_s"] = time_it(
            lambda: [W0 @ X] + [L.U @ (xp.matrix_transpose(L.V) @ X) for L in leaves], repeat=3
        )
        if backend == "cupy":
            import cupy

            empty = cupy.RawKernel(r'extern "C" __global__ void gpu_check_empty() {}', "gpu_check_empty")
            out["k_empty_launches_s"] = time_it(lambda: [empty((1,), (1,), ()) for _ in range(K)], repeat=3)
            out["all_orders_over_k_launches"] = out["all_orders_s"] / out["k_empty_launches_s"]
    if time.perf_counter() < deadline:
        U, V = xp.asarray(rng.standard_normal((n, r))), xp.asarray(rng.standard_normal((n, r)))
        out["update_s"] = time_it(lambda: tree.update(K // 2 + 1, (U, V)), repeat=3)
        t0 = time.perf_counter()
        tree.append((U, V))
        sync()
        out["append_s"] = time.perf_counter() - t0
    if time.perf_counter() < deadline:
        Kf = min(K, 16)
        mats = xp.asarray(np.cumsum(np.stack([base] + [U @ V.T for U, V in factors[:Kf]]), axis=0))
        t0 = time.perf_counter()
        casc = cascade_fit(mats, tol=1e-8, backend=backend)
        sync()
        out["fit_s"], out["fit_K"], out["fit_ranks"] = time.perf_counter() - t0, Kf, list(casc.ranks)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="skip the GPU parts even if a GPU is present")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_check.json"))
    parser.add_argument("--wheels", default=str(ROOT / ".whl"), help="folder of wheels to install from")
    parser.add_argument("--no-install", action="store_true", help="report missing modules, install nothing")
    parser.add_argument("--no-tests", action="store_true", help="skip the pytest step")
    parser.add_argument("--n", type=int, default=None, help="matrix size (default 4096 on a GPU, 128 dry)")
    parser.add_argument("--K", type=int, default=None, help="corrections (default 1024 on a GPU, 32 dry)")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for the whole run")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    deadline = start + args.budget
    sys.path.insert(0, str(ROOT))
    report = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv[:1] + list(argv or sys.argv[1:])),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    report["dependencies"] = ensure_dependencies(pathlib.Path(args.wheels), install=not args.no_install)
    gpu, reason = (None, "--dry-run given") if args.dry_run else detect_gpu()
    report["mode"] = "gpu" if gpu else "dry-run"
    report["gpu"] = gpu
    report["nvidia_smi"] = nvidia_smi()
    if gpu is None:
        report["gpu_skipped_reason"] = reason
        log(f"DRY RUN: GPU parts skipped: {reason}")
    else:
        log(f"GPU: {gpu}")
    from lowrank_tree.backends import BACKENDS

    report["numpy"] = _version("numpy")
    report["lowrank_tree_backends"] = list(BACKENDS)
    # tests
    tests = {}
    if args.no_tests:
        tests["cupy"] = {"status": "skipped: --no-tests"}
    elif gpu is None:
        tests["cupy"] = {"status": f"skipped: {reason}"}
    else:
        log("running the cupy test cases")
        tests["cupy"] = run_tests("cupy", timeout=max(30, int(min(300, deadline - time.perf_counter() - 120))))
        log(f"cupy tests: {tests['cupy'].get('summary', tests['cupy'].get('status'))}")
    torch_gpu, torch_reason = (None, "--dry-run given") if args.dry_run else detect_torch_cuda()
    report["torch_cuda"] = torch_gpu
    if "torch" not in BACKENDS:
        tests["torch-cuda"] = {"status": "no torch backend yet", "torch": _version("torch")}
        log("torch: no torch backend yet")
    elif args.no_tests or torch_gpu is None:
        tests["torch-cuda"] = {"status": f"skipped: {'--no-tests' if args.no_tests else torch_reason}"}
        log(f"torch-cuda tests: {tests['torch-cuda']['status']}")
    else:
        log("running the torch-cuda test cases")
        timeout = max(30, int(min(200, deadline - time.perf_counter() - 90)))
        tests["torch-cuda"] = run_tests("torch-cuda", timeout=timeout)
        log(f"torch-cuda tests: {tests['torch-cuda'].get('summary', tests['torch-cuda'].get('status'))}")
    report["tests"] = tests
    # benchmarks
    backend = "cupy" if gpu else "numpy"
    n = args.n or (4096 if gpu else 128)
    K = args.K or (1024 if gpu else 32)
    log(f"benchmarks on {backend}: n={n} K={K}" + ("" if gpu else " (CPU dry run: timings are not GPU figures)"))
    try:
        report["benchmarks"] = benchmarks(
            backend, n=n, K=K, r=16 if gpu else 4, b=256 if gpu else 16, deadline=deadline
        )
    except Exception as exc:  # report, do not lose the rest of the JSON
        report["benchmarks"] = {"error": f"{type(exc).__name__}: {exc}"}
    bm = report["benchmarks"]
    if "query_fraction_of_gemm_flops" in bm:
        log(f"query at {bm['query_fraction_of_gemm_flops']:.2f} of one GEMM's FLOP/s (target >= 0.5)")
    report["seconds"] = round(time.perf_counter() - start, 2)
    report["within_budget"] = report["seconds"] <= args.budget
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"wrote {path} in {report['seconds']} s ({report['mode']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
