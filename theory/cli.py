"""The ``theory`` command line: check every claim on default instances.

Usage::

    python -m theory [check] [--verbose] [--seed N]
    python -m theory table [--K 5] [--library standard|extended]
    python -m theory search [--K 5] [--budget 3000] [--tries 5000] [--out theory/_constructions.py]
    python -m theory dropsearch [--families 20000] [--seed 0]
    python -m theory jets [--order 5] [--seed 0] [--singular-first] [--out jet.json]

``check`` (the default) prints one row per claim — claim | instances |
result | time — and exits with status 1 if any check fails.  ``table``
prints the designer's Markdown table for every permutation of ``{1..K}``
(the table pasted in ``docs/theory.md``; ``--K 6`` for K = 6).  ``search``
reruns the ``D_a C D_b`` border search, the split search (library blocks
plus one searched ``D_a C D_b`` block), the antiderivative lift of a
polynomial tail construction and the rank-one-order search
(:mod:`theory.rank_one_search`, ``--tries`` draws per seed) on every open
target, printing progress to stderr, and writes the constructions that the
table uses (each is re-certified whenever used).
``dropsearch`` screens random linear families for a counterexample to the
drop bound (:mod:`theory.drop_search`; :mod:`theory.poles` has one) and prints
what it saw.
``jets`` builds exact Taylor jets of a rank-2 matrix whose third derivative
has rank 1 to ``--order`` while its second derivative is invertible
(:mod:`theory.jets`): the drop bound has no local obstruction up to that order;
``--singular-first`` also keeps ``A'`` singular, the profile ``(2, 3, 4, 1)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the claim modules import SymPy: only when a command runs
    from ._claims import ClaimResult

__all__ = ["main", "run_checks"]


def run_checks(seed: int = 0) -> list[ClaimResult]:
    """Run every claim check on its default instances.

    Parameters
    ----------
    seed : int
        Seed for the random instances and the certificates.

    Returns
    -------
    list of theory._claims.ClaimResult
    """
    from . import boundary, designer, leibniz, monotonicity, pointwise
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
            ok = c.certified and c.verify(A) and c.verify(A, method="sympy")
            eng.record(ok, f"{m}x{n} product of inner size {r}: rank {c.rank}")
    results.append(eng)
    results += monotonicity.check(seed)
    results += boundary.check(seed)
    results += leibniz.check(seed)
    results += pointwise.check(seed)
    results += designer.check()
    return results


def _print_table(results, out):
    w = max(len(r.claim) for r in results)
    out.write(f"{'claim':<{w}} | instances | result | time\n")
    out.write(f"{'-' * w}-|-----------|--------|--------\n")
    for r in results:
        out.write(f"{r.claim:<{w}} | {r.instances:>9} | {'pass' if r.passed else 'FAIL':<6} | {r.seconds:6.2f} s\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``theory`` command line (``python -m theory``, ``lowrank-tree check``).

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
    parser.add_argument(
        "command", nargs="?", default="check", choices=["check", "table", "search", "dropsearch", "jets"]
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="print every instance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--K", type=int, default=5, help="table/search: permutations of 1..K (default 5)")
    parser.add_argument("--budget", type=int, default=3000, help="search: candidates per order and seed")
    parser.add_argument("--tries", type=int, default=5000, help="search: rank-one-order search draws per seed")
    parser.add_argument("--families", type=int, default=20000, help="dropsearch: families to screen")
    parser.add_argument("--out", default=None, help="search/jets: output JSON (default: print)")
    parser.add_argument("--order", type=int, default=5, help="jets: orders of A''' = x y^T to match")
    parser.add_argument(
        "--singular-first", action="store_true", help="jets: also rank A' <= 3 (the target (2, 3, 4, 1))"
    )
    parser.add_argument(
        "--format", default="markdown", choices=["markdown", "latex"], help="table: output format (default: markdown)"
    )
    parser.add_argument("--library", default="extended", choices=["standard", "extended"])
    args = parser.parse_args(argv)
    out = sys.stdout
    if args.command == "search":
        import json

        from ._constructions import DATA
        from .designer import search_constructions

        data = search_constructions(
            args.K,
            library_kind=args.library,
            budget=args.budget,
            rank_one_tries=args.tries,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
        # rows shipped from another construction (they name their "source") are kept
        searched = {tuple(c["target"]) for c in data["constructions"]}
        shipped: list[dict] = DATA["constructions"]  # type: ignore[assignment]
        for row in shipped:
            if "source" in row and tuple(row["target"]) not in searched:
                data["constructions"].append(row)
                data["open"] = [p for p in data["open"] if p != row["target"]]
        rows = [json.dumps(c, separators=(", ", ": ")) for c in data["constructions"]]
        text = '{"constructions": [\n  ' + ",\n  ".join(rows) + '\n ],\n "open": ' + json.dumps(data["open"]) + "}\n"
        if args.out and args.out.endswith(".py"):  # the module the designer imports
            text = f'"""Constructions found by ``python -m theory search`` (re-certified on use)."""\n\nDATA = {text}'
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            out.write(text)
        out.write(f"{len(data['constructions'])} constructed, {len(data['open'])} still open\n")
        return 0
    if args.command == "dropsearch":
        from .drop_search import drop_search

        found = drop_search(args.families, seed=args.seed)
        out.write(
            f"{found.families} families screened (generic members, orders 0..k+2, k = 1..4): "
            f"{len(found.profiles)} distinct profiles, {found.tight} meet the drop bound with equality, "
            + (
                "no violation\n"
                if found.counterexample is None
                else f"VIOLATION with certified profile {found.profile}:\n{found.counterexample}\n"
            )
        )
        return 0
    if args.command == "jets":
        import json

        from .jets import drop_bound_jet

        t_start = time.perf_counter()
        jet = drop_bound_jet(args.order, seed=args.seed, singular_first=args.singular_first)
        seconds = time.perf_counter() - t_start
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                json.dump(jet.to_json(), fh, indent=1)
        out.write(
            f"A = U V (rank 2), A''' = x y^T + O(h^{jet.order + 1}), det A''(0) = {jet.det_second_derivative}"
            + (
                f", det A'(h) = O(h^{jet.singular_first_order + 1}) with rank A'(0) = 3"
                if jet.singular_first_order is not None
                else ""
            )
            + f"; verified from the polynomials: {jet.verify()} ({seconds:.1f} s)\n"
        )
        if jet.order >= 4:
            cert = jet.extension_certificate()
            out.write(
                f"extension certificate: obstruction coefficients {[str(c) for c in cert.coefficients]}"
                + (f", gamma {[str(g) for g in cert.gamma]}" if cert.gamma is not None else "")
                + f"; extends to power series of every order: {cert.holds}\n"
            )
        return 0
    if args.command == "table":
        from .designer import discrete_status, format_table, permutation_table

        targets = permutation_table(args.K, library_kind=args.library)
        for r in targets:
            r.discrete = discrete_status(r)
        out.write(format_table(targets, discrete=True, fmt=args.format) + "\n")
        counts = {s: sum(r.status == s for r in targets) for s in ("constructed", "impossible", "open")}
        disc = sum(r.discrete.startswith("constructed") for r in targets)
        disc_impossible = sum(r.discrete.startswith("impossible") for r in targets)
        out.write(
            f"\n{len(targets)} targets: {counts['constructed']} constructed, {counts['impossible']} impossible, "
            f"{counts['open']} open ({args.library} library); as difference profiles: "
            f"{disc} constructed, {disc_impossible} impossible, "
            f"{len(targets) - disc - disc_impossible} open\n"
        )
        return 0
    t0 = time.perf_counter()
    results = run_checks(args.seed)
    _print_table(results, out)
    if args.verbose:
        for res in results:
            out.write(f"\n{res.claim}\n")
            for line in res.details:
                out.write(f"  {line}\n")
    failed = [r.claim for r in results if not r.passed]
    out.write(f"\n{len(results) - len(failed)}/{len(results)} claims pass ({time.perf_counter() - t0:.1f} s total)\n")
    if failed:
        out.write("FAILED: " + ", ".join(failed) + "\n")
    return 1 if failed else 0
