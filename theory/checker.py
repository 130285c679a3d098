"""Standalone checker for generic-rank certificates (needs only SymPy).

This file does not import the rest of the ``theory`` package, NumPy or
Numba: a third party can copy it alone and check a certificate produced by
:func:`theory.generic_rank` against *their own* SymPy matrix, using nothing
but SymPy's exact arithmetic.

A certificate (the JSON object written by ``Certificate.to_json()``) claims
``rank A = r`` over ℚ(t).  :func:`check_certificate` accepts the claim only if

Lower bound ``rank A >= r``
    ``prime`` is a prime, the entries of the ``r x r`` block
    ``A[pivot_rows, pivot_cols]`` (elements of ℚ(t), converted by SymPy) have
    denominators that do not vanish at ``point`` modulo ``prime``, and the
    block evaluated at ``point`` is nonsingular modulo ``prime``.  Its
    determinant is then a nonzero rational number, so that minor of ``A`` is
    a nonzero element of ℚ(t).

Upper bound ``rank A <= r``
    Either ``r = min(m, n)``, or the kernel ``N`` (integer polynomial
    entries) satisfies ``A N = 0`` (``kernel_side == "right"``, ``n - r``
    columns) or ``N^T A = 0`` (``"left"``, ``m - r`` columns), multiplied
    out exactly in SymPy's ``DomainMatrix`` over ``QQ.frac_field(t)``, and
    ``N[kernel_rows, :]`` is nonsingular at ``point`` modulo ``prime`` (so
    ``N`` has full column rank and the nullity is at least its width).

Several variables
    A certificate of a rank over ℚ(t₁, …, t_s) (``var`` a list of symbols)
    is checked the same way over ``QQ.frac_field(t1, ..., ts)``: ``point`` is
    a list of integers, one per variable, and each kernel entry is a quotient
    of integer polynomials, ``[row, numerator terms, denominator terms]``
    with terms ``[e_1, ..., e_s, c]`` (:func:`terms_to_expr`).

Profiles
    :func:`check_profile` checks a rank profile (``Profile.to_json()``: the
    ranks and one certificate per order) against a matrix function: it takes
    the derivatives (or forward differences) itself, with SymPy, and checks
    each certificate on them.

Fields that carry no proof (``seconds``, ``error_bound``, ``method``) are
not checked.  Monte-Carlo and numeric results have no upper-bound witness and
are never accepted.

Examples
--------
>>> import sympy as sp
>>> t = sp.Symbol("t")
>>> A = sp.Matrix([[1, t], [t, t**2]])
>>> cert = {"format": "theory.generic_rank", "version": 1, "rank": 1, "shape": [2, 2],
...         "var": {"name": "t", "assumptions": {}, "dummy": False}, "certified": True,
...         "point": 3, "prime": 1000000007, "pivot_rows": [0], "pivot_cols": [0],
...         "kernel_side": "right", "kernel_rows": [1],
...         "kernel": [[[0, [-1, 0]], [1, [1]]]]}
>>> check_certificate(cert, A)
True
>>> check_certificate(dict(cert, rank=2), A)
False
"""

from __future__ import annotations

import json
from typing import Any

import sympy as sp
from sympy.polys.matrices import DomainMatrix

__all__ = [
    "FORMAT",
    "PROFILE_FORMAT",
    "VERSION",
    "certificate_var",
    "check_certificate",
    "check_profile",
    "terms_to_expr",
    "to_field_matrix",
]

FORMAT = "theory.generic_rank"
PROFILE_FORMAT = "theory.rank_profile"
VERSION = 1


def _symbol(v):
    if not isinstance(v, dict) or not isinstance(v.get("name"), str):
        raise ValueError("certificate field 'var' must be {'name': str, 'assumptions': dict, 'dummy': bool}")
    assumptions = v.get("assumptions", {})
    if not isinstance(assumptions, dict) or not all(isinstance(b, bool) for b in assumptions.values()):
        raise ValueError("certificate field var.assumptions must map names to booleans")
    cls = sp.Dummy if v.get("dummy") else sp.Symbol
    return cls(v["name"], **assumptions)


