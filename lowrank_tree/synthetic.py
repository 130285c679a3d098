"""Synthetic evolving matrix families with known structure (demo, tests, benchmarks)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._typing import Seed
from ._validation import check_int, check_real, check_seed

if TYPE_CHECKING:
    import numpy as np

__all__ = ["synthetic_evolution"]


def synthetic_evolution(
    *,
    K: int = 64,
    m: int = 256,
    n: int = 256,
    terms: int = 3,
    rank: int = 2,
    drift_rank: int = 1,
    noise: float = 1e-9,
    seed: Seed = 0,
    dtype: Any = "float64",
) -> np.ndarray:
    """A family ``M_0..M_K`` that moves along a polynomial path plus a slow drift.

    ``M_k = W(t_k) + Σ_{i<=k} a_i b_iᵀ + ε_k`` with
    ``W(t) = W_0 + Σ_{j=1..J} t^j / j! · U_j V_jᵀ`` sampled at ``t_k = k / K``
    (``J = terms``, each ``U_j V_jᵀ`` of rank ``rank``), a fresh rank-``drift_rank``
    drift per order, and i.i.d. Gaussian noise ``ε_k`` of relative size ``noise``.

    The first differences are low-rank (at most ``terms·rank + drift_rank`` plus
    noise) and all share the column space of the ``U_j``: a cascade fits each
    order with a small rank and the segment tree's internal nodes stay small.

    Parameters
    ----------
    K : int
        Highest order (the family has ``K + 1`` matrices).
    m, n : int
        Matrix shape.
    terms : int
        Number of polynomial terms ``J``.
    rank : int
        Rank of each polynomial term.
    drift_rank : int
        Rank of the per-order drift (0 for none).
    noise : float
        Noise level relative to the entries of ``W_0``.
    seed : int
        Random seed.
    dtype : str or numpy dtype
        float32, float64 (default), complex64 or complex128.

    Returns
    -------
    numpy.ndarray, shape (K + 1, m, n)

    Raises
    ------
    ValueError
        A negative ``K``, ``m``, ``n``, ``terms``, ``rank``, ``drift_rank`` or
        ``seed``; a negative or non-finite ``noise``.
    TypeError
        A non-integer size or rank, a ``seed`` that is not an integer or a
        generator, a ``dtype`` other than the four above.

    See Also
    --------
    cascade_fit : Fits a cascade to the family.
    numerical_difference_profile : Shows the rank structure built into it.

    Examples
    --------
    >>> import numpy as np
    >>> M = synthetic_evolution(K=4, m=12, n=10, noise=0.0)
    >>> M.shape
    (5, 12, 10)
    >>> [int(np.linalg.matrix_rank(M[k + 1] - M[k])) for k in range(4)]
    [7, 7, 7, 7]
    """
    import numpy as np  # lazily: the package imports without NumPy (see tests/test_package.py)

    K = check_int(K, "K", 0)
    m, n = check_int(m, "m", 0), check_int(n, "n", 0)
    terms, rank = check_int(terms, "terms", 0), check_int(rank, "rank", 0)
    drift_rank = check_int(drift_rank, "drift_rank", 0)
    noise = check_real(noise, "noise", low=0.0)
    seed = check_seed(seed, backend="numpy")
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        out_dtype = None
    if out_dtype not in (np.float32, np.float64, np.complex64, np.complex128):
        raise TypeError(f"dtype must be float32, float64, complex64 or complex128, got {dtype!r}")
    rng = np.random.default_rng(seed)
    W0 = rng.standard_normal((m, n))
    scale = 1.0 / math.sqrt(max(rank, 1) * max(terms, 1))
    Us = [scale * rng.standard_normal((m, rank)) for _ in range(terms)]
    Vs = [rng.standard_normal((n, rank)) for _ in range(terms)]
    out = np.empty((K + 1, m, n), dtype=out_dtype)
    drift = np.zeros((m, n))
    for k in range(K + 1):
        t = k / K if K else 0.0
        W = W0.copy()
        for j, (U, V) in enumerate(zip(Us, Vs), start=1):
            W += (t**j / math.factorial(j)) * (U @ V.T)
        if k and drift_rank:
            drift += 0.1 / math.sqrt(K) * rng.standard_normal((m, drift_rank)) @ rng.standard_normal((n, drift_rank)).T
        out[k] = W + drift + noise * rng.standard_normal((m, n))
    return out
