"""Certified generic rank of matrices over ℚ(t).

The *generic rank* of a matrix function ``A(t)`` with entries in ℚ(t) is its
rank over the field ℚ(t); equivalently the rank of ``A(t0)`` for all but
finitely many numbers ``t0``.  :func:`generic_rank` computes it and returns a
:class:`Certificate` that anybody can re-check (:meth:`Certificate.verify`):

Lower bound ``rank >= r``
    A point ``t0`` (an integer) and a prime ``p`` such that ``A(t0)``,
    reduced modulo ``p``, has rank ``r``.  An ``r x r`` minor that is nonzero
    modulo ``p`` is nonzero in ℚ, hence the corresponding minor of ``A`` is a
    nonzero element of ℚ(t).

Upper bound ``rank <= r``
    Either ``r = min(m, n)``, or a kernel basis ``N`` with ``A N = 0``
    (right kernel, ``n - r`` columns) or ``N^T A = 0`` (left kernel,
    ``m - r`` columns), checked exactly, together with rows ``R`` such that
    ``N[R, :]`` is nonsingular at ``t0`` modulo ``p`` (so ``N`` has full
    column rank over ℚ(t)).  Then ``rank <= n - (n - r) = r``.

How it is computed (all exact integer arithmetic):

1. Denominators are cleared row by row, ``P = D A`` with ``D`` diagonal and
   invertible over ℚ(t); rank and right kernel are unchanged.
2. ``r`` and a nonsingular pivot block ``P[I, J]`` come from one modular
   elimination of ``P(t0) mod p`` (random ``t0``, random 31-bit prime).
3. For every free column ``f``, Cramer's rule gives the kernel vector with
   ``det P[I, J]`` at ``f`` and the minors ``det P[I, J <- -P[I, f]]`` at
   ``J``.  These polynomials are computed by evaluation at many points,
   modular elimination, interpolation and Chinese remaindering over several
   primes, until the reconstruction is stable.
   The interpolation is one product with the inverse Vandermonde matrix
   and the Chinese remaindering keeps mixed-radix digits (both exact
   float64 BLAS products on small limbs, :mod:`theory._fast`).
4. ``P N = 0`` is then checked exactly: every coefficient of every entry of
   ``P N`` is computed as a sum of limb products (16- or 32-bit limbs of
   the big kernel coefficients against 16-bit limbs of ``P``, float64 BLAS
   products whose sums stay below ``2**53``) and tested for zero by exact
   carrying in ``int64``; beyond those bounds, by evaluating at
   ``x0 = 2**B`` with ``2**B`` above the Cauchy root bound of every entry of
   ``P N`` (a nonzero integer polynomial with coefficients at most ``H`` in
   absolute value has no root of absolute value ``> 1 + H``).  If the check fails,
   more primes are added; if it still fails beyond the Hadamard-type bound
   on the minors, ``r`` was too small and the computation restarts at a new
   random point.  What holds: a returned certified result is always correct
   (both bounds were checked exactly); the randomness affects only the
   running time and, after ``CERTIFY_ATTEMPTS`` (8) unlucky points in a row
   (each has probability at most ``error_bound``-sized, see
   :func:`generic_rank`), the engine gives up with
   :class:`CertificationError` instead of answering.  It is a Las Vegas
   algorithm with a bounded number of retries: never wrong, rarely (not
   never) without an answer.

Coefficient order
    Every integer polynomial in this module is a dense list of coefficients,
    **highest degree first** (``[1, 0, 2]`` is ``t**2 + 2``), as in
    ``sympy.polys.densebasic``, :class:`~theory._convert.RationalMatrix`,
    :func:`theory._modular.eval_mod` (Horner) and the certificate's kernel
    columns.  The one exception is :func:`theory._modular.interpolate_mod`,
    whose Newton interpolation yields coefficients lowest degree first; its
    output is reversed at a single point, :func:`_interpolate_highest_first`,
    before anything else reads it.

Examples
--------
>>> import sympy as sp
>>> t = sp.Symbol("t")
>>> c = generic_rank(sp.Matrix([[1, t], [t, t**2]]))
>>> c.rank, c.certified, c.kernel.T
(1, True, Matrix([[-t, 1]]))
>>> c.verify(sp.Matrix([[1, t], [t, t**2]]))
True

``verify(A)`` checks the certificate against the matrix ``A`` it is given;
``to_json()`` writes every witness, and :mod:`theory.checker` (one file,
SymPy only) checks that JSON against a matrix without this engine.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from . import _fast
from . import _modular as mod
from ._convert import RationalMatrix, as_sympy_matrix, infer_var
from ._typing import Expr, Matrix, MatrixLike, Symbol

__all__ = ["Certificate", "CertificationError", "exceptional_set", "generic_rank", "kernels", "rank_factorization"]


# ---------------------------------------------------------------------------
# tuning constants (none affects correctness: only running time, and how
# rarely the engine gives up)
# ---------------------------------------------------------------------------
#: Random (point, prime) pairs tried before :class:`CertificationError`; each
#: fails with probability about ``Certificate.error_bound``, so 8 failures in a
#: row never happen in practice while a wrong input cannot loop forever.
CERTIFY_ATTEMPTS = 8

#: Bits added to the Hadamard-type coefficient bound before the Chinese
#: remaindering gives up on a pivot block: one more 31-bit prime than the
#: bound needs, so a stable reconstruction is not cut off by rounding.
CRT_MARGIN_BITS = 31

#: Bits added to the bit length of the Cauchy bound ``|P|_1 |N|_max`` so that
#: ``2**B`` lies strictly above every root of every entry of ``P N``.
ROOT_BOUND_MARGIN_BITS = 1

#: Interpolation nodes evaluated beyond the degree bound plus one, so that a
#: few nodes where the pivot determinant vanishes modulo the prime usually
#: need no second batch.
SPARE_NODES = 4

#: Coefficients at least ``2**INT64_SAFE_BITS`` in absolute value are kept as
#: Python ints (object arrays) until reduced modulo a prime below ``2**31``.
INT64_SAFE_BITS = 62

#: Random points at which the uncertified ``numeric=True`` rank is estimated.
NUMERIC_POINTS = 3

#: Working precision (bits) of the mpmath evaluation in ``numeric=True`` mode.
NUMERIC_PREC_BITS = 200

#: Primes in ``[2**30, 2**31)`` (about 4.8e7, a lower bound), the range that
#: :func:`theory._modular.random_prime` draws from; used in the error bound.
PRIMES_IN_RANGE = 4.8e7


class CertificationError(RuntimeError):
    """Raised when ``CERTIFY_ATTEMPTS`` (8) random points in a row failed to give a certificate.

    Each point fails only if it is a zero of a nonzero minor modulo the
    prime (probability about ``Certificate.error_bound``), so this is
    astronomically rare; it is never a wrong answer.
    """


# ---------------------------------------------------------------------------
# small helpers on integer polynomials (coefficient lists, highest first; see
# "Coefficient order" in the module docstring)
# ---------------------------------------------------------------------------
def _horner_mod(f, x, p):
    acc = 0
    for c in f:
        acc = (acc * x + c) % p
    return acc


def _horner_shift(f, B):
    """f(2**B) exactly."""
    acc = 0
    for c in f:
        acc = (acc << B) + c
    return acc


def _norm1(f):
    return sum(abs(c) for c in f)


def _coeff_array(P, rows, cols, L):
    """Integer coefficient array (len(rows), len(cols), L), highest first."""
    big = False
    out = []
    for i in rows:
        orow = []
        for j in cols:
            e = P[i][j]
            pad = [0] * (L - len(e)) + list(e)
            if not big and any(abs(c) >= 2**INT64_SAFE_BITS for c in e):
                big = True
            orow.append(pad)
        out.append(orow)
    if big:
        arr = np.empty((len(rows), len(cols), L), dtype=object)
        for a, orow in enumerate(out):
            for b, pad in enumerate(orow):
                arr[a, b, :] = pad
        return arr
    return np.array(out, dtype=np.int64).reshape(len(rows), len(cols), L)


def _reduce(arr, p):
    if arr.dtype == object:
        return (arr % p).astype(np.int64)
    return arr % p


# ---------------------------------------------------------------------------
# the certificate
# ---------------------------------------------------------------------------
def _freeze_kernel(N):
    """List of sparse columns {row: coeffs} -> tuple of ((row, coeffs), ...) tuples."""
    if N is None:
        return None
    return tuple(tuple(sorted((int(i), tuple(int(c) for c in f)) for i, f in col.items() if f)) for col in N)


def _thaw_kernel(N):
    return [{i: list(f) for i, f in col} for col in N]


@dataclass(frozen=True, eq=False)
class Certificate:
    """Result of :func:`generic_rank`: the rank and its witnesses.

    Certificates are immutable.  :meth:`verify` with the matrix checks that
    the certificate proves *that matrix's* rank; :meth:`to_json` /
    :meth:`from_json` serialise it, and :func:`theory.checker.check_certificate`
    checks the JSON form with SymPy alone.

    Attributes
    ----------
    rank : int
        The generic rank (certified when ``certified`` is True).
    shape : tuple of int
        Shape ``(m, n)`` of the matrix.
    var : sympy.Symbol or tuple of sympy.Symbol
        The variable; the tuple ``(t1, ..., ts)`` for a rank over
        ℚ(t₁, …, t_s) (see :mod:`theory.multivar`).
    certified : bool
        True when both witnesses were produced and checked exactly.
    method : str
        ``"certified"``, ``"monte-carlo"`` (lower bound only; correct with
        probability at least ``1 - error_bound``) or ``"numeric"``
        (floating point, uncertified, for non-rational entries).
    point, prime : int or None
        Lower-bound witness: ``A[pivot_rows, pivot_cols]`` at ``point`` is
        nonsingular modulo ``prime`` (with several variables ``point`` is a
        tuple of ints, one per variable).
    pivot_rows, pivot_cols : tuple of int
        A nonsingular ``rank x rank`` block of ``A(point) mod prime``.
    kernel_side : {"right", "left", None}
        ``"right"``: ``A N = 0``; ``"left"``: ``N^T A = 0``; None: the upper
        bound is the trivial ``rank <= min(m, n)``.
    kernel_rows : tuple of int
        Rows ``R`` with ``N[R, :]`` nonsingular at ``point`` modulo ``prime``.
    error_bound : float or None
        For ``"monte-carlo"``: an upper bound on the probability that
        ``rank`` underestimates the generic rank.
    seconds : float
        Wall-clock time of the computation.
    """

    rank: int
    shape: tuple
    var: sp.Symbol
    certified: bool
    method: str
    point: int | tuple | None = None
    prime: int | None = None
    pivot_rows: tuple = ()
    pivot_cols: tuple = ()
    kernel_side: str | None = None
    kernel_rows: tuple = ()
    error_bound: float | None = None
    seconds: float = 0.0
    _kernel: tuple | None = field(default=None, repr=False)
    _matrix: RationalMatrix | None = field(default=None, repr=False)
    _source: object = field(default=None, repr=False)
    #: several variables: the kernel as a SymPy matrix over ℚ(t₁, …, t_s)
    _kernel_matrix: object = field(default=None, repr=False)

    def __post_init__(self):
        # accept the engine's list-of-dicts kernel and store it immutably
        if self._kernel is not None and not isinstance(self._kernel, tuple):
            object.__setattr__(self, "_kernel", _freeze_kernel(self._kernel))
        for name in ("shape", "pivot_rows", "pivot_cols", "kernel_rows"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def __int__(self):
        return self.rank

    __index__ = __int__

    def __repr__(self):
        m, n = self.shape
        if self.method == "numeric":
            return f"Certificate(rank={self.rank}, {m}x{n}, method='numeric', UNCERTIFIED)"
        ub = "none (Monte-Carlo)"
        if self.certified:
            if self.kernel_side is None:
                ub = f"rank <= min(m, n) = {min(m, n)}"
            elif self._kernel_matrix is not None:
                ub = f"{self.kernel_side} kernel of {self._kernel_matrix.shape[1]} vectors over Q{self.var}"
            else:
                deg = max((len(f) - 1 for col in self._kernel for _, f in col), default=0)
                ub = f"{self.kernel_side} kernel of {len(self._kernel)} vectors, degree <= {deg}"
        return (
            f"Certificate(rank={self.rank}, {m}x{n}, certified={self.certified}, "
            f"point={self.point}, prime={self.prime}, upper bound: {ub})"
        )

    def _repr_latex_(self):
        """LaTeX summary for Jupyter, e.g. ``$\\operatorname{grank} A = 1$ (certified ...)``."""
        v = ", ".join(sp.latex(x) for x in self.var) if isinstance(self.var, tuple) else sp.latex(self.var)
        head = rf"$\operatorname{{rank}}_{{\mathbb{{Q}}({v})}} A = {self.rank}$"
        if self.method == "numeric":
            return head + r" (numeric estimate, \textbf{uncertified})"
        if not self.certified:
            return head + rf" (Monte-Carlo lower bound, error $\le {self.error_bound:.1e}$)"
        ub = (
            r"$\operatorname{rank} \le \min(m, n)$"
            if self.kernel_side is None
            else f"{self.kernel_side} kernel of {self.shape[self.kernel_side == 'right'] - self.rank} vectors"
        )
        if isinstance(self.var, tuple):  # the point has one coordinate per variable
            at = rf"$({v}) = ({', '.join(map(str, self.point or ()))})$"
        else:
            at = rf"$t_0 = {self.point}$"
        return head + rf" (certified: {at}, $p = {self.prime}$; upper bound: {ub})"

    @property
    def kernel(self) -> Matrix | None:
        """The kernel basis ``N`` as a SymPy matrix (None if not needed).

        For ``kernel_side == "right"``, ``A * N == 0`` with ``N`` of shape
        ``(n, n - rank)``; for ``"left"``, ``N.T * A == 0`` with ``N`` of
        shape ``(m, m - rank)``.
        """
        if self._kernel_matrix is not None:
            return self._kernel_matrix
        if self._kernel is None:
            return None
        t = self.var
        size = self.shape[1] if self.kernel_side == "right" else self.shape[0]
        cols = [dict(col) for col in self._kernel]

        def entry(i, c):
            f = cols[c].get(i)
            return sp.Poly(f, t, domain="ZZ").as_expr() if f else sp.S.Zero

        return sp.ImmutableMatrix(size, len(cols), entry)

    # ---------------------------------------------------------- serialising
    def to_json(self) -> dict[str, Any]:
        """The certificate as a JSON-compatible dict.

        Every witness is included (point, prime, pivots, kernel as integer
        coefficient lists, highest degree first, per column as
        ``[row, coeffs]`` pairs).  For a rank over ℚ(t₁, …, t_s), ``var``
        is a list of symbols, ``point`` a list of integers, and each kernel
        entry ``[row, numerator terms, denominator terms]`` with integer terms
        ``[e_1, ..., e_s, c]`` (:func:`theory.checker.terms_to_expr`).  The
        matrix itself is not included: the checker takes it separately, from
        whoever claims its rank.

        Returns
        -------
        dict
            Serialise with ``json.dumps``; read back with :meth:`from_json`
            or check with :func:`theory.checker.check_certificate`.

        Examples
        --------
        >>> import json, sympy as sp
        >>> t = sp.Symbol("t")
        >>> A = sp.Matrix([[1, t], [t, t**2]])
        >>> text = json.dumps(generic_rank(A, seed=0).to_json())
        >>> Certificate.from_json(text).verify(A)
        True
        """
        from .checker import FORMAT, VERSION

        several = isinstance(self.var, tuple)
        gens = self.var if several else (self.var,)
        descr = [
            {
                "name": v.name,
                "assumptions": {k: bool(b) for k, b in v.assumptions0.items()},
                "dummy": isinstance(v, sp.Dummy),
            }
            for v in gens
        ]
        if several:
            from .multivar import kernel_to_json

            kernel = None if self._kernel_matrix is None else kernel_to_json(self._kernel_matrix, gens)
            point: Any = list(self.point) if isinstance(self.point, tuple) else self.point
        else:
            kernel = None if self._kernel is None else [[[i, list(f)] for i, f in col] for col in self._kernel]
            point = self.point
        return {
            "format": FORMAT,
            "version": VERSION,
            "rank": int(self.rank),
            "shape": [int(s) for s in self.shape],
            "var": descr if several else descr[0],
            "certified": bool(self.certified),
            "method": self.method,
            "point": point,
            "prime": self.prime,
            "pivot_rows": list(self.pivot_rows),
            "pivot_cols": list(self.pivot_cols),
            "kernel_side": self.kernel_side,
            "kernel_rows": list(self.kernel_rows),
            "kernel": kernel,
            "error_bound": self.error_bound,
            "seconds": float(self.seconds),
        }

    @classmethod
    def from_json(cls, data: str | dict[str, Any]) -> Certificate:
        """Rebuild a certificate from :meth:`to_json` output (dict or JSON text).

        The result carries no matrix: check it with ``verify(A)``.

        Raises
        ------
        ValueError
            If ``data`` is not a certificate of the supported format.
        """
        import json

        from .checker import FORMAT, VERSION, certificate_var

        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"data must be a {FORMAT!r} certificate of version {VERSION} (Certificate.to_json())")
        try:
            var = certificate_var(data)
            kernel = data.get("kernel")
            point = data.get("point")
            kernel_matrix = None
            if isinstance(var, tuple):  # several variables: kernel entries are quotients of polynomials
                from .multivar import kernel_from_json

                point = None if point is None else tuple(point)  # types are checked by verify, not coerced
                if kernel is not None:
                    m, n = (int(s) for s in data["shape"])
                    size = n if data.get("kernel_side") == "right" else m
                    kernel_matrix = kernel_from_json(kernel, (size, size - int(data["rank"])), var)
                kernel = None
            elif kernel is not None:
                kernel = tuple(tuple((int(i), tuple(int(c) for c in f)) for i, f in col) for col in kernel)
            return cls(
                rank=int(data["rank"]),
                shape=tuple(int(s) for s in data["shape"]),
                var=var,
                certified=bool(data["certified"]),
                method=str(data["method"]),
                point=point,
                prime=data.get("prime"),
                pivot_rows=tuple(data.get("pivot_rows", ())),
                pivot_cols=tuple(data.get("pivot_cols", ())),
                kernel_side=data.get("kernel_side"),
                kernel_rows=tuple(data.get("kernel_rows", ())),
                error_bound=data.get("error_bound"),
                seconds=float(data.get("seconds", 0.0)),
                _kernel=kernel,
                _kernel_matrix=kernel_matrix,
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"malformed certificate: {exc}") from None

    # ------------------------------------------------------------- checking
    def _target(self, A):
        """The RationalMatrix to check: ``A`` converted, or the stored one."""
        if A is None:
            if self._matrix is None:
                raise ValueError("this certificate carries no matrix (it was read from JSON): pass A to verify")
            return self._matrix
        if isinstance(A, RationalMatrix):
            return A if A.var == self.var else None
        M = as_sympy_matrix(A)
        other = M.free_symbols - {self.var}
        if other and not any(s.name == self.var.name for s in other):
            return None  # a matrix in another variable: this certificate is not about it
        return RationalMatrix.from_sympy(M, self.var)

    def verify_lower(self, A: MatrixLike | None = None) -> bool:
        """Re-check the lower bound ``rank A >= rank``.

        The pivot block ``A[pivot_rows, pivot_cols]`` is evaluated at
        ``point`` modulo ``prime`` from the exact rational form of ``A``
        (numerators and denominators as integer polynomials) and eliminated
        by the pure-Python kernel.

        Parameters
        ----------
        A : sympy Matrix, array_like or RationalMatrix, optional
            The matrix whose rank is claimed.  Without it the matrix stored
            when the certificate was computed is used (a self-consistency
            check, which says nothing about any other matrix).

        Returns
        -------
        bool
        """
        if isinstance(self.var, tuple):
            from .multivar import verify_lower_multivariate

            return verify_lower_multivariate(self, A)
        R = self._target(A)
        if R is None:
            return False
        m, n = R.shape
        if tuple(self.shape) != (m, n) or not 0 <= self.rank <= min(m, n):
            return False
        if self.rank == 0:
            return True  # nothing to prove
        p, x = self.prime, self.point
        if not (isinstance(p, int) and isinstance(x, int) and p > 1 and sp.isprime(p)):
            return False
        prows, pcols = list(self.pivot_rows), list(self.pivot_cols)
        if not (len(prows) == len(set(prows)) == self.rank == len(pcols) == len(set(pcols))):
            return False
        if not all(isinstance(i, int) and 0 <= i < m for i in prows) or not all(
            isinstance(j, int) and 0 <= j < n for j in pcols
        ):
            return False
        rows = []
        for i in prows:
            row = []
            for j in pcols:
                d = _horner_mod(R.den[i][j], x, p)
                if d == 0:
                    return False
                row.append(_horner_mod(R.num[i][j], x, p) * pow(d, -1, p) % p)
            rows.append(row)
        return _rank_mod_any(rows, p) == self.rank

    def verify_upper(self, A: MatrixLike | None = None, *, method: str = "exact") -> bool:
        """Re-check the upper bound ``rank A <= rank``.

        Parameters
        ----------
        A : sympy Matrix, array_like or RationalMatrix, optional
            The matrix whose rank is claimed (see :meth:`verify_lower`).
        method : {"exact", "sympy"}
            ``"exact"``: clear denominators and test ``P N == 0`` by exact
            evaluation beyond the Cauchy root bound.  ``"sympy"``: multiply
            in SymPy's ``DomainMatrix`` over ``QQ.frac_field(t)`` (slower,
            independent of this package's arithmetic).

        Returns
        -------
        bool

        Raises
        ------
        ValueError
            For an unknown ``method``.
        """
        if method not in ("exact", "sympy"):
            raise ValueError(f"method must be 'exact' or 'sympy', got {method!r}")
        if isinstance(self.var, tuple):  # several variables: SymPy's field arithmetic either way
            from .multivar import verify_upper_multivariate

            return verify_upper_multivariate(self, A)
        R = self._target(A)
        if R is None:
            return False
        m, n = R.shape
        if not self.certified or tuple(self.shape) != (m, n) or not 0 <= self.rank <= min(m, n):
            return False
        if self.kernel_side is None:
            return self.rank == min(m, n)
        if self.kernel_side not in ("right", "left") or self._kernel is None:
            return False
        N = _thaw_kernel(self._kernel)
        size = n if self.kernel_side == "right" else m
        if len(N) != size - self.rank or any(not (0 <= i < size) for col in N for i in col):
            return False
        if N:  # full column rank: N[R, :] nonsingular at point mod prime
            p, x = self.prime, self.point
            if not (isinstance(p, int) and isinstance(x, int) and p > 1 and sp.isprime(p)):
                return False
            rows = list(self.kernel_rows)
            if len(rows) != len(N) or len(set(rows)) != len(rows) or not all(0 <= i < size for i in rows):
                return False
            sub = [[_horner_mod(N[c].get(i, []), x, p) for c in range(len(N))] for i in rows]
            if _rank_mod_any(sub, p) != len(N):
                return False
        if self.kernel_side == "left":
            R = R.transpose()
        if method == "exact":
            P, _ = R.cleared_rows()
            return _kernel_is_exact(P, N)
        from sympy.polys.matrices import DomainMatrix

        K = sp.QQ.frac_field(self.var)
        dA = DomainMatrix.from_Matrix(sp.Matrix(R.to_sympy())).convert_to(K)
        dN = DomainMatrix.from_Matrix(sp.Matrix(self.kernel)).convert_to(K)
        return (dA * dN).is_zero_matrix

    def verify(self, A: MatrixLike | None = None, *, method: str = "exact") -> bool:
        """Check that this certificate proves the generic rank of ``A``.

        Parameters
        ----------
        A : sympy Matrix, array_like, RationalMatrix, ImmutableSparseMatrix or DomainMatrix
            The matrix whose rank is claimed; both bounds are checked on it.
            Without ``A``, the matrix stored when the certificate was
            computed is used: a self-consistency check only, which does not
            show that the certificate belongs to any matrix of yours.
        method : {"exact", "sympy"}
            ``"exact"``: this package's exact arithmetic on the rational
            form of ``A``.  ``"sympy"``: :func:`theory.checker.check_certificate`
            on ``A`` as a SymPy matrix, with SymPy's ``DomainMatrix`` over
            ``QQ.frac_field(t)`` and no code of the engine.

        Returns
        -------
        bool
            True iff the certificate proves ``rank``; always False for a
            Monte-Carlo or numeric result (no upper-bound witness), and
            False for a matrix of another shape or with another rank.

        Raises
        ------
        ValueError
            For an unknown ``method``, an entry of ``A`` that is not in
            ℚ(var), or no ``A`` for a certificate read from JSON.

        Examples
        --------
        >>> import sympy as sp
        >>> t = sp.Symbol("t")
        >>> A = sp.Matrix([[1, t], [t, t**2]])
        >>> c = generic_rank(A)
        >>> c.verify(A), c.verify(A, method="sympy")
        (True, True)
        >>> c.verify(sp.Matrix([[1, t], [t, t**2 + 1]]))   # rank 2: not proved by c
        False
        """
        if method not in ("exact", "sympy"):
            raise ValueError(f"method must be 'exact' or 'sympy', got {method!r}")
        if not self.certified:
            return False
        if method == "sympy":
            from .checker import check_certificate

            if A is None:
                M = self._source if isinstance(self.var, tuple) else self._target(None).to_sympy()
                if M is None:
                    raise ValueError("this certificate carries no matrix (it was read from JSON): pass A to verify")
            elif isinstance(A, RationalMatrix):
                if A.var != self.var:
                    return False
                M = A.to_sympy()
            else:
                M = as_sympy_matrix(A)
            return check_certificate(self.to_json(), M)
        if isinstance(self.var, tuple):
            from .multivar import verify_multivariate

            return verify_multivariate(self, A)
        R = self._target(A)
        return R is not None and self.verify_lower(R) and self.verify_upper(R, method=method)


def _rank_mod_any(rows, p):
    """Rank modulo any prime p of a list-of-lists of ints (pure Python)."""
    from .checker import _rank_mod

    return _rank_mod(rows, p)


def _kernel_is_exact(P, N):
    """Exact test of ``P N == 0`` (N given as a list of sparse columns).

    The limb products of :func:`theory._fast.poly_product_is_zero` (float64
    BLAS, exact by construction) answer whenever the sizes allow it; beyond
    their bounds, :func:`_kernel_is_exact_shift` evaluates at ``2**B``.
    """
    ok = _fast.poly_product_is_zero(P, N)
    return _kernel_is_exact_shift(P, N) if ok is None else ok


def _kernel_is_exact_shift(P, N):
    """Exact test of ``P N == 0`` by evaluation at ``2**B`` beyond the Cauchy root bound."""
    if not N:
        return True
    normP = max((sum(_norm1(e) for e in row) for row in P), default=0)
    normN = max((max(abs(c) for c in f) for col in N for f in col.values() if f), default=0)
    if normP == 0 or normN == 0:
        return True
    B = (normP * normN).bit_length() + ROOT_BOUND_MARGIN_BITS
    used = sorted({j for col in N for j in col})
    Pv = [{j: _horner_shift(row[j], B) for j in used} for row in P]
    for col in N:
        Nv = [(j, _horner_shift(f, B)) for j, f in col.items() if f]
        for row in Pv:
            if sum(row[j] * v for j, v in Nv):
                return False
    return True


# ---------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------
def _point_ok(A, mult, x, p):
    """Every entry denominator and row multiplier is nonzero at x mod p."""
    for row in A.den:
        for d in row:
            if _horner_mod(d, x, p) == 0:
                return False
    return all(_horner_mod(d, x, p) != 0 for d in mult)


def _rank_at(P, x, p, backend):
    m, n = len(P), len(P[0]) if P else 0
    L = max((len(e) for row in P for e in row), default=1) or 1
    C = _reduce(_coeff_array(P, range(m), range(n), L), p)
    E = mod.eval_mod(C, [x], p, backend)[0]
    return mod.rank_mod(E, p, backend)


def _degree_bound(P, rows, cols, r):
    """Bound on the degree of every ``r x r`` minor of ``P[rows, cols]``.

    The smaller of the sum of the row degrees and the sum of the ``r``
    largest column degrees.
    """
    deg = [[len(P[i][j]) - 1 for j in cols] for i in rows]
    rowbound = sum(max(max(dr, default=0), 0) for dr in deg)
    coldeg = sorted(
        (max(max((deg[a][b] for a in range(len(rows))), default=0), 0) for b in range(len(cols))), reverse=True
    )
    return min(rowbound, sum(coldeg[:r]))


def _interpolate_highest_first(xs, Y, q, backend):
    """Interpolate value columns modulo ``q``; coefficient rows highest degree first.

    The single point where the lowest-first output of the interpolation
    (:func:`theory._fast.interpolate_mod`, or the reference
    :func:`theory._modular.interpolate_mod` for ``backend="python"``) is
    converted to this module's highest-first order.
    """
    if backend == "python":
        return mod.interpolate_mod(xs, Y, q, backend)[::-1]
    return _fast.interpolate_mod(xs, Y, q)[::-1]


def _strip_leading_zeros(col):
    """Coefficient column (highest first) -> list of Python ints without leading zeros."""
    f = [int(c) for c in col]
    i = 0
    while i < len(f) and f[i] == 0:
        i += 1
    return f[i:]


def _cramer_values(Cq, xs, r, k, q, backend):
    """``det`` and Cramer numerators of the block ``[:r, :r]`` of ``Cq`` at the nodes ``xs`` mod ``q``."""
    return mod.cramer_mod(mod.eval_mod(Cq, xs, q, backend), range(r), range(r), range(r, r + k), q, backend)


def _cramer_kernel(P, rows, pivots, free, rng, backend, avoid):
    """Kernel vectors of ``P`` by Cramer's rule on the block ``P[rows, pivots]``.

    Returns one sparse column ``{column: coefficients}`` per free column, or
    None if ``P N != 0`` even beyond the coefficient bound (then the rank is
    larger than ``len(rows)``).
    """
    r, k = len(rows), len(free)
    cols = list(pivots) + list(free)
    npts = _degree_bound(P, rows, cols, r) + 1
    L = max((len(P[i][j]) for i in rows for j in cols), default=1) or 1
    sub = _coeff_array(P, rows, cols, L)
    # Hadamard-type bound on the coefficients of every r x r minor of P[rows, cols]
    H = 1
    for i in rows:
        H *= max(1, sum(_norm1(P[i][j]) for j in cols))
    cap_bits = (2 * H + 1).bit_length() + CRT_MARGIN_BITS
    backend = mod._check_backend(backend)
    crt = _fast.Garner(backend)
    used = set(avoid)
    while True:
        q = mod.random_prime(rng)
        if q in used:
            continue
        used.add(q)
        Cq = _reduce(sub, q)
        xs = np.arange(npts + SPARE_NODES, dtype=np.int64)
        dets, nums = _cramer_values(Cq, xs, r, k, q, backend)
        good = np.nonzero(dets)[0]
        if len(good) == 0:
            continue  # q divides the content of det P[rows, pivots]
        extra = npts + SPARE_NODES
        while len(good) < npts:
            xs2 = np.arange(extra, extra + npts, dtype=np.int64)
            extra += npts
            d2, n2 = _cramer_values(Cq, xs2, r, k, q, backend)
            xs = np.concatenate([xs, xs2])
            dets = np.concatenate([dets, d2])
            nums = np.concatenate([nums, n2])
            good = np.nonzero(dets)[0]
        good = good[:npts]
        Y = np.concatenate([dets[good, None], nums[good].reshape(npts, r * k)], axis=1)
        # symmetric mixed-radix digits: the reconstruction is unchanged by
        # this prime exactly when its digit is zero
        stable = crt.add(_interpolate_highest_first(xs[good], Y, q, backend), q)
        if stable or crt.modulus.bit_length() > cap_bits:
            S = crt.integers()
            N = []
            delta = _strip_leading_zeros(S[:, 0])
            for c in range(k):
                col = {free[c]: delta}
                for a in range(r):
                    f = _strip_leading_zeros(S[:, 1 + a * k + c])
                    if f:
                        col[pivots[a]] = f
                N.append(col)
            if _kernel_is_exact(P, N):
                return N
            if crt.modulus.bit_length() > cap_bits:
                return None  # the pivot block is right but P N != 0: rank > r


def _monte_carlo_error(P, p, redraw_degree=0):
    """Bound on Pr[rank(P(x) mod p) < rank P] for uniform x and a uniform prime.

    Fix a nonzero maximal minor g of P.  The rank is underestimated only if
    p divides every coefficient of g, or x is a root of g mod p.  deg g is
    at most min(m, n) * max deg P; |coefficients of g| <= H = prod_i sum_j
    ||P_ij||_1, so at most log2(H)/30 primes of [2**30, 2**31) divide them,
    out of more than ``PRIMES_IN_RANGE`` (4.8e7) such primes.  The point is
    redrawn while one of the denominators and row multipliers (total degree
    ``redraw_degree``) vanishes there; conditioning on that divides the
    bound by at most ``1 - redraw_degree / p``.
    """
    m, n = len(P), len(P[0]) if P else 0
    degP = max((len(e) - 1 for row in P for e in row), default=0)
    rows = sorted((sum(_norm1(e) for e in row) for row in P), reverse=True)[: min(m, n)]
    bits = sum(max(1, s).bit_length() for s in rows)
    cond = max(1e-300, 1 - redraw_degree / p)
    return min(1.0, (min(m, n) * degP / p + (bits / 30 + 1) / PRIMES_IN_RANGE) / cond)


def generic_rank(
    A: MatrixLike,
    *,
    var: Symbol | None = None,
    certify: bool = True,
    numeric: bool = False,
    seed: int | None = None,
    backend: str = "auto",
) -> Certificate:
    """Generic rank of a matrix over ℚ(t), with a checkable certificate.

    Parameters
    ----------
    A : sympy Matrix, ImmutableSparseMatrix, 2-D Array, DomainMatrix, nested sequence, or RationalMatrix
        Entries must be rational functions of ``var`` with rational
        coefficients (polynomials and ``Poly`` objects included;
        ``binomial(t, k)``, ``gamma(t + 1)/gamma(t)`` and similar are
        expanded, and certificates are checked on that rational form).
    var : sympy.Symbol or sequence of sympy.Symbol, optional
        The variable; inferred when ``A`` has exactly one free symbol.  A
        sequence ``(t1, ..., ts)`` of two or more symbols gives the rank
        over ℚ(t₁, …, t_s) (:mod:`theory.multivar`: a random point in every
        variable, a Schwartz–Zippel ``error_bound``, and an exact kernel in
        SymPy's field arithmetic for the upper bound; for small matrices).
    certify : bool, default True
        If True, also produce and check the upper-bound witness (kernel
        basis), so that the result is proven.  If False, return the
        Monte-Carlo rank from one modular evaluation (a lower bound that is
        exact with probability at least ``1 - error_bound``).
    numeric : bool, default False
        Opt-in for entries that are not rational in ``var`` (``exp``,
        ``sin``, algebraic numbers, floats): the rank is then estimated from
        floating-point SVDs at random points and labelled
        ``method="numeric"``, ``certified=False``.  Rational input is always
        handled exactly.
    seed : int, optional
        Seed for the random point and primes (results are reproducible).
    backend : {"auto", "numba", "python"}
        Modular elimination kernel.

    Returns
    -------
    Certificate
        ``.rank`` is the rank; see :class:`Certificate`.

    Raises
    ------
    ValueError
        If an entry is not rational in ``var`` (the message names the
        entry) and ``numeric`` is False; if ``var`` is ambiguous.
    TypeError
        If ``A`` is not matrix-like or ``var`` is not a Symbol.

    See Also
    --------
    sympy.polys.matrices.DomainMatrix : Exact rank over ``QQ.frac_field(t)``, without a certificate.
    sympy.matrices.dense.Matrix : The input most users hold.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> A = sp.Matrix([[1, t, t**2], [t, t**2, t**3], [1, 1, 1]])
    >>> c = generic_rank(A)
    >>> c.rank, c.certified
    (2, True)
    >>> generic_rank(A, certify=False).method
    'monte-carlo'
    >>> generic_rank(sp.Matrix([[sp.exp(t), 1], [1, sp.exp(-t)]]))
    Traceback (most recent call last):
    ...
    ValueError: A[0, 0] = exp(t) is not a rational function of t ...
    >>> generic_rank(sp.Matrix([[sp.exp(t), 1], [1, sp.exp(-t)]]), numeric=True)
    Certificate(rank=1, 2x2, method='numeric', UNCERTIFIED)
    """
    t_start = time.perf_counter()
    if var is not None and not isinstance(var, sp.Symbol) and isinstance(var, (tuple, list)):
        from .multivar import generic_rank_multivariate, normalize_vars

        gens = normalize_vars(var)
        if len(gens) == 1:
            var = gens[0]
        else:
            if numeric:
                raise ValueError("numeric=True is for one variable; pass a single Symbol as var")
            return generic_rank_multivariate(A, gens, certify=certify, seed=seed, backend=backend)
    rng = random.Random(seed)
    source = None if isinstance(A, RationalMatrix) else as_sympy_matrix(A)
    try:
        R = RationalMatrix.from_sympy(A if source is None else source, var)
    except ValueError:
        if not numeric:
            raise
        M = source if source is not None else as_sympy_matrix(A)
        return _numeric_rank(M, infer_var(M, var), rng, t_start)
    m, n = R.shape
    if m == 0 or n == 0:
        return Certificate(
            0, (m, n), R.var, True, "certified", seconds=time.perf_counter() - t_start, _matrix=R, _source=source
        )
    P, mult = R.cleared_rows()
    best = -1
    for _attempt in range(CERTIFY_ATTEMPTS):
        r, x, p, rows, cols = _lower_bound(R, P, mult, rng, backend)
        if r < best:
            continue  # an unlucky point: we already know rank >= best
        best = r
        common = dict(point=x, prime=p, pivot_rows=rows, pivot_cols=cols, _matrix=R, _source=source)
        if not certify:
            return Certificate(
                r,
                (m, n),
                R.var,
                False,
                "monte-carlo",
                error_bound=_monte_carlo_error(
                    P, p, sum(len(d) - 1 for row in R.den for d in row) + sum(len(d) - 1 for d in mult)
                ),
                seconds=time.perf_counter() - t_start,
                **common,
            )
        if r == min(m, n):
            return Certificate(r, (m, n), R.var, True, "certified", seconds=time.perf_counter() - t_start, **common)
        witness = _kernel_witness(R, P, r, x, p, rows, cols, rng, backend)
        if witness is None:
            continue  # this point cannot certify r (or the rank is larger): try a new one
        side, free, N = witness
        return Certificate(
            r,
            (m, n),
            R.var,
            True,
            "certified",
            kernel_side=side,
            kernel_rows=free,
            seconds=time.perf_counter() - t_start,
            _kernel=N,
            **common,
        )
    raise CertificationError(f"could not certify the rank after {CERTIFY_ATTEMPTS} random points; please report")


def _lower_bound(R, P, mult, rng, backend):
    """One random lower bound: ``rank P(x) mod p`` at a random point and prime.

    The point is redrawn until every denominator of ``R`` and every row
    multiplier in ``mult`` is nonzero there, so that ``P(x) = D(x) A(x)``
    with ``D(x)`` invertible modulo ``p``.

    Returns
    -------
    r : int
        The rank modulo ``p`` (a lower bound on the generic rank).
    x, p : int
        The point and the prime.
    rows, cols : tuple of int, length r
        A pivot block nonsingular at ``x`` modulo ``p``.
    """
    while True:
        p = mod.random_prime(rng)
        x = rng.randrange(p)
        if _point_ok(R, mult, x, p):
            break
    r, rows, cols = _rank_at(P, x, p, backend)
    return r, x, p, tuple(int(i) for i in rows), tuple(int(j) for j in cols)


def _kernel_witness(R, P, r, x, p, rows, cols, rng, backend):
    """Upper-bound witness for ``rank <= r``: a kernel basis on the smaller side.

    Works on ``P`` (right kernel) when ``n <= m``, else on the row-cleared
    transpose (left kernel), whose pivot block is recomputed at the same
    point and prime.

    Returns
    -------
    (side, free, N) or None
        ``side`` is "right" or "left", ``free`` the non-pivot columns (the
        kernel rows where ``N`` is the identity up to the pivot
        determinant), ``N`` the sparse kernel columns.  None when this point
        cannot certify ``r``: the transpose's multipliers vanish at ``x``,
        its rank there differs, or ``r`` is below the generic rank.
    """
    m, n = R.shape
    if n <= m:
        side, Q, Ik, Jk = "right", P, list(rows), list(cols)
    else:  # the left kernel is smaller: work with A^T
        side = "left"
        Q, multT = R.transpose().cleared_rows()
        if not all(_horner_mod(d, x, p) for d in multT):
            return None
        r2, Ik, Jk = _rank_at(Q, x, p, backend)
        Ik, Jk = [int(i) for i in Ik], [int(j) for j in Jk]
        if r2 != r:
            return None
    pivot_set = set(Jk)
    free = [j for j in range(len(Q[0])) if j not in pivot_set]
    # the interpolation products: (nodes ~ r * degree)**2 times the 1 + r * k value columns
    npts = len(Ik) * max((len(e) for row in Q for e in row), default=1)
    with _fast.one_blas_thread(npts**2 * (1 + len(Ik) * len(free))):
        N = _cramer_kernel(Q, Ik, Jk, free, rng, backend, avoid={p})
    if N is None:
        return None
    return side, tuple(free), N


def _numeric_rank(M, var, rng, t_start, points=NUMERIC_POINTS):
    """Floating-point rank at random points (uncertified), scale-safe.

    Each point is evaluated in multiple-precision arithmetic (mpmath,
    ``NUMERIC_PREC_BITS`` = 200 bits, whose exponent range is unbounded, so ``exp(800 t)`` neither
    overflows nor underflows).  Two scale-invariant rank estimates follow:

    * rows and columns equilibrated by powers of two (exact, and
      rank-preserving: a nonsingular diagonal scaling), then rounded to
      float64 for an SVD with a relative tolerance;
    * Gaussian elimination in the same multiple-precision arithmetic with a running
      error bound on every entry, pivoting on the entry known to the best
      *relative* accuracy, stopping when every remaining entry is within
      its error bound of zero (this sees exact cancellations, such as two
      rows that differ only in a tiny entry, which no scaling separates).

    The rank is the largest estimate over both methods and all points.
    """
    import mpmath

    m, n = M.shape
    best = 0
    if m and n:
        f = sp.lambdify(var, M, modules="mpmath")
        with mpmath.workprec(NUMERIC_PREC_BITS):
            for _ in range(points):
                x = mpmath.mpf(rng.uniform(0.3, 1.7))
                try:
                    V = f(x)
                    vals = [[mpmath.mpmathify(V[i, j]) for j in range(n)] for i in range(m)]
                except (ArithmeticError, ValueError, TypeError):
                    continue  # a pole or a domain error at this point
                if not all(mpmath.isfinite(v) for row in vals for v in row):
                    continue
                best = max(best, _equilibrated_rank(vals, mpmath), _tracked_elimination_rank(vals, mpmath))
    return Certificate(best, (m, n), var, False, "numeric", seconds=time.perf_counter() - t_start, _source=M)


def _equilibrated_rank(vals, mpmath):
    """Numerical rank of an mpmath matrix after power-of-two row/column scaling.

    Max-norm equilibration has several fixed points, and the one reached
    depends on whether rows or columns are scaled first (rows first can
    leave two rows nearly equal where columns first separates them).  Both
    orders are tried and the larger rank is kept: a diagonal scaling never
    changes the rank, and it keeps each entry's relative rounding error at
    one ulp, so neither order can push a rank-deficient matrix above the
    tolerance.
    """
    m, n = len(vals), len(vals[0])
    mag = [[mpmath.mag(v) if v else None for v in row] for row in vals]
    best = 0
    for rows_first in (True, False):
        row_shift, col_shift = _scaling(mag, m, n, rows_first)
        two = mpmath.mpf(2)
        E = np.array(
            [
                [complex(vals[i][j] * two ** (row_shift[i] + col_shift[j])) if vals[i][j] else 0j for j in range(n)]
                for i in range(m)
            ]
        )
        s = np.linalg.svd(E, compute_uv=False)
        if s.size and s[0] > 0:
            tol = max(m, n) * np.finfo(float).eps * s[0] * 1e3
            best = max(best, int(np.sum(s > tol)))
    return best


def _scaling(mag, m, n, rows_first):
    """Power-of-two exponents making every row and column maximum about 1."""
    row_shift = [0] * m
    col_shift = [0] * n

    def rows():
        for i in range(m):
            e = [mag[i][j] + col_shift[j] for j in range(n) if mag[i][j] is not None]
            row_shift[i] = -max(e) if e else 0

    def cols():
        for j in range(n):
            e = [mag[i][j] + row_shift[i] for i in range(m) if mag[i][j] is not None]
            col_shift[j] = -max(e) if e else 0

    for _ in range(8):  # alternate until the scaling is stable
        before = (list(row_shift), list(col_shift))
        for step in (rows, cols) if rows_first else (cols, rows):
            step()
        if (row_shift, col_shift) == before:
            break
    return row_shift, col_shift


def _tracked_elimination_rank(vals, mpmath):
    """Rank by elimination with first-order error bounds (scale-invariant pivoting)."""
    m, n = len(vals), len(vals[0])
    prec = mpmath.mp.prec
    u = mpmath.ldexp(mpmath.mpf(1), -(prec - 20))  # assumed relative error of each evaluated entry
    ulp = mpmath.ldexp(mpmath.mpf(1), -prec + 1)
    a = [list(row) for row in vals]
    err = [[abs(v) * u for v in row] for row in a]
    rows, cols = set(range(m)), set(range(n))
    rank = 0
    while rows and cols:
        best, piv = 0, None
        for i in rows:
            for j in cols:
                v, e = abs(a[i][j]), err[i][j]
                if v > 8 * e and v:
                    q = v / e if e else mpmath.inf
                    if piv is None or q > best:
                        best, piv = q, (i, j)
        if piv is None:
            break
        k, col = piv
        pv, pe = a[k][col], err[k][col]
        rows.discard(k)
        cols.discard(col)
        rank += 1
        for i in rows:
            if not a[i][col]:
                continue
            f = a[i][col] / pv
            fe = abs(f) * (err[i][col] / abs(a[i][col]) + pe / abs(pv) + ulp) * (1 + ulp * 8)
            for j in cols:
                if not a[k][j] and not err[k][j]:
                    continue
                prod = f * a[k][j]
                new = a[i][j] - prod
                err[i][j] = err[i][j] + abs(f) * err[k][j] + fe * abs(a[k][j]) + ulp * (abs(a[i][j]) + abs(prod))
                a[i][j] = new
    return rank


def _several_vars(var):
    """The tuple of symbols when ``var`` names two or more variables, else None."""
    if var is not None and not isinstance(var, sp.Symbol) and isinstance(var, (tuple, list)):
        from .multivar import normalize_vars

        gens = normalize_vars(var)
        return gens if len(gens) > 1 else None
    return None


def _one_var(var):
    """``var`` as one symbol (a 1-sequence unwrapped) for the one-variable code paths."""
    if var is not None and not isinstance(var, sp.Symbol) and isinstance(var, (tuple, list)) and len(var) == 1:
        return var[0]
    return var


def rank_factorization(
    A: MatrixLike, *, var: Symbol | None = None, seed: int | None = None
) -> tuple[Matrix, Matrix, Certificate]:
    """Rank factorisation ``A = U V`` over ℚ(t), with ``r = grank A`` inner columns.

    With the certified rank ``r`` and the certificate's pivot block
    ``A[I, J]`` (nonsingular over ℚ(t), since it is nonsingular at a point),
    ``U = A[:, J]`` and ``V = A[I, J]^{-1} A[I, :]``.  The identity holds
    because every column of ``A`` is a combination of the columns ``J``
    (they span the column space, having rank ``r``), and the coefficients are
    read off in the rows ``I``.  It is checked exactly before returning.

    Parameters
    ----------
    A : matrix with entries in ℚ(var)
        Anything :func:`generic_rank` accepts.
    var : sympy.Symbol or sequence of sympy.Symbol, optional
        A sequence ``(t1, ..., ts)`` factors over ℚ(t₁, …, t_s) (the same
        construction in SymPy's field arithmetic; for small matrices).
    seed : int, optional

    Returns
    -------
    U : sympy.ImmutableMatrix, shape (m, r)
    V : sympy.ImmutableMatrix, shape (r, n)
    certificate : Certificate
        The certified rank ``r``.

    Raises
    ------
    ValueError
        As :func:`generic_rank` (entries outside ℚ(var)).

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> U, V, c = rank_factorization(sp.Matrix([[1, t], [t, t**2], [2, 2*t]]))
    >>> U.shape, V.shape, (U * V - sp.Matrix([[1, t], [t, t**2], [2, 2*t]])).expand() == sp.zeros(3, 2)
    ((3, 1), (1, 2), True)
    >>> s = sp.Symbol("s")
    >>> U, V, c = rank_factorization(sp.Matrix([[t, s], [t * s, s**2]]), var=(t, s))
    >>> U.T, V
    (Matrix([[t, s*t]]), Matrix([[1, s/t]]))
    """
    from sympy.polys.matrices import DomainMatrix

    gens = _several_vars(var)
    if gens is not None:
        from .multivar import rank_factorization_multivariate

        return rank_factorization_multivariate(A, gens, seed=seed)
    c = generic_rank(A, var=_one_var(var), seed=seed)
    R = RationalMatrix.from_sympy(A, c.var) if not isinstance(A, RationalMatrix) else A
    M = R.to_sympy()
    m, n = M.shape
    prows, pcols = list(c.pivot_rows), list(c.pivot_cols)
    K = sp.QQ.frac_field(c.var)
    dM = DomainMatrix.from_Matrix(sp.Matrix(M)).convert_to(K)
    if c.rank == 0:
        return sp.ImmutableMatrix.zeros(m, 0), sp.ImmutableMatrix.zeros(0, n), c
    dU = dM.extract(list(range(m)), pcols)
    dV = dM.extract(prows, pcols).inv() * dM.extract(prows, list(range(n)))
    if dU * dV != dM:  # pragma: no cover - would contradict the certificate
        raise CertificationError("rank factorisation failed its exact check; please report")
    return sp.ImmutableMatrix(dU.to_Matrix()), sp.ImmutableMatrix(dV.to_Matrix()), c


def _right_kernel_from_factor(V, J):
    """Basis of {x : V x = 0} for V (r x n) with V[:, J] = I_r (the shape rank_factorization gives)."""
    r, n = V.shape
    free = [f for f in range(n) if f not in set(J)]
    cols = []
    for f in free:
        x = [sp.S.Zero] * n
        x[f] = sp.S.One
        for a, j in enumerate(J):
            x[j] = -V[a, f]
        cols.append(x)
    return sp.ImmutableMatrix(n, len(cols), lambda i, c: cols[c][i])


def kernels(A: MatrixLike, *, var: Symbol | None = None, seed: int | None = None) -> tuple[Matrix, Matrix]:
    """Bases of the right and left kernels of ``A`` over ℚ(t), checked exactly.

    From :func:`rank_factorization`: ``V`` has the identity in the pivot
    columns ``J``, so for each other column ``f`` the vector with 1 at ``f``
    and ``-V[:, f]`` at ``J`` spans ``ker V = ker A`` (``U`` has full column
    rank); the left kernel is the right kernel of ``Aᵀ``.

    Parameters
    ----------
    A : matrix with entries in ℚ(var)
    var : sympy.Symbol or sequence of sympy.Symbol, optional
        A sequence ``(t1, ..., ts)`` gives kernels over ℚ(t₁, …, t_s).
    seed : int, optional

    Returns
    -------
    right : sympy.ImmutableMatrix, shape (n, n - r)
        ``A * right == 0``, full column rank.
    left : sympy.ImmutableMatrix, shape (m, m - r)
        ``left.T * A == 0``, full column rank.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> R, L = kernels(sp.Matrix([[1, t], [t, t**2], [2, 2*t]]))
    >>> R.T, L.shape
    (Matrix([[-t, 1]]), (3, 2))
    """
    from .checker import to_field_matrix

    gens = _several_vars(var)
    var = gens if gens is not None else _one_var(var)
    out = []
    for M in (A, None):
        if M is None:
            M = as_sympy_matrix(A).T if not isinstance(A, RationalMatrix) else A.transpose()
        U, V, c = rank_factorization(M, var=var, seed=seed)
        N = _right_kernel_from_factor(V, list(c.pivot_cols)) if c.rank else sp.ImmutableMatrix.eye(V.shape[1])
        S = M.to_sympy() if isinstance(M, RationalMatrix) else as_sympy_matrix(M)
        # the check in SymPy's field arithmetic, on the rational form of A's entries
        if N.shape[1] and not (to_field_matrix(S, c.var) * to_field_matrix(N, c.var)).is_zero_matrix:
            raise CertificationError("kernel failed its exact check; please report")  # pragma: no cover
        out.append(N)
    return out[0], out[1]


def exceptional_set(
    A: MatrixLike, *, var: Symbol | None = None, max_minors: int = 2000, seed: int | None = None
) -> Expr:
    """The points where ``A(t0)`` is defined but has rank below ``grank A``.

    They are the zeros of the gcd ``g`` of the ``r x r`` minors of the
    row-cleared matrix ``P = D A`` (``D`` diagonal, ``D(t0)`` invertible
    wherever ``A`` is defined), with the poles of ``A`` removed:
    ``rank A(t0) = rank P(t0)`` there, and ``rank P(t0) < r`` iff every
    ``r x r`` minor vanishes at ``t0``.  Computed only where it is cheap:
    all minors are enumerated.

    Parameters
    ----------
    A : matrix with entries in ℚ(var)
    var : sympy.Symbol, optional
    max_minors : int
        Refuse (``ValueError``) when there are more ``r x r`` minors than this.
    seed : int, optional

    Returns
    -------
    sympy.Poly
        Square-free, monic, coprime to every denominator of ``A``; its
        complex zeros are exactly the exceptional points (constant 1: none).

    Raises
    ------
    ValueError
        If there are more than ``max_minors`` minors, or ``var`` names
        several variables: over ℚ(t₁, …, t_s) the points where the rank
        drops are the common zeros of all ``r x r`` minors, an algebraic set
        that one polynomial does not describe; this function is for one
        variable.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> exceptional_set(sp.Matrix([[t, 1 / (t - 1)], [0, t + 2]])).as_expr()
    t**2 + 2*t
    """
    from math import comb

    from sympy.polys.matrices import DomainMatrix

    several = _several_vars(var)
    if several is not None:
        raise ValueError(
            f"exceptional_set is for one variable, got var={several}: over several variables the points of "
            f"lower rank are the common zeros of all r x r minors (r = grank A), not the zeros of one polynomial"
        )
    c = generic_rank(A, var=_one_var(var), seed=seed)
    R = RationalMatrix.from_sympy(A, c.var) if not isinstance(A, RationalMatrix) else A
    t = c.var
    m, n = R.shape
    r = c.rank
    one = sp.Poly(1, t, domain="QQ")
    if r == 0:
        return one  # rank 0 everywhere it is defined
    count = comb(m, r) * comb(n, r)
    if count > max_minors:
        raise ValueError(f"A has {count} minors of size {r} (more than max_minors={max_minors}); not computed")
    P, _ = R.cleared_rows()
    ring = sp.ZZ[t]
    rows = [[ring.ring.from_list(e) if e else ring.zero for e in row] for row in P]
    dP = DomainMatrix(rows, (m, n), ring)
    g = ring.zero
    for minor_rows in itertools.combinations(range(m), r):
        for minor_cols in itertools.combinations(range(n), r):
            g = ring.gcd(g, dP.extract(list(minor_rows), list(minor_cols)).det())
            if g != ring.zero and ring.to_sympy(g).is_number:
                return one
    G = sp.Poly(ring.to_sympy(g), t, domain="QQ")
    G = sp.Poly(sp.quo(G, sp.gcd(G, G.diff(t))), t, domain="QQ")  # square-free part
    for row in R.den:
        for d in row:
            if len(d) > 1:
                D = sp.Poly(d, t, domain="QQ")
                while True:
                    h = sp.gcd(G, D)
                    if h.degree() <= 0:
                        break
                    G = sp.Poly(sp.quo(G, h), t, domain="QQ")
    return G.monic() if G.degree() > 0 else one
