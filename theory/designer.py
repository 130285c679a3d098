"""C3b — a designer for *generic* rank profiles.

Problem.  Given a target ``(r_0, ..., r_{K-1})``, find a matrix function
``A(t)`` over ℚ(t) with ``grank A^{(k)} = r_k`` for ``k = 0..K-1`` (orders
``>= K`` are unconstrained), or prove that none exists.

Necessary conditions (each a theorem, see :mod:`theory.leibniz`)
    * zero absorption: ``r_k = 0`` implies ``r_{k+i} = 0`` (``A^{(k)} ≡ 0``
      makes every later derivative vanish);
    * the C2 bound ``r_{k+j} <= (j+1) r_k``;
    * rank-one persistence: ``r_k = 1`` and ``r_{k+1} <= 1`` imply
      ``r_{k+i} <= 1``;
    * generalised rigidity: ``r_{k+j} = (j+1) r_k > 0`` implies
      ``r_{k+j+1} >= j r_k`` (``j = 1``: doubling rigidity).  Proof sketch:
      write ``A^{(k)} = U V`` (inner size ``r``); equality forces
      ``[U U' ... U^{(j)}]`` to have full column rank and
      ``[V; V'; ...; V^{(j)}]`` full row rank; with a left inverse ``L`` and
      a right inverse ``R``, ``L A^{(k+j+1)} R`` contains an invertible block
      anti-diagonal of size ``j r``.  The same holds for differences (full
      proof in the theory documentation).

Constructions.  Block-diagonal sums add profiles (rank of a block-diagonal
matrix is the sum of the ranks of its blocks, and derivatives act blockwise).
The block library:

    ``monomial(e)``       ``t^e``                      profile 1 (k <= e), then 0
    ``hankel_anti(d, m)``  m-fold antiderivative of H_d  (d+1)×m, then 1..d+1..1, 0
    ``rect_anti(a, b, m)`` m-fold antiderivative of u_a u_bᵀ (extended library)

The profiles of library blocks are *computed by the engine* (not assumed),
the block sum is searched exactly, and the assembled matrix is re-checked by
the engine before the designer answers "constructed".  A target that passes
the necessary conditions but is not a sum of library profiles is reported as
"open" — no claim either way.

Examples
--------
>>> design_profile((2, 3, 1)).status
'constructed'
>>> r = design_profile((1, 3, 2))
>>> r.status, r.reason
('impossible', 'C2 bound: r_1 = 3 > 2*r_0 = 2')
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from ._claims import ClaimResult, block_diag, timed
from ._typing import Matrix, Symbol
from .leibniz import antiderivative_hankel
from .profiles import Profile, rank_profile

__all__ = [
    "DesignResult",
    "necessary_violations",
    "library",
    "block_matrix",
    "design_profile",
    "permutation_table",
    "format_table",
    "check",
]

T = sp.Symbol("t")


@dataclass
class DesignResult:
    """Outcome of :func:`design_profile`.

    Attributes
    ----------
    target : tuple of int
    status : {"constructed", "impossible", "open"}
    blocks : list of tuple
        Library blocks, e.g. ``("hankel_anti", 1, 1)``, for "constructed".
    matrix : sympy.Matrix or None
        The block-diagonal construction.
    profile : theory.profiles.Profile or None
        Its certified profile at orders ``0..K-1`` (equal to ``target``).
    reason : str
        The violated condition ("impossible") or why it is open.
    discrete : str
        What is known for the same target as a *difference* profile (filled
        by :func:`discrete_status`; empty until then).
    """

    target: tuple
    status: str
    blocks: list = field(default_factory=list)
    matrix: Matrix | None = None
    profile: Profile | None = None
    reason: str = ""
    discrete: str = ""

    def _repr_latex_(self):
        """LaTeX summary for Jupyter."""
        tgt = "(" + ", ".join(map(str, self.target)) + ")"
        what = self.construction() if self.status == "constructed" else self.reason
        return rf"${tgt}$: \textbf{{{self.status}}} — {_latex_escape(what)}"

    def construction(self):
        """Human-readable block list, e.g. ``'hankel_anti(1,1) ⊕ monomial(0)'``."""
        return " ⊕ ".join(_block_name(b) for b in self.blocks)


_LATEX = {
    "\\": r"\textbackslash{}",
    "_": r"\_",
    "^": r"\^{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "~": r"\~{}",
}


def _latex_escape(text):
    """Escape LaTeX's special characters, one character at a time."""
    return "".join(_LATEX.get(c, c) for c in text)


