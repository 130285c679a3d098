"""Generic-rank benchmark: theory.generic_rank against SymPy baselines.

Writes ``bench/results/theory_rank.json`` (or ``--out``) with machine
information, Python/SymPy/Numba versions, the exact command, every method
side by side on the same matrices in one run, medians of repeats and ratios.

Cases (the targets are in ``TARGETS`` below):

* ``product_8x5x8``: ``B C`` with ``B`` 8x5 and ``C`` 5x8, random integer
  polynomial entries of degree 2 (so ``B C`` is 8x8 of degree 4, rank 5).
  Methods: SymPy ``Matrix.rank(simplify=True)`` (slow: one repeat),
  ``DomainMatrix`` rank over ``QQ.frac_field(t)`` (with and without the
  conversion from the SymPy matrix), ``generic_rank(certify=True)`` and
  ``generic_rank(certify=False)``.  Targets: certified >= 100x faster than
  ``Matrix.rank(simplify=True)``; Monte-Carlo >= 3x faster than the
  ``DomainMatrix`` rank.
* ``dense_32x32_deg8``: a random 32x32 matrix of degree-8 entries (full rank)
  and ``rank_deficient_32x32_deg8``: ``B C`` with 32x24 and 24x32 factors of
  degree 4 (degree 8, rank 24, a kernel of 8 vectors of degree <= 192 to
  certify).  Target: certified in under 10 s.

* ``large_64x64_rank48_deg4``: ``B C`` with 64x48 and 48x64 factors of
  degree 2 (the engine's hardest published case): certified and verified.
  Target: certified in under 5 s.
* Per instance of the 8x8 family also: ``DomainMatrix`` rank over ``ZZ[t]``,
  python-flint's ``nmod_mat`` rank of the matrix evaluated at one point
  modulo one prime (the Monte-Carlo floor; when python-flint is
  importable), the conversion from SymPy alone against the engine's modular
  work alone (target: conversion no more than the modular work), and the
  SymPy baselines and the engine again in the *other* SymPy ground-type
  mode (``SYMPY_GROUND_TYPES=flint`` or ``python``, in a subprocess; when
  python-flint is importable).

CPU seconds (``time.process_time``) are recorded beside wall-clock seconds:
on a shared machine they are the steadier measure.  Every timed call starts
from a cleared SymPy cache.  Usage::

    python bench/theory_rank.py               # about 1-3 minutes on 2 cores
    python bench/theory_rank.py --quick       # smoke run, seconds
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import random
import statistics
import subprocess
import sys
import time

import numpy
import sympy as sp
from sympy.core.cache import clear_cache
from sympy.polys.matrices import DomainMatrix

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from theory import _modular, generic_rank  # noqa: E402
from theory._convert import RationalMatrix  # noqa: E402

TARGETS = {
    "certified_speedup_vs_matrix_rank_simplify_min": 100.0,
    "montecarlo_speedup_vs_domainmatrix_fracfield_min": 3.0,
    "certified_32x32_deg8_seconds_max": 10.0,
    "certified_64x64_rank48_deg4_seconds_max": 5.0,
    "conversion_over_modular_work_max": 1.0,
}

t = sp.Symbol("t")


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info():
    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = None
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "sympy": sp.__version__,
        "numpy": numpy.__version__,
        "numba": numba_version,
        "modular_backend": "numba" if _modular.HAVE_NUMBA else "python",
        "sympy_ground_types": ground_types(),
        "git_commit": commit,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def random_poly_matrix(rng, m, n, deg, R):
    """m x n matrix of ring elements with integer coefficients in [-9, 9]."""
    return [[sum(rng.randint(-9, 9) * R.gens[0] ** e for e in range(deg + 1)) for _ in range(n)] for _ in range(m)]


def product_matrix(rng, m, k, n, deg):
    """SymPy matrix B*C, computed in ZZ[t] (fast) and converted to expressions."""
    R, _ = sp.ring("t", sp.ZZ)
    B = random_poly_matrix(rng, m, k, deg, R)
    C = random_poly_matrix(rng, k, n, deg, R)
    prod = [[sum((B[i][s] * C[s][j] for s in range(k)), R.zero) for j in range(n)] for i in range(m)]
    return sp.Matrix(m, n, lambda i, j: prod[i][j].as_expr())


def timeit(fn, repeat):
    times, cpu, value = [], [], None
    for _ in range(repeat):
        clear_cache()
        t0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "median_s": statistics.median(times),
        "times_s": times,
        "median_cpu_s": statistics.median(cpu),
        "repeat": repeat,
    }, value


def ground_types():
    from sympy.external.gmpy import GROUND_TYPES

    return GROUND_TYPES


def have_flint():
    import importlib.util

    return importlib.util.find_spec("flint") is not None


def evaluated_at_one_point(M, seed):
    """``M`` (denominators cleared by row) at one random point modulo one random prime: (values, prime)."""
    R = RationalMatrix.from_sympy(M)
    P, _ = R.cleared_rows()
    rng = random.Random(seed)
    p = _modular.random_prime(rng)
    x = rng.randrange(p)
    return [[_horner(e, x, p) for e in row] for row in P], p


def flint_floor(vals, p):
    """python-flint ``nmod_mat`` rank of an evaluated matrix (building the ``nmod_mat`` included)."""
    import flint

    return flint.nmod_mat(vals, p).rank()


def _horner(f, x, p):
    acc = 0
    for c in f:
        acc = (acc * x + c) % p
    return acc


def mode_dependent(seeds, repeat):
    """The SymPy baselines and the engine, for the other ground-type mode's subprocess."""
    out = []
    for seed in seeds:
        M = product_matrix(random.Random(seed), 8, 5, 8, 2)
        generic_rank(M, seed=seed)
        row = {"seed": seed}
        row["domainmatrix_fracfield_with_conversion"], _ = timeit(lambda M=M: dm_rank_with_conversion(M), repeat)
        row["domainmatrix_zzt_with_conversion"], _ = timeit(lambda M=M: dm_zzt_rank(M), repeat)
        row["generic_rank_certified"], _ = timeit(lambda M=M, seed=seed: generic_rank(M, seed=seed), repeat)
        row["generic_rank_montecarlo"], _ = timeit(
            lambda M=M, seed=seed: generic_rank(M, certify=False, seed=seed), repeat
        )
        out.append(row)
    return out


