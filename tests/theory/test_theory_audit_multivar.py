"""Several-variable certificates, factorisations and profiles, held to the one-variable standard.

Certificates of ranks over ℚ(t₁, …, t_s) are immutable, check the matrix they are given
(both bounds, also separately), serialise to JSON and are checked by the SymPy-only checker
in a process that never imports the engine.  References: SymPy's ``DomainMatrix`` over
``QQ.frac_field(...)``, plain ``cancel`` on SymPy products, and a parser of the JSON kernel
written here.
"""

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.matrices import DomainMatrix

import theory
from theory import Certificate, generic_rank, kernels, rank_factorization, rank_profile
from theory.checker import check_certificate

t, s, u = sp.symbols("t s u")
j = sp.Symbol("j", integer=True)


def dm(M, gens):
    return DomainMatrix.from_Matrix(sp.Matrix(M)).convert_to(sp.QQ.frac_field(*gens))


def dm_rank(M, gens):
    return dm(M, gens).rank() if M.rows and M.cols else 0


def rand_poly(rng, gens, deg):
    return sum(
        (rng.randint(-3, 3) * sp.Mul(*[g ** rng.randint(0, deg) for g in gens]) for _ in range(3)),
        sp.S.Zero,
    )


@st.composite
def products(draw, max_size=3):
    """A random B C over Q(gens) with a denominator in C's first column: rank <= inner size."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    gens = draw(st.sampled_from([(t, s), (t, s, u)]))
    m, k, n = draw(st.integers(1, max_size)), draw(st.integers(0, 2)), draw(st.integers(1, max_size))
    if k == 0:
        return sp.zeros(m, n), gens
    B = sp.Matrix(m, k, lambda *_: rand_poly(rng, gens, 1))
    C = sp.Matrix(k, n, lambda a, b: rand_poly(rng, gens, 1) / (1 + gens[1] ** 2 * int(b == 0)))
    return B * C, gens


def kernel_from_terms(data):
    """The JSON kernel as a SymPy matrix, parsed independently of the package."""
    gens = [sp.Symbol(v["name"]) for v in data["var"]]
    m, n = data["shape"]
    size = n if data["kernel_side"] == "right" else m

    def poly(terms):
        return sum((c * sp.Mul(*[g**e for g, e in zip(gens, es)]) for *es, c in terms), sp.S.Zero)

    N = sp.zeros(size, len(data["kernel"]))
    for c, col in enumerate(data["kernel"]):
        for i, num, den in col:
            N[i, c] = poly(num) / poly(den)
    return N


# --------------------------------------------------------------------- JSON
@settings(max_examples=15, deadline=None)
@given(products(), st.integers(0, 1000))
def test_json_round_trip_and_checker(case, seed):
    A, gens = case
    c = generic_rank(A, var=gens, seed=seed)
    assert c.certified and c.rank == dm_rank(A, gens)
    data = c.to_json()
    text = json.dumps(data)
    assert [v["name"] for v in data["var"]] == [g.name for g in gens]
    c2 = Certificate.from_json(text)
    assert c2.var == gens and c2.rank == c.rank and c2.point == c.point and c2.to_json() == data
    assert c2.verify(A) and c2.verify(A, method="sympy") and check_certificate(text, A)
    assert c2.verify_lower(A) and c2.verify_upper(A)
    if data["kernel"] is not None:  # the kernel in the JSON really is a kernel of A
        N = kernel_from_terms(data)
        assert (A * N).applyfunc(sp.cancel).is_zero_matrix
        assert dm_rank(N, gens) == N.shape[1] == A.cols - c.rank
        assert sp.Matrix(c2.kernel - N).applyfunc(sp.cancel).is_zero_matrix
    with pytest.raises(ValueError, match="carries no matrix"):
        c2.verify()


def test_json_certificate_of_another_matrix_is_refused():
    A = sp.Matrix([[t, s, t + s], [1, s**2, 1 + s**2], [t + 1, s + s**2, t + s + 1 + s**2]])  # rank 2
    B = A + sp.diag(0, 0, 1)  # rank 3
    text = json.dumps(generic_rank(A, var=(t, s), seed=4).to_json())
    assert check_certificate(text, A) and not check_certificate(text, B)
    assert not Certificate.from_json(text).verify(B) and not Certificate.from_json(text).verify(B, method="sympy")
    # the lower bound still holds for B (rank 2 <= 3); the upper bound does not
    assert Certificate.from_json(text).verify_lower(B) and not Certificate.from_json(text).verify_upper(B)
    # a matrix in other symbols, or of another shape: not this certificate's matrix
    assert not check_certificate(text, A.subs(s, u)) and not check_certificate(text, A[:, :2])


def _forgeries(data):
    """Every witness altered in turn (each alteration breaks the proof for the true matrix)."""
    out = {
        "rank+1": dict(data, rank=data["rank"] + 1),
        "rank-1": dict(data, rank=data["rank"] - 1),
        "shape": dict(data, shape=[data["shape"][0] - 1, data["shape"][1]]),
        "prime not prime": dict(data, prime=data["prime"] + 1 if data["prime"] % 2 else data["prime"] * 3),
        "point too short": dict(data, point=data["point"][:1]),
        "point not ints": dict(data, point=[str(x) for x in data["point"]]),
        "pivot rows repeated": dict(data, pivot_rows=[data["pivot_rows"][0]] * len(data["pivot_rows"])),
        "pivot col out of range": dict(data, pivot_cols=[99] * len(data["pivot_cols"])),
        "no kernel": dict(data, kernel=None),
        "left instead of right": dict(data, kernel_side="left"),
        "uncertified": dict(data, certified=False),
        "kernel_rows repeated": dict(data, kernel_rows=data["kernel_rows"] * 2),
    }
    k = json.loads(json.dumps(data["kernel"]))
    k[0][0][1] = [[*term[:-1], term[-1] + 1] for term in k[0][0][1]]  # one numerator coefficient
    out["kernel entry"] = dict(data, kernel=k)
    k = json.loads(json.dumps(data["kernel"]))
    k[0][0][2] = [[0, 0, 0]]  # a zero denominator
    out["zero denominator"] = dict(data, kernel=k)
    k = json.loads(json.dumps(data["kernel"]))
    k[0][0][1] = [[-1, 0, 1]]  # a negative exponent
    out["negative exponent"] = dict(data, kernel=k)
    return out


def test_every_forged_field_is_rejected():
    # row 3 = 2 row 1 + row 2, column 3 = column 1 + column 2: the left and right kernels differ
    A = sp.Matrix([[t, s, t + s], [1, s**2, 1 + s**2], [2 * t + 1, 2 * s + s**2, 2 * t + 2 * s + 1 + s**2]])
    data = generic_rank(A, var=(t, s), seed=4).to_json()
    assert data["rank"] == 2 and data["kernel"] and check_certificate(data, A)
    for name, forged in _forgeries(data).items():
        assert not check_certificate(forged, A), name
        try:
            cert = Certificate.from_json(forged)
        except ValueError:
            continue  # malformed beyond reading back: refused earlier
        assert not cert.verify(A), name
        assert not cert.verify(A, method="sympy"), name


def test_point_on_a_pole_or_a_zero_of_the_pivot_minor_is_rejected():
    """A point where a pivot entry's denominator, or the pivot minor, vanishes proves nothing."""
    A = sp.Matrix([[1 / (t - 2), s], [t, s * t]])  # det = s (1/(t-2) * t - 1) * ... nonzero
    c = generic_rank(A, var=(t, s), seed=1)
    assert c.rank == 2 == dm_rank(A, (t, s))
    data = c.to_json()
    pole = dict(data, point=[2, 5], pivot_rows=[0, 1], pivot_cols=[0, 1])
    zero_s = dict(data, point=[7, 0], pivot_rows=[0, 1], pivot_cols=[0, 1])  # det A(t, 0) = 0
    for forged in (pole, zero_s):
        assert not check_certificate(forged, A)
        assert not Certificate.from_json(forged).verify(A)
    good = dict(data, point=[7, 5], pivot_rows=[0, 1], pivot_cols=[0, 1])
    assert check_certificate(good, A) and Certificate.from_json(good).verify(A)


