"""Generic ranks over ℚ(t₁, …, t_s): several variables, or variables and parameters.

``generic_rank(A, var=(t1, ..., ts))`` lands here.  The modular method
carries over with a random point in *every* variable:

Lower bound ``rank >= r`` (a proof)
    A point ``x = (x_1, ..., x_s)`` of integers and a prime ``p`` at which
    every denominator of the pivot block is nonzero and ``A[I, J](x)`` is
    nonsingular modulo ``p``: that minor of ``A`` is then a nonzero element
    of ℚ(t₁, …, t_s).

Monte-Carlo error (Schwartz–Zippel)
    Let ``g`` be a nonzero maximal minor of the row-cleared matrix
    ``P = D A`` (``D`` diagonal, its entry ``i`` the product of the
    denominators of row ``i``), of total degree at most ``deg g``, the sum of
    the ``min(m, n)`` largest row degrees of ``P``.  For ``x`` uniform in
    ``GF(p)^s``, ``Pr[g(x) = 0] <= deg g / p`` (Schwartz–Zippel); the point
    is redrawn while the product ``d`` of all denominators vanishes there,
    which conditions on ``d(x) != 0`` and multiplies the bound by at most
    ``1 / (1 - deg d / p)``.  Add the probability that ``p`` divides every
    coefficient of ``g`` (at most ``log2 H / 30`` of the more than
    ``4.8e7`` primes in ``[2**30, 2**31)``, ``H`` a Hadamard-type bound on
    those coefficients).  That sum is ``Certificate.error_bound``.

Upper bound ``rank <= r`` (a proof, ``certify=True``)
    ``r = min(m, n)``, or the kernel ``N`` with the identity in the non-pivot
    columns ``F`` and ``-A[I, J]^{-1} A[I, F]`` in the pivot columns ``J``,
    computed and checked (``A N = 0``) exactly in SymPy's ``DomainMatrix``
    over ``QQ.frac_field(t1, ..., ts)``.  ``N`` has full column rank (its rows
    ``F`` are the identity), so ``rank A <= n - |F| = r``.  If the check
    fails, the point underestimated the rank and a new one is drawn.  This
    exact step is SymPy's rational-function arithmetic: it is meant for small
    matrices and few variables, where it is cheap; ``certify=False`` returns
    the Monte-Carlo rank with its bound at the cost of one evaluation.

Certificates are those of one variable (:class:`theory.Certificate`):
immutable, checked against a matrix by ``verify(A)`` (both bounds, also
``verify_lower`` / ``verify_upper`` separately), and serialised by
``to_json()`` with the kernel's entries as quotients of integer polynomials,
which :mod:`theory.checker` (SymPy only) checks without this package.
:func:`theory.rank_factorization` and :func:`theory.kernels` accept
``var=(t1, ..., ts)`` too; :func:`theory.exceptional_set` is for one
variable (with several, the points of lower rank form an algebraic set that
one polynomial does not describe), and forward differences are offered in
one variable only.

Examples
--------
>>> import json
>>> import sympy as sp
>>> from theory import generic_rank
>>> from theory.checker import check_certificate
>>> t, s = sp.symbols("t s")
>>> A = sp.Matrix([[t, s], [t * s, s**2]])
>>> c = generic_rank(A, var=(t, s))
>>> c.rank, c.certified, c.kernel.T
(1, True, Matrix([[-s/t, 1]]))
>>> check_certificate(json.dumps(c.to_json()), A)
True
"""

from __future__ import annotations

import random
import time

import sympy as sp
from sympy.polys.matrices import DomainMatrix

from . import _modular as mod
from ._convert import as_sympy_matrix

__all__ = ["generic_rank_multivariate", "normalize_vars", "rational_form"]

#: Random points tried before :class:`theory.CertificationError` (as in one variable).
ATTEMPTS = 8


def normalize_vars(var):
    """``var`` as a tuple of distinct SymPy symbols (a single symbol gives a 1-tuple).

    Raises
    ------
    TypeError
        If an element is not a ``Symbol``.
    ValueError
        If the sequence is empty or repeats a symbol.
    """
    gens = (var,) if isinstance(var, sp.Symbol) else tuple(var)
    if not gens:
        raise ValueError("var must be a Symbol or a non-empty sequence of Symbols, got an empty sequence")
    for v in gens:
        if not isinstance(v, sp.Symbol):
            raise TypeError(
                f"var must be a sympy Symbol or a sequence of Symbols, got element {v!r} ({type(v).__name__})"
            )
    if len(set(gens)) != len(gens):
        raise ValueError(f"var repeats a symbol: {gens}")
    return gens


