"""The backend contract: every backend, every operation and the data they exchange, in one place.

A backend is one small module (``_numpy.py``, ``_numba.py``, ...) named in
:data:`BACKENDS`.  It provides every *required* operation of
:data:`OPERATIONS` and may override any *optional* one; it defines no other
public function.  What an optional operation does when a backend leaves it
out is declared beside it: a portable kernel (written once against the array
API, in :mod:`lowrank_tree._portable` and a few helper modules), or nothing,
in which case the feature is unavailable on that backend and asking for it
raises :class:`NotImplementedError` naming the operation and the backend.

A tree resolves its operations once, at construction
(:func:`~lowrank_tree.backends.dispatch.operations`); hot paths call the
resolved functions directly.  A backend may decline part of an optional
operation's work (Numba declines a single small merge, which costs less than
a kernel launch) by calling the portable kernel through :func:`portable`,
never by importing an algorithm module.

Node pairs and merged nodes cross the boundary as the named tuples
:class:`NodePair` and :class:`MergedNode`.
"""

import functools
import importlib
from collections import namedtuple

__all__ = ["BACKENDS", "OPERATIONS", "MergedNode", "NodePair", "Operation", "optional", "portable", "required"]

#: Backend name -> module (relative to :mod:`lowrank_tree.backends`) implementing it.
#: Adding a backend is one module plus one line here; the backend whose arrays
#: an input holds is found through ``array_api_compat.is_<name>_namespace``.
BACKENDS = {
    "numpy": "._numpy",
    "numba": "._numba",
    "array_api_strict": "._strict",
    "cupy": "._cupy",
    "torch": "._torch",
}


class NodePair(namedtuple("NodePair", "Ua Va orth_a Ub Vb orth_b")):
    """Two tree nodes to be summed and recompressed: ``Ua Vaᵀ + Ub Vbᵀ``.

    Attributes
    ----------
    Ua, Ub : array, shape (m, r_a), (m, r_b)
        Left factors, ``r_a, r_b >= 1``.
    Va, Vb : array, shape (n, r_a), (n, r_b)
        Right factors.
    orth_a, orth_b : bool
        Whether the node's factor columns are mutually orthogonal (every
        recompressed node's are); a kernel may use it to skip a QR.
    """

    __slots__ = ()


class MergedNode(namedtuple("MergedNode", "U V D rank")):
    """A recompressed sum of a :class:`NodePair`.

    Attributes
    ----------
    U, V : array or None, shape (m, rank), (n, rank)
        Factors of the sum (``U`` with orthogonal columns, ``V`` with
        orthonormal ones), or None when the node is dense.
    D : array or None, shape (m, n)
        The dense sum, used once factors of that rank would cost more
        (``rank (m + n) >= m n``); None for a low-rank node.
    rank : int
        Kept rank (for a dense node, the rank at which it became dense).
    """

    __slots__ = ()


class Operation(namedtuple("Operation", "name required signature summary fallback")):
    """One operation of the contract.

    Attributes
    ----------
    name : str
        Attribute name in a backend module.
    required : bool
        Whether every backend must provide it.
    signature : str
        The call, e.g. ``'asarray(x, dtype=None)'``; an implementation takes
        these parameter names in this order.
    summary : str
        What it does, in one line.
    fallback : str or None
        For an optional operation, ``'module:function'`` of the portable
        version used when a backend leaves it out (same signature), or None:
        then the feature is unavailable on such a backend.
    """

    __slots__ = ()

    @property
    def parameters(self):
        """Parameter names of :attr:`signature`, in order."""
        inner = self.signature[self.signature.index("(") + 1 : self.signature.rindex(")")]
        return tuple(p.split("=")[0].strip() for p in inner.split(",") if p.strip())


_R, _O = True, False