def certificate_var(cert):
    """The SymPy symbol (or symbols) described by a certificate's ``var`` field.

    Parameters
    ----------
    cert : dict
        A certificate as written by ``Certificate.to_json()``.

    Returns
    -------
    sympy.Symbol, sympy.Dummy, or tuple of them
        A tuple (of two or more distinct symbols) for a rank over
        ℚ(t₁, …, t_s), whose ``var`` field is a list.

    Raises
    ------
    ValueError
        If the field is malformed.
    """
    v = cert.get("var")
    if isinstance(v, list):
        gens = tuple(_symbol(x) for x in v)
        if len(gens) < 2 or len(set(gens)) != len(gens):
            raise ValueError("certificate field 'var' as a list must describe two or more distinct symbols")
        return gens
    return _symbol(v)


def terms_to_expr(terms, gens):
    """A polynomial given as terms ``[e_1, ..., e_s, c]`` (integers) as a SymPy expression.

    Parameters
    ----------
    terms : list of list of int
        Each term is the coefficient ``c`` times ``gens[0]**e_1 * ... * gens[-1]**e_s``.
    gens : tuple of sympy.Symbol

    Returns
    -------
    sympy.Expr

    Raises
    ------
    ValueError
        If a term is malformed (wrong length, negative exponent, not integers).

    Examples
    --------
    >>> t, s = sp.symbols("t s")
    >>> terms_to_expr([[2, 0, 3], [0, 1, -1]], (t, s))
    -s + 3*t**2
    """
    if not isinstance(terms, list):
        raise ValueError("polynomial terms must be a list")
    out = sp.S.Zero
    for term in terms:
        if not (
            isinstance(term, (list, tuple))
            and len(term) == len(gens) + 1
            and all(isinstance(x, int) and not isinstance(x, bool) for x in term)
            and all(e >= 0 for e in term[:-1])
        ):
            raise ValueError(f"malformed polynomial term {term!r} for variables {gens}")
        out += sp.Integer(term[-1]) * sp.Mul(*[g**e for g, e in zip(gens, term[:-1])])
    return out


def to_field_matrix(A, var, name="A"):
    """``A`` as a ``DomainMatrix`` over ``QQ.frac_field(var)``.

    Entries SymPy cannot convert directly (``gamma(t + 1)/gamma(t)``,
    ``binomial(t, 2)``, ``factorial(t + 2)/factorial(t)``) are rewritten with
    ``expand_func`` (after ``rewrite(gamma)`` if needed) and ``cancel``.

    Parameters
    ----------
    A : sympy.MatrixBase
    var : sympy.Symbol or tuple of sympy.Symbol
        The variable, or the variables of ℚ(t₁, …, t_s).
    name : str
        Used in error messages.

    Returns
    -------
    DomainMatrix

    Raises
    ------
    ValueError
        Naming an entry that is not in ℚ(var).
    """
    gens = var if isinstance(var, tuple) else (var,)
    K = sp.QQ.frac_field(*gens)
    field = ", ".join(str(g) for g in gens)
    m, n = A.shape
    rows = []
    for i in range(m):
        row = []
        for j in range(n):
            e = sp.sympify(A[i, j])
            if isinstance(e, sp.Poly):
                if e.domain.characteristic():  # GF(p) coefficients are not rationals
                    raise ValueError(f"{name}[{i}, {j}] is a Poly over {e.domain}, not an element of QQ({field})")
                e = e.as_expr()
            if e.free_symbols - set(gens) or e.has(sp.Float):
                raise ValueError(f"{name}[{i}, {j}] = {e} is not an element of QQ({field})")
            for rewrite in (lambda x: x, sp.expand_func, lambda x: sp.expand_func(x.rewrite(sp.gamma))):
                try:
                    row.append(K.from_sympy(sp.cancel(rewrite(e))))
                    break
                except Exception:  # SymPy raises CoercionFailed and others here
                    continue
            else:
                raise ValueError(f"{name}[{i}, {j}] = {e} is not an element of QQ({field})")
        rows.append(row)
    return DomainMatrix(rows, (m, n), K)