def _block_name(b):
    kind, *params = b
    if kind == "dcd":
        a, bb, _ = params
        return f"D_a C D_b[{len(a)}x{len(bb)}, a={tuple(a)}, b={tuple(bb)}]"
    if kind == "monomial":
        return f"t^{params[0]}"
    if kind == "hankel_anti":
        d, m = params
        return f"H_{d}" if m == 0 else f"∫^{m} H_{d}"
    a, bb, m = params
    return f"u_{a}u_{bb}ᵀ" if m == 0 else f"∫^{m} u_{a}u_{bb}ᵀ"


def necessary_violations(target: Sequence[int], *, differences: bool = False) -> list[str]:
    """Violated necessary conditions for a generic profile, as sentences.

    Parameters
    ----------
    target : sequence of int
    differences : bool, default False
        Read ``target`` as a profile of forward differences: leave out the
        conditions proved for derivatives only (three-term rigidity).

    Returns
    -------
    list of str
        Empty if every condition holds (zero absorption, the C2 bound,
        doubling and generalised rigidity, rank-one persistence and, for
        derivatives, three-term rigidity
        ``2 r_{k+2} >= 3 r_{k+1} - 4 r_k``).

    Raises
    ------
    ValueError
        If ``target`` is empty or has a negative entry.

    Examples
    --------
    >>> necessary_violations((2, 1, 3))
    ['C2 bound: r_2 = 3 > 2*r_1 = 2']
    >>> necessary_violations((3, 2, 4, 1))
    ['doubling rigidity: r_2 = 2*r_1 = 4 forces r_3 >= 2, but r_3 = 1']
    >>> necessary_violations((1, 0, 1))
    ['zero absorption: r_1 = 0 but r_2 = 1', 'C2 bound: r_2 = 1 > 2*r_1 = 0']
    >>> necessary_violations((3, 5, 1))
    ['three-term rigidity: 2*r_2 >= 3*r_1 - 4*r_0 = 3, but 2*r_2 = 2']
    >>> necessary_violations((3, 5, 1), differences=True)
    []
    """
    r = tuple(target)
    if not r or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in r):
        raise ValueError(f"target must be a non-empty sequence of non-negative ints, got {target!r}")
    out = []
    K = len(r)
    for k in range(K):
        if r[k] == 0:
            bad = [i for i in range(k + 1, K) if r[i]]
            if bad:
                out.append(f"zero absorption: r_{k} = 0 but r_{bad[0]} = {r[bad[0]]}")
                break
    for k in range(K):
        for j in range(1, K - k):
            if r[k + j] > (j + 1) * r[k]:
                out.append(f"C2 bound: r_{k + j} = {r[k + j]} > {j + 1}*r_{k} = {(j + 1) * r[k]}")
    for k in range(K - 2):
        if r[k] and r[k + 1] == 2 * r[k] and r[k + 2] < r[k]:
            out.append(
                f"doubling rigidity: r_{k + 1} = 2*r_{k} = {r[k + 1]} forces r_{k + 2} >= {r[k]}, "
                f"but r_{k + 2} = {r[k + 2]}"
            )
    for k in range(K):
        for j in range(2, K - k - 1):
            if r[k] and r[k + j] == (j + 1) * r[k] and r[k + j + 1] < j * r[k]:
                out.append(
                    f"generalised rigidity: r_{k + j} = {j + 1}*r_{k} = {r[k + j]} forces "
                    f"r_{k + j + 1} >= {j * r[k]}, but r_{k + j + 1} = {r[k + j + 1]}"
                )
    for k in range(K - 1):
        if r[k] == 1 and r[k + 1] <= 1:
            bad = [k + i for i in range(2, K - k) if r[k + i] > 1]
            if bad:
                out.append(f"rank-one persistence: r_{k} = 1, r_{k + 1} = {r[k + 1]} but r_{bad[0]} = {r[bad[0]]}")
    if not differences:
        # proved for derivatives only; at r_{k+1} = 2 r_k it is doubling rigidity, reported above
        for k in range(K - 2):
            bound = 3 * r[k + 1] - 4 * r[k]
            if r[k + 1] < 2 * r[k] and 2 * r[k + 2] < bound:
                out.append(
                    f"three-term rigidity: 2*r_{k + 2} >= 3*r_{k + 1} - 4*r_{k} = {bound}, "
                    f"but 2*r_{k + 2} = {2 * r[k + 2]}"
                )
    return out


