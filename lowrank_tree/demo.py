"""The demo: fit, build, query and compare on a synthetic evolution.

``lowrank-tree demo`` runs :func:`run_demo` and prints :func:`format_report`;
``lowrank-tree fit FILE`` runs the same comparison on a user's stack.
"""

from __future__ import annotations

import operator
import os
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from ._validation import check_int
from .benchmark import loop_query, median_time, relative_error
from .diagnostics import numerical_difference_profile
from .fit import cascade_fit
from .synthetic import synthetic_evolution

__all__ = ["compare", "format_report", "run_demo", "plot_report"]


def run_demo(
    *, K: int = 128, m: int = 384, n: int = 384, b: int = 32, tol: float = 1e-6, seed: int = 0, repeat: int = 5
) -> dict[str, Any]:
    """Fit and query a built-in synthetic evolution; see :func:`compare`.

    Parameters
    ----------
    K : int
        Highest order of the family.
    m, n : int
        Matrix shape.
    b : int
        Batch size of the queries.
    tol : float
        Relative tolerance of the cascading fit.
    seed : int
        Seed of the family and of the query batch.
    repeat : int
        Timed repeats (medians are reported).

    Returns
    -------
    dict
        See :func:`compare`; ``"family"`` describes the synthetic data.
    """
    mats = synthetic_evolution(K=K, m=m, n=n, seed=seed)
    report = compare(mats, tol=tol, b=b, seed=seed, repeat=repeat)
    report["family"] = (
        f"synthetic_evolution(K={K}, m={m}, n={n}, seed={seed}): "
        "polynomial path W(t) = W0 + sum_j t^j/j! U_j V_j^T at t_k = k/K, "
        "plus a rank-1 drift per order and 1e-9 noise"
    )
    return report