def other_mode(seeds, repeat):
    """Run :func:`mode_dependent` with the ground types this process is not using (or None)."""
    if not have_flint():
        return None
    mode = "python" if ground_types() == "flint" else "flint"
    env = dict(os.environ, SYMPY_GROUND_TYPES=mode)
    args = [sys.executable, __file__, "--mode-dependent-only", "--seeds", *map(str, seeds), "--repeat", str(repeat)]
    res = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def dm_rank_with_conversion(M):
    return DomainMatrix.from_Matrix(M).convert_to(sp.QQ.frac_field(t)).rank()


def dm_zzt_rank(M):
    return DomainMatrix.from_Matrix(M).convert_to(sp.ZZ[t]).rank()


def bench_product(seeds, repeat, simplify_repeat):
    runs = []
    for seed in seeds:
        rng = random.Random(seed)
        M = product_matrix(rng, 8, 5, 8, 2)
        generic_rank(M, seed=seed)  # warm-up (Numba JIT, imports)
        row = {"seed": seed, "shape": [8, 8], "entry_degree": 4}
        K = DomainMatrix.from_Matrix(M).convert_to(sp.QQ.frac_field(t))
        # each timed closure binds this iteration's matrices and seed explicitly
        row["domainmatrix_fracfield_rank_only"], r_dm0 = timeit(K.rank, repeat)
        row["domainmatrix_fracfield_with_conversion"], r_dm = timeit(lambda M=M: dm_rank_with_conversion(M), repeat)
        row["generic_rank_certified"], cert = timeit(lambda M=M, seed=seed: generic_rank(M, seed=seed), repeat)
        row["generic_rank_montecarlo"], mc = timeit(
            lambda M=M, seed=seed: generic_rank(M, certify=False, seed=seed), repeat
        )
        row["domainmatrix_zzt_with_conversion"], r_zz = timeit(lambda M=M: dm_zzt_rank(M), repeat)
        # the conversion alone, and the engine's modular work alone (input already converted)
        row["conversion_from_sympy"], R = timeit(lambda M=M: RationalMatrix.from_sympy(M), repeat)
        row["modular_montecarlo_only"], _ = timeit(
            lambda R=R, seed=seed: generic_rank(R, certify=False, seed=seed), repeat
        )
        row["modular_certified_only"], _ = timeit(lambda R=R, seed=seed: generic_rank(R, seed=seed), repeat)
        r_fl = None
        if have_flint():
            vals, p = evaluated_at_one_point(M, seed)
            row["flint_nmod_mat_rank_one_point"], r_fl = timeit(lambda vals=vals, p=p: flint_floor(vals, p), repeat)
        row["matrix_rank_simplify"], r_sym = timeit(lambda M=M: M.rank(simplify=True), simplify_repeat)
        t0 = time.perf_counter()
        verified = cert.verify(M)  # against the user's matrix, as a third party would
        row["certificate_verify_s"] = time.perf_counter() - t0
        row["ranks"] = {
            "matrix_rank_simplify": r_sym,
            "domainmatrix": r_dm,
            "domainmatrix_rank_only": r_dm0,
            "certified": cert.rank,
            "montecarlo": mc.rank,
            "domainmatrix_zzt": r_zz,
        }
        if r_fl is not None:
            row["ranks"]["flint_nmod_mat_one_point"] = r_fl
        row["certificate_verified"] = verified
        med = {k: row[k]["median_s"] for k in row if isinstance(row[k], dict) and "median_s" in row[k]}
        row["ratios"] = {
            "matrix_rank_simplify_over_certified": med["matrix_rank_simplify"] / med["generic_rank_certified"],
            "domainmatrix_with_conversion_over_montecarlo": med["domainmatrix_fracfield_with_conversion"]
            / med["generic_rank_montecarlo"],
            "domainmatrix_rank_only_over_montecarlo": med["domainmatrix_fracfield_rank_only"]
            / med["generic_rank_montecarlo"],
            "domainmatrix_with_conversion_over_certified": med["domainmatrix_fracfield_with_conversion"]
            / med["generic_rank_certified"],
            "conversion_over_modular_montecarlo": row["conversion_from_sympy"]["median_cpu_s"]
            / row["modular_montecarlo_only"]["median_cpu_s"],
            "conversion_over_modular_certified": row["conversion_from_sympy"]["median_cpu_s"]
            / row["modular_certified_only"]["median_cpu_s"],
        }
        if r_fl is not None:
            row["ratios"]["montecarlo_modular_over_flint_floor"] = (
                row["modular_montecarlo_only"]["median_cpu_s"] / row["flint_nmod_mat_rank_one_point"]["median_cpu_s"]
            )
        print(
            f"seed {seed}: simplify {med['matrix_rank_simplify']:.2f} s, DomainMatrix "
            f"{med['domainmatrix_fracfield_with_conversion'] * 1e3:.1f} ms "
            f"(rank only {med['domainmatrix_fracfield_rank_only'] * 1e3:.1f} ms), certified "
            f"{med['generic_rank_certified'] * 1e3:.1f} ms, "
            f"Monte-Carlo {med['generic_rank_montecarlo'] * 1e3:.1f} ms",
            flush=True,
        )
        runs.append(row)
    return runs


