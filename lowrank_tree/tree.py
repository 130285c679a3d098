"""The low-rank segment tree over cascaded corrections.

Leaves are the corrections ``Δ_1..Δ_K``; every internal node holds the sum of
its leaves, recompressed (QR of the stacked factors, SVD of the small core), or
kept dense once factors would cost more than the dense matrix.  A prefix
``W_k = W_0 + Δ_1 + ... + Δ_k`` is covered by the ``popcount(k)`` canonical
nodes of ``[1, k]``; their factors are concatenated so that a query is the base
product plus one GEMM pair, whatever ``k`` is.

Layout.  Leaf ``i`` (1-based order) sits at position ``i - 1`` of level 0; node
``(h, j)`` covers leaf positions ``[j 2^h, (j + 1) 2^h)``.  The capacity is a
power of two; unused positions hold a shared empty (rank-0) node, and merging
with it returns the other child unchanged, so padding costs nothing.  Growing
the capacity puts the old root under a new root: append never rebuilds.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import OrderedDict, namedtuple
from collections.abc import Sequence
from typing import Any

from ._norms import fro_norm
from ._ownership import exposed, take
from ._typing import Array, ArrayLike, CorrectionLike
from ._validation import (
    as_array,
    check_finite,
    check_int,
    check_orders,
    check_sequence,
    check_tol,
    default_tol,
    is_single_order,
    nbytes,
    resolve_device,
    resolve_namespace,
)
from .backends import NodePair, backend_name, device_of, operations
from .factor import LowRank, correction_factors, recompress

__all__ = ["LowRankSegmentTree", "NodeInfo"]

#: Description of one tree node, as returned by :meth:`LowRankSegmentTree.nodes`.
#: ``first``/``last`` are the 1-based orders of the corrections it sums;
#: ``rank`` is the recompressed rank (for dense nodes, an upper bound: the rank at
#: the moment the node became dense, or the children's summed rank).
NodeInfo = namedtuple("NodeInfo", "level index first last rank dense nbytes")
NodeInfo.__doc__ = """One stored node of a :class:`LowRankSegmentTree`, as reported by its ``nodes()``.

Attributes
----------
level : int
    Height in the tree: 0 for the leaves ``Δ_1..Δ_K``.
index : int
    Position of the node within its level.
first, last : int
    The node holds ``Δ_first + ... + Δ_last``.
rank : int
    Width of the stored factors; for a dense node, an upper bound of its rank
    (after an update, the summed rank of its children).
dense : bool
    Whether the node is kept as a dense m×n matrix (factored form would cost more).
nbytes : int
    Bytes the node holds.