def _eval_mod(f, x, p):
    """Value mod p of an element of QQ(t1, ..., ts) at the point x (a tuple), or None if its denominator vanishes."""
    num, den = f.numer, f.denom
    # elements of QQ.frac_field(...) are quotients of QQ[...] polynomials
    nv = _poly_mod(num, x, p)
    dv = _poly_mod(den, x, p)
    if nv is None or dv is None or dv == 0:
        return None
    return nv * pow(dv, -1, p) % p


def _poly_mod(poly, x, p):
    """Value mod p of a QQ[t1, ..., ts] polynomial at the point x, or None if p divides a coefficient's denominator."""
    acc = 0
    for monom, c in poly.terms():
        a, b = int(c.numerator), int(c.denominator)
        if b % p == 0:
            return None
        v = a * pow(b, -1, p)
        for xi, e in zip(x, monom):
            v = v * pow(xi, e, p) % p
        acc = (acc + v) % p
    return acc


def _point(cert, gens):
    """The certificate's point as a tuple of ints (one per variable), or None if malformed."""
    x = cert.get("point")
    if len(gens) == 1:
        x = [x]
    if not isinstance(x, list) or len(x) != len(gens):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in x):
        return None
    return tuple(x)


def _rank_mod(rows, p):
    """Rank of a list-of-lists integer matrix modulo the prime p (plain Gaussian elimination)."""
    a = [[v % p for v in row] for row in rows]
    r = 0
    ncols = len(a[0]) if a else 0
    for c in range(ncols):
        piv = next((i for i in range(r, len(a)) if a[i][c]), None)
        if piv is None:
            continue
        a[r], a[piv] = a[piv], a[r]
        inv = pow(a[r][c], -1, p)
        for i in range(r + 1, len(a)):
            f = a[i][c] * inv % p
            if f:
                a[i] = [(u - f * w) % p for u, w in zip(a[i], a[r])]
        r += 1
    return r


def _indices(value, bound, length=None):
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < bound for i in value
    ):
        return None
    if len(set(value)) != len(value) or (length is not None and len(value) != length):
        return None
    return list(value)


def _kernel_matrix(cert, size, K, gens):
    """The kernel as a DomainMatrix (size x width), or None if malformed.

    One variable: per column, ``[row, coefficients]`` pairs (integer
    coefficients, highest degree first).  Several variables: per column,
    ``[row, numerator terms, denominator terms]`` (see :func:`terms_to_expr`).
    """
    cols = cert.get("kernel")
    if not isinstance(cols, list):
        return None
    width = len(cols)
    entries = [[K.zero] * width for _ in range(size)]
    for c, col in enumerate(cols):
        if not isinstance(col, list):
            return None
        for item in col:
            if not (isinstance(item, (list, tuple)) and len(item) == (2 if len(gens) == 1 else 3)):
                return None
            i = item[0]
            if not (isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size):
                return None
            if entries[i][c] != K.zero:
                return None  # the same position twice
            if len(gens) == 1:
                coeffs = item[1]
                if not isinstance(coeffs, (list, tuple)):
                    return None
                if not all(isinstance(x, int) and not isinstance(x, bool) for x in coeffs):
                    return None
                expr = sum((sp.Integer(x) * gens[0] ** k for k, x in enumerate(reversed(coeffs))), sp.S.Zero)
            else:
                try:
                    num, den = terms_to_expr(item[1], gens), terms_to_expr(item[2], gens)
                except ValueError:
                    return None
                if den == 0:
                    return None
                expr = num / den
            entries[i][c] = K.from_sympy(expr)
    return DomainMatrix(entries, (size, width), K)


