"""Certificates are bound to the matrix they are checked against, immutable and serialisable.

References are independent: ranks from SymPy's DomainMatrix over QQ(t), and the
standalone checker (SymPy only) for the JSON form.
"""

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import warnings

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

import theory
from theory import Certificate, generic_rank, rank_profile
from theory.checker import check_certificate

t = sp.Symbol("t")


def reference_rank(M):
    M = sp.Matrix(M)
    if M.rows == 0 or M.cols == 0:
        return 0
    return DomainMatrix.from_Matrix(M).convert_to(sp.QQ.frac_field(t)).rank()


def both_ways(c, A):
    """Verdicts of the engine's check, the SymPy check, and the standalone checker on JSON."""
    text = json.dumps(c.to_json())
    return c.verify(A), c.verify(A, method="sympy"), check_certificate(text, sp.Matrix(A))


# A: rank 2 (right kernel); W: wide rank 1 (left kernel); F: full rank 2 (no kernel)
A = sp.Matrix([[1, t, t**2], [t, t**2, t**3], [1, 1, 1]])
W = sp.Matrix([[1, t, t**2, t**3], [2, 2 * t, 2 * t**2, 2 * t**3]])
F = sp.Matrix([[1, t], [t, 1]])


def forgeries(c, M):
    """Every proof-carrying field of ``c`` changed so that the proof no longer holds for ``M``."""
    m, n = M.shape
    out = {
        "rank+1": {"rank": c.rank + 1},
        "shape": {"shape": (m + 1, n)},
        "var": {"var": sp.Symbol("x")},
        "prime composite": {"prime": c.prime * 3},
        "prime 1": {"prime": 1},
        "prime missing": {"prime": None},
        "pivot rows duplicated": {"pivot_rows": (c.pivot_rows[0],) * len(c.pivot_rows)}
        if c.rank > 1
        else {"pivot_rows": ()},
        "pivot cols out of range": {"pivot_cols": tuple(j + n for j in c.pivot_cols)},
        "pivot rows too few": {"pivot_rows": c.pivot_rows[:-1]},
    }
    if c.rank > 0:
        out["rank-1"] = {"rank": c.rank - 1}
    if c.kernel_side is not None:
        size = n if c.kernel_side == "right" else m
        out["kernel_side flipped"] = {"kernel_side": "left" if c.kernel_side == "right" else "right"}
        out["kernel_side none"] = {"kernel_side": None}
        out["kernel_side bogus"] = {"kernel_side": "up"}
        out["kernel perturbed"] = {
            "_kernel": tuple(tuple((i, tuple(x + 1 for x in f)) for i, f in col) for col in c._kernel)
        }
        out["kernel column dropped"] = {"_kernel": c._kernel[:-1]}
        out["kernel zero"] = {"_kernel": tuple(() for _ in c._kernel)}
        out["kernel row out of range"] = {"_kernel": tuple(tuple((i + size, f) for i, f in col) for col in c._kernel)}
        out["kernel_rows too few"] = {"kernel_rows": c.kernel_rows[:-1]}
        if len(c.kernel_rows) > 1:
            out["kernel_rows duplicated"] = {"kernel_rows": (c.kernel_rows[0],) * len(c.kernel_rows)}
        out["kernel_rows out of range"] = {"kernel_rows": tuple(size + i for i in c.kernel_rows)}
        zero_rows = [i for i in range(size) if all(i not in dict(col) for col in c._kernel)]
        if zero_rows:
            out["kernel_rows on zero rows"] = {"kernel_rows": tuple(zero_rows[: len(c.kernel_rows)])}
    else:
        out["certified without kernel, rank < min"] = {
            "rank": c.rank - 1,
            "pivot_rows": c.pivot_rows[:-1],
            "pivot_cols": c.pivot_cols[:-1],
        }
    return out


@pytest.mark.slow
@pytest.mark.parametrize("M", [A, W, F], ids=["right-kernel", "left-kernel", "full-rank"])
def test_every_forged_field_is_rejected(M):
    c = generic_rank(M, seed=2)
    assert c.rank == reference_rank(M)
    assert both_ways(c, M) == (True, True, True)
    for label, change in forgeries(c, M).items():
        bad = dataclasses.replace(c, **change)
        assert both_ways(bad, M) == (False, False, False), label
        assert not bad.verify(), label  # the self-check also sees the forgery


