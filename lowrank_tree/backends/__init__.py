"""Array-library backends.

The algorithm modules (:mod:`lowrank_tree.factor`, :mod:`lowrank_tree.fit`,
:mod:`lowrank_tree.tree`, :mod:`lowrank_tree.diagnostics`) never import an array
library.  They receive an array namespace (``xp``) from :func:`namespace_of` and
the few operations the array API standard does not cover (random numbers, host
transfer, ``LinearOperator``, and the kernels a backend may replace) from
:func:`operations` or :func:`get_func`.  One small module per library
implements those operations, in the manner of ``opt_einsum.backends``; which
operations exist, which are required and what data they exchange is declared
in :mod:`lowrank_tree.backends.contract`.
"""

from .contract import MergedNode, NodePair
from .dispatch import (
    BACKENDS,
    Operations,
    backend_name,
    device_of,
    get_func,
    is_array,
    library_of,
    namespace_for,
    namespace_of,
    operations,
    unavailable_reason,
)

__all__ = [
    "BACKENDS",
    "MergedNode",
    "NodePair",
    "Operations",
    "backend_name",
    "device_of",
    "get_func",
    "is_array",
    "library_of",
    "namespace_for",
    "namespace_of",
    "operations",
    "unavailable_reason",
]