def _entry_polys(e, gens, label):
    """(numerator, denominator) Polys over QQ in ``gens``, or a ValueError naming the entry.

    As in one variable, ``binomial``, ``factorial``, ``gamma``, ``ff`` and
    ``rf`` entries are rewritten (``expand_func``, after ``rewrite(gamma)``
    if needed) to rational functions; every check is on that rational form.
    """
    from ._convert import _COMBINATORIAL, _assumptions

    if isinstance(e, sp.Poly):
        e = e.as_expr()
    e = sp.sympify(e)
    if e.has(sp.Float):
        raise ValueError(f"{label} = {e} contains a floating-point number; exact rank needs exact input")
    extra = e.free_symbols - set(gens)
    by_name = {g.name: g for g in gens}
    twins = [x for x in extra if x.name in by_name]
    if twins:
        x = twins[0]
        raise ValueError(
            f"{label} = {e} contains a symbol {x.name} with assumptions {_assumptions(x)} but the variable "
            f"{x.name} in var has assumptions {_assumptions(by_name[x.name])}: SymPy treats them as different "
            f"symbols; build the matrix and var from the same Symbols"
        )
    if extra:
        names = ", ".join(sorted(str(s) for s in extra))
        raise ValueError(f"{label} = {e} depends on symbol(s) {names} outside var={gens}")
    attempts = [e]
    if e.has(*_COMBINATORIAL):
        attempts += [sp.expand_func(e), sp.expand_func(e.rewrite(sp.gamma))]
    for expr in attempts:
        try:
            num, den = sp.fraction(sp.cancel(sp.together(expr)))
            pn, pd = sp.Poly(num, *gens, domain="QQ"), sp.Poly(den, *gens, domain="QQ")
        except (sp.PolynomialError, sp.polys.polyerrors.CoercionFailed, sp.polys.polyerrors.GeneratorsError):
            continue
        if pd.is_zero:
            raise ValueError(f"{label} = {e} has a denominator that is identically zero")
        return pn, pd
    raise ValueError(
        f"{label} = {e} is not a rational function of {gens} with rational coefficients; "
        f"pass numeric=True for an uncertified numerical rank"
    )


def _entries(M, gens, name="A"):
    """Every entry of ``M`` as a (numerator, denominator) pair of QQ Polys in ``gens``."""
    m, n = M.shape
    return [[_entry_polys(M[i, j], gens, f"{name}[{i}, {j}]") for j in range(n)] for i in range(m)]


def rational_form(A, gens, name="A"):
    """``A`` with every entry rewritten as a quotient of polynomials in ``gens`` (checked).

    Parameters
    ----------
    A : matrix-like
        Entries rational in ``gens`` with rational coefficients (``Poly``,
        ``binomial`` and similar entries included).
    gens : tuple of sympy.Symbol
    name : str
        Argument name used in error messages.

    Returns
    -------
    sympy.ImmutableMatrix
        The same matrix over ℚ(gens), each entry ``numerator/denominator``.

    Raises
    ------
    ValueError
        Naming the first entry that is not rational in ``gens``.

    Examples
    --------
    >>> import sympy as sp
    >>> t, s = sp.symbols("t s")
    >>> rational_form(sp.Matrix([[sp.binomial(t, 2), s]]), (t, s))
    Matrix([[t**2/2 - t/2, s]])
    """
    M = as_sympy_matrix(A, name)
    E = _entries(M, gens, name)
    return sp.ImmutableMatrix(M.rows, M.cols, lambda i, j: E[i][j][0].as_expr() / E[i][j][1].as_expr())


def _eval_mod(poly, x, p):
    """Value of a QQ Poly at the integer point ``x`` modulo ``p``, or None if a coefficient's denominator is 0 mod p."""
    acc = 0
    for monom, c in poly.terms():
        c = sp.Rational(c)
        if c.q % p == 0:
            return None
        v = int(c.p) * pow(int(c.q), -1, p)
        for xi, e in zip(x, monom):
            v = v * pow(xi, int(e), p) % p
        acc = (acc + v) % p
    return acc


def _values_at(entries, x, p, rows, cols):
    """``A[rows, cols](x) mod p`` as a list of lists, or None where a denominator vanishes."""
    out = []
    for i in rows:
        row = []
        for j in cols:
            pn, pd = entries[i][j]
            dv = _eval_mod(pd, x, p)
            nv = _eval_mod(pn, x, p)
            if not dv or nv is None:
                return None
            row.append(nv * pow(dv, -1, p) % p)
        out.append(row)
    return out


