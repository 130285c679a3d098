"""The K <= 5 (and K = 6) designer table and the difference-profile designer.

Independent references: SymPy's DomainMatrix over QQ(j) (or QQ(t)) on differences (derivatives)
computed by SymPy itself, and closed forms for the indefinite sums.
"""

import itertools

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

from theory import necessary_violations
from theory.designer import discrete_status, library, permutation_table
from theory.discrete import (
    J,
    design_difference_profile,
    discrete_block_matrix,
    discrete_block_profile,
    indefinite_sum_power,
)


def domainmatrix_difference_profile(A, K):
    """Generic ranks of A, ΔA, ..., Δ^(K-1) A by SymPy alone."""
    field = sp.QQ.frac_field(J)
    out, D = [], sp.Matrix(A)
    for _ in range(K):
        out.append(DomainMatrix.from_Matrix(D.applyfunc(sp.cancel)).convert_to(field).rank())
        D = (D.subs(J, J + 1) - D).applyfunc(sp.cancel)
    return tuple(out)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 6), st.integers(0, 4))
def test_indefinite_sum_inverts_the_difference(s, m):
    P = indefinite_sum_power(s, m)
    D = P
    for _ in range(m):
        D = sp.expand(D.subs(J, J + 1) - D)
    assert sp.expand(D - J**s) == 0
    assert all(P.subs(J, x) == 0 for x in range(m))  # the sums vanish at j = 0..m-1


@pytest.mark.parametrize(
    "block",
    [("monomial", 2), ("hankel_anti", 1, 0), ("hankel_anti", 1, 1), ("hankel_anti", 2, 2), ("rect_anti", 1, 2, 1)],
)
def test_discrete_blocks_have_the_derivative_profiles(block):
    """The proved statement: Σ^m blocks in j have the profiles of the ∫^m blocks in t."""
    K = 5
    want = dict(library(K, 5, kind="extended"))[block]
    assert discrete_block_profile(block, K) == want
    assert domainmatrix_difference_profile(discrete_block_matrix(block), K) == want


def test_discrete_block_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown block"):
        discrete_block_matrix(("spline", 1))
    with pytest.raises(ValueError, match="non-negative"):
        indefinite_sum_power(-1, 2)


def _table(K_max):
    return permutation_table(K_max, library_kind="extended")


def test_difference_designer_on_every_constructed_row_up_to_four():
    """Every "constructed" difference answer is re-checked by DomainMatrix on SymPy's own differences."""
    rows = _table(4)
    seen = 0
    for r in rows:
        d = design_difference_profile(r.target, derivative=r)
        if r.status == "impossible":
            assert d.status == "impossible" and necessary_violations(r.target)
            continue
        if d.status != "constructed":
            continue
        seen += 1
        K = len(r.target)
        assert d.profile.kind == "difference" and d.profile.certified and d.profile.ranks == r.target
        assert domainmatrix_difference_profile(d.matrix, K) == r.target
    assert seen == 14  # every constructed derivative row with K <= 4 except (3, 4, 1, 2)


def test_table_counts_and_discrete_column():
    rows = _table(5)
    assert [r.target for r in rows] == [p for K in range(1, 6) for p in itertools.permutations(range(1, K + 1))]
    status = {s: sum(r.status == s for r in rows) for s in ("constructed", "impossible", "open")}
    assert status == {"constructed": 36, "impossible": 114, "open": 3}
    disc = [discrete_status(r) for r in rows]
    assert sum(x.startswith("constructed") for x in disc) == 27
    assert sum(x.startswith("impossible") for x in disc) == 111
    # the rows the discrete library cannot reach are exactly the ones that need a D_a C D_b block
    dcd_rows = {r.target for r in rows if r.status == "constructed" and any(b[0] == "dcd" for b in r.blocks)}
    assert {r.target for r, x in zip(rows, disc) if x.startswith("open (")} == dcd_rows
    assert discrete_status(rows[2]) == "constructed: Σ^1 H_1"  # (2, 1)


@pytest.mark.slow
def test_difference_designer_k5_rows_domainmatrix():
    for r in _table(5):
        if len(r.target) < 5 or r.status != "constructed":
            continue
        d = design_difference_profile(r.target, derivative=r)
        if d.status == "constructed":
            assert domainmatrix_difference_profile(d.matrix, 5) == r.target


