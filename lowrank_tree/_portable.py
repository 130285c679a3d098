"""Portable kernels: the optional backend operations, written once against the array API.

A backend that does not override an optional operation of
:mod:`lowrank_tree.backends.contract` runs the function of the same contract
here; a backend that overrides one may still hand part of the work back
through :func:`lowrank_tree.backends.contract.portable`.
"""

from ._norms import largest_term
from .backends import backend_name, device_of, operations
from .backends.contract import MergedNode
from .factor import _kept_rank, recompress

__all__ = [
    "accumulate_orders",
    "apply_factors",
    "orth_columns",
    "recompress_pairs",
    "svd_wide",
    "synchronize",
    "update_node",
]


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


def update_node(U, V, A, B, tol, xp):
    """Portable ``update_node``: the recompressed ``U Vᵀ + A Bᵀ`` of a recompressed node.

    ``U`` (m, r) has orthogonal columns and ``V`` (n, r) orthonormal ones (a
    node recompressed before); ``A`` (m, p) and ``B`` (n, p) are the change,
    with ``r + p <= min(m, n)``.  The columns of ``A`` and ``B`` are
    orthogonalised against the node's bases (classical Gram-Schmidt run twice,
    then a QR of the ``p`` remaining columns), so the only large
    factorisation is the SVD of the ``(r + p) × (r + p)`` core: ``O((m + n)(r + p)²
    + (r + p)³)`` without the QRs of the stacked factors that a merge of the
    children needs.  Singular values ``<= tol * max(sigma_max, t_max)`` are
    dropped, ``t_max`` the largest rank-one term of the node and the change,
    as in :func:`~lowrank_tree.factor.recompress`.

    Returns
    -------
    MergedNode
        ``(U, V, None, rank)``, or ``(None, None, D, rank)`` once factors of
        that rank would cost more than the dense ``D`` (``rank (m + n) >= m n``).
    """
    (m, r), n, p = U.shape, V.shape[0], A.shape[1]
    if p == 0:
        return MergedNode(U, V, None, r)
    s = xp.linalg.vector_norm(U, axis=0)
    s_safe = xp.where(s > 0, s, xp.ones_like(s))
    Qu = U / xp.astype(s_safe, U.dtype)[None, :]
    Qu2, Pu, Ru = _extend_basis(Qu, A, xp)
    Qv2, Pv, Rv = _extend_basis(V, B, xp)
    dt, dev = U.dtype, device_of(U)
    # [U A] = [Qu Qu2] Cu and [V B] = [V Qv2] Cv, with block upper-triangular C
    Cu = xp.concat(
        [
            xp.concat([xp.eye(r, dtype=dt, device=dev) * xp.astype(s, dt)[None, :], Pu], axis=1),
            xp.concat([xp.zeros((p, r), dtype=dt, device=dev), Ru], axis=1),
        ],
        axis=0,
    )
    Cv = xp.concat(
        [
            xp.concat([xp.eye(r, dtype=dt, device=dev), Pv], axis=1),
            xp.concat([xp.zeros((p, r), dtype=dt, device=dev), Rv], axis=1),
        ],
        axis=0,
    )
    P, sig, Wh = xp.linalg.svd(Cu @ xp.matrix_transpose(Cv), full_matrices=False)
    k = _kept_rank(sig, tol, None, xp, scale=largest_term(Cu, Cv, xp))
    Pk = P[:, :k] * xp.astype(sig[:k], dt)[None, :]
    Wk = xp.matrix_transpose(Wh[:k, :])
    U_new = Qu @ Pk[:r, :] + Qu2 @ Pk[r:, :]
    V_new = V @ Wk[:r, :] + Qv2 @ Wk[r:, :]
    if k * (m + n) >= m * n:
        return MergedNode(None, None, U_new @ xp.matrix_transpose(V_new), k)
    return MergedNode(U_new, V_new, None, k)


def _extend_basis(Q, A, xp):
    """``A = Q P + Q2 R`` with ``[Q Q2]`` orthonormal: CGS twice, then a QR of the rest."""
    Qh = xp.conj(xp.matrix_transpose(Q))
    P = Qh @ A
    rest = A - Q @ P
    P2 = Qh @ rest  # the second pass restores orthogonality lost to cancellation
    rest = rest - Q @ P2
    Q2, R = xp.linalg.qr(rest)
    return Q2, P + P2, R


def apply_factors(W, U, V, X, xp):
    """Portable ``apply_factors``: ``W @ X + U @ (V.T @ X)``; ``W`` may be None.

    ``X`` may have another dtype than the factors: ``xp.matmul`` promotes
    (torch's ``@`` does not).
    """
    Y = xp.matmul(W, X) if W is not None else None
    if U.shape[1]:
        low = xp.matmul(U, xp.matmul(xp.matrix_transpose(V), X))
        Y = low if Y is None else Y + low
    if Y is None:
        Y = xp.zeros((U.shape[0], X.shape[1]), dtype=xp.result_type(U.dtype, X.dtype), device=device_of(X))
    return Y


def accumulate_orders(Y0, U, Z, xp):
    """Portable ``accumulate_orders``: ``out[0] = Y0``, ``out[k + 1] = out[k] + U[k] @ Z[k]``.

    One batched GEMM, then the backend's ``prefix_sum``; shapes ``Y0`` (m, b),
    ``U`` (K, m, r), ``Z`` (K, r, b) -> (K + 1, m, b).
    """
    return operations(backend_name(xp)).prefix_sum(Y0, xp.matmul(U, Z))


def orth_columns(Y, xp):
    """Portable ``orth_columns``: the ``Q`` of ``xp.linalg.qr(Y)`` (Householder), shape (m, k) for ``Y`` (m, k)."""
    return xp.linalg.qr(Y)[0]


def svd_wide(B, xp):
    """Portable ``svd_wide``: ``xp.linalg.svd(B, full_matrices=False)`` for ``B`` (l, n), ``l <= n``."""
    return xp.linalg.svd(B, full_matrices=False)


def synchronize():
    """Portable ``synchronize``: nothing to wait for (work runs when it is called)."""