def test_point_on_a_zero_of_the_pivot_minor_is_rejected():
    c = generic_rank(A, seed=0)
    rows, cols = c.pivot_rows, c.pivot_cols
    minor = sp.Matrix(A.extract(list(rows), list(cols))).det()
    roots = [r for r in sp.roots(sp.Poly(minor, t)) if r.is_integer]
    assert roots, minor  # every 2x2 minor of A is a multiple of (t - 1)
    bad = dataclasses.replace(c, point=int(roots[0]))
    assert both_ways(bad, A) == (False, False, False)
    bad = dataclasses.replace(c, certified=False)
    assert both_ways(bad, A) == (False, False, False)


def test_certificate_of_another_matrix_does_not_verify():
    # the case that motivated binding: a rank-2 certificate passed off for a rank-3 matrix
    B = sp.Matrix([[1, t, t**2], [t, t**2, t**3 + 1], [1, 1, 1]])
    assert reference_rank(B) == 3
    c = generic_rank(A, seed=0)
    assert both_ways(c, B) == (False, False, False)
    # a forged shape on a full-rank 2x2 certificate cannot pass as a 3x3 rank-2 proof
    c2 = generic_rank(F, seed=0)
    assert both_ways(dataclasses.replace(c2, shape=(3, 3)), B) == (False, False, False)
    # a stored source that differs from the converted matrix is irrelevant to verify(A)
    c3 = dataclasses.replace(c, _source=B)
    assert c3.verify(A) and not c3.verify(B)


def test_certificates_are_immutable():
    c = generic_rank(A, seed=0)
    for name in ("rank", "shape", "point", "prime", "_kernel"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(c, name, None)
    assert isinstance(c._kernel, tuple) and all(isinstance(col, tuple) for col in c._kernel)


rationals = st.builds(
    lambda cs, shift, kind: (
        (sum(c * t**i for i, c in enumerate(cs)) / (t + shift)) if kind else sum(c * t**i for i, c in enumerate(cs))
    ),
    st.lists(st.integers(-4, 4), min_size=1, max_size=3),
    st.integers(-2, 2),
    st.booleans(),
)


@st.composite
def products(draw):
    m, n, r = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(0, 3))
    if r == 0:
        return sp.zeros(m, n)
    B = sp.Matrix(m, r, lambda *_: draw(rationals))
    C = sp.Matrix(r, n, lambda *_: draw(rationals))
    return B * C


@settings(max_examples=25, deadline=None)
@given(products(), st.integers(0, 2**16))
def test_json_round_trip_and_standalone_check(M, seed):
    c = generic_rank(M, var=t, seed=seed)
    assert c.rank == reference_rank(M)
    data = c.to_json()
    text = json.dumps(data)
    c2 = Certificate.from_json(text)
    assert c2.to_json() == data and c2.rank == c.rank and c2.var == t
    assert c2.verify(M) and c2.verify(M, method="sympy") and check_certificate(text, M)
    with pytest.raises(ValueError, match="carries no matrix"):
        c2.verify()