def _drop_bound_holds(p):
    """The drop bound of the theory page, rho(n) <= rho(n+1) + min_{k<n} rho(k) (false in general)."""
    return all(p[n] <= p[n + 1] + min(p[:n]) for n in range(1, len(p) - 1))


def test_open_rows_and_the_drop_bound():
    rows = _table(5)
    violating = [r.target for r in rows if r.status == "constructed" and not _drop_bound_holds(r.target)]
    # the bound is false (theory.poles; theory.rank_one_search): these constructions violate it
    assert violating == [(2, 3, 4, 1), (3, 4, 5, 1, 2), (5, 2, 3, 4, 1)]
    open_rows = [r.target for r in rows if r.status == "open"]
    assert open_rows == [(2, 3, 4, 5, 1), (2, 3, 5, 4, 1), (3, 2, 4, 5, 1)]
    assert not [p for p in open_rows if _drop_bound_holds(p)]
    reason = "violates the drop bound (false in general: see (2, 3, 4, 1))"
    assert all(reason in r.reason for r in rows if r.status == "open")


def domainmatrix_profile(A, K):
    """Generic ranks of A, A', ..., A^(K-1) by SymPy alone (over QQ(t))."""
    t = sp.Symbol("t")
    field = sp.QQ.frac_field(t)
    return tuple(
        DomainMatrix.from_Matrix(sp.Matrix(A).diff(t, k) if k else sp.Matrix(A)).convert_to(field).rank()
        for k in range(K)
    )


SEED_22311 = 16  # a seed whose first row set succeeds (any seed does within a few dozen)


def test_column_search_block_is_exact():
    from theory.dcd import dcd_matrix, dcd_profile
    from theory.dcd_search import column_search

    blk = column_search((2, 2, 3, 1, 1), seed=SEED_22311, tries=1, node_budget=500)
    assert blk is not None and blk[0] == "dcd"
    assert dcd_profile(blk[1], blk[2], blk[3], 5) == (2, 2, 3, 1, 1)
    assert domainmatrix_profile(dcd_matrix(blk[1], blk[2], blk[3], sp.Symbol("t")), 5) == (2, 2, 3, 1, 1)
    with pytest.raises(ValueError, match="target"):
        column_search((0, 1))


def _mixed_rows():
    from theory._constructions import DATA

    return [row for row in DATA["constructions"] if any(b["kind"] == "library" for b in row["blocks"])]


@pytest.mark.parametrize("row", _mixed_rows(), ids=lambda r: str(tuple(r["target"])))
def test_shipped_split_constructions(row):
    """Library block(s) ⊕ searched D_a C D_b block: engine, DomainMatrix and exact Hadamard ranks agree."""
    from theory import rank_profile
    from theory.designer import block_matrix, design_profile

    target = tuple(row["target"])
    parts = [
        ("dcd", tuple(b["a"]), tuple(b["b"]), tuple(map(tuple, b["C"]))) if b["kind"] == "dcd" else tuple(b["block"])
        for b in row["blocks"]
    ]
    A = sp.diag(*[block_matrix(p) for p in parts])
    K = len(target)
    assert rank_profile(A, K - 1, seed=4).ranks == target
    assert domainmatrix_profile(A, K) == target
    r = design_profile(target, library_kind="extended")
    assert r.status == "constructed" and r.profile.certified and r.profile.ranks == target


@pytest.mark.slow
def test_split_search_finds_43521_by_itself():
    """No construction is given: library block ⊕ searched D_a C D_b block."""
    from theory.dcd_search import split_search

    lib = library(5, 5, kind="extended")
    blocks = split_search((4, 3, 5, 2, 1), lib, lambda q: not necessary_violations(q), seed=0)
    assert blocks is not None and blocks[-1][0] == "dcd"
    from theory.designer import block_matrix

    A = sp.diag(*[block_matrix(b) for b in blocks])
    assert domainmatrix_profile(A, 5) == (4, 3, 5, 2, 1)


def test_every_constructed_row_domainmatrix():
    """Each "constructed" derivative row: the engine's certified profile and DomainMatrix over QQ(t) agree."""
    n = 0
    for r in _table(5):
        if r.status == "constructed":
            assert r.profile.certified and r.profile.ranks == r.target
            assert domainmatrix_profile(r.matrix, len(r.target)) == r.target
            n += 1
    assert n == 36