def bench_large(repeat, size=32, inner=24, quick=False):
    rng = random.Random(32)
    R, _ = sp.ring("t", sp.ZZ)
    out = {}
    dense = random_poly_matrix(rng, size, size, 8, R)
    A = sp.Matrix(size, size, lambda i, j: dense[i][j].as_expr())
    B = product_matrix(rng, size, inner, size, 4)
    for name, M, rank in ((f"dense_{size}x{size}_deg8", A, size), (f"rank_deficient_{size}x{size}_deg8", B, inner)):
        generic_rank(M, seed=0)  # warm-up
        timing, cert = timeit(lambda M=M: generic_rank(M, seed=1), repeat)
        t0 = time.perf_counter()
        ok = cert.verify(M)
        out[name] = {
            "shape": [size, size],
            "entry_degree": 8,
            "expected_rank": rank,
            "rank": cert.rank,
            "certified": cert.certified,
            "certificate": repr(cert),
            "generic_rank_certified": timing,
            "certificate_verify_s": time.perf_counter() - t0,
            "certificate_verified": ok,
        }
        print(
            f"{name}: rank {cert.rank}, certified in {timing['median_s']:.2f} s (median of {repeat}), "
            f"verify {out[name]['certificate_verify_s']:.2f} s",
            flush=True,
        )
    return out


