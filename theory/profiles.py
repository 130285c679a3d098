"""Rank profiles of matrix functions and of matrix sequences.

For a matrix function ``A(t)`` over ℚ(t) the *rank profile* is

    ρ_A(k) = grank A^{(k)},   k = 0, 1, ..., max_order,

with exact symbolic derivatives.  For a matrix sequence ``A(j)`` (entries
rational in an integer symbol ``j``) the *difference profile* uses the
forward difference ``ΔA(j) = A(j+1) - A(j)`` instead:

    ρ_A(k) = grank Δ^k A   over ℚ(j).

Both are computed by :func:`theory.engine.generic_rank` and return one
certificate per order.

Examples
--------
>>> import sympy as sp
>>> t = sp.Symbol("t")
>>> rank_profile(sp.Matrix([[1, t], [t, t**2]]), 3).ranks
(1, 2, 1, 0)
>>> j = sp.Symbol("j", integer=True)
>>> difference_profile(sp.Matrix([[1, j], [j, j**2]]), 3).ranks
(1, 2, 1, 0)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ._convert import RationalMatrix
from ._typing import MatrixLike, Symbol
from .engine import generic_rank

__all__ = [
    "Profile",
    "rank_profile",
    "difference_profile",
    "derivatives",
    "differences",
    "is_nonincreasing",
]


@dataclass(frozen=True, eq=False)
class Profile:
    """A rank profile with one certificate per order.

    Attributes
    ----------
    ranks : tuple of int
        ``ranks[k]`` is the generic rank of the k-th derivative (or forward
        difference).
    kind : {"derivative", "difference"}
        Which operator was iterated.
    certificates : tuple of Certificate
        One per order.
    var : sympy.Symbol
        The variable.
    """

    ranks: tuple
    kind: str
    certificates: tuple
    var: sp.Symbol
    #: several variables: the one differentiated in (``var`` is then the tuple of all)
    wrt: sp.Symbol | None = None

    @property
    def certified(self) -> bool:
        """True when every order is certified."""
        return all(c.certified for c in self.certificates)

    def verify(self, A: MatrixLike | None = None, *, method: str = "exact") -> bool:
        """Check that the certificates prove the profile of ``A``.

        Parameters
        ----------
        A : Matrix, array_like or RationalMatrix, optional
            The matrix function (or sequence) whose profile is claimed; its
            derivatives (or differences) are recomputed exactly and each
            certificate is checked against them.  Without ``A``, each
            certificate is checked against the matrix stored with it (a
            self-consistency check that says nothing about any other matrix).
        method : {"exact", "sympy"}
            ``"exact"``: each certificate by :meth:`Certificate.verify` on
            this package's exact derivatives (or differences).  ``"sympy"``:
            :func:`theory.checker.check_profile` on :meth:`to_json`, which
            takes the derivatives with SymPy and checks each certificate with
            SymPy alone.

        Returns
        -------
        bool
            True iff there is one certificate per order, each proves its
            order's rank, and the ranks are those claimed.
        """
        if method not in ("exact", "sympy"):
            raise ValueError(f"method must be 'exact' or 'sympy', got {method!r}")
        if len(self.certificates) != len(self.ranks) or not self.ranks:
            return False
        if A is None:
            return all(r == c.rank and c.verify(None, method=method) for r, c in zip(self.ranks, self.certificates))
        if method == "sympy":
            from ._convert import as_sympy_matrix
            from .checker import check_profile

            if callable(A) and not isinstance(A, (sp.MatrixBase, RationalMatrix)):
                A = A(self.var)  # a sequence given as a function of its index symbol
            return check_profile(self.to_json(), as_sympy_matrix(A))
        max_order = len(self.ranks) - 1
        if self.wrt is not None:
            mats = _partial_derivatives(A, max_order, self.var, self.wrt)
            return all(r == c.rank and c.verify(M) for r, c, M in zip(self.ranks, self.certificates, mats))
        mats = (derivatives if self.kind == "derivative" else differences)(A, max_order, var=self.var)
        return all(r == c.rank and c.verify(M, method=method) for r, c, M in zip(self.ranks, self.certificates, mats))

    # ---------------------------------------------------------- serialising
    def to_json(self) -> dict[str, Any]:
        """The profile as a JSON-compatible dict: the ranks and one certificate per order.

        Returns
        -------
        dict
            ``{"format": "theory.rank_profile", "version": 1, "kind", "var",
            "wrt", "ranks", "certificates"}``; each certificate as
            :meth:`Certificate.to_json`.  Check it against a matrix with
            :func:`theory.checker.check_profile` (SymPy only), or read it
            back with :meth:`from_json`.

        Examples
        --------
        >>> import json, sympy as sp
        >>> from theory.checker import check_profile
        >>> t = sp.Symbol("t")
        >>> A = sp.Matrix([[1, t], [t, t**2]])
        >>> text = json.dumps(rank_profile(A, 3, seed=0).to_json())
        >>> check_profile(text, A), Profile.from_json(text).ranks
        (True, (1, 2, 1, 0))
        """
        from .checker import PROFILE_FORMAT, VERSION

        certs = [c.to_json() for c in self.certificates]
        wrt = None
        if self.wrt is not None:
            w = self.wrt
            wrt = {
                "name": w.name,
                "assumptions": {k: bool(b) for k, b in w.assumptions0.items()},
                "dummy": isinstance(w, sp.Dummy),
            }
        return {
            "format": PROFILE_FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "var": certs[0]["var"] if certs else None,
            "wrt": wrt,
            "ranks": [int(r) for r in self.ranks],
            "certificates": certs,
        }

    @classmethod
    def from_json(cls, data: str | dict[str, Any]) -> Profile:
        """Rebuild a profile from :meth:`to_json` output (dict or JSON text).

        The result carries no matrix: check it with ``verify(A)``.

        Raises
        ------
        ValueError
            If ``data`` is not a profile of the supported format.
        """
        import json

        from .checker import PROFILE_FORMAT, VERSION, _symbol, certificate_var
        from .engine import Certificate

        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT or data.get("version") != VERSION:
            raise ValueError(f"data must be a {PROFILE_FORMAT!r} profile of version {VERSION} (Profile.to_json())")
        try:
            certs = tuple(Certificate.from_json(c) for c in data["certificates"])
            if data["kind"] not in ("derivative", "difference"):
                raise ValueError(f"unknown kind {data['kind']!r}")
            return cls(
                tuple(int(r) for r in data["ranks"]),
                str(data["kind"]),
                certs,
                certificate_var(data),
                None if data.get("wrt") is None else _symbol(data["wrt"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed profile: {exc}") from None

    def __iter__(self):
        return iter(self.ranks)

    def __len__(self):
        return len(self.ranks)

    def __getitem__(self, k):
        return self.ranks[k]

    def __repr__(self):
        state = "certified" if self.certified else "UNCERTIFIED"
        kind = self.kind if self.wrt is None else f"partial derivative in {self.wrt} over Q{self.var}"
        return f"Profile({kind}, ranks={self.ranks}, {state})"

    def _repr_latex_(self):
        """LaTeX summary for Jupyter: ``$\\rho = (1, 2, 1, 0)$ (derivatives, certified)``.

        For partial derivatives the operator and the field are named, e.g.
        ``$\\rho = (1, 2, 1)$ ($\\partial^k/\\partial t^k$ over $\\mathbb{Q}(t, s)$, certified)``.
        """
        state = "certified" if self.certified else r"\textbf{uncertified}"
        if self.wrt is not None:
            w = sp.latex(self.wrt)
            field = ", ".join(sp.latex(v) for v in self.var)
            op = rf"$\partial^k/\partial {w}^k$ over $\mathbb{{Q}}({field})$"
        else:
            op = "derivatives" if self.kind == "derivative" else "forward differences"
        return rf"$\rho = ({', '.join(map(str, self.ranks))})$ ({op}, {state})"


def _check_max_order(max_order):
    if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 0:
        raise ValueError(f"max_order must be a non-negative int (the highest order), got {max_order!r}")
    return max_order


def derivatives(A: MatrixLike, max_order: int, *, var: Symbol | None = None) -> list[RationalMatrix]:
    """Exact derivatives ``A, A', ..., A^{(max_order)}`` as RationalMatrix objects.

    Parameters
    ----------
    A : Matrix or array_like or RationalMatrix
        Entries rational in ``var``.
    max_order : int
        Highest order.
    var : sympy.Symbol, optional
        The variable (inferred when unique).

    Returns
    -------
    list of RationalMatrix
        ``max_order + 1`` matrices.

    Raises
    ------
    ValueError
        If ``max_order`` is negative or an entry is not rational in ``var``.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> derivatives(sp.Matrix([[t**3]]), 2)[2].to_sympy()
    Matrix([[6*t]])
    """
    max_order = _check_max_order(max_order)
    out = [RationalMatrix.from_sympy(A, var)]
    for _ in range(max_order):
        out.append(out[-1].diff())
    return out


def differences(
    seq: MatrixLike | Callable[[Symbol], MatrixLike], max_order: int, *, var: Symbol | None = None
) -> list[RationalMatrix]:
    """Forward differences ``A, ΔA, ..., Δ^max_order A`` as RationalMatrix objects.

    Parameters
    ----------
    seq : Matrix, array_like, RationalMatrix or callable
        The sequence ``A(j)`` as a matrix in the integer symbol ``var``, or a
        callable mapping a SymPy symbol ``j`` to such a matrix.
    max_order : int
        Highest order.
    var : sympy.Symbol, optional
        The index symbol (inferred when unique; created as
        ``Symbol('j', integer=True)`` when ``seq`` is callable).

    Returns
    -------
    list of RationalMatrix
        ``max_order + 1`` matrices.

    Raises
    ------
    ValueError
        If ``max_order`` is negative or an entry is not rational in ``var``.

    Examples
    --------
    >>> import sympy as sp
    >>> j = sp.Symbol("j", integer=True)
    >>> differences(sp.Matrix([[j**2]]), 2)[1].to_sympy()
    Matrix([[2*j + 1]])
    """
    max_order = _check_max_order(max_order)
    if var is not None and not isinstance(var, sp.Symbol) and isinstance(var, (tuple, list)):
        if len(var) != 1:
            raise ValueError(
                f"var must be the one index symbol of the sequence, got {tuple(var)}: forward differences "
                f"are offered in one variable (ranks over Q(j)); for ranks over several variables use "
                f"generic_rank(..., var=(...)), for partial derivatives rank_profile(..., var=(...), wrt=...)"
            )
        var = var[0]
    if callable(seq) and not isinstance(seq, (sp.MatrixBase, RationalMatrix)):
        var = var if var is not None else sp.Symbol("j", integer=True)
        seq = seq(var)
    out = [RationalMatrix.from_sympy(seq, var, name="seq")]
    for _ in range(max_order):
        out.append(out[-1].forward_difference())
    return out


def _profile(mats, kind, certify, seed):
    certs = []
    for k, M in enumerate(mats):
        s = None if seed is None else seed + k
        certs.append(generic_rank(M, certify=certify, seed=s))
    return Profile(tuple(c.rank for c in certs), kind, tuple(certs), mats[0].var)


def _partial_derivatives(A, max_order, gens, wrt):
    """``A, ∂A/∂wrt, ..., ∂^max_order A/∂wrt^max_order`` as SymPy matrices (entries cancelled).

    The entries are first rewritten as rational functions (``binomial(t, 2)``
    becomes ``t**2/2 - t/2``), so that the derivatives are those of the
    rational form that the ranks are taken of.
    """
    from .multivar import rational_form

    M = sp.Matrix(rational_form(A, tuple(gens)))
    out = [M]
    for _ in range(max_order):
        out.append(out[-1].diff(wrt).applyfunc(sp.cancel))
    return out


def rank_profile(
    A: MatrixLike,
    max_order: int,
    *,
    var: Symbol | Sequence[Symbol] | None = None,
    wrt: Symbol | None = None,
    certify: bool = True,
    seed: int | None = None,
) -> Profile:
    """Generic ranks of ``A, A', ..., A^{(max_order)}`` with certificates.

    Parameters
    ----------
    A : Matrix or array_like or RationalMatrix
        Entries rational in ``var`` with rational coefficients.
    max_order : int
        Highest derivative order (the profile has ``max_order + 1`` entries).
    var : sympy.Symbol or sequence of sympy.Symbol, optional
        The variable (inferred when ``A`` has one free symbol).  A sequence
        ``(t1, ..., ts)`` gives the profile of the partial derivatives
        ``∂^k A/∂wrt^k``, ranks over ℚ(t₁, …, t_s).
    wrt : sympy.Symbol, optional
        With several variables: the one to differentiate in (required).
    certify : bool, default True
        Passed to :func:`generic_rank`.
    seed : int, optional
        Seed for reproducible witnesses.

    Returns
    -------
    Profile

    Raises
    ------
    ValueError
        If ``max_order`` is negative or an entry is not rational in ``var``.

    Examples
    --------
    >>> import sympy as sp
    >>> t = sp.Symbol("t")
    >>> u = sp.Matrix([1, t, t**2])
    >>> P = rank_profile(u * u.T, 5)
    >>> P.ranks, P.certified
    ((1, 2, 3, 2, 1, 0), True)
    >>> s = sp.Symbol("s")
    >>> rank_profile(sp.Matrix([[1, t * s], [t, t**2 * s]]), 2, var=(t, s), wrt=t).ranks
    (1, 2, 1)
    """
    if var is not None and not isinstance(var, sp.Symbol) and isinstance(var, (tuple, list)):
        from .multivar import normalize_vars

        gens = normalize_vars(var)
        if len(gens) > 1:
            if wrt is None or wrt not in gens:
                raise ValueError(f"wrt must be one of var={gens} (the variable to differentiate in), got {wrt!r}")
            max_order = _check_max_order(max_order)
            mats = _partial_derivatives(A, max_order, gens, wrt)
            certs = []
            for k, M in enumerate(mats):
                certs.append(generic_rank(M, var=gens, certify=certify, seed=None if seed is None else seed + k))
            return Profile(tuple(c.rank for c in certs), "derivative", tuple(certs), gens, wrt)
        var = gens[0]
    if wrt is not None and var is not None and wrt != var:
        raise ValueError(f"wrt={wrt} differs from var={var}; pass var=({var}, {wrt}) for partial derivatives")
    return _profile(derivatives(A, max_order, var=var if var is not None else wrt), "derivative", certify, seed)


def difference_profile(
    seq: MatrixLike | Callable[[Symbol], MatrixLike],
    max_order: int,
    *,
    var: Symbol | None = None,
    certify: bool = True,
    seed: int | None = None,
) -> Profile:
    """Generic ranks of ``A, ΔA, ..., Δ^max_order A`` for a matrix sequence.

    Parameters
    ----------
    seq : Matrix, array_like, RationalMatrix or callable
        ``A(j)`` as a matrix in the integer symbol ``var`` (or a callable
        ``j -> matrix``).  Entries must be rational in ``j``; ``binomial(j,
        k)`` and friends are expanded.
    max_order : int
        Highest difference order (the profile has ``max_order + 1`` entries).
    var : sympy.Symbol, optional
        The index symbol.
    certify : bool, default True
        Passed to :func:`generic_rank`.
    seed : int, optional
        Seed for reproducible witnesses.

    Returns
    -------
    Profile

    Raises
    ------
    ValueError
        If ``max_order`` is negative or an entry is not rational in ``var``.

    Examples
    --------
    >>> import sympy as sp
    >>> j = sp.Symbol("j", integer=True)
    >>> difference_profile(lambda j: sp.Matrix([[sp.binomial(j, 2), 1]]), 3).ranks
    (1, 1, 1, 0)
    """
    return _profile(differences(seq, max_order, var=var), "difference", certify, seed)


def is_nonincreasing(ranks: Sequence[int]) -> bool:
    """Whether a sequence never increases.

    Examples
    --------
    >>> is_nonincreasing((3, 3, 1, 0)), is_nonincreasing((1, 2))
    (True, False)
    """
    return all(map(operator.ge, ranks[:-1], ranks[1:]))
