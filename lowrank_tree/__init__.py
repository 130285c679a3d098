"""lowrank-tree: an evolving family of matrices as one base plus cascaded low-rank corrections.

Public API
----------
LowRank
    The matrix ``U @ V.T`` in factored form.
cascade_fit, Cascade
    Fit ``W_0`` and corrections ``Δ_1..Δ_K`` to a matrix family ``M_0..M_K``.
LowRankSegmentTree
    Query, range-query, update and append on the corrections in ``O(log K)``.
difference_profile
    Numerical rank profile of finite differences of a matrix sequence.
save, load
    Versioned ``.npz`` + JSON persistence of trees and cascades.
"""

from .factor import LowRank
from .tree import LowRankSegmentTree, NodeInfo

__version__ = "0.1.0"

__all__ = ["LowRank", "LowRankSegmentTree", "NodeInfo", "__version__"]