def compare(
    mats: Any,
    *,
    tol: float | None = 1e-6,
    ranks: int | Sequence[int] | None = None,
    budget: int | None = None,
    b: int = 32,
    seed: int = 0,
    repeat: int = 5,
    method: str = "auto",
) -> dict[str, Any]:
    """Fit a cascade to ``mats`` and compare its tree with the baselines.

    Parameters
    ----------
    mats : array, shape (K + 1, m, n)
        The family ``M_0..M_K``.
    tol, ranks, budget, method
        Passed to :func:`~lowrank_tree.cascade_fit` (give at most one of
        ``tol``, ``ranks``, ``budget``).
    b : int
        Batch size of the timed queries.
    seed : int
        Seed of the query batch.
    repeat : int
        Timed repeats.

    Returns
    -------
    dict
        ``cascade``, ``tree``, per-order ``errors`` and ``ranks``, ``params``,
        ``memory`` (bytes), ``queries`` (per timed order: seconds of tree,
        dense, per-order and loop, and the tree's error), ``all_orders``
        (seconds), ``profile`` (difference profile of the first orders),
        ``timings`` of fit and build.
    """
    b, repeat = check_int(b, "b", 1), check_int(repeat, "repeat", 1)
    seed = check_int(seed, "seed", 0)
    mats = np.asarray(mats)
    K = mats.shape[0] - 1
    m, n = mats.shape[1:]
    if ranks is not None or budget is not None:
        tol = None
    t0 = time.perf_counter()
    cascade = cascade_fit(mats, ranks=ranks, tol=tol, budget=budget, method=method, seed=seed)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tree = cascade.tree()
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng(seed + 1)
    # X in the stack's dtype: a real X against complex factors would time NumPy's
    # much slower mixed-dtype GEMM instead of the query
    X = rng.standard_normal((n, b))
    if np.iscomplexobj(cascade.base):
        X = X + 1j * rng.standard_normal((n, b))
    X = X.astype(cascade.dtype)
    factors = [(c.U, c.V) for c in cascade.corrections]
    base = cascade.base

    queries = []
    for k in sorted({0, 1, K // 2, max(K - 1, 0), K} if K else {0}):
        if k > K:
            continue
        W_k = cascade.matrix(k)
        Y = tree.query(k, X)
        queries.append(
            {
                "k": k,
                "inner_dim": tree.query_cost(k)["inner_dim"],
                "error_vs_fit": relative_error(Y, W_k @ X),
                "error_vs_target": relative_error(Y, mats[k] @ X),
                # partial binds this iteration's k and W_k (a lambda would read them late)
                "tree": median_time(partial(tree.query, k, X), repeat=repeat),
                "dense": median_time(partial(operator.matmul, W_k, X), repeat=repeat),
                "per_order": median_time(partial(operator.matmul, mats[k], X), repeat=repeat),
                "loop": median_time(partial(loop_query, base, factors, k, X), repeat=repeat),
            }
        )
    all_tree = median_time(lambda: tree.all_orders(X), repeat=max(3, repeat // 2))
    all_dense = median_time(lambda: [mats[k] @ X for k in range(K + 1)], repeat=max(3, repeat // 2))
    all_err = relative_error(tree.all_orders(X), np.stack([cascade.matrix(k) @ X for k in range(K + 1)]))

    itemsize = mats.dtype.itemsize
    raw = sum(U.nbytes + V.nbytes for U, V in factors)
    # noise below the fit tolerance is not structure: count ranks at the same tolerance
    profile = numerical_difference_profile(mats[: min(K + 1, 8)], rtol=tol, max_order=min(K, 4))
    return {
        "shape": (m, n),
        "K": K,
        "b": b,
        "cascade": cascade,
        "tree": tree,
        "errors": list(cascade.errors),
        "ranks": list(cascade.ranks),
        "params": {"cascade": cascade.n_params, "dense": cascade.dense_params},
        "memory": {
            "tree": tree.nbytes,
            "raw_factors_and_base": raw + base.nbytes,
            "per_order_dense": (K + 1) * m * n * itemsize,
        },
        "queries": queries,
        "all_orders": {"tree": all_tree, "dense_per_order": all_dense, "error": all_err},
        "profile": profile,
        "timings": {"fit": fit_s, "build": build_s},
        "nodes": tree.nodes(),
    }


def ratio_text(stored: int, dense: int, *, digits: int = 1) -> str:
    """``'3.0x fewer'``, ``'1.7x more'`` or ``'as many'``: ``stored`` numbers against ``dense``.

    Examples
    --------
    >>> ratio_text(10, 30), ratio_text(30, 18), ratio_text(5, 5)
    ('3.0x fewer', '1.7x more', 'as many')
    """
    if stored == dense:
        return "as many"
    if stored < dense:
        return f"{dense / stored:.{digits}f}x fewer" if stored else "none stored"
    return f"{stored / dense:.{digits}f}x more" if dense else "more"


def _mb(x):
    return f"{x / 2**20:9.2f} MiB"


def format_report(rep: dict[str, Any]) -> str:
    """The demo's plain-text table (fit, memory, query-time ratios)."""
    m, n = rep["shape"]
    K, ranks, errors = rep["K"], rep["ranks"], rep["errors"]
    lines = []
    if "family" in rep:
        lines += [f"family: {rep['family']}", ""]
    lines.append(
        f"Cascading fit: K = {K} orders, {m} x {n}, fit {rep['timings']['fit']:.2f} s, "
        f"tree build {rep['timings']['build']:.2f} s"
    )
    if ranks:
        lines.append(
            f"  ranks r_1..r_K: min {min(ranks)}, median {int(np.median(ranks))}, max {max(ranks)}"
            f"  (first orders: {ranks[:8]})"
        )
    lines.append(
        f"  relative error ||W_k - M_k||_F/||M_k||_F: max {max(errors):.2e}, mean {float(np.mean(errors)):.2e}"
    )
    p = rep["params"]
    lines.append(
        f"  parameters: {p['cascade']:,} vs {p['dense']:,} for K+1 dense matrices "
        f"({ratio_text(p['cascade'], p['dense'])})"
    )
    mem = rep["memory"]
    lines += [
        "",
        "Memory",
        f"  segment tree (base + all nodes) {_mb(mem['tree'])}",
        f"  raw factors + base              {_mb(mem['raw_factors_and_base'])}",
        f"  one dense matrix per order      {_mb(mem['per_order_dense'])}"
        f"  ({mem['per_order_dense'] / mem['tree']:.1f}x the tree)",
    ]
    lines += [
        "",
        f"Query W_k X, batch b = {rep['b']} (median ms; ratios = baseline / tree)",
        f"  {'k':>5} {'inner':>6} {'tree':>8} {'dense':>8} {'per-ord':>8} {'loop':>8}"
        f" {'dense/tree':>10} {'loop/tree':>9} {'rel.err':>9}",
    ]
    for q in rep["queries"]:
        lines.append(
            f"  {q['k']:>5} {q['inner_dim']:>6} {1e3 * q['tree']:>8.3f} {1e3 * q['dense']:>8.3f}"
            f" {1e3 * q['per_order']:>8.3f} {1e3 * q['loop']:>8.3f}"
            f" {q['dense'] / q['tree']:>10.2f} {q['loop'] / q['tree']:>9.2f} {q['error_vs_fit']:>9.1e}"
        )
    a = rep["all_orders"]
    lines += [
        "",
        f"All orders W_0 X .. W_K X: tree {1e3 * a['tree']:.2f} ms, "
        f"{K + 1} dense GEMMs {1e3 * a['dense_per_order']:.2f} ms "
        f"({a['dense_per_order'] / a['tree']:.1f}x), rel. error {a['error']:.1e}",
    ]
    levels: dict[int, list[Any]] = {}
    for node in rep["nodes"]:
        levels.setdefault(node.level, []).append(node)
    lines += ["", "Tree nodes by level: level (count): max rank, dense nodes"]
    for h, nodes in sorted(levels.items()):
        lines.append(
            f"  {h:>2} ({len(nodes):>4}): max rank {max(nd.rank for nd in nodes):>4}, "
            f"dense {sum(nd.dense for nd in nodes)}"
        )
    prof = rep["profile"]
    lines += ["", f"Difference profile of the first orders (numerical ranks of Δ^k M): {list(prof.ranks)}"]
    return "\n".join(lines)


def plot_report(rep: dict[str, Any], path: str) -> str:
    """Write a 2x2 PNG summary of :func:`compare`'s report to ``path``.

    Needs matplotlib (``pip install "lowrank-tree[plot]"``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    K = rep["K"]
    orders = np.arange(1, K + 1)
    a = ax[0, 0]
    a.step(orders, rep["ranks"], where="mid", color="C0")
    a.set_xlabel("order k")
    a.set_ylabel("rank r_k", color="C0")
    a.yaxis.get_major_locator().set_params(integer=True)
    a2 = a.twinx()
    a2.semilogy(np.arange(K + 1), np.maximum(rep["errors"], 1e-17), ".", color="C3", ms=3)
    a2.set_ylabel("relative error", color="C3")
    a.set_title("Cascading fit: ranks and errors per order")

    a = ax[0, 1]
    nodes = rep["nodes"]
    lv = np.array([nd.level for nd in nodes])
    rk = np.array([nd.rank for nd in nodes])
    dn = np.array([nd.dense for nd in nodes])
    a.scatter(lv[~dn], rk[~dn], s=12, label="factored")
    if dn.any():
        a.scatter(lv[dn], rk[dn], s=12, marker="s", label="dense")
    a.set_xlabel("tree level")
    a.set_ylabel("node rank")
    a.set_title("Segment-tree node ranks (recompressed)")
    a.legend()

    a = ax[1, 0]
    ks = [q["k"] for q in rep["queries"]]
    for key, label in [("tree", "segment tree"), ("dense", "dense W_k"), ("loop", "per-correction loop")]:
        a.plot(ks, [1e3 * q[key] for q in rep["queries"]], "o-", label=label)
    a.set_xlabel("order k")
    a.set_ylabel("ms per query (median)")
    a.set_yscale("log")
    a.set_title(f"Query W_k X, b = {rep['b']}")
    a.legend()

    a = ax[1, 1]
    mem = rep["memory"]
    names = ["tree", "factors + base", "dense per order"]
    vals = [mem["tree"], mem["raw_factors_and_base"], mem["per_order_dense"]]
    a.bar(names, [v / 2**20 for v in vals], color=["C0", "C2", "C1"])
    a.set_ylabel("MiB")
    a.set_title("Memory")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