def _other_symbols(A, gens):
    """Whether ``A`` involves symbols outside ``gens``; a ValueError for a namesake with other assumptions.

    ``Symbol("t", positive=True)`` and ``Symbol("t")`` are different SymPy
    symbols: a matrix built with one is not about the other, but answering
    False without a word would look like a wrong certificate.
    """
    extra = A.free_symbols - set(gens)
    by_name = {g.name: g for g in gens}
    for x in extra:
        if x.name in by_name:
            raise ValueError(
                f"A contains a symbol {x.name} with assumptions {x.assumptions0} but the certificate's "
                f"{x.name} has assumptions {by_name[x.name].assumptions0}: SymPy treats them as different "
                f"symbols; build A with the certificate's symbol"
            )
    return bool(extra)


def check_certificate(cert: str | dict[str, Any], A: Any) -> bool:
    """Check that ``cert`` proves the generic rank of ``A``.

    Parameters
    ----------
    cert : dict or str
        The certificate (``Certificate.to_json()``: a dict, or its JSON text).
    A : sympy.MatrixBase
        The matrix whose rank is claimed, with entries in ℚ(var) (or in
        ℚ(t₁, …, t_s) for a several-variable certificate).

    Returns
    -------
    bool
        True iff both bounds are proved for this ``A``.

    Raises
    ------
    ValueError
        If ``cert`` is not a certificate of this format, an entry of ``A``
        is not in ℚ(var), or ``A`` has a symbol named like a certificate
        variable but with other assumptions.
    TypeError
        If ``A`` is not a SymPy matrix.
    """
    if isinstance(cert, (str, bytes)):
        cert = json.loads(cert)
    if not isinstance(cert, dict) or cert.get("format") != FORMAT or cert.get("version") != VERSION:
        raise ValueError(f"cert must be a {FORMAT!r} certificate of version {VERSION}")
    if not isinstance(A, sp.MatrixBase):
        raise TypeError(f"A must be a SymPy matrix, got {type(A).__name__}")
    var = certificate_var(cert)
    gens = var if isinstance(var, tuple) else (var,)
    if _other_symbols(A, gens):
        return False  # a matrix in other symbols: the certificate is not about it
    m, n = A.shape
    r = cert.get("rank")
    if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= min(m, n):
        return False
    if cert.get("shape") != [m, n] or cert.get("certified") is not True:
        return False
    dA = to_field_matrix(A, var)
    K = dA.domain
    # ---- lower bound
    if r > 0:
        p, x = cert.get("prime"), _point(cert, gens)
        if not (isinstance(p, int) and x is not None and p > 1 and sp.isprime(p)):
            return False
        rows = _indices(cert.get("pivot_rows"), m, r)
        cols = _indices(cert.get("pivot_cols"), n, r)
        if rows is None or cols is None:
            return False
        Al = dA.to_ddm()
        block = []
        for i in rows:
            row = []
            for j in cols:
                v = _eval_mod(Al[i][j], x, p)
                if v is None:
                    return False
                row.append(v)
            block.append(row)
        if _rank_mod(block, p) != r:
            return False
    # ---- upper bound
    side = cert.get("kernel_side")
    if side is None:
        return r == min(m, n)
    if side not in ("right", "left"):
        return False
    if side == "left":
        dA = dA.transpose()
    size = dA.shape[1]
    N = _kernel_matrix(cert, size, K, gens)
    if N is None or N.shape[1] != size - r:
        return False
    width = N.shape[1]
    if width:
        p, x = cert.get("prime"), _point(cert, gens)
        if not (isinstance(p, int) and x is not None and p > 1 and sp.isprime(p)):
            return False
        R = _indices(cert.get("kernel_rows"), size, width)
        if R is None:
            return False
        Nl = N.to_ddm()
        sub = []
        for i in R:
            row = []
            for c in range(width):
                v = _eval_mod(Nl[i][c], x, p)
                if v is None:
                    return False
                row.append(v)
            sub.append(row)
        if _rank_mod(sub, p) != width:
            return False
    return (dA * N).is_zero_matrix


