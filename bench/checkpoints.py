"""Whole-model checkpoint families: ``fit_checkpoints`` on a real training run, against two baselines.

The run: an MLP (64-256-256-10, ReLU, softmax) trained here with minibatch SGD
with momentum on scikit-learn's ``load_digits()``, every parameter (float32)
saved as a ``.safetensors`` file at every step (``--steps`` steps, so
``steps + 1`` checkpoints).  For each tolerance ``tol`` in {1e-2, 1e-3, 1e-4}:

* **cascade** -- ``fit_checkpoints(files, tol=tol)``: bytes of the family over
  bytes of the run, and the worst relative error of any 2-D parameter at any
  checkpoint, recomputed densely from the rebuilt checkpoints;
* **star** (mergekit-style LoRA extraction) -- every ``W_k − W_0`` replaced by
  its truncated SVD with the smallest rank that keeps ``‖Ŵ_k − W_k‖_F <=
  tol ‖W_k‖_F``: the same error target, each checkpoint on its own;
* **chain** (an ExCP-style adjacent-delta chain without error feedback) --
  every ``W_k − W_{k−1}`` truncated to the same per-step target, ``Ŵ_k = W_0
  + Σ_{i<=k} D̂_i``: the truncation errors add up along the chain.

Bytes: the 2-D parameters only (every method keeps the other parameters the
same way); a factor costs ``r (m + n)`` numbers, the base ``m n``, in float32.
Throughput: MB of checkpoint files fitted per second, serially and through a
Dask ``distributed.LocalCluster`` with 2 worker processes of one thread each
(``Client.get_executor()``), on the same files, with the results checked
equal.  The machine may be shared: compare the ratios.

Usage::

    python bench/checkpoints.py            # 300 steps, JSON to bench/results/checkpoints.json
    python bench/checkpoints.py --quick    # 60 steps
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time
import warnings

import numpy as np

from lowrank_tree import fit_checkpoints
from lowrank_tree._threads import small_blas
from lowrank_tree.benchmark import write_json
from lowrank_tree.fit import DenseCorrectionWarning

TOLS = (1e-2, 1e-3, 1e-4)


def training_run(steps, folder, seed=0, hidden=256, batch=64, lr=0.05, momentum=0.9):
    """Paths of ``steps + 1`` safetensors checkpoints of an MLP trained on digits (all parameters)."""
    from safetensors.numpy import save_file
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    sizes = [X.shape[1], hidden, hidden, 10]
    # torch.nn.Linear layout: weight (out, in), bias (out,)
    Ws = [(rng.standard_normal((b, a)) * np.sqrt(2.0 / a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    vel = [np.zeros_like(a) for a in Ws + bs]
    paths = []

    def keep():
        sd = {}
        for i, (W, b) in enumerate(zip(Ws, bs)):
            sd[f"layers.{i}.weight"], sd[f"layers.{i}.bias"] = W, b
        path = os.path.join(folder, f"step{len(paths):05d}.safetensors")
        save_file(sd, path)
        paths.append(path)

    keep()
    for _ in range(steps):
        idx = rng.integers(0, X.shape[0], batch)
        acts = [X[idx]]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = acts[-1] @ W.T + b
            acts.append(np.maximum(z, 0) if i < len(Ws) - 1 else z)
        logits = acts[-1] - acts[-1].max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(batch), y[idx]] -= 1.0
        g = p / batch
        grads_W, grads_b = [None] * len(Ws), [None] * len(Ws)
        for i in range(len(Ws) - 1, -1, -1):
            grads_W[i] = g.T @ acts[i]
            grads_b[i] = g.sum(axis=0)
            if i:
                g = (g @ Ws[i]) * (acts[i] > 0)
        for j, gr in enumerate(grads_W + grads_b):
            vel[j] = momentum * vel[j] - lr * gr
        Ws = [(W + v).astype(np.float32) for W, v in zip(Ws, vel[: len(Ws)])]
        bs = [(b + v).astype(np.float32) for b, v in zip(bs, vel[len(Ws) :])]
        keep()
    return paths


def _rank_for(s, budget):
    """Smallest r with ‖s[r:]‖ <= budget (s descending)."""
    tail = np.sqrt(np.cumsum((s[::-1].astype(np.float64)) ** 2))[::-1]  # tail[r] = ‖s[r:]‖
    ok = np.flatnonzero(tail <= budget)
    return int(ok[0]) if ok.size else len(s)


def baselines(mats, tols, at=()):
    """The star and chain baselines of one parameter at every tolerance (float64).

    Both baselines truncate differences of the true matrices, so each SVD is
    computed once and cut at every tolerance.

    Parameters
    ----------
    mats : ndarray, shape (K + 1, m, n), float64
    tols : sequence of float
    at : collection of int
        Checkpoints whose reconstructions are kept (none by default).

    Returns
    -------
    dict
        ``{tol: {"star": {...}, "chain": {...}}}``, each with ``numbers``
        (stored numbers, base included), ``worst_error`` and ``at``
        (``{k: reconstruction}``).
    """
    K1, m, n = mats.shape
    out = {}
    for tol in tols:
        out[tol] = {
            method: {"numbers": m * n, "worst_error": 0.0, "at": {0: mats[0].copy()} if 0 in at else {}}
            for method in ("star", "chain")
        }
    chain = {tol: mats[0].copy() for tol in tols}
    for k in range(1, K1):
        norm_k = float(np.linalg.norm(mats[k]))
        star = np.linalg.svd(mats[k] - mats[0], full_matrices=False)
        step = np.linalg.svd(mats[k] - mats[k - 1], full_matrices=False)
        for tol in tols:
            acc = out[tol]
            U, s, Vt = star
            r = _rank_for(s, tol * norm_k)
            W = mats[0] + (U[:, :r] * s[:r]) @ Vt[:r]
            acc["star"]["numbers"] += r * (m + n)
            acc["star"]["worst_error"] = max(acc["star"]["worst_error"], float(np.linalg.norm(W - mats[k])) / norm_k)
            if k in at:
                acc["star"]["at"][k] = W
            U, s, Vt = step
            r = _rank_for(s, tol * norm_k)
            chain[tol] = chain[tol] + (U[:, :r] * s[:r]) @ Vt[:r]
            acc["chain"]["numbers"] += r * (m + n)
            err = float(np.linalg.norm(chain[tol] - mats[k])) / norm_k
            acc["chain"]["worst_error"] = max(acc["chain"]["worst_error"], err)
            if k in at:
                acc["chain"]["at"][k] = chain[tol].copy()
    return out


def cascade_numbers_and_error(cascade, mats):
    """Numbers a fitted cascade stores (base + factors) and its worst relative error against ``mats``, densely."""
    m, n = mats.shape[1:]
    numbers = m * n + sum(r * (m + n) for r in cascade.ranks)
    W = np.asarray(cascade.base, dtype=np.float64)
    worst = 0.0
    for k in range(len(mats)):
        if k:
            d = cascade.corrections[k - 1]
            W = W + np.asarray(d.U, np.float64) @ np.asarray(d.V, np.float64).T
        worst = max(worst, float(np.linalg.norm(W - mats[k]) / np.linalg.norm(mats[k])))
    return numbers, worst


def read_matrices(paths, name):
    from safetensors import safe_open

    out = []
    for p in paths:
        with safe_open(p, "np") as f:
            out.append(f.get_tensor(name).astype(np.float64))
    return np.stack(out)


def same(a, b):
    return a.errors == b.errors and all(
        np.array_equal(x.U, y.U) and np.array_equal(x.V, y.V)
        for name in a
        for x, y in zip(a[name].corrections, b[name].corrections)
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="60 steps")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster runs")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "checkpoints.json"))
    args = ap.parse_args(argv)
    steps = 60 if args.quick else args.steps
    warnings.simplefilter("ignore", DenseCorrectionWarning)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        paths = training_run(steps, folder)
        train_s = time.perf_counter() - t0
        run_bytes = sum(os.path.getsize(p) for p in paths)
        mb = run_bytes / 1e6
        first = fit_checkpoints(paths[:2], progress=False)
        names2d = list(first)
        mats = {name: read_matrices(paths, name) for name in names2d}
        dense2d = sum(M[0].size for M in mats.values()) * len(paths) * 4
        print(f"run: {len(paths)} checkpoints, {mb:.1f} MB, 2-D parameters {names2d} (trained in {train_s:.1f} s)")
        t0 = time.perf_counter()
        with small_blas(True):  # many small SVDs: one BLAS thread each (see the performance notes)
            base_results = {name: baselines(mats[name], TOLS) for name in names2d}
        print(f"baselines: {time.perf_counter() - t0:.1f} s")
        cluster = client = None
        if not args.no_dask:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            for tol in TOLS:
                t0 = time.perf_counter()
                fam = fit_checkpoints(paths, tol=tol, progress=False)
                serial_s = time.perf_counter() - t0
                row = {"tol": tol}
                # the true errors, from the factors (a running sum, not K GEMMs per k)
                worst = max(cascade_numbers_and_error(fam[name], mats[name])[1] for name in names2d)
                cascade_bytes = sum(fam[name].nbytes for name in names2d)
                row["cascade"] = {
                    "bytes_ratio_2d": cascade_bytes / dense2d,
                    "bytes_ratio_all": fam.nbytes / fam.dense_nbytes,
                    "worst_error": worst,
                    "reported_worst_error": fam.max_error,
                    "ranks_sum": {name: int(sum(fam[name].ranks)) for name in names2d},
                    "serial_seconds": serial_s,
                    "serial_mb_per_s": mb / serial_s,
                }
                if client is not None:
                    t0 = time.perf_counter()
                    par = fit_checkpoints(paths, tol=tol, executor=client.get_executor(), progress=False)
                    dask_s = time.perf_counter() - t0
                    row["cascade"].update(
                        dask_seconds=dask_s,
                        dask_mb_per_s=mb / dask_s,
                        dask_speedup=serial_s / dask_s,
                        dask_equal_to_serial=same(par, fam),
                    )
                star_p = chain_p = 0
                star_e = chain_e = 0.0
                for name in names2d:
                    res = base_results[name][tol]
                    (sp, se), (cp, ce) = ((res[b]["numbers"], res[b]["worst_error"]) for b in ("star", "chain"))
                    star_p, chain_p = star_p + sp, chain_p + cp
                    star_e, chain_e = max(star_e, se), max(chain_e, ce)
                row["star"] = {"bytes_ratio_2d": star_p * 4 / dense2d, "worst_error": star_e}
                row["chain"] = {"bytes_ratio_2d": chain_p * 4 / dense2d, "worst_error": chain_e}
                results.append(row)
                c = row["cascade"]
                print(
                    f"tol {tol:.0e}: cascade {c['bytes_ratio_2d']:.3f} of dense, worst error {c['worst_error']:.2e}, "
                    f"{c['serial_mb_per_s']:.1f} MB/s serial"
                    + (f", {c['dask_mb_per_s']:.1f} MB/s Dask x2" if "dask_mb_per_s" in c else "")
                    + f" | star {row['star']['bytes_ratio_2d']:.3f}, {star_e:.2e}"
                    f" | chain {row['chain']['bytes_ratio_2d']:.3f}, {chain_e:.2e}"
                )
        finally:
            if client is not None:
                client.close()
                cluster.close()
    payload = {
        "benchmark": "checkpoints",
        "command": "python bench/checkpoints.py" + (" --quick" if args.quick else f" --steps {steps}"),
        "device": "CPU (no GPU was used for this run)",
        "note": "timings from one run on a machine whose cores may be shared with other jobs: compare the "
        "bytes and errors (deterministic); treat MB/s as indicative",
        "run": {
            "model": "MLP 64-256-256-10 (ReLU), SGD momentum 0.9, lr 0.05, batch 64, sklearn digits",
            "steps": steps,
            "checkpoints": len(paths),
            "megabytes": mb,
            "fitted_parameters": names2d,
            "dense_bytes_2d": dense2d,
        },
        "results": results,
        "verdicts": verdicts(results),
    }
    print(f"wrote {write_json(args.out, payload)}")
    for line in payload["verdicts"]:
        print(" -", line)
    return 0


def verdicts(results):
    """Where the cascade's error feedback wins, and where it does not (from the numbers above)."""
    out = []
    for row in results:
        c, s, ch = row["cascade"], row["star"], row["chain"]
        tol = row["tol"]
        parts = []
        if c["bytes_ratio_2d"] < s["bytes_ratio_2d"]:
            parts.append(f"cascade stores {s['bytes_ratio_2d'] / c['bytes_ratio_2d']:.1f}x less than the star")
        else:
            parts.append(f"the star stores {c['bytes_ratio_2d'] / s['bytes_ratio_2d']:.2f}x less than the cascade")
        if ch["worst_error"] > 1.01 * tol:
            parts.append(
                f"the chain misses the tolerance ({ch['worst_error']:.2e}, {ch['worst_error'] / tol:.0f}x tol) "
                f"at {ch['bytes_ratio_2d'] / c['bytes_ratio_2d']:.2f}x the cascade's bytes"
            )
        else:
            parts.append(
                f"the chain holds the tolerance at {ch['bytes_ratio_2d'] / c['bytes_ratio_2d']:.2f}x the bytes"
            )
        if "dask_speedup" in c:
            parts.append(
                f"Dask x2 ran {c['dask_speedup']:.2f}x the serial speed (one task per parameter: the largest "
                f"parameter bounds the speedup)"
            )
        if c["bytes_ratio_2d"] >= 1.0:
            parts.append("no method compresses: the steps are close to full rank at this tolerance")
        out.append(f"tol {tol:.0e}: " + "; ".join(parts))
    return out


if __name__ == "__main__":
    sys.exit(main())
