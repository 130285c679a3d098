"""Exact conversion of SymPy matrices to matrices over ℤ[t] fractions.

:class:`RationalMatrix` stores every entry as a pair ``(num, den)`` of
integer polynomials in one variable (dense coefficient lists, highest degree
first, the representation of ``sympy.polys.densebasic``), with ``den != 0``
and a positive leading coefficient.  It is the common currency of the engine
and of the profile code: derivatives, forward differences and subtraction
are exact operations on it, and every entry is kept in lowest terms.

Conversion rejects, with an error naming the entry, anything that is not a
rational function of the chosen variable with rational coefficients:
other free symbols, transcendental functions (``exp(t)``), algebraic
numbers (``sqrt(2)``), floats, and entries whose denominator is identically
zero.

Examples
--------
>>> import sympy as sp
>>> t = sp.Symbol("t")
>>> R = RationalMatrix.from_sympy(sp.Matrix([[1 / (t + 1), t / 3]]))
>>> R.num[0][0], R.den[0][0], R.num[0][1], R.den[0][1]
([1], [1, 1], [1, 0], [3])
>>> R.diff().to_sympy()
Matrix([[-1/(t**2 + 2*t + 1), 1/3]])
"""

from __future__ import annotations

from math import gcd, lcm

import sympy as sp
from sympy import ZZ
from sympy.polys.densearith import dup_exquo, dup_mul, dup_mul_ground, dup_sub
from sympy.polys.densetools import dup_diff, dup_shift
from sympy.polys.euclidtools import dup_gcd, dup_lcm
from sympy.polys.polyerrors import PolynomialError

__all__ = ["RationalMatrix", "as_sympy_matrix", "infer_var"]

_COMBINATORIAL = (sp.binomial, sp.factorial, sp.ff, sp.rf, sp.gamma)


