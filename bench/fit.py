"""The cascading fit: ``method="auto"``, ``"exact"`` and ``"randomized"`` side by side, against the floor.

Families (all fitted in this one process, each method on the same arrays):

* ``demo`` -- the demo's ``synthetic_evolution(K=128, m=384, n=384)``, ``tol=1e-6``;
* ``mlp`` -- a real training run: a small MLP (64-256-256-10, ReLU, softmax)
  trained here with minibatch SGD on scikit-learn's ``load_digits()``; the
  256×256 hidden-to-hidden weight (float32) is saved at every step of a
  600-step run (601 matrices), ``tol=1e-2``;
* ``noise`` -- independent Gaussian matrices (full-rank residuals), ``tol=1e-2``;
* ``lowrank`` -- a rank-4 step per order (exactly low-rank residuals), ``tol=1e-10``.

For each family and method (the three interleaved run by run, in an order that rotates from run
to run): the median wall time, the ranks, the reported
and the true relative errors (the true error recomputed densely), the bytes
the cascade holds against its ``nbytes``, and the peak memory of one more fit
under ``tracemalloc``.  The *floor* is measured in the same script,
interleaved with the three methods: read every matrix once, form
``M_k − M_{k−1}`` and apply one Gaussian sketch with as many columns as the
randomized fit's rank of that order.  Times are medians of wall time and,
beside them, of this process's CPU time (less disturbed when other jobs share
the cores); the load average before and after the run is in the JSON's
machine block.  Compare ratios, not absolute times.

Where the randomized fit's time goes, per order (CPU time of each call in a
loop on one BLAS thread, 2-core machine; a sketched order also pays cache
misses and Python between the calls):

* ``demo`` (384², float64, ranks 5–7): ``R = M − Ŵ`` 37 µs, three norms
  (dot products) 21 µs each, one plain sketch of ``r_{k−1} + oversample = 17``
  columns: Gaussian draw 62 µs, ``R Ω`` 160 µs, ``Qᵀ R`` 137 µs, QR 37 µs,
  SVD of the 17×384 ``B`` 91 µs; ``Ŵ_k = Ŵ_{k−1} + U Vᵀ`` 96 µs, its error
  ``M − Ŵ_k`` 37 µs.  About 15 m×n array reads and writes where the floor
  makes 4 (two reads and a write for the difference, one read for its sketch).
* ``lowrank`` (256², float64, rank 4): the same steps with a 14-column sketch
  (draw 34 µs, ``R Ω`` and ``Qᵀ R`` 37 µs each, QR 19 µs, SVD 54 µs), no power
  iterations and no separate residual (``tol = 1e-10`` is below what the
  range finder's indicator resolves: the fitted order's measured error
  decides); the floor's whole order is 59 µs.
* ``mlp`` (256², float32, ranks 0–6): the residual's spectrum is flat around
  ``tol`` (``tol·‖M_k‖`` is 0.61–1.0 of ``‖R_k‖``), so a plain sketch proves
  its rank minimal in 2 of 348 sketched orders; the others need two power
  iterations (with 16 columns, a plain sketch, or one power iteration, finds
  the minimal rank in 253 and 342 of 348 orders, two in all 348); with the
  ``r_{k−1} + 10`` ≤ 16 columns used: 6 products with ``R`` (up to 26–30 µs
  each), 5 QRs (up to 15 µs each), the sketch's SVD (up to 56 µs), the
  Gaussian draw (up to 37 µs) -- about 300 µs of a sketched order,
  against 26 µs for the floor's whole order (the floor draws and multiplies
  ``r_k`` ≤ 6 columns, and about 250 of the 600 orders are rank 0, for which
  the fit costs a difference and two norms where the floor costs the
  difference).
* ``noise`` (256², float64, rank 246–247 of 256): the range finder stops
  after one block (the energy captured per column shows it cannot reach the
  tolerance within ``min(m, n) / 2`` columns) and the order takes the full
  SVD: 11 ms of about 15 ms per order; the floor's 247-column sketch costs
  1.4 ms.  No method that chooses a rank for a tolerance can skip that
  factorisation (the sketch alone does not give the singular values).

Usage::

    python bench/fit.py            # full sizes, JSON to bench/results/fit.json
    python bench/fit.py --quick    # smaller families (a minute or two)
"""

import argparse
import os
import pathlib
import statistics
import sys
import time
import tracemalloc
import warnings

import numpy as np

from lowrank_tree import cascade_fit, synthetic_evolution
from lowrank_tree._threads import small_blas
from lowrank_tree.benchmark import machine_info, write_json
from lowrank_tree.fit import SMALL_BLAS_MAX, DenseCorrectionWarning

METHODS = ("auto", "exact", "randomized")


