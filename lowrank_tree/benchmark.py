"""Timing and memory measurements of the tree against its baselines.

Used by ``bench/query.py``, ``lowrank-tree bench`` and ``lowrank-tree demo``.
Every measurement runs the baselines side by side in one process and reports
medians and ratios: absolute times on shared machines are noise.

Baselines
---------
dense
    ``W_k @ X`` with ``W_k`` materialised: one GEMM, the lower bound for a
    query.
per_order
    One dense matrix per order (the HOMO-style naive approach): a query is the
    same GEMM as ``dense`` on a stored matrix, but memory is ``K + 1`` dense
    matrices.  The stack is only allocated when it fits ``per_order_limit``
    bytes; its query time is then measured on the stored matrix, otherwise on
    the materialised ``W_k`` (the same operation) and flagged.
loop
    ``W_0 X + Σ_{i≤k} U_i (V_iᵀ X)``: the per-correction (PEFT-style) loop.
paper_bound
    The flop count of Song (2026)'s bound ``Tmat(n, n log k, b) +
    Σ Tmat(n, r_i, b)``, next to the tree's own flop count.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._norms import fro_norm
from ._version import __version__
from .backends import namespace_for, namespace_of
from .tree import LowRankSegmentTree

__all__ = [
    "loop_all_orders",
    "loop_query",
    "machine_info",
    "median_time",
    "query_benchmark",
    "relative_error",
    "worst_order",
    "write_json",
]


def machine_info() -> dict[str, Any]:
    """Machine, library versions and the command line, for benchmark JSON."""
    import scipy

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "threads": {
            k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
        },
    }
    info["lowrank_tree"] = __version__
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # pragma: no cover - show_config layout differs across versions
        pass
    return info


def median_time(fn: Callable[[], object], *, repeat: int = 7, min_time: float = 0.05) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs.

    Each run loops ``fn`` enough times to last ``min_time`` (calibrated once)
    so that fast calls are not dominated by timer resolution.
    """
    fn()  # warm-up: caches, lazy imports, BLAS thread start
    number, t0 = 1, time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    if one < min_time:
        number = max(1, int(min_time / max(one, 1e-7)))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples)