See Also
--------
LowRankSegmentTree.nodes : Every stored node.
LowRankSegmentTree.canonical_nodes : The nodes one prefix query uses.
"""


class _Node:
    """A stored node: factors ``U``, ``V`` (``D is None``) or a dense ``D``.

    ``orth`` records that the factor columns are orthogonal (true of every
    recompressed node), which the Numba merge kernel and the incremental
    update exploit.  ``drift`` bounds, in units of ``eps``, the rounding
    carried by incremental updates since the node was last computed from its
    children (0 for a node computed from them; see ``_DRIFT_LIMIT``).

    ``tail`` counts the last columns of ``U`` and ``V`` that are changes
    appended since the node was last recompressed (see ``_TAIL_FRACTION``):
    the first ``rank - tail`` columns are a recompressed node (orthogonal
    ``U``, orthonormal ``V``) and ``orth`` is False while ``tail > 0``.
    ``low`` is a lower bound of ``‖U Vᵀ‖_F`` (None: unknown), exact after an
    incremental recompression and lowered by each appended change's norm; the
    drift budget of an appended change is checked against it.  ``pending`` sums
    the rounding estimates (``step``) of the appended changes, charged to
    ``drift`` when they are recompressed.
    """

    __slots__ = ("U", "V", "D", "rank", "orth", "drift", "tail", "low", "pending")

    def __init__(self, U=None, V=None, D=None, rank=0, orth=False, drift=0, tail=0, low=None, pending=0.0):
        self.U, self.V, self.D, self.rank, self.orth, self.drift = U, V, D, rank, orth, drift
        self.tail, self.low, self.pending = tail, low, pending

    @property
    def dense(self):
        return self.D is not None


#: Smallest rounding budget of incrementally updated ancestors, in units of
#: ``eps ‖node‖_F``; the budget is ``max(_DRIFT_LIMIT, max(m, n) / 4)``
#: (:meth:`LowRankSegmentTree._drift_budget`), a quarter of the lossless rtol
#: ``max(m, n) · eps`` that a rebuild's recompression may drop at every node.
#: Each step ``new = old + A Bᵀ`` adds rounding of at most about
#: ``eps (‖new‖_F + (p + 2) ‖A‖_F ‖B‖_F)`` (``‖old‖ <= ‖new‖ + ‖A Bᵀ‖``);
#: once the summed estimate exceeds the budget times ``eps · ‖new‖_F`` the node
#: is recomputed from its children instead.  So an ancestor is at most
#: budget steps from a fresh computation, and a change that cancels most of a
#: node (a large correction replaced by a small one) refreshes it at once: the
#: drift from a rebuilt tree stays within the budget times ``eps`` of the
#: node's current size, inside the lossless rtol.
_DRIFT_LIMIT = 32

#: A recompressed low-rank ancestor of rank ``ρ`` takes a change by appending
#: its columns (exact, ``O((m + n) p)``) while the appended columns number at
#: most ``ρ / _TAIL_FRACTION``; the next change recompresses the node from its
#: orthogonal part and all appended columns at once (one SVD of size
#: ``ρ + tail``).  So the rotation of the ``(m + n) × ρ`` factors, the
#: dominant ``O((m + n) ρ²)`` term, is paid once per about ``ρ / (4 p)``
#: changes, and a query's inner dimension grows by at most a quarter.
_TAIL_FRACTION = 4

#: A low-rank ancestor narrower than ``_MERGE_BELOW`` times the change (too
#: small for a tail) merges its children instead, when they are no wider than
#: the node plus the change: a recompression of no more columns in fewer calls
#: (measured: half the time of the incremental one at rank 8 to 16), and no
#: rounding carried.
_MERGE_BELOW = 4


#: Matrices with fewer entries are never folded, and their cold queries build
#: the entry as any other: their queries cost Python overhead more than
#: arithmetic, and an unfolded entry answers bit for bit the same on every call
#: (the first one included).
_FOLD_MIN_ENTRIES = 2**12


class _Assembled:
    """Concatenated canonical nodes: ``dense @ X + U @ (V.T @ X)``.

    ``work`` counts the flops the entry's low-rank GEMM pair has cost so far
    (``(m + n) c b`` per query), ``folded`` records that the factors were
    folded into ``dense`` (then ``U`` and ``V`` have no columns).  Entries are
    never changed in place once cached, except ``work`` (under the tree's lock).
    """

    __slots__ = ("dense", "U", "V", "n_dense", "nbytes", "work", "folded")

    def __init__(self, dense, U, V, n_dense, size, folded=False):
        self.dense, self.U, self.V, self.n_dense, self.nbytes = dense, U, V, n_dense, size
        self.work, self.folded = 0, folded


class LowRankSegmentTree:
    """Shared base plus cascaded low-rank corrections, queryable at any order.

    Represents the family ``W_k = W_0 + Σ_{i=1..k} U_i V_iᵀ`` for
    ``k = 0..K`` and answers ``W_k X`` with one GEMM pair of inner dimension at
    most ``min(Σ_{i≤k} r_i, min(m, n) · max(1, ⌈log2 K⌉))`` besides the base.

    Parameters
    ----------
    base : array_like, shape (m, n)
        ``W_0``.
    corrections : sequence, optional
        ``Δ_1..Δ_K``, each a :class:`~lowrank_tree.LowRank`, a ``(U, V)`` pair
        with ``U`` of shape (m, r) and ``V`` of shape (n, r), or a dense
        (m, n) array (factorised losslessly).  ``r`` may be 0.
    rtol : float, optional, keyword-only
        Relative singular-value cutoff of the recompression of internal nodes
        (see :doc:`/glossary`): singular values
        ``<= rtol * max(sigma_max, t_max)`` of a node are dropped, with
        ``t_max`` the size of the children's largest rank-one term, so that
        children that cancel leave a rank-0 node, not rounding noise; see
        :func:`~lowrank_tree.factor.recompress`).  Default ``max(m, n) * eps``:
        lossless up to rounding.
    backend : {'numpy', 'numba', 'cupy', 'torch', 'array_api_strict'}, optional
        Array library; by default the library of the inputs.  ``'numba'``
        keeps NumPy arrays and runs the build, the re-merges of update and
        append, and the all-orders pass in JIT kernels; ``'cupy'`` moves
        NumPy inputs to the GPU, ``'torch'`` to tensors on ``device``.
    device : optional, keyword-only
        Device of the tree's arrays (``'cuda'``, ``'cpu'``, a ``torch.device``);
        by default that of ``base`` (NumPy input to a device library: the
        library's default device).  Inputs on another device are copied there;
        later arguments (``X``, updates) must lie there already (NumPy input
        excepted, which is copied), else ``TypeError``.
    cache_bytes : int, optional
        Memory budget of the per-order cache of concatenated factors (LRU,
        default 256 MiB; 0 disables caching).

    Attributes
    ----------
    shape : tuple of int
        ``(m, n)``.
    max_order : int
        ``K``: the orders are ``0..K`` (``K + 1`` of them) and there are ``K``
        corrections.
    dtype
        Common floating dtype of the base and the factors.
    nbytes : int
        Bytes held by the base and all stored nodes (caches excluded; see
        ``cache_nbytes``).

    See Also
    --------
    cascade_fit : Fits a base and corrections to a matrix family.
    Cascade.tree : The tree of a fitted cascade.
    LowRank : The type of each correction.
    save, load : Persistence.

    Notes
    -----
    **Methods and their cost.**  ``m × n`` is the shape, ``b`` the number of
    columns of ``X``, ``K`` the number of corrections, ``r`` their largest
    rank, ``c_k`` the canonical inner dimension of order ``k`` (the summed
    rank of the low-rank canonical nodes of ``[1, k]``, at most
    ``min(Σ_{i≤k} r_i, min(m, n)·⌈log2 K⌉)``; :meth:`query_cost` reports it),
    and ``d_k <= ⌈log2 K⌉ + 1`` the number of dense canonical nodes.  A merge
    of two nodes of combined rank ``w <= 2 min(m, n)`` costs
    ``O((m + n) w² + w³)`` (two QRs of the stacked factors and the SVD of the
    ``w × w`` core), or ``O(m n)`` when a child is dense.

    =========================================  ========================================================
    method                                     cost
    =========================================  ========================================================
    constructor                                at most ``K - 1`` merges (one per internal node)
    :meth:`query` (order ``k``)                ``O(m n b + (m + n) c_k b)``; the first call for ``k``
                                               after a change also assembles ``k``'s cache entry,
                                               ``O((m + n) c_k + d_k m n)``
    :meth:`query` (one order per column)       ``O(m n b)`` plus, for each column ``j``, only its own
                                               canonical nodes, ``O((m + n) c_{k_j} + d_{k_j} m n)``
                                               (columns sorted by order, segmented GEMMs); with few
                                               distinct orders, one query per order instead
    :meth:`range_query`                        ``O((m + n) c b)`` over the ``O(log K)`` nodes of the
                                               range, plus ``O(m n b + d m n)`` if ``d > 0`` are dense
    :meth:`all_orders`                         ``O(m n b + K (m + n) r b + K m b)``, plus stacking the
                                               leaves, ``O(K (m + n) r)``, after a change; with a lossy
                                               ``tol``, one canonical node per order instead of a leaf
    :meth:`matrix` (order ``k``)               ``O(m n c_k)``, plus the cache entry as for a query
    :meth:`operator`                           ``O(1)``; each product costs a :meth:`query`
    :meth:`update`                             each of the ``⌈log2 K⌉`` ancestors changes by the same
                                               ``A Bᵀ`` of width ``p <= 2 r``: a dense one by a GEMM,
                                               ``O(m n p)``; a low-rank one of rank ``ρ`` is
                                               recompressed from its own factors, ``O((m + n)(ρ + p)²
                                               + (ρ + p)³)`` (no QR of its children); a merge of the
                                               children where that is not possible (see Notes)
    :meth:`append`                             as :meth:`update` (``⌈log2 (K + 1)⌉`` ancestors); the
                                               capacity doubles when full (one more level, no rebuild)
    :meth:`canonical_nodes`, ``query_cost``    ``O(log K)``
    :meth:`nodes`, ``nbytes``                  ``O(K)``
    :meth:`correction`, ``base``               ``O(1)`` (``base`` copies ``m n`` entries where the
                                               library has no read-only views)
    ``corrections``, ``ranks``                 ``O(K)``
    ``shape``, ``max_order``, ``dtype``        ``O(1)``
    ``backend``, ``device``, ``rtol``          ``O(1)``
    ``cache_nbytes``                           ``O(1)``
    :meth:`clear_cache`                        ``O(1)``
    =========================================  ========================================================

    **Layout.**  Leaf ``i`` (1-based order) is position ``i - 1`` of level 0;
    node ``(h, j)`` of level ``h`` sums the leaves ``j 2^h + 1 .. (j + 1) 2^h``.
    The capacity is the next power of two, and positions past ``K`` hold a
    shared rank-0 padding node.  For ``K = 13`` (capacity 16)::

        level 4  [1 ............................................ 16]
        level 3  [1 ................... 8]  [9 ................... 16]
        level 2  [1 ...... 4] [5 ...... 8]  [9 ..... 12] [13 .... 16]
        level 1  [1 2] [3 4] [5 6] [7 8]    [9 10] [11 12] [13 14] [15 16]
        level 0  1 2 3 4 5 6 7 8            9 10 11 12 13  (14 15 16: padding)

    The prefix ``[1, k]`` is covered by one node per set bit of ``k``, the
    *canonical nodes*: ``k = 13 = 8 + 4 + 1`` gives ``[1..8]``, ``[9..12]``
    and ``[13]`` (see the example below), and ``W_13 X`` is the base product
    plus one GEMM pair over their concatenated factors.

    Leaves with factor width ``r > min(m, n)`` are recompressed losslessly on
    insertion.  A failed :meth:`update` or :meth:`append` leaves the tree
    unchanged: every new node is computed before any is stored.

    **Updates.**  Replacing ``Δ_i`` changes every ancestor by
    ``A Bᵀ = U_new V_newᵀ - U_old V_oldᵀ``.  A dense ancestor whose children
    are low-rank takes that GEMM update; a low-rank ancestor of rank ``ρ``
    appends the columns of ``A, B`` to its factors (exact) while its appended
    columns number at most ``ρ / 4``, and is then recompressed from its own
    orthogonal factors plus all the appended columns in one pass; an ancestor
    with a dense child is the plain sum of its children (``O(m n)``).  So a
    low-rank node's width (the ``rank`` that :meth:`nodes` reports, the inner dimension a query
    pays) may exceed its rank by up to a quarter between recompressions.  The
    children are merged instead when the lossy ``rtol`` is in force
    (truncations would add up over updates), when a dense node's children
    could again be stored factored, for ancestors narrower than four times the
    change, and when the rounding carried by incremental steps, estimated as
    ``eps (‖node‖_F + (p + 2) ‖A‖_F ‖B‖_F)`` per step, would exceed
    ``max(32, max(m, n) / 4) eps ‖node‖_F`` (a quarter of the lossless
    ``rtol``): a change that cancels most of a node refreshes it at once, and
    an updated tree agrees with a rebuilt one to rounding (not bit for bit).

    **Cache memory.**  The cache entry of order ``k`` holds the concatenated
    factors of its low-rank canonical nodes, ``(m + n) c_k`` entries, plus,
    when some canonical node is dense, the sum of the base and the dense
    nodes, ``m n`` entries.  An order's first query (since the cache was
    last cleared) builds no entry when applying its canonical nodes as they
    are costs less than assembling them (it usually does: no factor is
    copied), nor, when that is cheaper, does a query whose entry could not
    be cached; the order's second use builds and caches its entry (the
    first answer equals the later ones to rounding; matrices under 4096
    entries always build it).  An entry with a dense part is *folded* once
    the queries of that order have spent on its low-rank product the work of the fold
    (``m n c_k`` flops, so from about ``m n / (m + n)`` columns in all): the
    factors are added into the dense part and freed, the entry holds
    ``m n`` entries (the size of a dense ``W_k``) and a query is one GEMM.  An
    order without a dense canonical node never folds (it would grow), nor do
    matrices under 4096 entries.  The cache is bounded by ``cache_bytes``
    (least recently used entries go first); ``cache_nbytes`` reports it.

    **Ownership.**  The tree copies the caller's arrays (base, factor pairs,
    dense corrections; in the constructor, :meth:`update` and :meth:`append`)
    once, with any dtype conversion, so that writing to them later changes
    nothing; a :class:`~lowrank_tree.LowRank`'s factors are shared instead
    (it never changes).  What the tree hands out cannot change it:
    :attr:`base` and the factors of :meth:`correction` are read-only views
    on NumPy (``numpy`` and ``numba`` backends) and copies on libraries
    without read-only arrays (``array_api_strict``, CuPy, PyTorch); query results are
    new arrays.

    **Threads.**  Any number of threads may query at once, and
    :meth:`update`/:meth:`append` may run beside them (writers run one at a
    time).  Every query returns ``W_k X`` for a state the tree had during the
    call, and no cache outlives the state it was built from: a short lock
    guards the node references, the version number and the caches, and no
    arithmetic runs under it.

    The recompression follows the usual QR + small-SVD rounding of low-rank
    sums; the segment tree is the data structure of Song (2026).

    References
    ----------
    .. [1] Z. Song, "Tracking High-order Evolutions via Cascading Low-rank
       Fitting", arXiv:2604.10980, 2026.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_tree import LowRankSegmentTree
    >>> rng = np.random.default_rng(0)
    >>> m, n, K = 6, 5, 4
    >>> base = rng.standard_normal((m, n))
    >>> deltas = [(rng.standard_normal((m, 1)), rng.standard_normal((n, 1))) for _ in range(K)]
    >>> tree = LowRankSegmentTree(base, deltas)
    >>> X = rng.standard_normal((n, 3))
    >>> W3 = base + sum(U @ V.T for U, V in deltas[:3])
    >>> bool(np.allclose(tree.query(3, X), W3 @ X))
    True
    >>> tree.all_orders(X).shape
    (5, 6, 3)

    The canonical nodes of the layout above, as ``(level, index, first, last)``:

    >>> u = np.ones((4, 1))
    >>> tree13 = LowRankSegmentTree(np.eye(4), [(u, u)] * 13)
    >>> [(nd.level, nd.index, nd.first, nd.last) for nd in tree13.canonical_nodes(13)]
    [(3, 0, 1, 8), (2, 2, 9, 12), (0, 12, 13, 13)]
    >>> tree13.query_cost(13)
    {'inner_dim': 3, 'dense_nodes': 0}
    """

    def __init__(
        self,
        base: ArrayLike,
        corrections: Sequence[CorrectionLike] = (),
        *,
        rtol: float | None = None,
        backend: str | None = None,
        device: Any = None,
        cache_bytes: int = 2**28,
    ) -> None:
        corrections = check_sequence(corrections, "corrections", "corrections (LowRank, (U, V) pairs or (m, n) arrays)")
        arrays, names = [base], ["base"]
        for i, c in enumerate(corrections, start=1):
            if isinstance(c, LowRank):
                arrays += [c.U, c.V]
                names += [f"corrections[{i - 1}].U", f"corrections[{i - 1}].V"]
            elif isinstance(c, (tuple, list)) and len(c) == 2:
                arrays += list(c)
                names += [f"corrections[{i - 1}][0]", f"corrections[{i - 1}][1]"]
            else:
                arrays.append(c)
                names.append(f"corrections[{i - 1}]")
        xp = resolve_namespace(*arrays, names=names, backend=backend)
        device = resolve_device(xp, device)
        base_in = base
        base = as_array(base, xp, "base", ndim=2, device=device, move=device is not None)
        self._device = device_of(base)  # every array of the tree lives there
        m, n = base.shape
        if m == 0 or n == 0:
            raise ValueError(f"base must have at least one row and one column, got shape {(m, n)}")
        check_finite(base, xp, "base")
        self._xp = xp
        self._backend = backend if backend is not None else backend_name(xp)
        self._ops = operations(self._backend)  # resolved once: no lookups on the hot paths
        self._m, self._n = m, n
        self._tol = check_tol(rtol, "rtol")
        self._cache_limit = check_int(cache_bytes, "cache_bytes", 0)
        factors = [
            self._leaf_factors(c, f"corrections[{i}]", dtype=None, move=device is not None)
            for i, c in enumerate(corrections)
        ]
        # every factor counts: a complex V with a real U makes a complex correction
        dtype = xp.result_type(base.dtype, *[F.dtype for pair in factors for F in pair])
        self._dtype = dtype
        # The tree owns every array it reads later: the caller's are copied
        # (once, with the dtype conversion), see _ownership.
        self._base = take(base, base_in, dtype, xp)
        self._empty = _Node(
            xp.zeros((m, 0), dtype=dtype, device=self._device), xp.zeros((n, 0), dtype=dtype, device=self._device)
        )
        leaves = [
            self._make_leaf(take(U, su, dtype, xp), take(V, sv, dtype, xp))
            for (U, V), (su, sv) in zip(factors, map(_sources, corrections, factors))
        ]
        self._K = len(leaves)
        cap = 1
        while cap < self._K:
            cap *= 2
        self._levels = [leaves + [self._empty] * (cap - self._K)]
        while len(self._levels[-1]) > 1:
            below = self._levels[-1]
            self._levels.append(self._merge_pairs([(below[2 * j], below[2 * j + 1]) for j in range(len(below) // 2)]))
        self._float_dtypes = _float_dtypes(xp)
        # _lock guards the mutable state (levels, K, version, caches) and is
        # held only to read or swap references, never during arithmetic;
        # _writer serialises update/append, which compute their new nodes
        # outside _lock and publish them under it.
        self._lock = threading.Lock()
        self._writer = threading.Lock()
        self._version = 0  # bumped by every change of the represented family
        self._cache: OrderedDict[int, _Assembled] = OrderedDict()
        self.clear_cache()

    # ------------------------------------------------------------------
    # properties
    # ------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``, the shape of every order's matrix."""
        return (self._m, self._n)

    @property
    def max_order(self) -> int:
        """``K``, the highest order: orders are ``0..K``, corrections ``Δ_1..Δ_K``."""
        return self._K

    @property
    def dtype(self) -> Any:
        """Common floating dtype of the base and the factors."""
        return self._dtype

    @property
    def backend(self) -> str:
        """Name of the backend: ``'numpy'``, ``'numba'``, ``'cupy'``, ``'torch'`` or ``'array_api_strict'``."""
        return self._backend

    @property
    def device(self) -> Any:
        """Device of the tree's arrays (``'cpu'`` for NumPy; a ``torch.device`` for torch); results land there."""
        return self._device

    @property
    def rtol(self) -> float:
        """Relative singular-value cutoff of the recompression in use (see :doc:`/glossary`)."""
        return self._effective_tol()

    @property
    def base(self) -> Array:
        """``W_0``, shape (m, n): a read-only view (NumPy) or a copy."""
        return exposed(self._base, self._xp)

    @property
    def corrections(self) -> list[LowRank]:
        """The leaves ``Δ_1..Δ_K`` as a list of :class:`LowRank` (all from one state of the tree)."""
        with self._lock:
            leaves = self._levels[0][: self._K]
        return [LowRank._from_factors(leaf.U, leaf.V, self._xp) for leaf in leaves]

    def correction(self, i: int) -> LowRank:
        """Leaf ``Δ_i`` (1 <= i <= K) as a :class:`LowRank`."""
        i = check_int(i, "i", 1, self._K)
        with self._lock:
            leaf = self._levels[0][i - 1]
        # the leaf's arrays are never written to: the LowRank may share them
        return LowRank._from_factors(leaf.U, leaf.V, self._xp)

    @property
    def ranks(self) -> list[int]:
        """Factor widths ``r_1..r_K`` of the leaves."""
        with self._lock:
            return [self._levels[0][i].rank for i in range(self._K)]

    @property
    def nbytes(self) -> int:
        """Bytes held by the base and all stored nodes (caches excluded; see ``cache_nbytes``)."""
        seen, total = set(), nbytes(self._base, self._xp)
        with self._lock:
            levels = [list(level) for level in self._levels]
        for level in levels:
            for node in level:
                if id(node) not in seen and node is not self._empty:
                    seen.add(id(node))
                    total += self._node_nbytes(node)
        return total

    @property
    def cache_nbytes(self) -> int:
        """Bytes held by the query caches (per-order factors, all-orders stacks)."""
        with self._lock:
            extra = 0
            if self._stacks is not None:
                extra = nbytes(self._stacks[0], self._xp) + nbytes(self._stacks[1], self._xp)
            return self._cache_used + extra

    def clear_cache(self) -> None:
        """Drop the per-order and all-orders caches (the next queries rebuild them)."""
        with self._lock:
            self._cache.clear()
            self._seen: set[int] = set()  # orders queried since the cache was cleared (cold queries skip assembly)
            self._cache_used = 0
            self._stacks = None

    def __repr__(self):
        m, n = self.shape
        return (
            f"LowRankSegmentTree(shape=({m}, {n}), max_order={self._K}, dtype={self._dtype}, backend={self.backend!r})"
        )

    # ------------------------------------------------------------------
    # inspection
    # ------------------------------------------------------------------
    def nodes(self) -> list[NodeInfo]:
        """Every node that covers at least one correction.

        Returns
        -------
        list of NodeInfo
            ``(level, index, first, last, rank, dense, nbytes)``, leaves first;
            ``first``/``last`` are 1-based orders.

        Examples
        --------
        >>> import numpy as np
        >>> u = np.ones((3, 1))
        >>> tree = LowRankSegmentTree(np.zeros((3, 3)), [(u, u), (2 * u, u)])
        >>> [(info.level, info.first, info.last, info.rank) for info in tree.nodes()]
        [(0, 1, 1, 1), (0, 2, 2, 1), (1, 1, 2, 1)]
        """
        out = []
        with self._lock:
            for h, level in enumerate(self._levels):
                for j in range(len(level)):
                    if j * 2**h + 1 > self._K:
                        break
                    out.append(self._info(h, j))
        return out

    def canonical_nodes(self, k: int) -> list[NodeInfo]:
        """The nodes whose sum is ``Δ_1 + ... + Δ_k`` (at most ``⌈log2 K⌉ + 1``).

        Parameters
        ----------
        k : int
            Order, ``0 <= k <= K``.

        Returns
        -------
        list of NodeInfo
        """
        k = check_int(k, "k", 0, self._K)
        with self._lock:
            return [self._info(h, j) for h, j in _prefix_index(k)]

    def query_cost(self, k: int) -> dict[str, int]:
        """Shape of the work a query at order ``k`` does.

        Returns
        -------
        dict
            ``inner_dim``: inner dimension of the single low-rank GEMM pair;
            ``dense_nodes``: dense canonical nodes folded into the base product.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> deltas = [(rng.standard_normal((16, 1)), rng.standard_normal((16, 1))) for _ in range(7)]
        >>> LowRankSegmentTree(np.eye(16), deltas).query_cost(7)
        {'inner_dim': 7, 'dense_nodes': 0}
        """
        k = check_int(k, "k", 0, self._K)
        with self._lock:
            nodes = [self._levels[h][j] for h, j in _prefix_index(k)]
        return {"inner_dim": sum(nd.rank for nd in nodes if not nd.dense), "dense_nodes": sum(nd.dense for nd in nodes)}

    # ------------------------------------------------------------------
    # queries
    # ------------------------------------------------------------------
    def query(self, k: int | Sequence[int] | ArrayLike, X: ArrayLike) -> Array:
        """Apply ``W_k`` to a vector or a column batch.

        Parameters
        ----------
        k : int or array_like of int, shape (b,)
            Order in ``0..K`` (a Python or NumPy integer; ``bool`` and floats
            raise ``TypeError``); or one order per column of ``X`` (a mixed
            batch: column ``j`` gets ``W_{k_j} X[:, j]``) as an integer array,
            a list, a tuple or a ``range``.  The columns of a mixed batch
            are sorted by order and served by the cheapest of: one cached
            prefix query per distinct order; each needed canonical node
            applied only to the block of columns whose prefix contains it
            (segmented GEMMs); one masked GEMM pair over the leaves.
        X : array_like, shape (n,) or (n, b)
            float16 becomes float32 and integers float64; bool, object,
            extended-precision and masked arrays are refused.

        Returns
        -------
        array, shape (m,) or (m, b)

        Raises
        ------
        ValueError
            If ``k`` is out of range, ``X`` has the wrong shape or holds NaN/Inf.
        TypeError
            If ``k`` is not an integer (or an integer array), ``X`` is from
            another array library or has a refused dtype.

        Examples
        --------
        >>> import numpy as np
        >>> u, v = np.ones((2, 1)), np.array([[1.0], [0.0]])
        >>> tree = LowRankSegmentTree(np.eye(2), [(u, v), (u, v)])
        >>> tree.query(2, np.array([1.0, 1.0]))
        array([3., 3.])
        >>> tree.query([0, 1, 2], np.ones((2, 3)))
        array([[1., 2., 3.],
               [1., 2., 3.]])
        """
        X, vector = self._check_X(X)
        if _is_scalar(k):
            k = check_int(k, "k", 0, self._K)
            Y = self._apply(self._prefix(k, X.shape[1], direct_ok=True), X, self._base)
        else:
            Y = self._mixed_query(k, X)
        return Y[:, 0] if vector else Y

    def range_query(self, first: int, last: int, X: ArrayLike) -> Array:
        """Apply ``Δ_first + ... + Δ_last`` (no base) to ``X``.

        Parameters
        ----------
        first, last : int
            Orders of the first and last corrections summed (inclusive),
            ``1 <= first <= last <= K``.
        X : array_like, shape (n,) or (n, b)

        Returns
        -------
        array, shape (m,) or (m, b)

        Examples
        --------
        >>> import numpy as np
        >>> u = np.ones((2, 1))
        >>> tree = LowRankSegmentTree(np.eye(2), [(u, u), (2 * u, u), (4 * u, u)])
        >>> tree.range_query(2, 3, np.array([1.0, 0.0]))
        array([6., 6.])
        """
        first = check_int(first, "first", 1, self._K)
        last = check_int(last, "last", first, self._K)
        X, vector = self._check_X(X)
        with self._lock:
            nodes = [self._levels[h][j] for h, j in _range_index(first - 1, last)]
        Y = self._apply(self._assemble(nodes, None), X, None)
        return Y[:, 0] if vector else Y

    def all_orders(self, X: ArrayLike) -> Array:
        """``W_0 X, W_1 X, ..., W_K X`` in one pass.

        ``Z = V_allᵀ X`` and ``U_i Z_i`` are batched GEMMs over the leaves
        (factors padded to the largest rank), followed by a running sum over
        the orders (the backend's ``prefix_sum``).  With a lossy ``rtol``
        (above ``max(m, n) * eps``) the leaves would give other answers than
        :meth:`query`, which reads the recompressed internal nodes; the orders
        are then built from those same canonical nodes instead,
        ``W_k X = W_{k - 2^h} X + N X`` with ``2^h`` the lowest set bit of ``k``
        (one GEMM pair per order), so that ``all_orders(X)[k]`` and
        ``query(k, X)`` agree to rounding for every ``rtol``.

        Parameters
        ----------
        X : array_like, shape (n,) or (n, b)

        Returns
        -------
        array, shape (K + 1, m) or (K + 1, m, b)

        Examples
        --------
        >>> import numpy as np
        >>> u = np.ones((2, 1))
        >>> tree = LowRankSegmentTree(np.eye(2), [(u, u), (u, u)])
        >>> tree.all_orders(np.array([1.0, 0.0]))
        array([[1., 0.],
               [2., 1.],
               [3., 2.]])
        """
        X, vector = self._check_X(X)
        xp = self._xp
        lossy = self._lossy()
        with self._lock:
            K, version, stacks = self._K, self._version, self._stacks
            if lossy:
                nodes = [self._levels[h][j] for h, j in map(_last_canonical, range(1, K + 1))]
            elif stacks is None and K:
                leaves = self._levels[0][:K]
        Y0 = xp.matmul(self._base, X)  # xp.matmul, not @: it promotes mixed dtypes on every library (torch)
        if K == 0:
            out = Y0[None, ...]
        elif lossy:
            out = self._orders_from_nodes(Y0, nodes, X)
        else:
            if stacks is None:
                stacks = self._build_stacks(leaves)
                with self._lock:
                    if self._version == version:  # else built from a state that has changed since
                        self._stacks = stacks
            Ust, Vst = stacks
            out = self._ops.accumulate_orders(Y0, Ust, xp.matmul(xp.matrix_transpose(Vst), X), xp)
        return out[..., 0] if vector else out

    def matrix(self, k: int) -> Array:
        """Dense ``W_k``, shape (m, n) (for checks; costs ``m n`` memory)."""
        k = check_int(k, "k", 0, self._K)
        entry = self._prefix(k)
        W = entry.dense if entry.dense is not None else self._base
        return W + entry.U @ self._xp.matrix_transpose(entry.V)

    def operator(self, k: int) -> Any:
        """``W_k`` as a SciPy ``LinearOperator`` (CuPy: ``cupyx`` operator).

        Parameters
        ----------
        k : int
            Order, ``0 <= k <= K``.

        Returns
        -------
        LinearOperator
            Shape (m, n); ``matvec``/``matmat`` call :meth:`query`, ``rmatvec``
            applies ``W_kᴴ``.

        Examples
        --------
        >>> import numpy as np
        >>> from scipy.sparse.linalg import svds
        >>> rng = np.random.default_rng(2)
        >>> tree = LowRankSegmentTree(rng.standard_normal((20, 10)),
        ...                           [(rng.standard_normal((20, 2)), rng.standard_normal((10, 2)))])
        >>> s = svds(tree.operator(1), k=2, return_singular_vectors=False)
        >>> bool(np.allclose(np.sort(s), np.sort(np.linalg.svd(tree.matrix(1), compute_uv=False))[-2:]))
        True
        """
        k = check_int(k, "k", 0, self._K)
        xp = self._xp

        def adjoint(y):
            entry = self._prefix(k)
            W = entry.dense if entry.dense is not None else self._base
            Y = xp.conj(xp.matrix_transpose(W)) @ y
            return Y + xp.conj(entry.V) @ (xp.conj(xp.matrix_transpose(entry.U)) @ y)

        make = self._ops.linear_operator
        if make is None:
            raise NotImplementedError(f"operation 'linear_operator' is not available for backend {self.backend!r}")
        return make(
            self.shape,
            self._dtype,
            matvec=lambda x: self.query(k, x),
            rmatvec=adjoint,
            matmat=lambda X: self.query(k, X),
        )

    # ------------------------------------------------------------------
    # modification
    # ------------------------------------------------------------------
    def update(self, i: int, delta: CorrectionLike) -> None:
        """Replace ``Δ_i`` and update its ``O(log K)`` ancestors (see the class notes).

        Parameters
        ----------
        i : int
            ``1 <= i <= K``.
        delta : LowRank, (U, V) pair or array of shape (m, n)
            The new correction; converted to the tree's dtype (complex data
            into a real tree raises ``TypeError``).

        Examples
        --------
        >>> import numpy as np
        >>> u = np.ones((2, 1))
        >>> tree = LowRankSegmentTree(np.zeros((2, 2)), [(u, u), (u, u)])
        >>> tree.update(1, (3 * u, u))
        >>> tree.query(2, np.array([1.0, 0.0]))
        array([4., 4.])
        """
        i = check_int(i, "i", 1, self._K)
        leaf = self._make_leaf(*self._leaf_factors(delta, "delta", dtype=self._dtype))
        with self._writer:  # only writers change nodes: the path reads a stable tree
            path = self._path(i - 1, leaf, grow=False)
            with self._lock:
                self._commit(path, grow=False)
                for k in [k for k in self._cache if k >= i]:
                    self._cache_used -= self._cache.pop(k).nbytes
                self._stacks = None

    def append(self, delta: CorrectionLike) -> None:
        """Add ``Δ_{K+1}`` (``O(log K)`` merges; the capacity doubles when full).

        Parameters
        ----------
        delta : LowRank, (U, V) pair or array of shape (m, n)

        Examples
        --------
        >>> import numpy as np
        >>> tree = LowRankSegmentTree(np.eye(2))
        >>> tree.append((np.ones((2, 1)), np.ones((2, 1))))
        >>> tree.max_order, tree.query(1, np.array([1.0, 0.0]))
        (1, array([2., 1.]))
        """
        leaf = self._make_leaf(*self._leaf_factors(delta, "delta", dtype=self._dtype))
        with self._writer:  # only writers change nodes: the path reads a stable tree
            grow = self._K == len(self._levels[0]) and self._K > 0
            path = self._path(self._K, leaf, grow=grow)
            with self._lock:
                self._commit(path, grow=grow)
                self._K += 1
                self._stacks = None  # prefixes <= K are unchanged, so the per-order cache stays

    # ------------------------------------------------------------------
    # invariants
    # ------------------------------------------------------------------
    def _check(self):
        """Verify every internal invariant; raise ``AssertionError`` naming the first broken one.

        For tests (the stateful and thread tests call it after every step).
        Checked on host copies in float64/complex128: the level layout and
        padding, node shapes, dtypes and ranks (``<= min(m, n)``), each
        internal node against the sum of its children (within the
        recompression tolerance, relative to the children's scale), the
        orthogonality the ``orth`` flags claim, dense nodes exactly where
        factors would cost more (or a child is dense), and every cache entry
        against a fresh assembly from the current nodes, with the cache's
        byte counter.  Holds the lock throughout, so it sees one state.
        """
        from ._invariants import check_tree

        check_tree(self)

    # ------------------------------------------------------------------
    # internals: nodes
    # ------------------------------------------------------------------
    def _effective_tol(self):
        if self._tol is not None:
            return self._tol
        return default_tol(self._xp, self._dtype, self.shape)

    def _drift_budget(self):
        """Rounding budget of an incrementally updated node, in units of ``eps ‖node‖_F``."""
        return max(_DRIFT_LIMIT, max(self.shape) / 4)

    def _lossy(self):
        """Whether the recompression tolerance may drop more than rounding noise."""
        return self._tol is not None and self._tol > default_tol(self._xp, self._dtype, self.shape)

    def _info(self, h, j):
        node = self._levels[h][j]
        first, last = j * 2**h + 1, min((j + 1) * 2**h, self._K)
        return NodeInfo(h, j, first, last, node.rank, node.dense, self._node_nbytes(node))

    def _node_nbytes(self, node):
        if node.dense:
            return nbytes(node.D, self._xp)
        return nbytes(node.U, self._xp) + nbytes(node.V, self._xp)

    def _leaf_factors(self, delta, name, dtype, move=False):
        """Validated ``(U, V)`` of a correction on the tree's device, in ``dtype`` when given."""
        xp = self._xp
        U, V = correction_factors(delta, xp, name, self.shape, allow_dense=True, device=self._device, move=move)
        if dtype is not None:
            for F in (U, V):
                if xp.isdtype(F.dtype, "complex floating") and not xp.isdtype(dtype, "complex floating"):
                    raise TypeError(
                        f"{name} is complex ({F.dtype}) but the tree is real ({dtype}); expected a real correction"
                    )
            su, sv = _sources(delta, (U, V))
            U, V = take(U, su, dtype, xp), take(V, sv, dtype, xp)
            # a finite float64 correction can overflow a float32 tree
            check_finite(U, xp, f"{name} U factor in the tree's dtype {dtype}")
            check_finite(V, xp, f"{name} V factor in the tree's dtype {dtype}")
        return U, V

    def _make_leaf(self, U, V):
        if U.shape[1] > min(self.shape):
            # a factor wider than the matrix can only waste work in every query
            U, V, _ = recompress(U, V, self._xp, tol=self._effective_tol())
            return _Node(U, V, rank=U.shape[1], orth=True)
        return _Node(U, V, rank=U.shape[1])

    def _dense_of(self, node):
        return node.D if node.dense else node.U @ self._xp.matrix_transpose(node.V)

    def _merge_pairs(self, pairs):
        """Sum nodes of child pairs ``(a, b)``: recompressed, dense when factors cost more.

        Empty children and dense sums are handled here; the low-rank pairs go
        to the backend's ``merge_pairs`` in one call (one parallel kernel on
        Numba, the portable ``recompress_pairs`` elsewhere).
        """
        out, todo = [], []
        m, n = self.shape
        for a, b in pairs:
            if a is self._empty or (not a.dense and a.rank == 0):
                out.append(b)
            elif b is self._empty or (not b.dense and b.rank == 0):
                out.append(a)
            elif a.dense or b.dense:
                out.append(_Node(D=self._dense_of(a) + self._dense_of(b), rank=min(m, n, a.rank + b.rank)))
            else:
                todo.append(len(out))
                out.append(NodePair(a.U, a.V, a.orth, b.U, b.V, b.orth))
        if todo:
            merged = self._ops.merge_pairs([out[i] for i in todo], self._effective_tol(), self._xp)
            for i, node in zip(todo, merged):
                out[i] = (
                    _Node(D=node.D, rank=node.rank)
                    if node.D is not None
                    else _Node(node.U, node.V, rank=node.rank, orth=True)
                )
        return out

    def _path(self, pos, leaf, grow):
        """New nodes on the path from leaf position ``pos`` to the root.

        Every ancestor changes by the same ``A Bᵀ = U_new V_newᵀ - U_old V_oldᵀ``
        (the new leaf minus the one it replaces; padding for an append), so an
        ancestor is updated from its old value where that is cheaper than
        merging its children (:meth:`_updated`); nothing is stored here.
        """
        xp, levels = self._xp, self._levels
        top = len(levels) - 1 + (1 if grow else 0)
        old_leaf = levels[0][pos] if pos < len(levels[0]) else self._empty
        if old_leaf.rank:
            A = xp.concat([leaf.U, -old_leaf.U], axis=1)
            B = xp.concat([leaf.V, old_leaf.V], axis=1)
        else:
            A, B = leaf.U, leaf.V
        # rounding of one incremental step, beyond the node's own size (see _DRIFT_LIMIT)
        norm_a, norm_b = fro_norm(A, xp), fro_norm(B, xp)
        step = (A.shape[1] + 2) * norm_a * norm_b
        change = _product_norm_bound(A, B, norm_a, norm_b, xp)
        path, node, old_child = [(0, pos, leaf)], leaf, old_leaf
        for h in range(top):
            j = pos >> h
            sib_j = j ^ 1
            sib = levels[h][sib_j] if sib_j < len(levels[h]) else self._empty
            pair = (node, sib) if j % 2 == 0 else (sib, node)
            up = j >> 1
            old = levels[h + 1][up] if h + 1 < len(levels) and up < len(levels[h + 1]) else None
            new = None
            if old is not None and old is not old_child and old is not sib and old is not self._empty:
                new = self._updated(old, pair, A, B, step, change)
            if new is None:
                new = self._merge_pairs([pair])[0]
            node, old_child = new, old
            path.append((h + 1, up, node))
        return path

    def _updated(self, old, pair, A, B, step, change):
        """``old + A Bᵀ`` for an ancestor whose children are ``pair``, or None to merge them.

        Only where both children are low-rank and non-empty (a dense child
        makes the node the plain sum of its children, ``O(m n)`` already):

        * a dense node stays dense and takes the rank-``p`` GEMM update,
          ``O(m n p)``, instead of a QR and SVD of its children's summed rank
          (up to ``2 min(m, n)``); its rank is then the bound ``r_a + r_b``;
        * a recompressed low-rank node of rank ``ρ`` appends the ``p`` new
          columns to its factors (exact: no rounding, ``O((m + n)(ρ + p))``
          copied) while its appended columns stay within ``ρ / _TAIL_FRACTION``;
          past that it is recompressed from its orthogonal part and all the
          appended columns (the backend's ``update_node``: one SVD of size
          ``ρ + tail`` and no QR of the stacked children); with a lossy rtol
          the children are merged instead, so that truncation errors do not
          add up over updates, and so are the children of a node too small
          for a tail (``_MERGE_BELOW``).

        ``step`` is ``(p + 2) ‖A‖_F ‖B‖_F`` and ``change`` an upper bound of
        ``‖A Bᵀ‖_F``.  Once the rounding carried exceeds the budget
        ``_drift_budget() · ‖new‖_F`` (units of eps), a dense node is recomputed
        from its children's factors in one GEMM, and a low-rank one by merging
        them; an appended change is checked against a lower bound of
        ``‖new‖_F``, so that a change cancelling most of a node recompresses it.
        """
        a, b = pair
        m, n = self.shape
        xp = self._xp
        if a.dense or b.dense or not a.rank or not b.rank:
            return None
        bound = min(m, n, a.rank + b.rank)
        if old.dense:
            if bound * (m + n) < m * n:
                return None  # the sum may fit factored again: merge
            D = A @ xp.matrix_transpose(B)
            D += old.D  # = old.D + A Bᵀ bit for bit, one m×n allocation instead of two
            size = fro_norm(D, xp)
            drift = old.drift + size + step
            if drift > self._drift_budget() * size:
                D = xp.concat([a.U, b.U], axis=1) @ xp.matrix_transpose(xp.concat([a.V, b.V], axis=1))
                drift = 0.0
            return _Node(D=D, rank=bound, drift=drift)
        if not (old.orth or old.tail) or not old.rank or self._lossy():
            return None
        p, head = A.shape[1], old.rank - old.tail
        width = old.rank + p
        if old.tail + p <= head // _TAIL_FRACTION and width * (m + n) < m * n:
            # the node's last size (exact after a recompression) minus every change since
            low = (old.low if old.low is not None else fro_norm(old.U, xp)) - change
            if old.drift <= self._drift_budget() * low:
                U = xp.concat([old.U, A], axis=1)
                V = xp.concat([old.V, B], axis=1)
                return _Node(U, V, rank=width, drift=old.drift, tail=old.tail + p, low=low, pending=old.pending + step)
        if width > min(m, n):
            return None
        if head < _MERGE_BELOW * p and a.rank + b.rank <= width:
            # a small node: merging its children is a recompression of no more
            # columns, with fewer calls and no rounding carried
            return None
        if old.tail:
            # each appended change is charged its own step: the recompression
            # treats the blocks as the updates one by one would, in one pass
            A, B = xp.concat([old.U[:, head:], A], axis=1), xp.concat([old.V[:, head:], B], axis=1)
            step += old.pending
        try:
            node = self._ops.update_node(old.U[:, :head], old.V[:, :head], A, B, self._effective_tol(), xp)
        except Exception as exc:
            if not _lapack_failure(exc):
                raise
            # LAPACK's divide-and-conquer SVD can fail to converge on a core with
            # clusters of tiny singular values (a change that cancels an earlier
            # one): merging the children is the robust path
            return None
        if node.D is not None:
            return None  # became dense: the children's sum gives it without carried rounding
        size = fro_norm(node.U, xp)  # = ‖U Vᵀ‖_F: V is orthonormal
        drift = old.drift + size + step
        if drift > self._drift_budget() * size:
            return None
        return _Node(node.U, node.V, rank=node.rank, orth=True, drift=drift, low=size)

    def _commit(self, path, grow):
        """Store the new nodes of ``path`` (caller holds both locks); a new version of the tree."""
        self._version += 1
        if grow:
            for level in self._levels:
                level.extend([self._empty] * len(level))
            self._levels.append([None])
        for h, j, node in path:
            self._levels[h][j] = node

    # ------------------------------------------------------------------
    # internals: queries
    # ------------------------------------------------------------------
    def _check_X(self, X):
        xp, n = self._xp, self._n
        # Fast path for the usual call (an array of the tree's own type and a
        # floating dtype): the general conversion costs more than a small query.
        if (
            type(X) is not type(self._base)
            or X.dtype not in self._float_dtypes
            or X.ndim not in (1, 2)
            # the library's own .device attribute: cheaper than device_of on the hot path
            or getattr(X, "device", None) != getattr(self._base, "device", None)
            or getattr(X, "requires_grad", False)  # refused by as_array, never silently detached
        ):
            X = as_array(X, xp, "X", ndim=2, allow_1d=True, device=self._device)
        if X.shape[0] != n:
            raise ValueError(f"X must have {n} rows (shape ({n},) or ({n}, b)), got shape {tuple(X.shape)}")
        check_finite(X, xp, "X")
        return (X[:, None], True) if X.ndim == 1 else (X, False)

    def _assemble(self, nodes, base):
        """Fold dense nodes into ``base`` and concatenate the low-rank ones."""
        xp = self._xp
        dense = [nd.D for nd in nodes if nd.dense]
        low = [nd for nd in nodes if not nd.dense and nd.rank > 0]
        D = None
        if dense:
            terms = ([base] if base is not None else []) + dense
            D = terms[0] if len(terms) == 1 else self._sum_dense(terms)
        if len(low) == 1:
            U, V = low[0].U, low[0].V
        elif low:
            U = xp.concat([nd.U for nd in low], axis=1)
            V = xp.concat([nd.V for nd in low], axis=1)
        else:
            U, V = self._empty.U, self._empty.V
        size = nbytes(U, xp) + nbytes(V, xp) + (nbytes(D, xp) if D is not None else 0)
        return _Assembled(D, U, V, len(dense), size)

    #: Rows per block of :meth:`_sum_dense` on the CPU backends, as a number of
    #: entries: a block of every term stays in the L2 cache while it is summed.
    _SUM_BLOCK_ENTRIES = 2**15

    def _sum_dense(self, terms):
        """``terms[0] + terms[1] + ...`` (m×n each, added left to right) as one new array.

        On the CPU backends the sum runs over blocks of rows, each summed in
        cache and written once: one pass over memory instead of one per term
        (the whole-matrix form reads and writes the partial sum ``len(terms) - 1``
        times).  The additions are the same, in the same order, so the result
        is bit for bit the whole-matrix one.  Other backends add whole arrays
        (one kernel per term).
        """
        xp = self._xp
        if self._backend not in ("numpy", "numba"):
            # one new array, then in place: a fresh temporary per term costs
            # more in allocation than in arithmetic
            D = terms[0] + terms[1]
            for term in terms[2:]:
                D += term
            return D
        m = terms[0].shape[0]
        step = max(1, self._SUM_BLOCK_ENTRIES // max(1, terms[0].shape[1]))
        D = xp.empty(terms[0].shape, dtype=xp.result_type(*terms), device=self._device)
        for s in range(0, m, step):
            e = min(s + step, m)
            xp.add(terms[0][s:e], terms[1][s:e], out=D[s:e])
            for term in terms[2:]:
                xp.add(D[s:e], term[s:e], out=D[s:e])
        return D

    def _dense_costs(self, n_dense, b):
        """Extra cost of ``n_dense`` dense nodes on ``b`` columns: one GEMM each, or one summing pass.

        Returns ``(gemm_each, sum_once)`` in the multiply-adds of the mixed-batch
        cost model: a GEMM per dense node beyond the base (``m n b``, at least a
        read of the matrix), or one pass over the base and the nodes writing
        their sum (``_ELEM`` per element) before the base's GEMM.
        """
        mn = self._m * self._n
        return n_dense * mn * max(b, self._READ), self._ELEM * (n_dense + 2) * mn

    def _direct_cheaper(self, nodes, b):
        """Whether :meth:`_apply_nodes` beats assembling ``nodes``, for one query of ``b`` columns.

        Both pay the same low-rank products; applying the nodes pays a GEMM
        pair per low-rank node (calls) and the cheaper of :meth:`_dense_costs`;
        assembling pays the summing pass and a copy of the low-rank factors
        (``_ELEM`` per element, and the copies are fresh memory).
        """
        m, n = self._m, self._n
        n_dense = sum(1 for nd in nodes if nd.dense)
        low = [nd for nd in nodes if not nd.dense and nd.rank > 0]
        direct = self._CALL * 2 * len(low)
        assemble = self._CALL * 2
        if n_dense:
            gemm_each, sum_once = self._dense_costs(n_dense, b)
            direct += min(gemm_each, sum_once) + self._CALL * n_dense
            assemble += sum_once
        if len(low) > 1:
            assemble += self._ELEM * 2 * (m + n) * sum(nd.rank for nd in low)
        return direct <= assemble

    def _apply_nodes(self, nodes, X, base):
        """``base X + Σ_dense D X + Σ_lowrank U (Vᵀ X)`` without building an entry; nothing is cached.

        The dense nodes are either applied one GEMM each (narrow ``X``: each
        GEMM is a read of its matrix, as summing them would be) or summed with
        the base in one pass and applied as one GEMM (wide ``X``), as
        :meth:`_dense_costs` finds cheaper; the low-rank nodes are applied one
        GEMM pair each, so their factors are never copied.
        """
        xp = self._xp
        dense = [nd.D for nd in nodes if nd.dense]
        if dense and self._dense_costs(len(dense), X.shape[1])[1] < self._dense_costs(len(dense), X.shape[1])[0]:
            Y = xp.matmul(self._sum_dense([base, *dense]), X)
            dense = []
        else:
            Y = xp.matmul(base, X)
        for D in dense:
            Y += xp.matmul(D, X)
        for nd in nodes:
            if not nd.dense and nd.rank > 0:
                Y += xp.matmul(nd.U, xp.matmul(xp.matrix_transpose(nd.V), X))
        return Y

    def _prefix(self, k, b=0, direct_ok=False):
        """Assembled canonical nodes of ``[1, k]`` with the base, LRU-cached per ``k``.

        The nodes are read under the lock, assembled outside it, and the entry
        is stored only if no change happened meanwhile (it would describe a
        state the tree no longer has) and no other thread stored ``k`` first.

        ``b`` is the batch width about to be applied.  An entry with a dense
        part is *folded* (``dense + U Vᵀ``: one GEMM per query, and the factors
        freed) once the low-rank products its queries have paid reach the
        one-time cost of the fold, ``m n c`` flops for inner dimension ``c``:
        the rent-or-buy rule, so a hot order costs at most about twice what
        the better of the two forms would have, and a cold one pays no fold.
        The folded entry answers to rounding what the unfolded one did, not
        bit for bit.  Matrices below ``_FOLD_MIN_ENTRIES`` entries never fold.

        With ``direct_ok``, an order's first use (since the cache was last
        cleared), or any use of an entry too large for the cache, may return the
        list of canonical nodes instead of an entry, when applying them one by
        one to ``b`` columns costs less than assembling them
        (:meth:`_direct_cheaper`): a cold query then sums no m×n matrices and
        copies no factors, and the entry is built and cached on the order's
        second use (rent or buy again: an order used once never pays the
        assembly).  The result is the same to rounding, not bit for bit, as
        the entry's; matrices below ``_FOLD_MIN_ENTRIES`` entries always get
        the entry.  :meth:`_apply` takes either form.
        """
        with self._lock:
            entry = self._cache.get(k)
            if entry is not None:
                self._cache.move_to_end(k)
                c = entry.U.shape[1]
                if entry.dense is None or not c or self._m * self._n < _FOLD_MIN_ENTRIES:
                    return entry
                entry.work += (self._m + self._n) * c * b
                if entry.work < self._m * self._n * c:
                    return entry
                version = self._version
            else:
                version = self._version
                nodes = [self._levels[h][j] for h, j in _prefix_index(k)]
                first_use = k not in self._seen
                if direct_ok and first_use:
                    self._seen.add(k)
        if entry is not None:
            return self._fold(k, entry, version)
        if (
            direct_ok
            and self._m * self._n >= _FOLD_MIN_ENTRIES
            and (first_use or self._entry_nbytes(nodes) > self._cache_limit)
            and self._direct_cheaper(nodes, b)
        ):
            return nodes
        entry = self._assemble(nodes, self._base)
        if entry.nbytes <= self._cache_limit:
            with self._lock:
                if self._version == version and k not in self._cache:
                    self._cache[k] = entry
                    self._cache_used += entry.nbytes
                    while self._cache_used > self._cache_limit:
                        self._cache_used -= self._cache.popitem(last=False)[1].nbytes
        return entry

    def _fold(self, k, entry, version):
        """``entry`` with its factors folded into its dense part, replacing it in the cache.

        A new dense array (entries in the cache are never written to: other
        threads may be reading them); the cached entry is swapped only if it
        is still the one for the current state.  Memory goes down, ``m n`` for
        the dense part against ``m n + (m + n) c`` before.
        """
        xp = self._xp
        D = entry.dense + entry.U @ xp.matrix_transpose(entry.V)
        U, V = self._empty.U, self._empty.V
        folded = _Assembled(D, U, V, entry.n_dense, nbytes(D, xp) + nbytes(U, xp) + nbytes(V, xp), folded=True)
        with self._lock:
            if self._version == version and self._cache.get(k) is entry:
                self._cache[k] = folded
                self._cache_used += folded.nbytes - entry.nbytes
        return folded

    def _entry_nbytes(self, nodes):
        """Bytes the assembled entry of ``nodes`` would hold (as :meth:`_assemble` counts them)."""
        xp, dtype = self._xp, self._dtype
        item = xp.finfo(dtype).bits // 8 * (2 if xp.isdtype(dtype, "complex floating") else 1)
        n_dense = sum(1 for nd in nodes if nd.dense)
        low = [nd for nd in nodes if not nd.dense and nd.rank > 0]
        size = (self._m * self._n if n_dense else 0) + (self._m + self._n) * sum(nd.rank for nd in low)
        return size * item

    def _apply(self, entry, X, base):
        if isinstance(entry, list):  # canonical nodes, applied one by one (see _prefix)
            return self._apply_nodes(entry, X, base)
        W = entry.dense if entry.dense is not None else base
        return self._ops.apply_factors(W, entry.U, entry.V, X, self._xp)

    # Cost model of a mixed batch, in multiply-adds of a large GEMM: a GEMM
    # call reads its whole left operand however few columns it gets (``_READ``
    # multiply-adds per element read), an elementwise pass over memory (adding
    # dense nodes, copying factors) costs ``_ELEM`` per element, and a call
    # costs ``_CALL`` whatever its size.  Rough figures of one CPU core; only
    # the ordering of the strategies matters.
    _READ, _ELEM, _CALL = 4, 8, 25_000

    def _mixed_query(self, k, X, strategy=None):
        """Columns with their own orders, by the cheapest of three strategies.

        The columns are sorted by order, so that the columns needing any one
        canonical node (node ``(h, j)`` serves the orders ``k`` with
        ``k >> h == j + 1``) form one contiguous block, then one of:

        ``'grouped'``
            one cached prefix query per distinct order on its block;
        ``'segmented'``
            the base on every column, then each needed canonical node on the
            block of columns whose prefix contains it (segmented GEMMs: no
            node is applied to a column that does not need it);
        ``'masked'``
            one GEMM pair over the concatenated leaf factors ``Δ_1..Δ_kmax``
            with the terms ``i > k_j`` masked out of column ``j``.

        ``strategy`` forces one (tests and benchmarks); by default the
        cheapest by :meth:`_mixed_plan`'s estimate.  Every strategy reads the
        nodes (and cached entries) under one lock acquisition, so the whole
        batch answers for one state of the tree.
        """
        xp = self._xp
        b = X.shape[1]
        if b == 0:
            self._orders_layout(k, b)  # validates
            return xp.matmul(self._base, X)
        orders = self._orders_list(k, b)
        if strategy is None and orders is not None and min(orders) == max(orders):
            # one order for every column (b = 1 included): exactly query(k, X), no layout
            return self._apply(self._prefix(orders[0], b, direct_ok=True), X, self._base)
        perm, inverse, sorted_ks, groups = self._orders_layout(k, b, orders)
        if len(groups) == 1 and strategy is None:
            # one order for every column: exactly query(k, X) (a cold order applies
            # its nodes directly, a hot one folds), no permutation
            return self._apply(self._prefix(groups[0][0], b, direct_ok=True), X, self._base)
        needed = sorted({hj for kk, _, _ in groups for hj in _prefix_index(kk)})
        kmax = groups[-1][0]
        with self._lock:
            version = self._version
            cached = {kk: self._cache.get(kk) for kk, _, _ in groups}
            nodes = {(h, j): self._levels[h][j] for h, j in needed}
            leaves = self._levels[0][:kmax]
            # orders used for the first time since the cache was cleared: as in
            # query(k, X), the grouped strategy may apply their nodes directly
            first_use = {kk for kk, _, _ in groups if cached[kk] is None and kk not in self._seen}
        if strategy is None:
            strategy = self._mixed_plan(groups, nodes, cached, leaves)
        elif strategy not in ("grouped", "segmented", "masked"):
            raise ValueError(f"strategy must be 'grouped', 'segmented' or 'masked', got {strategy!r}")
        Xs = X if perm is None else xp.take(X, perm, axis=1)
        if strategy == "grouped":
            if first_use:
                with self._lock:
                    self._seen.update(first_use)
            Ys = self._mixed_grouped(groups, nodes, cached, version, Xs, first_use)
        elif strategy == "segmented":
            Ys = self._mixed_segmented(groups, nodes, Xs)
        else:
            Ys = self._mixed_masked(sorted_ks, leaves, Xs)
        return Ys if perm is None else xp.take(Ys, inverse, axis=1)

    def _orders_layout(self, k, b, orders=None):
        """Validated per-column orders as ``(perm, inverse, sorted_ks, groups)``.

        ``perm`` (None when the columns are already sorted) sorts the columns
        by order and ``inverse`` undoes it, both index arrays of the tree's
        library; ``sorted_ks`` holds the sorted orders (same library); the
        ``groups`` ``(order, first, end)`` are the blocks of equal order in
        sorted position, as Python ints.  On a device library the orders
        stay on the device: only the distinct orders and their counts are
        read, as scalars.  ``orders`` is ``_orders_list(k, b)`` when the
        caller has it.
        """
        xp = self._xp
        if orders is None:
            orders = self._orders_list(k, b)
        if orders is not None:
            perm, sorted_orders, groups = _sort_orders(orders)
            sorted_ks = xp.asarray(sorted_orders, dtype=xp.int64, device=self._device)
            if all(p == j for j, p in enumerate(perm)):
                return None, None, sorted_ks, groups
            inverse = [0] * b
            for j, p in enumerate(perm):
                inverse[p] = j
            on = self._device
            return (
                xp.asarray(perm, dtype=xp.int64, device=on),
                xp.asarray(inverse, dtype=xp.int64, device=on),
                sorted_ks,
                groups,
            )
        ks = self._check_orders(k, b)
        if b == 0:
            return None, None, ks, []
        values, counts = xp.unique_counts(ks)
        groups, lo = [], 0
        for i in range(values.shape[0]):
            c = int(counts[i])
            groups.append((int(values[i]), lo, lo + c))
            lo += c
        perm = xp.argsort(ks, stable=True)
        inverse = xp.argsort(perm, stable=True)
        return perm, inverse, xp.take(ks, perm), groups

    def _orders_list(self, k, b):
        """The per-column orders as validated Python ints, or None on a device library.

        NumPy integer arrays and lists of ints are checked on the host
        directly (the general validation costs more than a small query);
        anything else, and any value out of range, goes through
        ``check_orders`` for its conversion and its error message.
        """
        fast = None
        if type(k) is list and all(type(v) is int for v in k):
            fast = k
        elif (
            type(k) is type(self._base)
            and self._backend in ("numpy", "numba")
            and k.ndim == 1
            and k.dtype.kind in ("i", "u")
        ):
            fast = k.tolist()
        if fast is not None and len(fast) == b and (not fast or (min(fast) >= 0 and max(fast) <= self._K)):
            return fast
        if self._backend in ("numpy", "numba"):
            return self._check_orders(k, b).tolist()
        return None

    def _mixed_strategy(self, orders):
        """The strategy a mixed query of ``orders`` (Python ints) would take now (benchmarks, tests)."""
        _, _, groups = _sort_orders(orders)
        with self._lock:
            cached = {kk: self._cache.get(kk) for kk, _, _ in groups}
            nodes = {(h, j): self._levels[h][j] for kk, _, _ in groups for h, j in _prefix_index(kk)}
            leaves = self._levels[0][: groups[-1][0]]
        return self._mixed_plan(groups, nodes, cached, leaves)

    def _mixed_plan(self, groups, nodes, cached, leaves):
        """The cheapest strategy for sorted column ``groups``, by the cost model above."""
        m, n = self.shape
        mn, READ, ELEM, CALL = m * n, self._READ, self._ELEM, self._CALL
        b = groups[-1][2]

        def gemm(rows, inner, cols, calls=1):  # a GEMM (pair: calls=2) of ``inner`` terms on ``cols`` columns
            return rows * inner * max(cols, READ) + calls * CALL

        base = gemm(m, n, b)
        # segmented: the base on every column, each node on its own block
        seg = base
        for (h, j), node in nodes.items():
            lo_k, hi_k = (j + 1) << h, (j + 2) << h
            cols = sum(e - s for kk, s, e in groups if lo_k <= kk < hi_k)
            if node.dense:
                seg += gemm(m, n, cols) + ELEM * m * cols
            elif node.rank:
                seg += gemm(m + n, node.rank, cols, calls=2) + ELEM * m * cols
        # grouped: one prefix query per order, plus the assembly of uncached entries
        grouped = 0
        for kk, s, e in groups:
            entry = cached[kk]
            canon = [nodes[hj] for hj in _prefix_index(kk)]
            dense = sum(1 for nd in canon if nd.dense)
            inner = sum(nd.rank for nd in canon if not nd.dense)
            # the product, the low-rank pair, and the copy into the output
            grouped += gemm(m, n, e - s) + gemm(m + n, inner, e - s, calls=2) + CALL + ELEM * m * (e - s)
            if entry is None:
                grouped += ELEM * (mn * dense + (m + n) * inner)
        # masked: concatenate the leaves up to the largest order, one GEMM pair
        R = sum(leaf.rank for leaf in leaves)
        # (each leaf costs a slice copy and a few Python steps, about a fifth of a call)
        masked = base + gemm(m + n, R, b, calls=2) + ELEM * ((m + n) * R + R * b) + len(leaves) * CALL // 5
        costs = {"grouped": grouped, "segmented": seg, "masked": masked}
        return min(costs, key=costs.__getitem__)

    def _mixed_grouped(self, groups, nodes, cached, version, Xs, first_use=frozenset()):
        """One prefix query per distinct order, each on its block of sorted columns.

        An order in ``first_use`` (not cached, first used since the cache was
        cleared) has its canonical nodes applied directly where that is
        cheaper than assembling them, as a cold ``query(k, X)`` does; any
        other uncached order is assembled and cached.
        """
        xp = self._xp
        out = None
        for kk, s, e in groups:
            entry = cached[kk]
            if entry is None:
                canonical = [nodes[hj] for hj in _prefix_index(kk)]
                if (
                    kk in first_use
                    and self._m * self._n >= _FOLD_MIN_ENTRIES
                    and self._direct_cheaper(canonical, e - s)
                ):
                    entry = canonical  # _apply takes the node list as well
                else:
                    entry = self._assemble(canonical, self._base)
                    self._store_entry(kk, entry, version)
            Yg = self._apply(entry, Xs[:, s:e], self._base)
            if len(groups) == 1:
                return Yg
            if out is None:
                out = xp.empty((self._m, Xs.shape[1]), dtype=Yg.dtype, device=self._device)
            out[:, s:e] = Yg
        return out

    def _store_entry(self, k, entry, version):
        """Cache ``entry`` for order ``k`` if the tree is still at ``version`` (as ``_prefix`` does)."""
        if entry.nbytes <= self._cache_limit:
            with self._lock:
                if self._version == version and k not in self._cache:
                    self._cache[k] = entry
                    self._cache_used += entry.nbytes
                    while self._cache_used > self._cache_limit:
                        self._cache_used -= self._cache.popitem(last=False)[1].nbytes

    def _mixed_segmented(self, groups, nodes, Xs):
        """The base on all sorted columns, each canonical node on the block that needs it."""
        xp = self._xp
        Ys = xp.matmul(self._base, Xs)
        starts = [s for _, s, _ in groups]
        keys = [kk for kk, _, _ in groups]
        for (h, j), node in nodes.items():
            if not node.dense and node.rank == 0:
                continue
            # the orders served by (h, j) are [(j + 1) 2^h, (j + 2) 2^h): one block of sorted columns
            s = starts[bisect_left(keys, (j + 1) << h)]
            i_end = bisect_left(keys, (j + 2) << h)
            e = starts[i_end] if i_end < len(starts) else Xs.shape[1]
            Xb = Xs[:, s:e]
            if node.dense:
                Ys[:, s:e] = Ys[:, s:e] + xp.matmul(node.D, Xb)
            else:
                Ys[:, s:e] = Ys[:, s:e] + xp.matmul(node.U, xp.matmul(xp.matrix_transpose(node.V), Xb))
        return Ys

    def _mixed_masked(self, ks, leaves, Xs):
        """``W_0 X + [U_1 .. U_kmax] (([V_1 .. V_kmax]ᵀ X) ⊙ mask)``, ``mask[i-th terms, j] = (i <= k_j)``."""
        xp = self._xp
        Ys = xp.matmul(self._base, Xs)
        low = [(i, leaf) for i, leaf in enumerate(leaves, start=1) if leaf.rank]
        if not low:
            return Ys
        U = xp.concat([leaf.U for _, leaf in low], axis=1)
        V = xp.concat([leaf.V for _, leaf in low], axis=1)
        term_order = xp.asarray([i for i, leaf in low for _ in range(leaf.rank)], dtype=xp.int64, device=self._device)
        Z = xp.matmul(xp.matrix_transpose(V), Xs)
        Z = Z * xp.astype(term_order[:, None] <= ks[None, :], Z.dtype)
        return Ys + xp.matmul(U, Z)

    def _check_orders(self, k, b):
        return check_orders(k, b, self._K, self._xp, self.backend, device=self._device)

    def _build_stacks(self, leaves):
        """Leaf factors padded to the largest rank, stacked (K, m, r) and (K, n, r)."""
        xp = self._xp
        rmax = max(leaf.rank for leaf in leaves)

        def pad(F, rows):
            if F.shape[1] == rmax:
                return F
            pad_cols = xp.zeros((rows, rmax - F.shape[1]), dtype=self._dtype, device=self._device)
            return xp.concat([F, pad_cols], axis=1)

        return (
            xp.stack([pad(leaf.U, self._m) for leaf in leaves]),
            xp.stack([pad(leaf.V, self._n) for leaf in leaves]),
        )

    def _orders_from_nodes(self, Y0, nodes, X):
        """All orders from the canonical nodes that :meth:`query` uses.

        ``W_k X = W_{k - 2^h} X + N X`` with ``2^h`` the lowest set bit of
        ``k`` and ``N = nodes[k - 1]`` the last canonical node of ``[1, k]``:
        one GEMM pair per order, the same (recompressed) nodes as a query.
        """
        xp = self._xp
        out = [Y0]
        for k, node in enumerate(nodes, start=1):
            prev = out[k - (k & -k)]
            if node.dense:
                out.append(prev + xp.matmul(node.D, X))
            elif node.rank:
                out.append(prev + xp.matmul(node.U, xp.matmul(xp.matrix_transpose(node.V), X)))
            else:
                out.append(prev)
        return xp.stack(out)


def _product_norm_bound(A, B, norm_a, norm_b, xp):
    """An upper bound of ``‖A Bᵀ‖_F`` from the small Gram matrices, scale-safe.

    ``‖A Bᵀ‖_F² = Σ (AᴴA) ∘ conj(BᴴB)`` on the factors scaled to unit norm
    (no square under- or overflows), plus a margin for the rounding of the
    ``p × p`` products; ``norm_a``, ``norm_b`` are ``‖A‖_F``, ``‖B‖_F``.
    Never above ``‖A‖_F ‖B‖_F``.
    """
    if norm_a == 0.0 or norm_b == 0.0:
        return 0.0
    p = A.shape[1]
    An = A / float(norm_a)  # a Python scalar: no array to place on the factors' device
    Bn = B / float(norm_b)
    Ga = xp.conj(xp.matrix_transpose(An)) @ An
    Gb = xp.conj(xp.matrix_transpose(Bn)) @ Bn
    ss = float(xp.sum(xp.real(Ga * xp.conj(Gb))))
    margin = 4.0 * (p + 1) ** 2 * float(xp.finfo(A.dtype).eps)
    return min(1.0, math.sqrt(max(ss, 0.0) + margin)) * norm_a * norm_b


def _lapack_failure(exc):
    """Whether ``exc`` is a linear-algebra failure (NumPy, CuPy, PyTorch all name it ``LinAlgError``)."""
    return any("LinAlgError" in cls.__name__ for cls in type(exc).__mro__)


def _float_dtypes(xp):
    """The namespace's floating dtypes as the objects ``array.dtype`` returns (hashable)."""
    return frozenset(xp.empty((0,), dtype=d).dtype for d in (xp.float32, xp.float64, xp.complex64, xp.complex128))


def _prefix_index(k):
    """Canonical ``(level, index)`` pairs of leaf positions ``[0, k)``, top-down."""
    out = []
    h = k.bit_length() - 1
    while h >= 0:
        if (k >> h) & 1:
            out.append((h, (k >> (h + 1)) << 1))
        h -= 1
    return out


def _last_canonical(k):
    """``(level, index)`` of the canonical node that completes ``[0, k)`` from ``[0, k - 2^h)``.

    ``2^h`` is the lowest set bit of ``k >= 1``; the node is the last (lowest)
    of ``_prefix_index(k)``.
    """
    h = (k & -k).bit_length() - 1
    return h, (k >> h) - 1


def _range_index(lo, hi):
    """Canonical ``(level, index)`` pairs of leaf positions ``[lo, hi)``, bottom-up."""
    out, h = [], 0
    while lo < hi:
        if lo & 1:
            out.append((h, lo))
            lo += 1
        if hi & 1:
            hi -= 1
            out.append((h, hi))
        lo >>= 1
        hi >>= 1
        h += 1
    return out


def _sources(delta, factors):
    """What the caller passed for the validated ``factors`` of ``delta`` (None: nothing to copy).

    A ``LowRank``'s factors are immutable and may be shared (unless they were
    moved to another device: then ``factors`` are new arrays); a dense
    correction is factorised into fresh arrays; a ``(U, V)`` pair is the
    caller's and is copied.
    """
    if isinstance(delta, (tuple, list)) and len(delta) == 2:
        return delta[0], delta[1]
    if isinstance(delta, LowRank) and factors[0] is not delta._U:
        return delta._U, delta._V
    return None, None


def _sort_orders(orders):
    """``perm`` sorting the columns by order, the sorted orders, and their blocks.

    A block is ``(order, first column, end column)`` in sorted position.
    """
    b = len(orders)
    perm = sorted(range(b), key=orders.__getitem__)
    sorted_orders = [orders[j] for j in perm]
    groups, lo = [], 0
    for j in range(1, b + 1):
        if j == b or sorted_orders[j] != sorted_orders[lo]:
            groups.append((sorted_orders[lo], lo, j))
            lo = j
    return perm, sorted_orders, groups


def _is_scalar(k):
    return is_single_order(k)