def bench_64(repeat):
    """The 64x64 rank-48 degree-4 case: certified and verified."""
    M = product_matrix(random.Random(64), 64, 48, 64, 2)
    generic_rank(product_matrix(random.Random(0), 8, 5, 8, 2), seed=0)  # warm-up
    timing, cert = timeit(lambda: generic_rank(M, seed=1), repeat)
    vt, ok = timeit(lambda: cert.verify(M), 1)
    print(
        f"64x64 rank {cert.rank}: certified in {timing['median_s']:.2f} s wall, {timing['median_cpu_s']:.2f} s CPU; "
        f"verify(A) {vt['median_s']:.2f} s",
        flush=True,
    )
    return {
        "shape": [64, 64],
        "entry_degree": 4,
        "expected_rank": 48,
        "rank": cert.rank,
        "certificate": repr(cert),
        "generic_rank_certified": timing,
        "verify": vt,
        "certificate_verified": ok,
    }


def bench_rank_at_one_point(sizes=(64, 128, 256, 512), repeat=3):
    """The engine's modular elimination against python-flint's ``nmod_mat`` rank, one evaluated matrix.

    Both start from the same ``int64`` matrix modulo the same prime; flint's
    time includes building the ``nmod_mat`` from it (what the engine would
    have to do).  Square matrices of rank ``3n/4``.
    """
    if not have_flint():
        return None
    import flint
    import numpy as np

    p = 2_147_483_629
    rng = np.random.default_rng(0)
    _modular.rank_mod(np.eye(2, dtype=np.int64), p)  # compile
    out = []
    for n in sizes:
        r = 3 * n // 4
        M = (rng.integers(0, 100, (n, r)) @ rng.integers(0, 100, (r, n))) % p
        eng, r1 = timeit(lambda M=M: _modular.rank_mod(M, p)[0], repeat)
        fl, r2 = timeit(lambda M=M: flint.nmod_mat(M.tolist(), p).rank(), repeat)
        out.append({"n": n, "rank": [r1, r2], "engine": eng, "flint_nmod_mat": fl})
        print(
            f"rank at one point, {n}x{n}: engine {eng['median_cpu_s'] * 1e3:.2f} ms, "
            f"nmod_mat {fl['median_cpu_s'] * 1e3:.2f} ms (CPU)",
            flush=True,
        )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one small instance, no simplify baseline repeats"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "theory_rank.json"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--simplify-repeat", type=int, default=1)
    parser.add_argument("--mode-dependent-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode_dependent_only:  # the other ground-type mode's subprocess
        print(json.dumps({"ground_types": ground_types(), "runs": mode_dependent(args.seeds, args.repeat)}))
        return 0
    seeds = args.seeds[:1] if args.quick else args.seeds
    product = bench_product(seeds, 3 if args.quick else args.repeat, args.simplify_repeat)
    large = bench_large(1 if args.quick else 3, size=12 if args.quick else 32, inner=8 if args.quick else 24)
    big = bench_64(1 if args.quick else 3)
    other = other_mode(seeds, 3 if args.quick else args.repeat)
    one_point = bench_rank_at_one_point((64, 128) if args.quick else (64, 128, 256, 512))

    speed_simplify = statistics.median(r["ratios"]["matrix_rank_simplify_over_certified"] for r in product)
    speed_dm = statistics.median(r["ratios"]["domainmatrix_with_conversion_over_montecarlo"] for r in product)
    speed_dm_only = statistics.median(r["ratios"]["domainmatrix_rank_only_over_montecarlo"] for r in product)
    worst_large = max(v["generic_rank_certified"]["median_s"] for v in large.values())
    verdict = {
        "certified_speedup_vs_matrix_rank_simplify": speed_simplify,
        "certified_speedup_met": speed_simplify >= TARGETS["certified_speedup_vs_matrix_rank_simplify_min"],
        "certified_speedup_factor_of_target": speed_simplify / TARGETS["certified_speedup_vs_matrix_rank_simplify_min"],
        "montecarlo_speedup_vs_domainmatrix_with_conversion": speed_dm,
        "montecarlo_speedup_vs_domainmatrix_rank_only": speed_dm_only,
        "montecarlo_speedup_met": speed_dm >= TARGETS["montecarlo_speedup_vs_domainmatrix_fracfield_min"],
        "montecarlo_speedup_met_even_against_rank_only": speed_dm_only
        >= TARGETS["montecarlo_speedup_vs_domainmatrix_fracfield_min"],
        "montecarlo_speedup_factor_of_target": speed_dm / TARGETS["montecarlo_speedup_vs_domainmatrix_fracfield_min"],
        "certified_32x32_deg8_worst_median_s": worst_large,
        "certified_32x32_deg8_met": worst_large < TARGETS["certified_32x32_deg8_seconds_max"],
        "certified_32x32_deg8_headroom_factor": TARGETS["certified_32x32_deg8_seconds_max"] / worst_large,
        "certified_64x64_rank48_deg4_median_s": big["generic_rank_certified"]["median_s"],
        "certified_64x64_rank48_deg4_median_cpu_s": big["generic_rank_certified"]["median_cpu_s"],
        "certified_64x64_rank48_deg4_met": big["generic_rank_certified"]["median_s"]
        < TARGETS["certified_64x64_rank48_deg4_seconds_max"],
        # on a machine shared with other jobs the wall clock measures the load; the engine runs on
        # one core (Numba kernels, one BLAS thread for its large products), so its CPU seconds are
        # what the wall clock reads on an idle machine
        "certified_64x64_rank48_deg4_met_in_cpu_seconds": big["generic_rank_certified"]["median_cpu_s"]
        < TARGETS["certified_64x64_rank48_deg4_seconds_max"],
        "verify_64x64_s": big["verify"]["median_s"],
        "conversion_over_modular_montecarlo": statistics.median(
            r["ratios"]["conversion_over_modular_montecarlo"] for r in product
        ),
        "conversion_over_modular_certified": statistics.median(
            r["ratios"]["conversion_over_modular_certified"] for r in product
        ),
        "conversion_met": statistics.median(r["ratios"]["conversion_over_modular_certified"] for r in product)
        <= TARGETS["conversion_over_modular_work_max"],
        "all_ranks_agree": all(len(set(r["ranks"].values())) == 1 for r in product)
        and all(v["rank"] == v["expected_rank"] for v in large.values())
        and big["rank"] == big["expected_rank"],
        "all_certificates_verified": all(r["certificate_verified"] for r in product)
        and all(v["certificate_verified"] for v in large.values())
        and big["certificate_verified"],
        "note": "ratios are medians over instances of per-instance median-time ratios",
    }
    payload = {
        "benchmark": "theory_rank",
        "quick": args.quick,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "machine": machine_info(),
        "targets": TARGETS,
        "verdict": verdict,
        "product_8x5x8": product,
        "large": large,
        "large_64x64_rank48_deg4": big,
        "ground_types": {"current": ground_types(), "flint_importable": have_flint(), "other_mode": other},
        "rank_at_one_point_vs_flint": one_point,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(json.dumps(verdict, indent=2))
    print(f"wrote {out}")
    return 0 if all(verdict[k] for k in verdict if k.endswith("_met")) else 1


if __name__ == "__main__":
    sys.exit(main())