# ----------------------------------------------------------------------------
# Families
# ----------------------------------------------------------------------------
def mlp_training_run(steps, seed=0, hidden=256, batch=64, lr=0.05, momentum=0.9):
    """Hidden-to-hidden weights (hidden×hidden, float32) of an MLP trained on digits, one per step."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    sizes = [X.shape[1], hidden, hidden, 10]
    Ws = [(rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    vel = [np.zeros_like(W) for W in Ws] + [np.zeros_like(b) for b in bs]
    out = [Ws[1].copy()]
    for _ in range(steps):
        idx = rng.integers(0, X.shape[0], batch)
        acts = [X[idx]]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = acts[-1] @ W + b
            acts.append(np.maximum(z, 0) if i < len(Ws) - 1 else z)
        logits = acts[-1] - acts[-1].max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(batch), y[idx]] -= 1.0
        g = p / batch
        grads_W, grads_b = [None] * len(Ws), [None] * len(Ws)
        for i in range(len(Ws) - 1, -1, -1):
            grads_W[i] = acts[i].T @ g
            grads_b[i] = g.sum(axis=0)
            if i:
                g = (g @ Ws[i].T) * (acts[i] > 0)
        for j, gr in enumerate(grads_W + grads_b):
            vel[j] = momentum * vel[j] - lr * gr
        for i in range(len(Ws)):
            Ws[i] = Ws[i] + vel[i]
            bs[i] = bs[i] + vel[len(Ws) + i]
        out.append(Ws[1].copy())
    return np.stack(out)


def families(quick):
    rng = np.random.default_rng(1)
    if quick:
        demo = dict(K=16, m=192, n=192)
        steps, noise_shape, low = 200, (8, 128, 128), (16, 128, 128)
    else:
        demo = dict(K=128, m=384, n=384)
        steps, noise_shape, low = 600, (16, 256, 256), (64, 256, 256)
    K, m, n = low
    base = rng.standard_normal((m, n))
    steps_lr = [rng.standard_normal((m, 4)) @ rng.standard_normal((4, n)) for _ in range(K)]
    lowrank = np.cumsum(np.stack([base] + steps_lr), axis=0)
    return [
        (
            "demo",
            f"synthetic_evolution(K={demo['K']}, m={demo['m']}, n={demo['n']}, seed=0)",
            synthetic_evolution(seed=0, **demo),
            1e-6,
        ),
        (
            "mlp",
            f"MLP 64-256-256-10 on load_digits, {steps} SGD steps, hidden 256x256 weight (float32)",
            mlp_training_run(steps),
            1e-2,
        ),
        (
            "noise",
            f"independent standard normal, K={noise_shape[0]}, {noise_shape[1]}x{noise_shape[2]}",
            rng.standard_normal((noise_shape[0] + 1,) + noise_shape[1:]),
            1e-2,
        ),
        ("lowrank", f"cumulative rank-4 steps, K={K}, {m}x{n}", lowrank, 1e-10),
    ]


# ----------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------
def timed(fn, repeat, cpu=None):
    """Median wall time of ``repeat`` calls (and the last result); the CPU times go to ``cpu`` if given."""
    samples, result = [], None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    return statistics.median(samples), result


def true_errors(c, mats):
    W = np.array(c.base, dtype=np.float64)
    errs = [0.0]
    for k, d in enumerate(c.corrections, start=1):
        W += np.asarray(d.U, np.float64) @ np.asarray(d.V, np.float64).T
        M = np.asarray(mats[k], np.float64)
        nm = np.linalg.norm(M)
        errs.append(float(np.linalg.norm(W - M) / (nm if nm > 0 else 1.0)))
    return errs


def held_bytes(c):
    """Bytes of every distinct buffer the cascade keeps alive (the owners of its arrays)."""
    arrays = [c._base] + [a for d in c._corrections for a in (d._U, d._V)]
    owners = {}
    for a in arrays:
        o = a
        while isinstance(o.base, np.ndarray):
            o = o.base
        owners[id(o)] = o.nbytes
    return sum(owners.values())


def floor_runner(mats, ranks, seed=0):
    """The floor as a callable: read each matrix once, form M_k − M_{k−1}, apply one rank-r_k Gaussian sketch."""
    rng = np.random.default_rng(seed)
    small = min(mats.shape[1:]) <= SMALL_BLAS_MAX

    def run():
        # the same BLAS thread policy as the fit's own loop
        with small_blas(small):
            for k in range(1, mats.shape[0]):
                R = mats[k] - mats[k - 1]
                r = ranks[k - 1]
                if r:
                    R @ rng.standard_normal((R.shape[1], r)).astype(R.dtype, copy=False)

    return run


def peak_memory(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_memory_quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DenseCorrectionWarning)
        return peak_memory(fn)


def run_family(name, desc, mats, tol, repeat):
    K = mats.shape[0] - 1
    m, n = mats.shape[1:]
    row = {
        "family": name,
        "description": desc,
        "K": K,
        "shape": [m, n],
        "dtype": str(mats.dtype),
        "tol": tol,
        "dense_stack_bytes": int(mats.nbytes),
        "methods": {},
    }

    def fitter(method):
        return lambda: cascade_fit(mats, tol=tol, method=method, seed=0)

    # The floor sketches with the randomized fit's ranks (seed 0: the timed fits find the same).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DenseCorrectionWarning)
        floor = floor_runner(mats, fitter("randomized")().ranks)
    # Methods and floor interleaved run by run, so that a change in the
    # machine's load hits all four alike.
    entries = METHODS + ("floor",)
    samples = {e: [] for e in entries}
    cpu = {e: [] for e in entries}
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DenseCorrectionWarning)  # expected on the noise family
        for i in range(repeat):
            # the order rotates run by run, so that no entry always follows the same one
            for e in entries[i % len(entries) :] + entries[: i % len(entries)]:
                t, fits[e] = timed(floor if e == "floor" else fitter(e), 1, cpu[e])
                samples[e].append(t)
    for method in METHODS:
        fit = fitter(method)
        t, c = statistics.median(samples[method]), fits[method]
        errs = true_errors(c, mats)
        rep = c.errors
        row["methods"][method] = {
            "median_s": t,
            "median_cpu_s": statistics.median(cpu[method]),
            "repeat": repeat,
            "used": c.method,
            "rank_sum": int(sum(c.ranks)),
            "max_rank": int(max(c.ranks, default=0)),
            "ranks_head": c.ranks[:8],
            "max_reported_error": float(max(rep)),
            "max_true_error": float(max(errs)),
            "max_abs_reported_minus_true": float(max(abs(a - b) for a, b in zip(rep, errs))),
            "all_true_errors_within_tol": bool(all(e <= tol * (1 + 1e-6) for e in errs)),
            "nbytes": int(c.nbytes),
            "held_bytes": int(held_bytes(c)),
            "peak_tracemalloc_bytes": int(peak_memory_quiet(fit)),
        }
        print(
            f"  {name:8s} {method:10s} {t:8.3f} s  ranks sum {sum(c.ranks):6d}  "
            f"err {max(rep):.2e} (true {max(errs):.2e})  held/nbytes "
            f"{held_bytes(c) / max(c.nbytes, 1):.2f}",
            flush=True,
        )
    ms = row["methods"]
    best = min(ms["exact"]["median_s"], ms["randomized"]["median_s"])
    row["auto_over_best"] = ms["auto"]["median_s"] / best
    best_cpu = min(ms["exact"]["median_cpu_s"], ms["randomized"]["median_cpu_s"])
    row["auto_over_best_cpu"] = ms["auto"]["median_cpu_s"] / best_cpu
    row["floor_s"], row["floor_cpu_s"] = statistics.median(samples["floor"]), statistics.median(cpu["floor"])
    row["randomized_over_floor"] = ms["randomized"]["median_s"] / row["floor_s"]
    row["auto_over_floor"] = ms["auto"]["median_s"] / row["floor_s"]
    # CPU time of this process: less disturbed than wall time when other jobs share the cores
    row["randomized_over_floor_cpu"] = ms["randomized"]["median_cpu_s"] / row["floor_cpu_s"]
    print(
        f"  {name:8s} floor {row['floor_s']:.3f} s; auto / best {row['auto_over_best']:.2f}; "
        f"randomized / floor {row['randomized_over_floor']:.1f} (CPU time {row['randomized_over_floor_cpu']:.1f})",
        flush=True,
    )
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller families")
    parser.add_argument("--repeat", type=int, default=3, help="timed fits per method (median; default 3)")
    parser.add_argument("--only", default="", help="comma-separated families to run (default all)")
    parser.add_argument("--out", default=None, help="output JSON (default bench/results/fit[_quick].json)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_info

    blas = [
        {k: lib.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]
    import sklearn

    only = {s for s in args.only.split(",") if s}
    load_before = os.getloadavg()
    rows = []
    for name, desc, mats, tol in families(args.quick):
        if only and name not in only:
            continue
        print(f"{name}: {desc}, tol {tol:g}", flush=True)
        rows.append(run_family(name, desc, mats, tol, args.repeat))
    out = args.out or str(pathlib.Path(__file__).parent / "results" / ("fit_quick.json" if args.quick else "fit.json"))
    machine = machine_info()
    # 1-, 5- and 15-minute load averages: the cores may be shared with other jobs
    machine["load_average"] = {"before": list(load_before), "after": list(os.getloadavg())}
    result = {
        "machine": machine,
        "benchmark": "fit",
        "quick": args.quick,
        "blas_libraries": blas,
        "scikit_learn": sklearn.__version__,
        "floor": "per order: R = M_k - M_{k-1} and R @ Omega, Omega Gaussian n x r_k (r_k: randomized fit)",
        "families": rows,
    }
    print(f"wrote {write_json(out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