def _error_bound(entries, p):
    """Schwartz–Zippel bound on Pr[rank at a random point mod p < generic rank] (module docstring).

    With every entry written as ``a_ij / b_ij`` over ℤ[gens] (rational
    coefficients cleared), row ``i`` of ``P = D A`` has entries
    ``a_ij * prod_{k != j} b_ik``, whose coefficient 1-norms are at most
    ``|a_ij|_1 * prod_{k != j} |b_ik|_1``; a maximal minor's coefficients are
    then at most the product of the largest row sums ``H`` (expand the
    determinant), so at most ``log2 H / 30`` primes of ``[2**30, 2**31)``
    divide them all.  The point and prime are redrawn while a denominator
    vanishes there or the prime divides a coefficient's denominator; that
    conditioning divides the bound by ``1 - deg d / p - (bits of those
    denominators) / 30 / 4.8e7`` at most.
    """
    from .engine import PRIMES_IN_RANGE

    m, n = len(entries), len(entries[0]) if entries else 0
    row_deg, row_bits, den_deg, coef_den_bits = [], [], 0, 0
    for row in entries:
        dsum = sum(pd.total_degree() for _, pd in row)
        den_deg += dsum
        # a row of P = (product of the row's denominators) * A: degree <= dsum + max(num - den)
        row_deg.append(dsum + max((pn.total_degree() - pd.total_degree() for pn, pd in row), default=0))
        norms = []
        for pn, pd in row:
            cn, Pn = pn.clear_denoms(convert=True)  # pn = Pn / cn
            cd, Pd = pd.clear_denoms(convert=True)
            coef_den_bits += int(cn).bit_length() + int(cd).bit_length()
            # entry = (cd * Pn) / (cn * Pd) with integer polynomials
            a = abs(int(cd)) * sum(abs(int(c)) for c in Pn.coeffs()) if not pn.is_zero else 0
            b = abs(int(cn)) * sum(abs(int(c)) for c in Pd.coeffs())
            norms.append((a, b))
        row_sum = 0
        for j, (a, _) in enumerate(norms):
            prod = a
            for k, (_, b) in enumerate(norms):
                if k != j:
                    prod *= b
            row_sum += prod
        row_bits.append(max(1, row_sum).bit_length())
    k = min(m, n)
    deg_g = sum(sorted(row_deg, reverse=True)[:k])
    bits = sum(sorted(row_bits, reverse=True)[:k])
    cond = max(1e-300, 1 - den_deg / p - (coef_den_bits / 30 + 1) / PRIMES_IN_RANGE)
    return min(1.0, (deg_g / p + (bits / 30 + 1) / PRIMES_IN_RANGE) / cond)


def generic_rank_multivariate(M, gens, *, certify=True, seed=None, backend="auto"):
    """The rank of ``M`` over ℚ(gens) with its witnesses (see the module docstring).

    Parameters
    ----------
    M : matrix-like
        Entries rational in ``gens`` with rational coefficients.
    gens : tuple of sympy.Symbol
        At least two distinct symbols.
    certify : bool
        Produce the exact upper-bound witness.
    seed : int, optional
    backend : {"auto", "numba", "python"}
        Modular elimination kernel.

    Returns
    -------
    theory.Certificate
        ``var`` is the tuple ``gens``; ``point`` a tuple of integers.
    """
    from .engine import Certificate, CertificationError

    t_start = time.perf_counter()
    rng = random.Random(seed)
    A = as_sympy_matrix(M)
    m, n = A.shape
    entries = _entries(A, gens)
    # the rational form (binomial(t, 2) -> t**2/2 - t/2): what the kernel is computed and checked on
    Q = sp.ImmutableMatrix(m, n, lambda i, j: entries[i][j][0].as_expr() / entries[i][j][1].as_expr())
    if m == 0 or n == 0:
        return Certificate(0, (m, n), gens, True, "certified", seconds=time.perf_counter() - t_start, _source=A)
    best = -1
    for _attempt in range(ATTEMPTS):
        while True:
            p = mod.random_prime(rng)
            x = tuple(rng.randrange(p) for _ in gens)
            E = _values_at(entries, x, p, range(m), range(n))
            if E is not None:
                break
        import numpy as np

        r, prow, pcol = mod.rank_mod(np.array(E, dtype=np.int64).reshape(m, n), p, backend)
        rows, cols = tuple(int(i) for i in prow), tuple(int(j) for j in pcol)
        if r < best:
            continue
        best = r
        common = dict(point=x, prime=p, pivot_rows=rows, pivot_cols=cols, _source=A)
        if not certify:
            return Certificate(
                r,
                (m, n),
                gens,
                False,
                "monte-carlo",
                error_bound=_error_bound(entries, p),
                seconds=time.perf_counter() - t_start,
                **common,
            )
        if r == min(m, n):
            return Certificate(r, (m, n), gens, True, "certified", seconds=time.perf_counter() - t_start, **common)
        N = _exact_kernel(Q, gens, rows, cols)
        if N is None:
            continue  # the point underestimated the rank
        free = tuple(j for j in range(n) if j not in set(cols))
        return Certificate(
            r,
            (m, n),
            gens,
            True,
            "certified",
            kernel_side="right",
            kernel_rows=free,
            seconds=time.perf_counter() - t_start,
            _kernel_matrix=N,
            **common,
        )
    raise CertificationError(f"could not certify the rank after {ATTEMPTS} random points; please report")