def block_matrix(block: tuple, var: Symbol = T) -> Matrix:
    """The SymPy matrix of a library block.

    Parameters
    ----------
    block : tuple
        ``("monomial", e)``, ``("hankel_anti", d, m)``,
        ``("rect_anti", a, b, m)`` or ``("dcd", a, b, C)`` (the matrix
        ``C_ij var^(a_i + b_j)``, see :mod:`theory.dcd`).
    var : sympy.Symbol

    Returns
    -------
    sympy.Matrix

    Raises
    ------
    ValueError
        For an unknown block.

    Examples
    --------
    >>> block_matrix(("monomial", 2))
    Matrix([[t**2]])
    """
    kind = block[0]
    if kind == "dcd":
        from .dcd import dcd_matrix

        return sp.Matrix(dcd_matrix(block[1], block[2], block[3], var))
    if kind == "monomial":
        return sp.Matrix([[var ** block[1]]])
    if kind == "hankel_anti":
        return antiderivative_hankel(block[1], block[2], var)
    if kind == "rect_anti":
        a, b, m = block[1:]
        return sp.Matrix(a + 1, b + 1, lambda i, j: var ** (i + j + m) * sp.factorial(i + j) / sp.factorial(i + j + m))
    raise ValueError(f"unknown block {block!r}")


@functools.lru_cache(maxsize=None)
def _block_profile(block, K):
    P = rank_profile(block_matrix(block), K - 1, var=T, seed=0)
    if not P.certified:  # pragma: no cover - the engine always certifies
        raise RuntimeError(f"profile of {block} not certified")
    return P.ranks


def library(K: int, max_rank: int, *, kind: str = "standard") -> list[tuple[tuple, tuple[int, ...]]]:
    """Library blocks and their certified profiles at orders ``0..K-1``.

    Parameters
    ----------
    K : int
        Profile length.
    max_rank : int
        Only blocks with every rank ``<= max_rank`` are listed.
    kind : {"standard", "extended"}
        "extended" adds the rectangular blocks ``rect_anti``.

    Returns
    -------
    list of (block, profile)

    Raises
    ------
    ValueError
        For an unknown ``kind`` or ``K < 1``.

    Examples
    --------
    >>> [b for b, p in library(2, 2)][:3]
    [('monomial', 0), ('monomial', 1), ('hankel_anti', 1, 0)]
    """
    if kind not in ("standard", "extended"):
        raise ValueError(f"kind must be 'standard' or 'extended', got {kind!r}")
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    blocks: list[tuple] = [("monomial", e) for e in range(K)]
    blocks += [("hankel_anti", d, m) for d in range(1, max_rank) for m in range(K)]
    if kind == "extended":
        blocks += [
            ("rect_anti", a, b, m) for a in range(1, max_rank) for b in range(a + 1, a + K + 1) for m in range(K)
        ]
    out = []
    for b in blocks:
        prof = _block_profile(b, K)
        if max(prof) <= max_rank:
            out.append((b, prof))
    return out


def _search(target, lib):
    """Fewest-block multiset of library profiles summing exactly to target."""
    K = len(target)
    lib = [(b, p) for b, p in lib if all(x <= y for x, y in zip(p, target)) and any(p)]

    def dfs(start, rest, depth):
        if not any(rest):
            return []
        if depth == 0:
            return None
        for idx in range(start, len(lib)):
            b, p = lib[idx]
            if all(p[k] <= rest[k] for k in range(K)):
                sub = dfs(idx, tuple(rest[k] - p[k] for k in range(K)), depth - 1)
                if sub is not None:
                    return [b] + sub
        return None

    for depth in range(1, target[0] + 1):  # every nonzero block has rank >= 1 at order 0
        found = dfs(0, tuple(target), depth)
        if found is not None:
            return found
    return None


def _known_constructions():
    """Constructions found by ``python -m theory search``, shipped as data.

    They are never trusted: :func:`design_profile` certifies the assembled
    matrix with the engine before answering, and the tests re-check each with
    SymPy's DomainMatrix.
    """
    from ._constructions import DATA

    out = {}
    for row in DATA["constructions"]:
        blocks = [
            ("dcd", tuple(b["a"]), tuple(b["b"]), tuple(tuple(r) for r in b["C"]))
            if b["kind"] == "dcd"
            else tuple(b["block"])
            for b in row["blocks"]
        ]
        out[tuple(row["target"])] = (blocks, row.get("source", "found by python -m theory search"))
    return out