def as_sympy_matrix(A, name="A"):
    """Turn ``A`` into an immutable SymPy matrix, or raise ``TypeError``.

    Parameters
    ----------
    A : Matrix, array_like, nested sequence, 2-D sympy Array or DomainMatrix
        Anything ``sympy.Matrix`` accepts; ``Poly`` entries become
        expressions.
    name : str
        Argument name used in error messages.

    Returns
    -------
    sympy.ImmutableMatrix

    Raises
    ------
    TypeError
        If SymPy cannot build a matrix from ``A``.
    ValueError
        If ``A`` is a ``DomainMatrix``, or has a ``Poly`` entry, over a domain
        of positive characteristic (``GF(p)``): its entries are not rational.

    Examples
    --------
    >>> as_sympy_matrix([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    if isinstance(A, RationalMatrix):
        return A.to_sympy()
    from sympy.polys.matrices import DomainMatrix

    if isinstance(A, DomainMatrix):
        _check_characteristic(A.domain, f"{name} is a DomainMatrix over {A.domain}")
        return sp.ImmutableMatrix(A.to_Matrix())
    if isinstance(A, sp.NDimArray):
        if A.rank() != 2:
            raise TypeError(f"{name} must be 2-D; got a SymPy array of shape {A.shape}")
        A = A.tolist()
    if isinstance(A, sp.MatrixBase):
        if any(isinstance(e, sp.Poly) for e in A.values()):
            A = A.applyfunc(lambda e: _poly_as_expr(e, name) if isinstance(e, sp.Poly) else e)
        return sp.ImmutableMatrix(A)
    if isinstance(A, sp.Poly):
        A = [[A]]
    if isinstance(A, (list, tuple)):
        A = _polys_to_exprs(A, name)
    try:
        M = sp.ImmutableMatrix(A)
    except Exception as exc:  # SymPy raises a zoo of exception types here
        raise TypeError(
            f"{name} must be a SymPy matrix or something sympy.Matrix accepts "
            f"(nested lists of numbers/expressions); got {type(A).__name__}: {exc}"
        ) from None
    return M


def _check_characteristic(domain, what):
    """Refuse a domain of positive characteristic: its elements are not elements of ℚ(t).

    ``GF(7)`` elements (and polynomials over ``GF(7)``) turn into integers
    when converted to expressions, which would silently answer a question
    over ℚ about a matrix meant over ``GF(7)``.
    """
    p = domain.characteristic()
    if p:
        raise ValueError(
            f"{what}, of characteristic {p}: generic ranks here are over Q(t) (characteristic 0); "
            f"convert the entries to integers or rationals explicitly if that is what you mean"
        )


def _poly_as_expr(poly, name):
    """A ``Poly`` entry as an expression, refusing coefficients of positive characteristic."""
    _check_characteristic(poly.domain, f"{name} has a Poly entry over {poly.domain}")
    return poly.as_expr()


def _polys_to_exprs(obj, name="A"):
    """Nested lists with ``Poly`` leaves -> the same with expressions."""
    if isinstance(obj, sp.Poly):
        return _poly_as_expr(obj, name)
    if isinstance(obj, (list, tuple)):
        return [_polys_to_exprs(x, name) for x in obj]
    return obj


def infer_var(M, var=None, name="A"):
    """The variable of a matrix function: ``var`` or its single free symbol.

    Parameters
    ----------
    M : sympy.MatrixBase
        The matrix.
    var : sympy.Symbol or None
        Explicit variable; required when ``M`` has several free symbols.
    name : str
        Argument name used in error messages.

    Returns
    -------
    sympy.Symbol
        ``var``; the unique free symbol; or a fresh ``Dummy('t')`` for a
        constant matrix.

    Raises
    ------
    TypeError
        If ``var`` is not a SymPy ``Symbol``.
    ValueError
        If ``var`` is None and ``M`` has more than one free symbol.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> infer_var(sp.Matrix([[t, 1]]))
    t
    """
    if var is not None:
        if not isinstance(var, sp.Symbol):
            raise TypeError(f"var must be a sympy Symbol, got {var!r} ({type(var).__name__})")
        return var
    free = M.free_symbols
    if len(free) == 1:
        return next(iter(free))
    if not free:
        return sp.Dummy("t")
    names = ", ".join(sorted(str(s) for s in free))
    raise ValueError(
        f"{name} has several free symbols ({names}); pass var= to choose the variable, "
        f"or var=({names}) for the rank over Q({names})"
    )


def _strip(f):
    i = 0
    while i < len(f) and f[i] == 0:
        i += 1
    return f[i:]


def _normalize(num, den):
    """Lowest terms, positive leading denominator coefficient."""
    num = _strip(num)
    if not num:
        return [], [1]
    if len(den) == 1:  # a constant denominator: an integer gcd suffices
        d = den[0]
        g = gcd(d, *num)
        if d < 0:
            g = -g
        return ([c // g for c in num], [d // g]) if g != 1 else (num, den)
    g = dup_gcd(num, den, ZZ)
    if len(g) > 1 or g[0] not in (1, -1):
        num = dup_exquo(num, g, ZZ)
        den = dup_exquo(den, g, ZZ)
    if den[0] < 0:
        num = [-c for c in num]
        den = [-c for c in den]
    return num, den


def _poly_to_int_pair(poly):
    """Integer numerator coefficients and integer denominator of a QQ/ZZ Poly."""
    coeffs = poly.all_coeffs()
    dens = [sp.Rational(c).q for c in coeffs]
    L = lcm(*dens) if dens else 1
    out = [int(sp.Rational(c) * L) for c in coeffs]
    return _strip(out), L


class RationalMatrix:
    """Matrix with entries in ℚ(t), stored as integer-polynomial fractions.

    Parameters
    ----------
    num, den : list of list of list of int
        ``num[i][j]`` and ``den[i][j]`` are coefficient lists (highest degree
        first) of the numerator and denominator of entry ``(i, j)``.
    var : sympy.Symbol
        The variable ``t``.
    shape : tuple of int, optional
        Needed only for matrices with zero rows.

    Raises
    ------
    ValueError
        If the lists are ragged or a denominator is zero.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> R = RationalMatrix([[[1, 0]]], [[[1]]], t)    # the 1x1 matrix (t)
    >>> R.to_sympy()
    Matrix([[t]])
    """

    def __init__(self, num, den, var, shape=None):
        m = len(num)
        n = len(num[0]) if m else (shape[1] if shape else 0)
        if len(den) != m or any(len(r) != n for r in num) or any(len(r) != n for r in den):
            raise ValueError("num and den must be rectangular lists of the same shape")
        self.num = [[list(e) for e in row] for row in num]
        self.den = [[list(e) for e in row] for row in den]
        for i in range(m):
            for j in range(n):
                self.num[i][j], d = _strip(self.num[i][j]), _strip(self.den[i][j])
                if not d:
                    raise ValueError(f"entry ({i}, {j}) has a zero denominator")
                self.num[i][j], self.den[i][j] = _normalize(self.num[i][j], d)
        self.var = var
        self.shape = (m, n)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_sympy(cls, A, var=None, name="A"):
        """Exact conversion of a SymPy matrix (see module docstring).

        Parameters
        ----------
        A : Matrix or array_like
            Entries rational in ``var`` with rational coefficients.
        var : sympy.Symbol, optional
            The variable; inferred when ``A`` has one free symbol.
        name : str
            Argument name used in error messages.

        Returns
        -------
        RationalMatrix

        Raises
        ------
        ValueError
            Naming the first entry that is not a rational function of
            ``var`` with rational coefficients.
        TypeError
            If ``A`` is not matrix-like or ``var`` not a Symbol.

        Examples
        --------
        >>> import sympy as sp
        >>> t = sp.Symbol("t")
        >>> RationalMatrix.from_sympy(sp.Matrix([[sp.exp(t)]]))
        Traceback (most recent call last):
        ...
        ValueError: A[0, 0] = exp(t) is not a rational function of t with rational coefficients ...
        """
        if isinstance(A, RationalMatrix):
            if var is not None and var != A.var:
                raise ValueError(f"{name} is a RationalMatrix in {A.var}, not in var={var}")
            return A
        M = None
        if var is None:
            # the fast path reads the entries only (no immutable copy of a SymPy matrix)
            M = A if isinstance(A, sp.MatrixBase) else as_sympy_matrix(A, name)
            fast = _all_fast_polys(M.tolist())
            if fast is not None:  # every entry an expanded polynomial in one symbol
                num, den, var = fast
                # already in lowest terms: the coefficients p_k/q_k are, so no prime
                # of L = lcm(q_k) divides every p_k * L/q_k; L > 0
                R = cls.__new__(cls)
                R.num, R.den, R.var, R.shape = num, den, var, M.shape
                return R
            if isinstance(A, sp.MatrixBase):
                M = None  # convert it after all (Poly entries, characteristic checks)
        if M is None:
            M = as_sympy_matrix(A, name)
        m, n = M.shape
        rows = M.tolist()
        var = infer_var(M, var, name)
        num = [[None] * n for _ in range(m)]
        den = [[None] * n for _ in range(m)]
        for i, row in enumerate(rows):
            for j, e in enumerate(row):
                num[i][j], den[i][j] = _entry(e, var, f"{name}[{i}, {j}]")
        return cls(num, den, var, shape=(m, n))

    # --------------------------------------------------------------- exports
    def entry_expr(self, i, j):
        """Entry ``(i, j)`` as a SymPy expression."""
        t = self.var
        nu = sp.Poly(self.num[i][j], t, domain="ZZ").as_expr() if self.num[i][j] else sp.S.Zero
        de = sp.Poly(self.den[i][j], t, domain="ZZ").as_expr()
        return nu / de

    def to_sympy(self):
        """The matrix as an immutable SymPy matrix."""
        m, n = self.shape
        return sp.ImmutableMatrix(m, n, lambda i, j: self.entry_expr(i, j))

    def __repr__(self):
        return f"RationalMatrix({self.to_sympy()!r}, var={self.var})"

    def is_zero(self):
        """Whether every entry is zero."""
        return all(not e for row in self.num for e in row)

    def max_degree(self):
        """Largest degree among numerators and denominators (0 if constant)."""
        d = 0
        for rows in (self.num, self.den):
            for row in rows:
                for e in row:
                    d = max(d, len(e) - 1)
        return d

    def transpose(self):
        """The transpose."""
        m, n = self.shape
        R = RationalMatrix.__new__(RationalMatrix)
        R.num = [[self.num[i][j] for i in range(m)] for j in range(n)]
        R.den = [[self.den[i][j] for i in range(m)] for j in range(n)]
        R.var, R.shape = self.var, (n, m)
        return R

    def cleared_rows(self):
        """Clear denominators row by row.

        Returns
        -------
        P : list of list of list of int
            Integer polynomial matrix with ``P[i] = d_i * A[i]``.
        d : list of list of int
            The row multipliers ``d_i`` (nonzero integer polynomials); row
            scaling by nonzero elements of ℚ(t) changes neither the rank
            nor the right kernel.
        """
        P, mult = [], []
        for nrow, drow in zip(self.num, self.den):
            if all(len(d) == 1 for d in drow):
                L = lcm(*[d[0] for d in drow]) if drow else 1
                P.append([[c * (L // d[0]) for c in e] for e, d in zip(nrow, drow)])
                mult.append([L])
                continue
            L = [1]
            for d in drow:
                L = dup_lcm(L, d, ZZ)
            P.append([dup_mul(e, dup_exquo(L, d, ZZ), ZZ) if e else [] for e, d in zip(nrow, drow)])
            mult.append(L)
        return P, mult

    # ----------------------------------------------------------- operations
    def _map(self, fn):
        m, n = self.shape
        R = RationalMatrix.__new__(RationalMatrix)
        R.num = [[None] * n for _ in range(m)]
        R.den = [[None] * n for _ in range(m)]
        for i in range(m):
            for j in range(n):
                R.num[i][j], R.den[i][j] = fn(i, j)
        R.var, R.shape = self.var, self.shape
        return R

    def diff(self):
        """Exact derivative d/dt, entrywise (quotient rule, lowest terms)."""

        def f(i, j):
            a, b = self.num[i][j], self.den[i][j]
            if not a:
                return [], [1]
            if len(b) == 1:
                return _normalize(dup_diff(a, 1, ZZ), b)
            top = dup_sub(dup_mul(dup_diff(a, 1, ZZ), b, ZZ), dup_mul(a, dup_diff(b, 1, ZZ), ZZ), ZZ)
            return _normalize(top, dup_mul(b, b, ZZ))

        return self._map(f)

    def shift(self, a=1):
        """The matrix function ``t -> A(t + a)`` for an integer ``a``."""
        return self._map(lambda i, j: _normalize(dup_shift(self.num[i][j], a, ZZ), dup_shift(self.den[i][j], a, ZZ)))

    def __sub__(self, other):
        if not isinstance(other, RationalMatrix) or other.shape != self.shape:
            return NotImplemented

        def f(i, j):
            a, b = self.num[i][j], self.den[i][j]
            c, d = other.num[i][j], other.den[i][j]
            if b == d:
                return _normalize(dup_sub(a, c, ZZ), b)
            return _normalize(dup_sub(dup_mul(a, d, ZZ), dup_mul(c, b, ZZ), ZZ), dup_mul(b, d, ZZ))

        return self._map(f)

    def forward_difference(self):
        """``ΔA(t) = A(t + 1) - A(t)``."""
        return self.shift(1) - self

    def scale_int(self, c):
        """Multiply by a nonzero integer ``c``."""
        return self._map(lambda i, j: _normalize(dup_mul_ground(self.num[i][j], c, ZZ), self.den[i][j]))


def _fast_poly(e, var):
    """(num, [den]) for an expanded polynomial ``sum c_k var**k``, else None.

    A shortcut around ``Poly(e, var)`` (which re-expands its input) for the
    common case of entries that are already expanded polynomials with
    rational coefficients.  It reads the expression tree only (terms
    ``c``, ``var``, ``c*var``, ``var**k``, ``c*var**k`` with a SymPy
    ``Rational`` ``c``) and uses Python integers throughout; anything else
    (floats, other symbols, functions) returns None and takes the general,
    checking path.
    """
    terms = e.args if e.is_Add else (e,)
    items = []
    for term in terms:
        if term.is_Rational:
            items.append((0, int(term.p), int(term.q)))
            continue
        if term.is_Mul:
            args = term.args
            # SymPy keeps a numeric coefficient first in a Mul's arguments
            if len(args) != 2 or not args[0].is_Rational:
                return None
            c, rest = args
            p, q = int(c.p), int(c.q)
        else:
            rest, p, q = term, 1, 1
        if rest is var:
            k = 1
        elif rest.is_Pow:
            base, ex = rest.args  # (not the .base/.exp properties: this loop is the conversion's hot path)
            if base is not var or not ex.is_Integer:
                return None
            k = int(ex)
            if k <= 0:
                return None
        else:
            return None
        items.append((k, p, q))
    L = lcm(*[q for _, _, q in items])
    deg = max(k for k, _, _ in items)
    out = [0] * (deg + 1)
    for k, p, q in items:
        out[deg - k] += p * (L // q)
    return _strip(out), [L]


def _all_fast_polys(rows):
    """Convert a matrix whose entries are all expanded polynomials in one symbol.

    The symbol is read from the first non-constant entry instead of from the
    free symbols of the whole matrix (a walk of every expression tree).
    Returns ``(num, den, var)``, or None when some entry is not such a
    polynomial in that symbol (the caller then infers the variable and
    converts with every check).
    """
    var = None
    num = [[None] * len(row) for row in rows]
    den = [[None] * len(row) for row in rows]
    for i, row in enumerate(rows):
        for j, e in enumerate(row):
            if isinstance(e, sp.Basic) and e.is_Rational:
                num[i][j], den[i][j] = ([int(e.p)], [int(e.q)]) if e else ([], [1])
                continue
            if var is None:
                if not isinstance(e, sp.Basic):
                    return None
                free = e.free_symbols
                if len(free) != 1:
                    return None
                var = next(iter(free))
            fast = _fast_poly(e, var) if isinstance(e, sp.Basic) else None
            if fast is None:
                return None
            num[i][j], den[i][j] = fast
    if var is None:
        return None  # a constant matrix: infer_var gives it a dummy variable
    return num, den, var


def _assumptions(s):
    a = {k: v for k, v in s.assumptions0.items() if k != "commutative"}
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(a.items())) + "}" if a else "{}"


def _entry(e, var, label):
    """(num, den) integer coefficient lists of one entry, or a clear error."""
    if isinstance(e, sp.Poly):
        e = e.as_expr()
    e = sp.sympify(e)
    if e.is_Integer:
        return ([int(e)] if e else []), [1]
    if e.is_Rational:
        return [int(e.p)], [int(e.q)]
    # an expanded polynomial with rational coefficients needs none of the checks below
    fast = _fast_poly(e, var)
    if fast is not None:
        return fast
    if e.has(sp.Float):
        raise ValueError(
            f"{label} = {e} contains a floating-point number; exact rank needs exact "
            f"input (use sympy.Rational or sympy.nsimplify), or pass numeric=True for "
            f"an uncertified numerical rank"
        )
    if e.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise ValueError(f"{label} = {e} is not finite")
    extra = e.free_symbols - {var}
    twins = [s for s in extra if s.name == var.name]
    if twins:
        raise ValueError(
            f"{label} = {e} contains a symbol {var.name} with assumptions "
            f"{_assumptions(twins[0])} but the variable {var.name} has assumptions "
            f"{_assumptions(var)}: SymPy treats them as different symbols; build the "
            f"matrix and var from the same Symbol"
        )
    if extra:
        names = ", ".join(sorted(str(s) for s in extra))
        raise ValueError(f"{label} = {e} depends on symbol(s) {names} other than the variable {var}")
    attempts = [e]
    if e.has(*_COMBINATORIAL):
        attempts.append(sp.expand_func(e))
        # factorial(t + 2)/factorial(t) expands only in terms of gamma
        attempts.append(sp.expand_func(e.rewrite(sp.gamma)))
    for expr in attempts:
        try:
            P = sp.Poly(expr, var)
            if P.domain.is_ZZ or P.domain.is_QQ:
                num, L = _poly_to_int_pair(P)
                return num, [L]
        except PolynomialError:
            pass
        try:
            nu, de = sp.fraction(sp.together(expr))
            Pn, Pd = sp.Poly(nu, var), sp.Poly(de, var)
        except PolynomialError:
            continue
        if not all(Q.domain.is_ZZ or Q.domain.is_QQ for Q in (Pn, Pd)):
            continue
        a, La = _poly_to_int_pair(Pn)
        b, Lb = _poly_to_int_pair(Pd)
        if not b:
            raise ValueError(f"{label} = {e} has a denominator that is identically zero")
        # entry = (a / La) / (b / Lb) = (a * Lb) / (b * La)
        g = gcd(La, Lb)
        return [c * (Lb // g) for c in a], [c * (La // g) for c in b]
    if isinstance(var, sp.Dummy):  # constant matrix: no variable in sight
        raise ValueError(f"{label} = {e} is not a rational number; pass numeric=True for an uncertified numerical rank")
    raise ValueError(
        f"{label} = {e} is not a rational function of {var} with rational coefficients "
        f"(exact generic rank is defined over Q({var})); pass numeric=True for an "
        f"uncertified numerical rank"
    )
