"""Exact rank dynamics of matrix functions: certified generic ranks and claims.

The package is independent of ``lowrank_tree``; it needs SymPy (the
``theory`` extra) and uses Numba when available.

Public API
----------
generic_rank(A, *, var=None, certify=True, numeric=False, seed=None, backend="auto")
    Certified rank over ℚ(t) (:class:`Certificate`, ``.verify()``); with
    ``var=(t1, ..., ts)`` over ℚ(t₁, …, t_s) (:mod:`theory.multivar`).
exceptional_set(A, *, var=None, max_minors=2000, seed=None)
    The points where ``rank A(t0) < grank A`` (zeros of a polynomial).
kernels(A, *, var=None, seed=None)
    Right and left kernel bases over ℚ(t) (or ℚ(t₁, …, t_s)), checked exactly.
rank_factorization(A, *, var=None, seed=None)
    ``A = U V`` over ℚ(t) (or ℚ(t₁, …, t_s)) with ``grank A`` inner columns, checked exactly.
rank_profile(A, max_order, *, var=None, wrt=None, certify=True, seed=None)
    Generic ranks of ``A, A', ..., A^{(max_order)}`` (:class:`Profile`);
    with ``var=(t, s, ...)`` and ``wrt=t``, of partial derivatives.
difference_profile(seq, max_order, *, var=None, certify=True, seed=None)
    The same for forward differences of a matrix sequence.

Data come first and positionally (the matrix, the highest order); the
variable ``var`` (inferred when the data have one free symbol) and every
mode argument are keyword-only.  Functions that *build* a matrix in a given
symbol (``hankel(d, t)``, ``taylor_design(target, t)``) take it positionally.

Claim modules: :mod:`theory.monotonicity` (C1), :mod:`theory.boundary` (C1′),
:mod:`theory.leibniz` (C2), :mod:`theory.pointwise` (C3a),
:mod:`theory.designer` (C3b).  ``python -m theory`` (:func:`theory.cli.main`) checks them all.

Examples
--------
>>> import sympy as sp
>>> import theory
>>> t = sp.Symbol("t")
>>> theory.rank_profile(sp.Matrix([[1, t], [t, t**2]]), 3).ranks
(1, 2, 1, 0)
"""

from ._convert import RationalMatrix
from .designer import DesignResult, design_profile, necessary_violations, permutation_table
from .engine import Certificate, CertificationError, exceptional_set, generic_rank, kernels, rank_factorization
from .leibniz import antiderivative_hankel, hankel, hankel_formula
from .pointwise import newton_design, pointwise_ranks, taylor_design
from .profiles import Profile, difference_profile, rank_profile

__all__ = [
    "Certificate",
    "CertificationError",
    "DesignResult",
    "Profile",
    "RationalMatrix",
    "antiderivative_hankel",
    "design_profile",
    "exceptional_set",
    "difference_profile",
    "generic_rank",
    "hankel",
    "hankel_formula",
    "kernels",
    "necessary_violations",
    "newton_design",
    "permutation_table",
    "pointwise_ranks",
    "rank_factorization",
    "rank_profile",
    "taylor_design",
]