def test_standalone_checker_needs_only_sympy(tmp_path):
    c = generic_rank(A, seed=4)
    (tmp_path / "cert.json").write_text(json.dumps(c.to_json()))
    shutil.copy(os.path.join(os.path.dirname(theory.__file__), "checker.py"), tmp_path / "rank_checker.py")
    code = (
        "import json, sys, sympy as sp\n"
        "import rank_checker\n"
        "t = sp.Symbol('t')\n"
        "A = sp.Matrix([[1, t, t**2], [t, t**2, t**3], [1, 1, 1]])\n"
        "B = sp.Matrix([[1, t, t**2], [t, t**2, t**3 + 1], [1, 1, 1]])\n"
        "cert = open('cert.json').read()\n"
        "print(rank_checker.check_certificate(cert, A), rank_checker.check_certificate(cert, B),\n"
        "      any(m.split('.')[0] in ('theory', 'numba', 'lowrank_tree') for m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "False"]


def test_malformed_json_is_refused():
    with pytest.raises(ValueError, match="certificate"):
        Certificate.from_json({"format": "something else"})
    with pytest.raises(ValueError, match="malformed certificate"):
        Certificate.from_json({"format": "theory.generic_rank", "version": 1})
    with pytest.raises(ValueError, match="certificate"):
        check_certificate({"rank": 1}, A)
    with pytest.raises(TypeError, match="A must be a SymPy matrix"):
        check_certificate(generic_rank(A).to_json(), [[1]])


def test_combinatorial_entries_verify_on_the_rational_form():
    G = sp.Matrix([[sp.gamma(t + 1) / sp.gamma(t), 1], [sp.factorial(t + 2) / sp.factorial(t), t + 1]])
    E = sp.Matrix([[t, 1], [(t + 1) * (t + 2), t + 1]])
    c = generic_rank(G, seed=0)
    assert c.rank == reference_rank(E) == 2
    assert both_ways(c, G) == (True, True, True)
    H = sp.Matrix([[sp.gamma(t + 1) / sp.gamma(t), sp.binomial(t, 2)], [2, t - 1]])  # rank 1
    c = generic_rank(H, seed=0)
    assert c.rank == 1 and both_ways(c, H) == (True, True, True)


def test_input_kinds_are_accepted():
    M = sp.Matrix([[1, t, t**2], [t, t**2, t**3]])
    ref = generic_rank(M, seed=0).rank
    assert ref == reference_rank(M) == 1
    with warnings.catch_warnings():  # SymPy itself deprecates Poly entries in a Matrix
        warnings.simplefilter("ignore")
        poly_matrix = sp.Matrix([[sp.Poly(1, t), sp.Poly(t, t), sp.Poly(t**2, t)], [t, t**2, sp.Poly(t**3, t)]])
    inputs = [
        poly_matrix,
        [[sp.Poly(1, t), t, t**2], [t, t**2, t**3]],
        sp.Array([[1, t, t**2], [t, t**2, t**3]]),
        sp.ImmutableSparseMatrix(M),
        sp.SparseMatrix(M),
        DomainMatrix.from_Matrix(M),
        DomainMatrix.from_Matrix(M).convert_to(sp.QQ.frac_field(t)),
    ]
    for X in inputs:
        c = generic_rank(X, seed=0)
        assert c.rank == ref, type(X)
        assert c.verify(X) and c.verify(X, method="sympy") and c.verify(M)
    assert rank_profile(sp.Array([[1, t], [t, t**2]]), 3).ranks == (1, 2, 1, 0)


def test_bad_inputs_have_clear_errors():
    with pytest.raises(TypeError, match="A must be 2-D"):
        generic_rank(sp.Array([[[t]]]))
    tp = sp.Symbol("t", positive=True)
    with pytest.raises(ValueError, match=r"symbol t with assumptions \{.*positive=True.*\} but the variable t"):
        generic_rank(sp.Matrix([[tp, 1]]), var=t)
    c = generic_rank(sp.Matrix([[t, 1]]), var=t)
    with pytest.raises(ValueError, match="assumptions"):
        c.verify(sp.Matrix([[tp, 1]]))
    with pytest.raises(ValueError, match="method"):
        c.verify(sp.Matrix([[t, 1]]), method="magic")


def test_profile_verify_is_bound_to_the_matrix():
    H = sp.Matrix([[1, t], [t, t**2]])
    P = rank_profile(H, 3, seed=0)
    assert P.ranks == (1, 2, 1, 0)
    assert P.verify(H) and P.verify(H, method="sympy") and P.verify()
    assert not P.verify(sp.Matrix([[1, t], [t, t**2 + 1]]))  # profile (2, 2, 1, 0)
    j = sp.Symbol("j", integer=True)
    D = theory.difference_profile(sp.Matrix([[1, j], [j, j**2]]), 3, seed=0)
    assert D.verify(sp.Matrix([[1, j], [j, j**2]])) and not D.verify(sp.Matrix([[1, j], [j, j**3]]))


def test_random_wrong_matrices_never_verify():
    """A certificate for M never verifies for M + E with E of a different rank (checked with DomainMatrix)."""
    rng = random.Random(5)
    checked = 0
    for _ in range(12):
        B = sp.Matrix(4, 2, lambda *_: rng.randint(-3, 3) + rng.randint(-3, 3) * t)
        C = sp.Matrix(2, 4, lambda *_: rng.randint(-3, 3) + rng.randint(-3, 3) * t)
        M = (B * C).applyfunc(sp.expand)
        E = sp.zeros(4, 4)
        E[rng.randrange(4), rng.randrange(4)] = rng.randint(1, 3) * t
        c = generic_rank(M, seed=rng.randrange(1000))
        if reference_rank(M + E) != c.rank:
            checked += 1
            assert both_ways(c, M + E) == (False, False, False)
    assert checked >= 6
