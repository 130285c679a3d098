"""Both SymPy ground-type modes, and python-flint as an independent reference.

Installing python-flint switches SymPy's ground types to flint for the whole
process (``sympy.external.gmpy.GROUND_TYPES``): polynomial coefficients then
are ``flint.fmpz`` instead of ``int``.  The engine must give the same
results in both modes.  One process can only be in one mode, so the tests
whose code paths depend on the ground types are run again in a subprocess in
the mode this process is *not* in (needs python-flint importable: without it
only the default mode exists, and the test says so when it skips).
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp
from sympy.external.gmpy import GROUND_TYPES

from theory import _modular as mod

HAVE_FLINT = importlib.util.find_spec("flint") is not None
NO_FLINT = "python-flint is not installed (pip install 'lowrank-tree[flint]'): only SymPy's default ground types exist"
ROOT = pathlib.Path(__file__).resolve().parents[2]

#: Test files whose code paths go through SymPy's polynomial ground types
#: (conversion, kernels as SymPy polynomials, DomainMatrix references).
GROUND_TYPE_SUBSET = [
    "tests/theory/test_theory_engine.py",
    "tests/theory/test_theory_certificates.py",
    "tests/theory/test_theory_factorization.py",
    "tests/theory/test_theory_speed_paths.py",
    "tests/theory/test_theory_multivar.py",
    "tests/theory/test_theory_audit_multivar.py",
    "tests/theory/test_theory_audit_inputs.py",
    "tests/theory/test_theory_audit_profiles.py",
]

#: Certificates computed in both modes and compared byte for byte.
_CERT_SCRIPT = r"""
import json, sympy as sp
from sympy.external.gmpy import GROUND_TYPES
from theory import generic_rank, rank_profile
t, s = sp.symbols("t s")
cases = [
    sp.Matrix([[1, t], [t, t**2]]),
    sp.Matrix([[1 / (t + 1), t, 3], [2 / (t + 1), 2 * t, 6], [t, 1, sp.Rational(1, 3)]]),
    sp.Matrix(4, 4, lambda i, j: (t + i) ** 2 * (t - j) + i * j),
    sp.Matrix([[sp.binomial(t, 2), t**2 - t], [1, 2]]),
]
out = {"mode": GROUND_TYPES, "certs": []}
for M in cases:
    d = generic_rank(M, seed=5).to_json()
    d.pop("seconds")
    out["certs"].append(d)
out["profile"] = list(rank_profile(sp.Matrix([[1, t, t**2], [t**3, 1, t]]), 4).ranks)
out["multivar"] = [generic_rank(sp.Matrix([[t, s], [t * s, s**2]]), var=(t, s), seed=5).rank]
print(json.dumps(out, sort_keys=True))
"""


def _other_mode():
    return "python" if GROUND_TYPES == "flint" else "flint"


def _run(args, mode, timeout=900):
    env = dict(os.environ, SYMPY_GROUND_TYPES=mode)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.skipif(not HAVE_FLINT, reason=NO_FLINT)
def test_ground_type_subset_passes_in_the_other_mode():
    mode = _other_mode()
    probe = _run(["-c", "from sympy.external.gmpy import GROUND_TYPES; print(GROUND_TYPES)"], mode)
    assert probe.stdout.strip() == mode, probe.stderr
    files = [f for f in GROUND_TYPE_SUBSET if (ROOT / f).exists()]
    res = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", *files], mode)
    assert res.returncode == 0, f"theory tests failed with SYMPY_GROUND_TYPES={mode}:\n{res.stdout[-6000:]}"


@pytest.mark.skipif(not HAVE_FLINT, reason=NO_FLINT)
def test_certificates_are_identical_in_both_modes():
    here = _run(["-c", _CERT_SCRIPT], GROUND_TYPES if GROUND_TYPES != "gmpy" else "gmpy")
    there = _run(["-c", _CERT_SCRIPT], _other_mode())
    assert here.returncode == 0 and there.returncode == 0, here.stderr + there.stderr
    a, b = json.loads(here.stdout), json.loads(there.stdout)
    assert {a.pop("mode"), b.pop("mode")} == {GROUND_TYPES, _other_mode()}
    assert a == b


@pytest.mark.skipif(not HAVE_FLINT, reason=NO_FLINT)
@pytest.mark.parametrize("backend", ["python"] + (["numba"] if mod.HAVE_NUMBA else []))
@pytest.mark.parametrize("n", [1, 5, 17, 40])
def test_rank_mod_matches_flint_nmod_mat(backend, n):
    """python-flint's nmod_mat rank is an independent reference for the modular kernels."""
    import flint

    rng = np.random.default_rng(n)
    for p in (3, 65_537, 2_147_483_629):
        for r in sorted({0, 1, n // 2, n}):
            M = (rng.integers(0, 50, (n, r)) @ rng.integers(0, 50, (r, n + 3))) % p if r else np.zeros((n, n + 3))
            M = np.asarray(M, dtype=np.int64)
            rank, rows, cols = mod.rank_mod(M, p, backend)
            assert rank == flint.nmod_mat(M.tolist(), p).rank()
            if rank:
                assert flint.nmod_mat(M[np.ix_(rows, cols)].tolist(), p).rank() == rank


def test_mode_is_reported():
    """The mode in use is one SymPy knows; the flint mode only with python-flint importable."""
    assert GROUND_TYPES in ("python", "gmpy", "flint")
    assert GROUND_TYPES != "flint" or HAVE_FLINT
    # conversion yields Python ints in every mode (certificates serialise to JSON)
    from theory._convert import RationalMatrix

    t = sp.Symbol("t")
    R = RationalMatrix.from_sympy(sp.Matrix([[sp.Poly(3 * t**2 + 1, t).as_expr() / 2, 1 / (t + 1)]]))
    assert all(type(c) is int for row in R.num + R.den for e in row for c in e)
