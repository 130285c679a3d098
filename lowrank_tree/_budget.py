"""Rank allocation of ``cascade_fit(budget=...)``: a parameter budget spread over the orders.

Every order's first differences ``M_k − M_{k−1}`` are sketched once; the
budget's rank units go to the directions of largest weighted gain across all
orders (a greedy choice over a sorted list of gains).  The cascade then fits
with those ranks and corrects what propagates from one order to the next.
"""

import math

from ._norms import comfortable, fro_norm, max_abs, pow2_exponent, scale_pow2
from ._randomized import Sketcher, fixed_rank_qb
from ._threads import small_blas
from ._validation import lossless_fit_tol
from .backends import device_of, get_func

__all__ = ["allocate_budget"]


def allocate_budget(mats, budget, xp, method, opts, *, one_blas_thread):
    """Ranks ``r_1..r_K`` with ``Σ r_k (m + n) <= budget`` by weighted marginal gain.

    Parameters
    ----------
    mats : list of array, length K + 1
        Validated ``M_0..M_K``, each (m, n).
    budget : int
        Parameter budget of the corrections (``>= 0``).
    xp : module
        Array namespace.
    method : {'exact', 'randomized'}
        The fit's SVD method (``'auto'`` already resolved).
    opts : dict
        ``oversample``, ``power_iters`` and ``seed`` of the fit.
    one_blas_thread : bool
        Run the SVDs with one BLAS thread (the fit's policy for small matrices).

    Returns
    -------
    list of int, length K
        ``r_k`` is the number of the largest weighted gains ``σ_j(M_k − M_{k−1})² w_k``
        that order ``k`` holds, ``w_k = Σ_{i>=k} 1 / ‖M_i‖²``.
    """
    K = len(mats) - 1
    m, n = mats[0].shape
    units = budget // (m + n) if m + n else 0
    if K == 0 or units == 0 or min(m, n) == 0:
        return [0] * K
    sketch = Sketcher(xp, opts["seed"], device_of(mats[0]))
    to_host = get_func("to_numpy", sketch.backend)
    # Gains σ² w are compared with each other only, so they are formed
    # relative to ref = 2**e_ref, the scale of the largest ‖M_k‖: no square
    # of a raw norm or singular value (they under/overflow at extreme scales).
    norms = [fro_norm(M, xp) for M in mats[1:]]
    top = max(norms)
    e_ref = pow2_exponent(top) if 0.0 < top < float("inf") else 0
    inv2 = []
    for nm in norms:
        if nm > 0:
            ratio = math.ldexp(nm, -e_ref)  # ‖M_k‖ / ref, 0 only when below the float64 range
            q = 1.0 / ratio if ratio > 0 else math.inf
            inv2.append(q * q)
        else:
            inv2.append(_ldexp_or_inf(1.0, 2 * e_ref))  # absolute error when M_k = 0
    weights = [sum(inv2[k:]) for k in range(K)]  # w_k = ref² Σ_{i>=k} 1/‖M_i‖²
    gains = []
    for k in range(1, K + 1):
        dt = xp.result_type(mats[k].dtype, mats[k - 1].dtype)
        Mk, Mp = xp.astype(mats[k], dt, copy=False), xp.astype(mats[k - 1], dt, copy=False)
        D = Mk - Mp
        norm_d = fro_norm(D, xp)
        e = 0
        if not comfortable(max(norms[k - 1], norm_d), xp, dt, m * n):
            # rare: work on 2**-e (M_k, M_{k-1}), exactly as at unit scale
            big = max(norms[k - 1], norm_d)
            if not big < float("inf"):
                big = max(max_abs(Mk, xp), max_abs(Mp, xp))
            e = pow2_exponent(big)
            D = scale_pow2(Mk, -e, xp) - scale_pow2(Mp, -e, xp)
            norm_d = fro_norm(D, xp)
        if norm_d == 0.0:
            continue
        take = min(units, min(m, n))
        with small_blas(one_blas_thread):
            if method == "randomized" and take + opts["oversample"] <= min(m, n) // 2:
                _, B = fixed_rank_qb(
                    D,
                    take,
                    xp,
                    sketch.rng,
                    sketch.backend,
                    oversample=opts["oversample"],
                    power_iters=opts["power_iters"],
                )
                s = xp.linalg.svdvals(B)
            else:
                s = xp.linalg.svdvals(D)
        floor = lossless_fit_tol(xp, dt, (m, n)) * max(math.ldexp(norms[k - 1], -e), norm_d)
        w = weights[k - 1]
        shift = e - e_ref  # σ_true / ref = σ · 2**shift
        for j, sv in enumerate(to_host(s[:take]).tolist()):
            if sv <= floor:
                break
            t = _ldexp_or_inf(sv, shift)
            gain = t * t * w
            if math.isnan(gain):  # 0 · inf: a direction too small for float64 of an order weighted infinitely
                gain = math.inf
            # Sort key: gain descending, then earlier order first on ties.
            gains.append((-gain, k, j))
    gains.sort()
    ranks = [0] * K
    for _, k, _ in gains[:units]:
        ranks[k - 1] += 1
    return ranks


def _ldexp_or_inf(x, e):
    try:
        return math.ldexp(x, e)
    except OverflowError:
        return float("inf")
