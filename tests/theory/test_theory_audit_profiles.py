"""Rank profiles as checkable objects: JSON, the SymPy-only ``check_profile``, forgeries.

References: SymPy's own derivatives / forward differences and ``DomainMatrix`` ranks over
``QQ.frac_field(...)``; the checker file run in a process that never imports the engine.
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
from theory import Profile, difference_profile, rank_profile
from theory.checker import check_profile

t, s = sp.symbols("t s")
j = sp.Symbol("j", integer=True)


def dm_rank(M, gens):
    M = sp.Matrix(M)
    return DomainMatrix.from_Matrix(M).convert_to(sp.QQ.frac_field(*gens)).rank() if M.rows and M.cols else 0


def sympy_profile(A, K, x, kind, gens):
    out, M = [], sp.Matrix(A)
    for _ in range(K + 1):
        out.append(dm_rank(M, gens))
        M = (M.diff(x) if kind == "derivative" else M.subs(x, x + 1) - M).applyfunc(sp.cancel)
    return tuple(out)


@st.composite
def matrix_functions(draw, x):
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    m, r, n = draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(1, 3))

    def entry(*_):
        return sum(rng.randint(-2, 2) * x**e for e in range(3)) / (x + rng.randint(1, 3)) ** rng.randint(0, 1)

    if r == 0:
        return sp.zeros(m, n)
    return sp.Matrix(m, r, entry) * sp.Matrix(r, n, entry)


@settings(max_examples=6, deadline=None)
@given(matrix_functions(t), matrix_functions(t), st.sampled_from(["derivative", "difference"]), st.integers(0, 99))
def test_profile_json_round_trip_sound_and_complete(A, B, kind, seed):
    x = t if kind == "derivative" else j
    A, B = A.subs(t, x), B.subs(t, x)
    K = 3
    P = (rank_profile if kind == "derivative" else difference_profile)(A, K, var=x, seed=seed)
    assert P.ranks == sympy_profile(A, K, x, kind, (x,))
    text = json.dumps(P.to_json())
    Q = Profile.from_json(text)
    assert Q.ranks == P.ranks and Q.kind == kind and Q.var == x and Q.to_json() == P.to_json()
    # complete: the profile's own matrix passes every check
    assert check_profile(text, A) and Q.verify(A) and Q.verify(A, method="sympy") and P.verify(A, method="sympy")
    # sound: another matrix passes only if its profile really is the claimed one
    if check_profile(text, B):
        assert sympy_profile(B, K, x, kind, (x,)) == P.ranks
    assert check_profile(text, B) == Q.verify(B)
    with pytest.raises(ValueError, match="carries no matrix"):
        Q.verify()


def test_partial_derivative_profiles_serialise():
    A = s * theory.hankel(2, t) + sp.Matrix(3, 3, lambda a, b: s**2 if a == b == 0 else 0)
    P = rank_profile(A, 5, var=(t, s), wrt=t, seed=1)
    want = sympy_profile(A, 5, t, "derivative", (t, s))
    assert P.ranks == want
    data = P.to_json()
    assert [v["name"] for v in data["var"]] == ["t", "s"] and data["wrt"]["name"] == "t"
    assert check_profile(json.dumps(data), A) and Profile.from_json(data).verify(A)
    assert Profile.from_json(data).wrt == t and Profile.from_json(data).var == (t, s)
    # the same certificates do not prove the profile in s
    assert not check_profile(dict(data, wrt=dict(data["wrt"], name="s")), A)


def _forged_profiles(data):
    certs = data["certificates"]
    return {
        "rank changed": dict(data, ranks=[data["ranks"][0] + 1, *data["ranks"][1:]]),
        "extra order": dict(data, ranks=[*data["ranks"], 0]),
        "order dropped": dict(data, ranks=data["ranks"][:-1]),
        "certificates swapped": dict(data, certificates=[certs[1], certs[0], *certs[2:]]),
        "differences instead": dict(data, kind="difference"),
        "no orders": dict(data, ranks=[], certificates=[]),
        "unknown kind": dict(data, kind="integral"),
    }


def test_every_forged_profile_is_rejected():
    A = sp.Matrix([[1, t, t**2], [t, t**2, t**3], [1, 2, 3]])
    P = rank_profile(A, 4, seed=2)
    assert P.ranks == sympy_profile(A, 4, t, "derivative", (t,)) == (2, 2, 2, 1, 0)
    data = P.to_json()
    assert check_profile(data, A)
    for name, forged in _forged_profiles(data).items():
        assert not check_profile(forged, A), name
        try:
            Q = Profile.from_json(forged)
        except ValueError:
            continue  # refused when read back
        assert not Q.verify(A), name
        assert not Q.verify(A, method="sympy"), name
    assert not dataclasses.replace(P, ranks=P.ranks + (0,)).verify(A)
    assert not dataclasses.replace(P, certificates=P.certificates[:-1]).verify()
    with pytest.raises(ValueError, match="profile"):
        check_profile({"format": "theory.generic_rank"}, A)
    with pytest.raises(ValueError, match="malformed profile"):
        Profile.from_json({"format": "theory.rank_profile", "version": 1})
    with pytest.raises(TypeError, match="A must be a SymPy matrix"):
        check_profile(data, [[1]])
    with pytest.raises(ValueError, match="method"):
        P.verify(A, method="magic")


def test_profiles_are_immutable():
    P = rank_profile(sp.Matrix([[1, t], [t, t**2]]), 3, seed=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        P.ranks = (1, 1, 1, 1)
    data = P.to_json()
    data["ranks"][0] = 7
    assert P.ranks == (1, 2, 1, 0)


def test_standalone_profile_check_needs_only_sympy(tmp_path):
    seq = sp.Matrix([[sp.binomial(j, 2), j], [1, 1]])
    P = difference_profile(seq, 3, seed=0)
    assert P.ranks == sympy_profile(seq.applyfunc(sp.expand_func), 3, j, "difference", (j,)) == (2, 1, 1, 0)
    (tmp_path / "profile.json").write_text(json.dumps(P.to_json()))
    shutil.copy(os.path.join(os.path.dirname(theory.__file__), "checker.py"), tmp_path / "rank_checker.py")
    code = (
        "import sys, sympy as sp\n"
        "import rank_checker\n"
        "j = sp.Symbol('j', integer=True)\n"
        "A = sp.Matrix([[sp.binomial(j, 2), j], [1, 1]])\n"
        "B = sp.Matrix([[sp.binomial(j, 3), j], [1, 1]])\n"
        "text = open('profile.json').read()\n"
        "print(rank_checker.check_profile(text, A), rank_checker.check_profile(text, B),\n"
        "      any(m.split('.')[0] in ('theory', 'numba', 'numpy', 'lowrank_tree') for m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "False"]


def test_checker_names_a_symbol_with_other_assumptions():
    jj = sp.Symbol("j")  # no integer=True: another SymPy symbol than the profile's j
    P = difference_profile(sp.Matrix([[1, j], [j, j**2]]), 2, seed=0)
    with pytest.raises(ValueError, match="assumptions.*different symbols"):
        check_profile(P.to_json(), sp.Matrix([[1, jj], [jj, jj**2]]))
    c = P.certificates[0]
    from theory.checker import check_certificate

    with pytest.raises(ValueError, match="assumptions.*different symbols"):
        check_certificate(c.to_json(), sp.Matrix([[1, jj], [jj, jj**2]]))
    u = sp.Symbol("u")
    assert not check_certificate(c.to_json(), sp.Matrix([[1, u], [u, u**2]]))  # another variable: False
