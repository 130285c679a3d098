"""Numba backend: NumPy arrays, JIT kernels where Python overhead or parallelism dominates.

Arrays are plain NumPy arrays (the namespace is NumPy's), so every operation
the kernels do not cover runs exactly as on the ``numpy`` backend.  The kernels
(:mod:`._numba_kernels`, compiled on first use and cached on disk) replace

* ``merge_pairs``: the recompression of every node pair of a tree level in
  one parallel call (build, update, append);
* ``accumulate_orders``: the all-orders running sum, fused with the
  per-leaf products (off by default: NumPy's in-place path measured faster).

While pairs are merged, BLAS and LAPACK are limited to one thread each: the
parallelism is over nodes, nested OpenBLAS threads on top of Numba's
oversubscribe the cores, and the small QRs and SVDs of a node gain nothing
from threads.  The exception is a single wide pair (the top of a large
tree's update path), whose SVD is the whole cost.
"""

import contextlib
import threading

import numpy as np

from . import _numpy, contract
from ._numpy import (  # noqa: F401  (the same arrays: NumPy's operations, re-exported)
    asarray,
    linear_operator,
    make_rng,
    prefix_sum,
    read_only,
    standard_normal,
    sum_of_squares,
    to_numpy,
)
from .contract import MergedNode

#: Held around every parallel kernel call.  Threads may call the kernels at
#: once (queries beside an update), but Numba's fallback "workqueue" threading
#: layer aborts the process on concurrent parallel launches, and the BLAS
#: thread limit below is process-wide: two threads saving and restoring it
#: could leave BLAS on one thread for good.  Each call uses every core anyway.
_KERNEL_LOCK = threading.Lock()

#: The fused all-orders kernel runs for batches at least this wide and outputs
#: (entries of the (K + 1, m, b) result) at least ``FUSED_MIN_OUTPUT`` large.
#: ``FUSED_MIN_OUTPUT = None`` (the default) never runs it: NumPy's in-place
#: path (one GEMM per order into the output, the previous order added while in
#: cache) measured 1.3-5x faster on every size timed (``bench/tree_ops.py``:
#: K = 64-1024, m = 256-1024, b = 16-256).
FUSED_MIN_BATCH = 16
FUSED_MIN_OUTPUT = None
#: A single pair narrower than this (``r_a + r_b``) takes the portable NumPy path.
SERIAL_KERNEL_MIN_WIDTH = 64
#: A single pair at least this wide (``r_a + r_b``) is merged with BLAS on all
#: threads; narrower ones, and levels merged in parallel, with one BLAS thread.
THREADED_BLAS_MIN_WIDTH = 512


def namespace():
    try:
        import numba  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError('the "numba" backend needs Numba: pip install "lowrank-tree[numba]"') from exc
    import array_api_compat.numpy as xp

    return xp


def _kernels():
    from . import _numba_kernels

    return _numba_kernels


def _one_blas_thread():
    """BLAS/LAPACK on one thread while a kernel runs (shared, reference-counted limit)."""
    import scipy.linalg  # noqa: F401  (Numba's LAPACK is SciPy's: load it before threadpoolctl looks)

    from .._threads import small_blas

    return small_blas(True)


def merge_pairs(pairs, tol, xp=None):
    """Recompressed sums of node pairs, all in one parallel kernel call.

    Parameters
    ----------
    pairs : list of NodePair
        The factors of two nodes each, ``U`` of shape (m, r) and ``V`` of
        shape (n, r), ``r >= 1``, and whether each node's factors have
        orthogonal columns (recompressed nodes do).
    tol : float
        Relative drop tolerance of the singular values.
    xp : module, optional
        Unused (the arrays are NumPy's); kept for the contract's signature.

    Returns
    -------
    list of MergedNode
        ``(U, V, None, rank)`` for a low-rank result, ``(None, None, D, rank)``
        when factors of that rank would cost more than the dense (m, n) ``D``.
    """
    if len(pairs) == 1 and pairs[0].Ua.shape[1] + pairs[0].Ub.shape[1] < SERIAL_KERNEL_MIN_WIDTH:
        # one small pair: a kernel call (and its packing) costs more than the portable path
        return contract.portable("merge_pairs")(pairs, tol, _numpy.namespace())
    return _merge_pairs_kernel(pairs, tol)


