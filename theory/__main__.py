"""``python -m theory``: check every claim on default instances.

Usage::

    python -m theory [check] [--verbose] [--seed N]
    python -m theory table [--K 4] [--library standard|extended]

``check`` (the default) prints one row per claim — claim | instances |
result | time — and exits with status 1 if any check fails.  ``table``
prints the designer's Markdown table for every permutation of ``{1..K}``
(the table pasted in ``docs/theory.md``).
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main", "run_checks"]


def run_checks(seed=0):
    """Run every claim check on its default instances.

    Parameters
    ----------
    seed : int
        Seed for the random instances and the certificates.

    Returns
    -------
    list of theory._claims.ClaimResult
    """
    from . import boundary, design, designer, leibniz, monotonicity
    from ._claims import ClaimResult, timed
    from .engine import generic_rank

    results = []
    eng = ClaimResult("engine: certificates verify")
    with timed(eng):
        import random

        import sympy as sp

        t = sp.Symbol("t")
        rng = random.Random(seed)
        for i in range(4):
            m, n, r = rng.randint(2, 6), rng.randint(2, 6), rng.randint(0, 3)
            B = sp.Matrix(m, r, lambda *_: sum(rng.randint(-3, 3) * t**e for e in range(3)))
            C = sp.Matrix(r, n, lambda *_: sum(rng.randint(-3, 3) * t**e for e in range(3)))
            A = (B * C).applyfunc(sp.expand) if r else sp.zeros(m, n)
            c = generic_rank(A, seed=seed + i)
            ok = c.certified and c.verify() and c.verify("sympy")
            eng.record(ok, f"{m}x{n} product of inner size {r}: rank {c.rank}")
    results.append(eng)
    results += monotonicity.check(seed)
    results += boundary.check(seed)
    results += leibniz.check(seed)
    results += design.check(seed)
    results += designer.check()
    return results


def _print_table(results, out):
    w = max(len(r.claim) for r in results)
    out.write(f"{'claim':<{w}} | instances | result | time\n")
    out.write(f"{'-' * w}-|-----------|--------|--------\n")
    for r in results:
        out.write(f"{r.claim:<{w}} | {r.instances:>9} | {'pass' if r.passed else 'FAIL':<6} | {r.seconds:6.2f} s\n")


def main(argv=None):
    """Entry point of ``python -m theory`` (also used by ``lowrank-tree check``).

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 if every check passed, 1 otherwise.
    """
    parser = argparse.ArgumentParser(prog="python -m theory", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="check", choices=["check", "table"])
    parser.add_argument("--verbose", "-v", action="store_true", help="print every instance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--K", type=int, default=4, help="table: permutations of 1..K")
    parser.add_argument("--library", default="extended", choices=["standard", "extended"])
    args = parser.parse_args(argv)
    out = sys.stdout
    if args.command == "table":
        from .designer import format_table, permutation_table

        rows = permutation_table(args.K, library_kind=args.library)
        out.write(format_table(rows) + "\n")
        counts = {s: sum(r.status == s for r in rows) for s in ("constructed", "impossible", "open")}
        out.write(f"\n{counts['constructed']} constructed, {counts['impossible']} impossible, "
                  f"{counts['open']} open ({args.library} library)\n")
        return 0
    t0 = time.perf_counter()
    results = run_checks(args.seed)
    _print_table(results, out)
    if args.verbose:
        for r in results:
            out.write(f"\n{r.claim}\n")
            for line in r.details:
                out.write(f"  {line}\n")
    failed = [r.claim for r in results if not r.passed]
    out.write(f"\n{len(results) - len(failed)}/{len(results)} claims pass "
              f"({time.perf_counter() - t0:.1f} s total)\n")
    if failed:
        out.write("FAILED: " + ", ".join(failed) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
