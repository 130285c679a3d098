"""lowrank-tree: an evolving family of matrices as one base plus cascaded low-rank corrections.

Public API
----------
LowRank
    The matrix ``U @ V.T`` in factored form.
cascade_fit, Cascade
    Fit ``W_0`` and corrections ``Δ_1..Δ_K`` to a matrix family ``M_0..M_K``.
LowRankSegmentTree
    Query, range-query, update and append on the corrections in ``O(log K)``.
numerical_difference_profile, direct_sum_check
    Numerical rank profile of finite differences of a matrix sequence, and the
    direct-sum test of the first differences' column or row spaces.
assumption_test, AssumptionTest
    Whether a family's first differences are of lower rank than null models
    (random walks with the same step sizes) would give.
fit_checkpoints, CheckpointFamily
    Every 2-D parameter of a run's checkpoints (state dicts or
    ``.safetensors`` / ``.npz`` / ``.pt`` files) as one cascade each.
save, load
    Versioned ``.npz`` + JSON persistence of trees and cascades.
synthetic_evolution
    A built-in evolving family with known structure.
"""

from ._version import __version__
from .checkpoints import CheckpointFamily, fit_checkpoints
from .diagnostics import (
    AssumptionTest,
    DifferenceProfile,
    assumption_test,
    direct_sum_check,
    numerical_difference_profile,
)
from .factor import LowRank
from .fit import Cascade, cascade_fit
from .io import load, save
from .synthetic import synthetic_evolution
from .tree import LowRankSegmentTree, NodeInfo

__all__ = [
    "AssumptionTest",
    "Cascade",
    "CheckpointFamily",
    "DifferenceProfile",
    "LowRank",
    "LowRankSegmentTree",
    "NodeInfo",
    "__version__",
    "assumption_test",
    "cascade_fit",
    "direct_sum_check",
    "fit_checkpoints",
    "load",
    "numerical_difference_profile",
    "save",
    "synthetic_evolution",
]