_KNOWN = None


def design_profile(
    target: Sequence[int],
    *,
    library_kind: str = "standard",
    var: Symbol = T,
    use_data: bool = True,
    search_budget: int = 0,
    seed: int = 0,
) -> DesignResult:
    """Construct a matrix with generic profile ``target`` — or prove impossible.

    Parameters
    ----------
    target : sequence of int
        ``(r_0, ..., r_{K-1})``.
    library_kind : {"standard", "extended"}
    var : sympy.Symbol
    use_data : bool, default True
        Also try the shipped constructions (``theory/_constructions.py``,
        found by :func:`search_constructions` — the border, split,
        lift and rank-one-order searches — and regenerated by
        ``python -m theory search --out theory/_constructions.py``) when no
        library sum fits.
    search_budget : int, default 0
        If positive, run :func:`theory.dcd.border_search` with this many
        candidates per lifting order when nothing else fits.
    seed : int
        Seed of that search.

    Returns
    -------
    DesignResult
        "constructed" only after the engine certified the profile of the
        assembled matrix; "impossible" with the violated condition; or
        "open".

    Raises
    ------
    ValueError
        For a malformed target.

    Examples
    --------
    >>> r = design_profile((3, 1, 2))
    >>> r.construction(), r.profile.ranks
    ('∫^1 H_2', (3, 1, 2))
    >>> design_profile((3, 4, 1, 2), library_kind="extended").status
    'constructed'
    """
    global _KNOWN
    viol = necessary_violations(target)
    target = tuple(target)
    if viol:
        return DesignResult(target, "impossible", reason="; ".join(viol))
    if not any(target):
        A = sp.zeros(1, 1)
        return DesignResult(target, "constructed", [], A, rank_profile(A, len(target) - 1, var=var), "zero matrix")
    blocks = _search(target, library(len(target), max(target), kind=library_kind))
    how = "block-diagonal sum, profile certified"
    if blocks is None and use_data:
        if _KNOWN is None:
            _KNOWN = _known_constructions()
        blocks, source = _KNOWN.get(target, (None, ""))
        how = f"shipped construction ({source}), profile certified"
    if blocks is None and search_budget > 0:
        from .dcd import border_search

        def tails(tail):
            r = design_profile(tail, library_kind=library_kind, var=var, use_data=False)
            return r.blocks if r.status == "constructed" else None

        found = border_search(target, tails, budget=search_budget, seed=seed)
        blocks = None if found is None else [found]
        how = "D_a C D_b found by search, profile certified"
    if blocks is None:
        from .dcd_search import drop_bound_holds

        return DesignResult(
            target,
            "open",
            reason=f"passes the necessary conditions; not a sum of {library_kind}-library profiles"
            + (" and no D_a C D_b construction known" if use_data or search_budget else "")
            + ("" if drop_bound_holds(target) else "; violates the drop bound (false in general: see (2, 3, 4, 1))"),
        )
    A = block_diag(*[block_matrix(b, var) for b in blocks])
    prof = rank_profile(A, len(target) - 1, var=var, seed=1)
    if not (prof.certified and prof.ranks == target):  # pragma: no cover - would be a bug
        return DesignResult(target, "open", reason=f"construction gave {prof.ranks}: not verified")
    return DesignResult(target, "constructed", blocks, A, prof, how)


def permutation_table(K_max: int = 4, *, library_kind: str = "standard", use_data: bool = True) -> list[DesignResult]:
    """Designer outcome for every permutation of ``{1..K}``, ``K <= K_max``.

    Returns
    -------
    list of DesignResult

    Examples
    --------
    >>> [(r.target, r.status) for r in permutation_table(2)]
    [((1,), 'constructed'), ((1, 2), 'constructed'), ((2, 1), 'constructed')]
    """
    return [
        design_profile(p, library_kind=library_kind, use_data=use_data)
        for K in range(1, K_max + 1)
        for p in itertools.permutations(range(1, K + 1))
    ]