def interleaved_samples(
    fns: dict[str, Callable[[], object]], *, repeat: int, min_time: float, untimed_call_first: bool = False
) -> dict[str, list[float]]:
    """Seconds per call of every function in ``fns``, sampled round-robin.

    Each function is calibrated (after a warm-up call) to a loop of about
    ``min_time`` seconds; then ``repeat`` rounds time every loop once, in turn,
    so that a change in the load of a shared machine hits all of them alike:
    the ratios of their medians are measured side by side.  With
    ``untimed_call_first``, each sample starts with one untimed call, so that
    it starts from its own function's cache state, not the previous one's.

    Returns
    -------
    dict
        Name -> the ``repeat`` per-call times in seconds, in round order.
    """
    loops = {}
    for name, fn in fns.items():
        fn()  # warm-up: allocator, caches, lazy initialisation
        t0 = time.perf_counter()
        fn()
        loops[name] = (fn, max(1, int(min_time / max(time.perf_counter() - t0, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, (fn, number) in loops.items():
            if untimed_call_first:
                fn()
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - t0) / number)
    return samples


def worst_order(tree):
    """Order ``k`` whose query does the most work (largest low-rank inner dimension).

    Ties are broken by the number of dense canonical nodes, then by larger ``k``.
    """

    def work(k):
        cost = tree.query_cost(k)
        return cost["inner_dim"], cost["dense_nodes"], k

    return max(range(tree.max_order + 1), key=work)


def loop_query(base, factors, k, X):
    """The per-correction baseline ``W_0 X + Σ_{i≤k} U_i (V_iᵀ X)`` (NumPy)."""
    Y = base @ X
    for U, V in factors[:k]:
        Y += U @ (V.T @ X)
    return Y


def loop_all_orders(base, factors, X):
    """The per-correction baseline for every order at once: a running sum.

    ``Y_0 = W_0 X`` and ``Y_k = Y_{k−1} + U_k (V_kᵀ X)``: one base product and
    one pair of thin products per correction, on any backend's arrays.

    Parameters
    ----------
    base : array, shape (m, n)
        ``W_0``.
    factors : sequence of (U, V)
        ``U_i`` of shape (m, r_i) and ``V_i`` of shape (n, r_i), ``i = 1..K``.
    X : array, shape (n, b)

    Returns
    -------
    array, shape (K + 1, m, b)
        ``W_k X`` for ``k = 0..K``.

    See Also
    --------
    loop_query : The same loop for one order.
    LowRankSegmentTree.all_orders : What this baseline is compared with.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.ones((2, 1))
    >>> loop_all_orders(np.eye(2), [(u, u), (2 * u, u)], np.array([[1.0], [0.0]]))[:, :, 0]
    array([[1., 0.],
           [2., 1.],
           [4., 3.]])
    """
    xp = namespace_of(base, X)
    Y = base @ X
    out = [Y]
    for U, V in factors:
        Y = Y + U @ (xp.matrix_transpose(V) @ X)
        out.append(Y)
    return xp.stack(out)


def relative_error(a, b):
    """``‖a − b‖_F / ‖b‖_F`` (absolute when ``b`` is zero), scale-safe (see :func:`~lowrank_tree._norms.fro_norm`)."""
    xp = namespace_for("numpy")
    a, b = np.asarray(a), np.asarray(b)
    nb = fro_norm(b, xp)
    return fro_norm(a - b, xp) / (nb if nb else 1.0)


def query_benchmark(
    *,
    n: int = 1024,
    b: int = 64,
    r: int = 4,
    K: int = 64,
    m: int | None = None,
    seed: int = 0,
    repeat: int = 7,
    per_order_limit: int = 2**31,
    dtype: Any = np.float64,
) -> dict[str, Any]:
    """Time one worst-case prefix query of the tree against the baselines.

    Parameters
    ----------
    n : int
        Columns of each matrix (and rows of ``X``).
    b : int
        Batch size (columns of ``X``).
    r : int
        Rank of every correction.
    K : int
        Number of corrections (orders ``0..K``).
    m : int, optional
        Rows of each matrix; default ``n``.
    seed : int
        Seed of the random family (independent Gaussian factors: the worst case
        for compression, every node rank adds up).
    repeat : int
        Timed repeats; medians are reported.
    per_order_limit : int
        Largest stack of dense per-order matrices (bytes) actually allocated.

    Returns
    -------
    dict
        Times (seconds, medians), memory (bytes), ratios and the tree's shape
        of work, JSON-serialisable.
    """
    m = n if m is None else m
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((m, n)).astype(dtype)
    factors = [
        (rng.standard_normal((m, r)).astype(dtype) / math.sqrt(m), rng.standard_normal((n, r)).astype(dtype))
        for _ in range(K)
    ]
    X = rng.standard_normal((n, b)).astype(dtype)

    t0 = time.perf_counter()
    tree = LowRankSegmentTree(base, factors)
    build_time = time.perf_counter() - t0
    k = worst_order(tree)
    cost = tree.query_cost(k)

    W_k = tree.matrix(k)
    ref = base + sum((U @ V.T for U, V in factors[:k]), np.zeros_like(base))
    err = relative_error(tree.query(k, X), ref @ X)

    itemsize = np.dtype(dtype).itemsize
    per_order_bytes = (K + 1) * m * n * itemsize
    stack = None
    if per_order_bytes <= per_order_limit:
        stack = np.empty((K + 1, m, n), dtype=dtype)
        stack[0] = base
        for i, (U, V) in enumerate(factors, start=1):
            np.add(stack[i - 1], U @ V.T, out=stack[i])

    def cold():
        tree.clear_cache()
        return tree.query(k, X)

    times = {
        "tree_query": median_time(lambda: tree.query(k, X), repeat=repeat),
        "tree_query_uncached": median_time(cold, repeat=repeat),
        "dense": median_time(lambda: W_k @ X, repeat=repeat),
        "per_order": median_time((lambda: stack[k] @ X) if stack is not None else (lambda: W_k @ X), repeat=repeat),
        "loop": median_time(lambda: loop_query(base, factors, k, X), repeat=repeat),
    }
    raw = sum(U.nbytes + V.nbytes for U, V in factors)
    memory = {
        "tree": tree.nbytes,
        "tree_cache": tree.cache_nbytes,
        "raw_factors": raw,
        "base": base.nbytes,
        "tree_bound": (math.ceil(math.log2(K)) + 1) * raw + base.nbytes if K else base.nbytes,
        "per_order": per_order_bytes,
        "dense_one_order": m * n * itemsize,
    }
    log_k = max(1.0, math.log2(k)) if k else 0.0
    flops = {
        "tree": 2 * b * (m * n + cost["inner_dim"] * (m + n)),
        "dense": 2 * b * m * n,
        "loop": 2 * b * (m * n + k * r * (m + n)),
        "paper_bound": 2 * b * (n * n * log_k + k * r * n),
    }
    return {
        "params": {"m": m, "n": n, "b": b, "r": r, "K": K, "k": k, "dtype": np.dtype(dtype).name, "seed": seed},
        "tree": {
            "inner_dim": cost["inner_dim"],
            "dense_canonical_nodes": cost["dense_nodes"],
            "canonical_nodes": len(tree.canonical_nodes(k)),
            "build_seconds": build_time,
            "relative_error_vs_dense": err,
        },
        "per_order_materialised": stack is not None,
        "seconds": times,
        "memory_bytes": memory,
        "flops": flops,
        "ratios": {
            "loop_over_tree": times["loop"] / times["tree_query"],
            "tree_over_dense": times["tree_query"] / times["dense"],
            "tree_uncached_over_dense": times["tree_query_uncached"] / times["dense"],
            "per_order_over_tree": times["per_order"] / times["tree_query"],
            "tree_memory_over_bound": memory["tree"] / memory["tree_bound"],
            "per_order_memory_over_tree": memory["per_order"] / memory["tree"],
            "tree_flops_over_paper_bound": flops["tree"] / flops["paper_bound"] if flops["paper_bound"] else None,
        },
    }


def write_json(path: str | os.PathLike[str], payload: dict[str, Any]) -> str | os.PathLike[str]:
    """Write ``payload`` (plus machine info) as indented JSON; returns the path."""
    payload = {"machine": machine_info(), **payload}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")
    return path