#: Every operation a backend module may define, required ones first.
OPERATIONS = (
    Operation(
        "namespace",
        _R,
        "namespace()",
        "the array-API namespace; ImportError saying what to install when unusable",
        None,
    ),
    Operation(
        "asarray",
        _R,
        "asarray(x, dtype=None, device=None)",
        "this backend's array on device (None: x's, else the default) from any array (another library's is copied)",
        None,
    ),
    Operation("to_numpy", _R, "to_numpy(x)", "a host NumPy copy (or view) of x", None),
    Operation(
        "make_rng",
        _R,
        "make_rng(seed, device=None)",
        "a random generator on device from seed (None, int or a generator)",
        None,
    ),
    Operation(
        "standard_normal",
        _R,
        "standard_normal(rng, shape, dtype)",
        "standard normal samples of dtype; complex dtypes get unit-variance complex samples",
        None,
    ),
    Operation(
        "prefix_sum",
        _R,
        "prefix_sum(first, C)",
        "out[0] = first, out[k + 1] = out[k] + C[k]: shape (K + 1,) + first.shape",
        None,
    ),
    Operation(
        "linear_operator",
        _O,
        "linear_operator(shape, dtype, matvec, rmatvec, matmat)",
        "a LinearOperator of the library's SciPy (LowRankSegmentTree.operator)",
        None,
    ),
    Operation(
        "read_only",
        _O,
        "read_only(a)",
        "a read-only view of a, handed out of an object's own arrays",
        "lowrank_tree._ownership:copy_of",
    ),
    Operation(
        "sum_of_squares",
        _O,
        "sum_of_squares(x)",
        "Σ |x_i|² as a Python float, under/overflow unreported (absent: xp.vecdot in _norms)",
        None,
    ),
    Operation(
        "orth_columns",
        _O,
        "orth_columns(Y, xp)",
        "Q of a Householder QR of Y (m, k), m >= k: orthonormal columns spanning Y's (the range finder's basis)",
        "lowrank_tree._portable:orth_columns",
    ),
    Operation(
        "svd_wide",
        _O,
        "svd_wide(B, xp)",
        "thin SVD (P, s, Wh) of B (l, n) with l <= n: B = P diag(s) Wh, s descending (the range finder's core)",
        "lowrank_tree._portable:svd_wide",
    ),
    Operation(
        "merge_pairs",
        _O,
        "merge_pairs(pairs, tol, xp)",
        "one MergedNode per NodePair: the recompressed sum, singular values <= tol·scale dropped",
        "lowrank_tree._portable:recompress_pairs",
    ),
    Operation(
        "update_node",
        _O,
        "update_node(U, V, A, B, tol, xp)",
        "MergedNode of U Vᵀ + A Bᵀ, U V a recompressed node (orthogonal columns), r + p <= min(m, n)",
        "lowrank_tree._portable:update_node",
    ),
    Operation(
        "apply_factors",
        _O,
        "apply_factors(W, U, V, X, xp)",
        "W @ X + U @ (Vᵀ @ X), W may be None",
        "lowrank_tree._portable:apply_factors",
    ),
    Operation(
        "accumulate_orders",
        _O,
        "accumulate_orders(Y0, U, Z, xp)",
        "out[0] = Y0, out[k + 1] = out[k] + U[k] @ Z[k]: (m, b), (K, m, r), (K, r, b) -> (K + 1, m, b)",
        "lowrank_tree._portable:accumulate_orders",
    ),
    Operation(
        "synchronize",
        _O,
        "synchronize()",
        "wait for queued device work (benchmarks time finished work)",
        "lowrank_tree._portable:synchronize",
    ),
)

_BY_NAME = {op.name: op for op in OPERATIONS}


def required():
    """Names of the operations every backend must provide."""
    return frozenset(op.name for op in OPERATIONS if op.required)


def optional():
    """Names of the operations a backend may override."""
    return frozenset(op.name for op in OPERATIONS if not op.required)


@functools.lru_cache(maxsize=None)
def portable(name):
    """The portable version of optional operation ``name``, or None when it has none.

    Parameters
    ----------
    name : str
        An optional operation of :data:`OPERATIONS`.

    Returns
    -------
    callable or None

    Raises
    ------
    ValueError
        If ``name`` is not an optional operation.

    Examples
    --------
    >>> portable("merge_pairs").__name__
    'recompress_pairs'
    >>> portable("linear_operator") is None
    True
    """
    op = _BY_NAME.get(name)
    if op is None or op.required:
        raise ValueError(f"name must be one of the optional operations {sorted(optional())}, got {name!r}")
    if op.fallback is None:
        return None
    module, attr = op.fallback.split(":")
    return getattr(importlib.import_module(module), attr)