def search_constructions(
    K_max: int = 5,
    *,
    library_kind: str = "extended",
    budget: int = 3000,
    seeds: Iterable[int] = range(4),
    K_min: int = 1,
    border: bool = True,
    rank_one_tries: int = 5000,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Search constructions for every open permutation target.

    For each permutation of ``{1..K}``, ``K_min <= K <= K_max``, that no
    library sum realises, in this order until one succeeds:

    1. :func:`theory.dcd.border_search` (if ``border``) and
       :func:`theory.dcd_search.split_search` (library blocks ⊕ one
       ``D_a C D_b`` block found by the column search), seed by seed;
    2. if ``r_0 = max(target)``: :func:`theory.rank_one_search.integrate_block`
       on a polynomial construction of the tail ``target[1:]`` (a library
       sum, or a ``D_a C D_b`` block found earlier in this run or shipped);
    3. if some ``r_k = 1``, ``k >= 1``: :func:`theory.rank_one_search.rank_one_search`,
       seed by seed, ``rank_one_tries`` draws each, polynomial
       constructions first.

    Shipped rows from elsewhere (with a ``"source"``, such as the pole
    construction of :mod:`theory.poles`) are kept by ``python -m theory
    search --out``.

    Parameters
    ----------
    K_max : int
    library_kind : {"standard", "extended"}
    budget : int
        Border-search candidates per lifting order and seed.
    seeds : iterable of int
    K_min : int
        Smallest K searched.
    border : bool
        Run the border search.
    rank_one_tries : int
        Draws of :func:`theory.rank_one_search.rank_one_search` per seed
        (0 skips it).
    progress : callable, optional
        Called with a line of text before each open target is searched.

    Returns
    -------
    dict
        JSON-compatible ``{"constructions": [{"target": [...], "blocks": [...]}, ...],
        "open": [[...], ...]}``; a block is ``{"kind": "dcd", "a", "b", "C"}``
        or ``{"kind": "library", "block": [...]}``.  Every construction's
        profile is exact (:func:`theory.dcd.dcd_profile` on each block).
    """
    from .dcd_search import split_search

    seeds = list(seeds)
    found, still_open = [], []
    found_here: dict[tuple, list] = {}
    for K in range(K_min, K_max + 1):
        for p in itertools.permutations(range(1, K + 1)):
            r = design_profile(p, library_kind=library_kind, use_data=False)
            if r.status != "open":
                continue
            if progress is not None:
                progress(f"searching {p}")
            blocks = None
            for seed in seeds:
                if border:
                    r = design_profile(p, library_kind=library_kind, use_data=False, search_budget=budget, seed=seed)
                    if r.status == "constructed":
                        blocks = r.blocks
                        break
                lib = library(K, max(p), kind=library_kind)
                blocks = split_search(p, lib, lambda q: not necessary_violations(q), seed=seed)
                if blocks is not None:
                    break
            if blocks is None and p[0] == max(p) and K > 1:
                blocks = _lift_tail(p, found_here, library_kind, seeds)
            if blocks is None and 1 in p[1:] and rank_one_tries > 0:
                from .rank_one_search import rank_one_search

                # polynomial constructions first: they also lift (integrate_block)
                for polynomial, seed in itertools.product((True, False), seeds):
                    blk = rank_one_search(p, seed=seed, tries=rank_one_tries, polynomial=polynomial)
                    if blk is not None:
                        blocks = [blk]
                        break
            if blocks is None:
                still_open.append(list(p))
                continue
            found_here[p] = blocks
            found.append(
                {
                    "target": list(p),
                    "blocks": [
                        {"kind": "dcd", "a": list(b[1]), "b": list(b[2]), "C": [list(row) for row in b[3]]}
                        if b[0] == "dcd"
                        else {"kind": "library", "block": list(b)}
                        for b in blocks
                    ],
                }
            )
    return {"constructions": found, "open": still_open}


def _lift_tail(target, found_here, library_kind, seeds):
    """``[block]`` realising ``target`` as the antiderivative of a polynomial tail construction, or None."""
    from .dcd import block_sum_dcd, library_to_dcd
    from .rank_one_search import integrate_block

    tail = tuple(target[1:])
    tail_blocks = found_here.get(tail)
    if tail_blocks is None:
        r = design_profile(tail, library_kind=library_kind)
        tail_blocks = r.blocks if r.status == "constructed" else None
    if not tail_blocks:
        return None
    block = ("dcd", *block_sum_dcd([library_to_dcd(b) for b in tail_blocks]))
    for seed in seeds:
        try:
            lifted = integrate_block(block, target, seed=seed)
        except ValueError:  # a t^-1 entry: the antiderivative is not rational
            return None
        if lifted is not None:
            return [lifted]
    return None


def discrete_status(result: DesignResult) -> str:
    """What is known about ``result.target`` as a generic *difference* profile.

    * impossible: the target violates a necessary condition that is proved
      for forward differences too (all but three-term rigidity), so it is
      impossible there as well;
    * constructed: :func:`theory.discrete.design_difference_profile` found a
      sum of discrete library blocks (``j^e``, ``Σ^m H_d``,
      ``Σ^m u_a u_bᵀ``) or the derivative construction read in ``j`` has the
      target as its certified difference profile;
    * open otherwise (the row says what the derivative construction gives
      in ``j``, if there is one).

    Returns
    -------
    str

    Examples
    --------
    >>> discrete_status(design_profile((1, 2)))
    'constructed: H_1'
    >>> discrete_status(design_profile((2, 1)))
    'constructed: Σ^1 H_1'
    """
    if result.status == "impossible" and necessary_violations(result.target, differences=True):
        return "impossible (same condition)"
    if result.status == "open":
        return "open"
    from .discrete import design_difference_profile, discrete_construction

    d = design_difference_profile(result.target, derivative=result)
    if d.status == "constructed":
        if d.reason.startswith("same matrix"):
            return "constructed (same matrix in j)"
        return "constructed: " + (discrete_construction(d.blocks) or "zero matrix")
    if "has " in d.reason:
        return f"open (the derivative construction in j has {d.reason.split('has ')[1]})"
    return "open"


def format_table(results: Sequence[DesignResult], *, discrete: bool = False, fmt: str = "markdown") -> str:
    """Table: target | status | construction or reason [| discrete].

    Parameters
    ----------
    results : list of DesignResult
    discrete : bool
        Add the differences column (:func:`discrete_status`).
    fmt : {"markdown", "latex"}
        Markdown (the page in the documentation) or a LaTeX ``longtable``.

    Raises
    ------
    ValueError
        For an unknown ``fmt``.

    Examples
    --------
    >>> print(format_table(permutation_table(1)))
    | target | status | construction / violated condition |
    |---|---|---|
    | (1) | constructed | t^0 |
    """
    if fmt not in ("markdown", "latex"):
        raise ValueError(f"fmt must be 'markdown' or 'latex', got {fmt!r}")
    if fmt == "latex":
        cols = "llp{0.45\\linewidth}" + ("l" if discrete else "")
        head = "target & status & construction / violated condition" + (" & differences" if discrete else "")
        lines = [rf"\begin{{longtable}}{{{cols}}}", head + r" \\", r"\hline"]
        for r in results:
            tgt = "$(" + ", ".join(map(str, r.target)) + ")$"
            what = r.construction() if r.status == "constructed" else r.reason
            cells = [tgt, r.status, _latex_escape(what)]
            if discrete:
                cells.append(_latex_escape(r.discrete or discrete_status(r)))
            lines.append(" & ".join(cells) + r" \\")
        lines.append(r"\end{longtable}")
        return "\n".join(lines)
    head = "| target | status | construction / violated condition |"
    rule = "|---|---|---|"
    if discrete:
        head += " differences |"
        rule += "---|"
    lines = [head, rule]
    for r in results:
        tgt = "(" + ", ".join(map(str, r.target)) + ")"
        what = r.construction() if r.status == "constructed" else r.reason
        line = f"| {tgt} | {r.status} | {what} |"
        if discrete:
            line += f" {r.discrete or discrete_status(r)} |"
        lines.append(line)
    return "\n".join(lines)


def check(K_max: int = 3) -> list[ClaimResult]:
    """C3b check: every designer answer for perms of {1..K_max} is consistent.

    "constructed" answers carry a certified profile equal to the target and
    pass the necessary conditions; "impossible" answers violate one.

    Returns
    -------
    list of ClaimResult

    Examples
    --------
    >>> all(r.passed for r in check(K_max=2))
    True
    """
    res = ClaimResult(f"C3b designer, perms of 1..{K_max}")
    with timed(res):
        for r in permutation_table(K_max):
            if r.status == "constructed":
                ok = (
                    r.profile is not None
                    and r.profile.certified
                    and r.profile.ranks == r.target
                    and not necessary_violations(r.target)
                )
            elif r.status == "impossible":
                ok = bool(necessary_violations(r.target))
            else:
                ok = not necessary_violations(r.target)
            res.record(ok, f"{r.target}: {r.status}")
    return [res]
