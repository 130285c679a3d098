"""Portable kernels: the optional backend operations, written once against the array API.

A backend that does not override an optional operation of
:mod:`lowrank_tree.backends.contract` runs the function of the same contract
here; a backend that overrides one may still hand part of the work back
through :func:`lowrank_tree.backends.contract.portable`.
"""

from .backends import backend_name, operations
from .backends.contract import MergedNode
from .factor import recompress

__all__ = ["accumulate_orders", "apply_factors", "recompress_pairs", "synchronize"]


def recompress_pairs(pairs, tol, xp):
    """Portable ``merge_pairs``: one :func:`~lowrank_tree.factor.recompress` per pair.

    Parameters
    ----------
    pairs : list of NodePair
        Factors of two nodes each (the ``orth`` flags are not used here).
    tol : float
        Relative drop tolerance.
    xp : module
        Array namespace.

    Returns
    -------
    list of MergedNode
        ``(U, V, None, rank)``, or ``(None, None, D, rank)`` once factors of
        that rank would cost more than the dense ``D`` (``rank (m + n) >= m n``).
    """
    out = []
    for p in pairs:
        U, V, _ = recompress(xp.concat([p.Ua, p.Ub], axis=1), xp.concat([p.Va, p.Vb], axis=1), xp, tol=tol)
        (m, r), n = U.shape, V.shape[0]
        if r * (m + n) >= m * n:
            out.append(MergedNode(None, None, U @ xp.matrix_transpose(V), r))
        else:
            out.append(MergedNode(U, V, None, r))
    return out


def apply_factors(W, U, V, X, xp):
    """Portable ``apply_factors``: ``W @ X + U @ (V.T @ X)``; ``W`` may be None."""
    Y = W @ X if W is not None else None
    if U.shape[1]:
        low = U @ (xp.matrix_transpose(V) @ X)
        Y = low if Y is None else Y + low
    if Y is None:
        Y = xp.zeros((U.shape[0], X.shape[1]), dtype=xp.result_type(U.dtype, X.dtype))
    return Y


def accumulate_orders(Y0, U, Z, xp):
    """Portable ``accumulate_orders``: ``out[0] = Y0``, ``out[k + 1] = out[k] + U[k] @ Z[k]``.

    One batched GEMM, then the backend's ``prefix_sum``; shapes ``Y0`` (m, b),
    ``U`` (K, m, r), ``Z`` (K, r, b) -> (K + 1, m, b).
    """
    return operations(backend_name(xp)).prefix_sum(Y0, U @ Z)


def synchronize():
    """Portable ``synchronize``: nothing to wait for (work runs when it is called)."""