def check_profile(profile: str | dict[str, Any], A: Any) -> bool:
    """Check that ``profile`` proves the rank profile of ``A``.

    The derivatives ``A, A', ..., A^{(K)}`` (partial derivatives in ``wrt``
    for several variables), or the forward differences
    ``A, ΔA, ..., Δ^K A`` with ``ΔA(j) = A(j+1) - A(j)``, are taken here with
    SymPy from the rational form of ``A``, and certificate ``k`` must prove
    (:func:`check_certificate`) rank ``ranks[k]`` for order ``k``.

    Parameters
    ----------
    profile : dict or str
        ``Profile.to_json()`` (a dict, or its JSON text).
    A : sympy.MatrixBase
        The matrix function (or sequence) whose profile is claimed.

    Returns
    -------
    bool
        True iff there is one certificate per order and each proves its
        order's claimed rank for this ``A``.

    Raises
    ------
    ValueError
        If ``profile`` is not a profile of this format, an entry of ``A``
        is not in ℚ(var), or ``A`` has a symbol named like a profile
        variable but with other assumptions.
    TypeError
        If ``A`` is not a SymPy matrix.

    Examples
    --------
    >>> t = sp.Symbol("t")
    >>> A = sp.Matrix([[1, t], [t, t**2]])            # profile (1, 2): A has rank 1, A' rank 2
    >>> profile = {"format": "theory.rank_profile", "version": 1, "kind": "derivative",
    ...            "var": {"name": "t", "assumptions": {}, "dummy": False}, "wrt": None, "ranks": [1, 2],
    ...            "certificates": [
    ...     {"format": "theory.generic_rank", "version": 1, "rank": 1, "shape": [2, 2],
    ...      "var": {"name": "t", "assumptions": {}, "dummy": False}, "certified": True,
    ...      "point": 3, "prime": 1000000007, "pivot_rows": [0], "pivot_cols": [0],
    ...      "kernel_side": "right", "kernel_rows": [1], "kernel": [[[0, [-1, 0]], [1, [1]]]]},
    ...     {"format": "theory.generic_rank", "version": 1, "rank": 2, "shape": [2, 2],
    ...      "var": {"name": "t", "assumptions": {}, "dummy": False}, "certified": True,
    ...      "point": 3, "prime": 1000000007, "pivot_rows": [0, 1], "pivot_cols": [0, 1],
    ...      "kernel_side": None, "kernel_rows": [], "kernel": None}]}
    >>> check_profile(profile, A), check_profile(dict(profile, ranks=[1, 1]), A)
    (True, False)
    """
    if isinstance(profile, (str, bytes)):
        profile = json.loads(profile)
    if not isinstance(profile, dict) or profile.get("format") != PROFILE_FORMAT or profile.get("version") != VERSION:
        raise ValueError(f"profile must be a {PROFILE_FORMAT!r} profile of version {VERSION}")
    if not isinstance(A, sp.MatrixBase):
        raise TypeError(f"A must be a SymPy matrix, got {type(A).__name__}")
    kind, ranks, certs = profile.get("kind"), profile.get("ranks"), profile.get("certificates")
    if kind not in ("derivative", "difference") or not isinstance(ranks, list) or not isinstance(certs, list):
        return False
    if not ranks or len(ranks) != len(certs):
        return False
    var = certificate_var(profile)
    gens = var if isinstance(var, tuple) else (var,)
    wrt = None if profile.get("wrt") is None else _symbol(profile["wrt"])
    x: Any
    if isinstance(var, tuple):  # partial derivatives in one of several variables
        if kind != "derivative" or wrt not in gens:
            return False
        x = wrt
    else:
        if wrt is not None and wrt != var:
            return False
        x = var
    if _other_symbols(A, gens):
        return False
    M = to_field_matrix(A, var).to_Matrix()  # the rational form: binomial(t, 2) -> t**2/2 - t/2
    for k, (r, cert) in enumerate(zip(ranks, certs)):
        if not isinstance(r, int) or isinstance(r, bool) or not isinstance(cert, dict) or cert.get("rank") != r:
            return False
        if not check_certificate(cert, M):
            return False
        if k + 1 < len(ranks):
            M = (M.diff(x) if kind == "derivative" else M.subs(x, x + 1) - M).applyfunc(sp.cancel)
    return True