def _field_matrix(A, gens):
    """``A`` (entries rational in ``gens``, combinatorial ones rewritten) as a DomainMatrix over ℚ(gens)."""
    K = sp.QQ.frac_field(*gens)
    return DomainMatrix.from_Matrix(sp.Matrix(rational_form(A, gens))).convert_to(K)


def _exact_kernel(A, gens, rows, cols):
    """Kernel ``N`` (n x (n - r)) with ``N[F] = I``, checked ``A N == 0`` exactly; None if it fails."""
    m, n = A.shape
    dA = _field_matrix(A, gens)
    K = dA.domain
    free = [j for j in range(n) if j not in set(cols)]
    if cols:
        X = (dA.extract(list(rows), list(cols)).inv() * dA.extract(list(rows), free)).to_ddm()
    N = [[K.zero] * len(free) for _ in range(n)]
    for c, f in enumerate(free):
        N[f][c] = K.one
        for a, j in enumerate(cols):
            N[j][c] = -X[a][c]
    dN = DomainMatrix(N, (n, len(free)), K)
    if not (dA * dN).is_zero_matrix:
        return None
    return sp.ImmutableMatrix(dN.to_Matrix())


def _target(cert, A):
    """``(M, entries)`` for the matrix ``A`` a several-variable certificate is checked on, or None.

    None when ``A`` has another shape or involves symbols outside the
    certificate's variables (the certificate is not about it).
    """
    gens = tuple(cert.var)
    if A is None:
        A = cert._source
        if A is None:
            raise ValueError("this certificate carries no matrix (it was read from JSON): pass A to verify")
    M = as_sympy_matrix(A)
    extra = M.free_symbols - set(gens)
    if extra and not any(x.name in {g.name for g in gens} for x in extra):
        return None  # in other symbols: not this certificate's matrix (a twin symbol raises below)
    m, n = M.shape
    if tuple(cert.shape) != (m, n) or not 0 <= cert.rank <= min(m, n):
        return None
    return M, _entries(M, gens)


def verify_lower_multivariate(cert, A=None):
    """Lower bound ``rank A >= cert.rank``: the pivot block is nonsingular at the point modulo the prime."""
    target = _target(cert, A)
    if target is None:
        return False
    M, entries = target
    m, n = M.shape
    r = cert.rank
    if r == 0:
        return True
    p, x = cert.prime, cert.point
    gens = tuple(cert.var)
    if not (isinstance(p, int) and p > 1 and sp.isprime(p)) or not isinstance(x, tuple) or len(x) != len(gens):
        return False
    if not all(isinstance(v, int) for v in x):
        return False
    rows, cols = list(cert.pivot_rows), list(cert.pivot_cols)
    if len(set(rows)) != r or len(set(cols)) != r or len(rows) != r or len(cols) != r:
        return False
    if not all(isinstance(i, int) and 0 <= i < m for i in rows) or not all(
        isinstance(j, int) and 0 <= j < n for j in cols
    ):
        return False
    block = _values_at(entries, x, p, rows, cols)
    if block is None:
        return False
    from .checker import _rank_mod

    return _rank_mod(block, p) == r