def test_standalone_checker_needs_only_sympy(tmp_path):
    A = sp.Matrix([[t, s, t + s], [1, s**2, 1 + s**2], [t + 1, s + s**2, t + s + 1 + s**2]])
    (tmp_path / "cert.json").write_text(json.dumps(generic_rank(A, var=(t, s), seed=4).to_json()))
    shutil.copy(os.path.join(os.path.dirname(theory.__file__), "checker.py"), tmp_path / "rank_checker.py")
    code = (
        "import sys, sympy as sp\n"
        "import rank_checker\n"
        "t, s = sp.symbols('t s')\n"
        "A = sp.Matrix([[t, s, t + s], [1, s**2, 1 + s**2], [t + 1, s + s**2, t + s + 1 + s**2]])\n"
        "cert = open('cert.json').read()\n"
        "print(rank_checker.check_certificate(cert, A), rank_checker.check_certificate(cert, A + sp.eye(3)),\n"
        "      any(m.split('.')[0] in ('theory', 'numba', 'numpy', 'lowrank_tree') for m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "False"]


def test_certificates_are_immutable():
    A = sp.Matrix([[t, s], [t * s, s**2]])
    c = generic_rank(A, var=(t, s), seed=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.rank = 2
    with pytest.raises(TypeError):
        c.kernel[0, 0] = 0  # an ImmutableMatrix
    data = c.to_json()
    data["rank"] = 2
    data["kernel"][0][0][1][0][-1] = 99
    assert c.rank == 1 and c.to_json()["rank"] == 1 and c.verify(A)  # the dict was a copy


def test_monte_carlo_certificates_never_verify_but_serialise():
    A = sp.Matrix([[t, s], [t * s, s**2]])
    c = generic_rank(A, var=(t, s), certify=False, seed=0)
    data = c.to_json()
    assert data["method"] == "monte-carlo" and data["kernel"] is None and 0 < data["error_bound"] < 1e-6
    assert not c.verify(A) and not check_certificate(data, A)
    assert c.verify_lower(A)  # the lower bound of a Monte-Carlo rank is a proof


# ----------------------------------------------------- entries and variables
def test_combinatorial_entries_in_several_variables():
    """binomial/factorial/gamma entries are rewritten, as in one variable; checked on that form."""
    entries = [
        [sp.binomial(t, 2) * s, sp.factorial(t + 2) / sp.factorial(t), 1],
        [(t**2 - t) * s / 2, (t + 1) * (t + 2), 1],
        [sp.gamma(s + 1) / sp.gamma(s), t, s],
    ]
    A = sp.Matrix(entries)
    ref = sp.Matrix(3, 3, lambda i, k: sp.expand_func(sp.expand_func(entries[i][k]).rewrite(sp.gamma)))
    assert dm_rank(ref, (t, s)) == 2
    c = generic_rank(A, var=(t, s), seed=3)
    assert c.rank == 2 and c.verify(A) and c.verify(A, method="sympy") and c.verify(ref)
    assert (ref * c.kernel).applyfunc(sp.cancel).is_zero_matrix
    assert check_certificate(json.dumps(c.to_json()), A)


def test_symbol_differing_only_in_assumptions_is_named():
    tp = sp.Symbol("t", positive=True)
    with pytest.raises(ValueError, match="assumptions.*different symbols"):
        generic_rank(sp.Matrix([[tp, s]]), var=(t, s))
    with pytest.raises(ValueError, match="assumptions.*different symbols"):
        rank_profile(sp.Matrix([[tp, s]]), 1, var=(t, s), wrt=t)


# ------------------------------------------------ factorisation and kernels
@settings(max_examples=10, deadline=None)
@given(products(), st.integers(0, 1000))
def test_rank_factorization_several_variables(case, seed):
    A, gens = case
    r = dm_rank(A, gens)
    U, V, c = rank_factorization(A, var=gens, seed=seed)
    assert c.rank == r and c.var == gens and U.shape == (A.rows, r) and V.shape == (r, A.cols)
    if r:
        assert dm(U * V, gens) == dm(A, gens)
        assert dm_rank(U, gens) == r == dm_rank(V, gens)
    else:
        assert A.is_zero_matrix


@settings(max_examples=10, deadline=None)
@given(products(), st.integers(0, 1000))
def test_kernels_several_variables(case, seed):
    A, gens = case
    r = dm_rank(A, gens)
    R, L = kernels(A, var=list(gens), seed=seed)
    assert R.shape == (A.cols, A.cols - r) and L.shape == (A.rows, A.rows - r)
    if R.shape[1]:
        assert (A * R).applyfunc(sp.cancel).is_zero_matrix and dm_rank(R, gens) == R.shape[1]
    if L.shape[1]:
        assert (L.T * A).applyfunc(sp.cancel).is_zero_matrix and dm_rank(L, gens) == L.shape[1]


def test_one_variable_kernels_of_combinatorial_entries():
    A = sp.Matrix([[sp.gamma(t + 1) / sp.gamma(t), 1], [t**2, t]])  # row 2 = t * row 1
    R, L = kernels(A, var=t, seed=0)
    assert (sp.Matrix([[t, 1], [t**2, t]]) * R).applyfunc(sp.cancel).is_zero_matrix and R.shape == (2, 1)
    assert (L.T * sp.Matrix([[t, 1], [t**2, t]])).applyfunc(sp.cancel).is_zero_matrix and L.shape == (2, 1)
    U, V, c = rank_factorization(A, var=(t,), seed=0)  # a one-element sequence is the one-variable engine
    assert c.var == t and c.rank == 1 and (U * V - sp.Matrix([[t, 1], [t**2, t]])).applyfunc(sp.cancel).is_zero_matrix


def test_exceptional_set_is_one_variable_only():
    with pytest.raises(ValueError, match="one variable.*r x r minors"):
        theory.exceptional_set(sp.Matrix([[t, s], [s, t]]), var=(t, s))
    assert theory.exceptional_set(sp.Matrix([[t, 0], [0, t - 1]]), var=(t,)).as_expr() == t**2 - t


def test_difference_profile_is_one_variable_only():
    with pytest.raises(ValueError, match="one index symbol.*rank_profile"):
        theory.difference_profile(sp.Matrix([[j, s]]), 2, var=(j, s))
    seq = sp.Matrix([[1, j], [j, j**2]])
    assert theory.difference_profile(seq, 3, var=(j,)).ranks == theory.difference_profile(seq, 3, var=j).ranks


# ------------------------------------------------------- partial derivatives
@pytest.mark.parametrize("e", [1, 2, 3])
def test_partial_profile_of_combinatorial_entries(e):
    """∂^k/∂t^k of a matrix with binomial entries: the profile of its rational form, against DomainMatrix."""
    A = sp.Matrix([[sp.binomial(t, e) * s, 1, t], [t**e, s, 0]])
    ref = A.applyfunc(lambda x: sp.expand_func(x))
    P = rank_profile(A, e + 2, var=(t, s), wrt=t, seed=e)
    want = tuple(dm_rank(ref.diff(t, k) if k else ref, (t, s)) for k in range(e + 3))
    assert P.ranks == want and P.certified and P.verify(A) and P.verify(ref)
    assert not P.verify(A + sp.Matrix([[0, 0, 0], [0, 0, t ** (e + 2)]]))


def test_partial_profile_display_names_the_operator_and_the_field():
    P = rank_profile(s * theory.hankel(1, t), 3, var=(t, s), wrt=t, seed=0)
    assert P.ranks == (1, 2, 1, 0)
    assert P._repr_latex_() == (r"$\rho = (1, 2, 1, 0)$ ($\partial^k/\partial t^k$ over $\mathbb{Q}(t, s)$, certified)")
    assert repr(P) == "Profile(partial derivative in t over Q(t, s), ranks=(1, 2, 1, 0), certified)"
    # one variable: unchanged
    assert rank_profile(theory.hankel(1, t), 3)._repr_latex_() == r"$\rho = (1, 2, 1, 0)$ (derivatives, certified)"


def test_latex_names_the_point_in_every_variable():
    c = generic_rank(sp.Matrix([[t, s], [t * s, s**2]]), var=(t, s), seed=0)
    x, y = c.point
    assert c._repr_latex_().startswith(r"$\operatorname{rank}_{\mathbb{Q}(t, s)} A = 1$ (certified: ")
    assert f"$(t, s) = ({x}, {y})$, $p = {c.prime}$" in c._repr_latex_()
    mc = generic_rank(sp.Matrix([[t, s], [t * s, s**2]]), var=(t, s), certify=False, seed=0)
    assert "Monte-Carlo lower bound" in mc._repr_latex_()


@settings(max_examples=10, deadline=None)
@given(products(), st.integers(0, 2**16), st.integers(0, 2), st.integers(0, 2), st.integers(-2, 2))
def test_a_certificate_never_proves_a_wrong_rank(case, seed, i, k, c):
    """cert(A) checked on B = A + c s t E_ik: accepted (every way) only if rank B == rank A."""
    A, gens = case
    B = sp.Matrix(A)
    B[i % A.rows, k % A.cols] += c * gens[0] * gens[1]
    cert = generic_rank(A, var=gens, seed=seed)
    text = json.dumps(cert.to_json())
    verdicts = {cert.verify(B), cert.verify(B, method="sympy"), check_certificate(text, B)}
    assert len(verdicts) == 1  # the three checks agree
    if verdicts.pop():
        assert dm_rank(B, gens) == cert.rank
    if dm_rank(B, gens) != cert.rank:
        assert not cert.verify_lower(B) or not cert.verify_upper(B)