def _merge_pairs_kernel(pairs, tol):
    """:func:`merge_pairs` through the kernels whatever the sizes (same parameters and result)."""
    Ua0, Va0 = pairs[0].Ua, pairs[0].Va
    m, n = Ua0.shape[0], Va0.shape[0]
    dtype = Ua0.dtype
    P = len(pairs)
    wa = max(p.Ua.shape[1] for p in pairs)
    wb = max(p.Ub.shape[1] for p in pairs)
    UA, VA = np.zeros((P, m, wa), dtype), np.zeros((P, n, wa), dtype)
    UB, VB = np.zeros((P, m, wb), dtype), np.zeros((P, n, wb), dtype)
    ra, rb = np.empty(P, np.int64), np.empty(P, np.int64)
    oa, ob = np.empty(P, np.bool_), np.empty(P, np.bool_)
    for p, (ua, va, orth_a, ub, vb, orth_b) in enumerate(pairs):
        ra[p], rb[p], oa[p], ob[p] = ua.shape[1], ub.shape[1], orth_a, orth_b
        UA[p, :, : ra[p]] = ua
        VA[p, :, : ra[p]] = va
        UB[p, :, : rb[p]] = ub
        VB[p, :, : rb[p]] = vb
    width = min(wa + wb, m, n)
    Uout, Vout = np.empty((P, m, width), dtype), np.empty((P, n, width), dtype)
    rout, dense = np.zeros(P, np.int64), np.zeros(P, np.bool_)
    kernel = _kernels().merge_pairs if P > 1 else _kernels().merge_pair_serial
    # one large pair keeps BLAS's threads: its SVD is the work, and they help it
    one_thread = P > 1 or wa + wb < THREADED_BLAS_MIN_WIDTH
    with _KERNEL_LOCK, _one_blas_thread() if one_thread else contextlib.nullcontext():
        kernel(UA, VA, ra, oa, UB, VB, rb, ob, float(tol), Uout, Vout, rout, dense)
    out = []
    for p, (ua, va, _, ub, vb, _) in enumerate(pairs):
        k = int(rout[p])
        if k < 0:
            # the kernel met an overflow: the portable path raises (or not) as NumPy does
            out.extend(contract.portable("merge_pairs")([pairs[p]], tol, _numpy.namespace()))
        elif dense[p]:
            out.append(MergedNode(None, None, ua @ va.T + ub @ vb.T, k))
        else:
            # copies, so that a node does not keep the whole padded batch alive
            out.append(MergedNode(Uout[p, :, :k].copy(), Vout[p, :, :k].copy(), None, k))
    return out


def accumulate_orders(Y0, U, Z, xp=None):
    """``out[0] = Y0``, ``out[k + 1] = out[k] + U[k] @ Z[k]``: NumPy's in-place path or a fused kernel.

    ``Y0`` (m, b), ``U`` (K, m, r), ``Z`` (K, r, b) -> (K + 1, m, b).  The
    fused parallel kernel runs only where :data:`FUSED_MIN_OUTPUT` and
    :data:`FUSED_MIN_BATCH` allow it (by default nowhere); elsewhere NumPy's
    in-place path (one GEMM per order into the output, then an in-place add),
    which measured faster.
    """
    import numba

    K, m, b = U.shape[0], Y0.shape[0], Y0.shape[1]
    if FUSED_MIN_OUTPUT is None or b < FUSED_MIN_BATCH or (K + 1) * m * b < FUSED_MIN_OUTPUT:
        return _numpy.accumulate_orders(Y0, U, Z)
    dtype = np.result_type(Y0.dtype, U.dtype, Z.dtype)
    args = [np.ascontiguousarray(a, dtype=dtype) for a in (Y0, U, Z)]
    with _KERNEL_LOCK:
        return _kernels().all_orders(*args, numba.get_num_threads())