def verify_upper_multivariate(cert, A=None):
    """Upper bound ``rank A <= cert.rank``: ``A N = 0`` exactly, ``N[kernel_rows]`` nonsingular."""
    target = _target(cert, A)
    if target is None or not cert.certified:
        return False
    M, _ = target
    m, n = M.shape
    r = cert.rank
    if cert.kernel_side is None:
        return r == min(m, n)
    N = cert.kernel
    free = list(cert.kernel_rows)
    if cert.kernel_side != "right" or N is None or N.shape != (n, n - r) or len(free) != n - r:
        return False
    if len(set(free)) != n - r or not all(isinstance(f, int) and 0 <= f < n for f in free):
        return False
    gens = tuple(cert.var)
    try:
        dN = _field_matrix(N, gens)
    except ValueError:
        return False  # a kernel entry outside Q(gens) proves nothing
    if n - r:
        # full column rank: N[F] nonsingular (the engine's N has the identity there)
        if dN.extract(free, list(range(n - r))).det() == dN.domain.zero:
            return False
    return (_field_matrix(M, gens) * dN).is_zero_matrix


def verify_multivariate(cert, A=None):
    """Check a several-variable certificate against the matrix ``A`` (both bounds)."""
    return cert.certified and verify_lower_multivariate(cert, A) and verify_upper_multivariate(cert, A)


# ---------------------------------------------------------------------------
# JSON: the kernel's entries as quotients of integer polynomials
# ---------------------------------------------------------------------------
def _int_terms(poly):
    """A QQ Poly ``c * P`` as (``c``, terms of ``P``): ``P`` with integer coefficients, ``c`` rational."""
    c, P = poly.clear_denoms(convert=True)  # poly = P / c
    return sp.Rational(1, 1) / c, [[*(int(e) for e in monom), int(coef)] for monom, coef in P.terms()]


def kernel_to_json(N, gens):
    """The kernel as JSON columns: per nonzero entry ``[row, numerator terms, denominator terms]``.

    A term is ``[e_1, ..., e_s, c]``: the integer ``c`` times ``t_1**e_1 ... t_s**e_s``.
    """
    cols = []
    for c in range(N.shape[1]):
        col = []
        for i in range(N.shape[0]):
            e = sp.cancel(N[i, c])
            if e == 0:
                continue
            num, den = sp.fraction(e)
            cn, tn = _int_terms(sp.Poly(num, *gens, domain="QQ"))
            cd, td = _int_terms(sp.Poly(den, *gens, domain="QQ"))
            # e = (cn * Pn) / (cd * Pd): fold the rational factor cn / cd into both sides as integers
            q = cn / cd
            tn = [[*term[:-1], term[-1] * int(q.p)] for term in tn]
            td = [[*term[:-1], term[-1] * int(q.q)] for term in td]
            col.append([i, tn, td])
        cols.append(col)
    return cols


def kernel_from_json(cols, shape, gens):
    """Inverse of :func:`kernel_to_json`: the kernel as an immutable SymPy matrix."""
    from .checker import terms_to_expr

    n, width = shape
    entries = {}
    for c, col in enumerate(cols):
        for i, tn, td in col:
            den = terms_to_expr(td, gens)
            if den == 0:
                raise ValueError(f"kernel entry ({i}, {c}) has a zero denominator")
            if not (0 <= int(i) < n) or (int(i), c) in entries:
                raise ValueError(f"kernel entry ({i}, {c}) is out of range or repeated")
            entries[int(i), c] = terms_to_expr(tn, gens) / den
    return sp.ImmutableMatrix(n, width, lambda i, c: entries.get((i, c), sp.S.Zero))


# ---------------------------------------------------------------------------
# rank factorisation and kernels over ℚ(t₁, …, t_s)
# ---------------------------------------------------------------------------
def rank_factorization_multivariate(A, gens, *, seed=None):
    """``A = U V`` over ℚ(gens) from the certificate's pivot block (see :func:`theory.rank_factorization`)."""
    c = generic_rank_multivariate(A, gens, seed=seed)
    m, n = c.shape
    if c.rank == 0:
        return sp.ImmutableMatrix.zeros(m, 0), sp.ImmutableMatrix.zeros(0, n), c
    dM = _field_matrix(A, gens)
    rows, cols = list(c.pivot_rows), list(c.pivot_cols)
    dU = dM.extract(list(range(m)), cols)
    dV = dM.extract(rows, cols).inv() * dM.extract(rows, list(range(n)))
    if dU * dV != dM:  # pragma: no cover - would contradict the certificate
        from .engine import CertificationError

        raise CertificationError("rank factorisation failed its exact check; please report")
    return sp.ImmutableMatrix(dU.to_Matrix()), sp.ImmutableMatrix(dV.to_Matrix()), c
