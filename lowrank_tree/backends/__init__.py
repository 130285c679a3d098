"""Array-library backends.

The algorithm modules (:mod:`lowrank_tree.factor`, :mod:`lowrank_tree.fit`,
:mod:`lowrank_tree.tree`, :mod:`lowrank_tree.diagnostics`) never import an array
library.  They receive an array namespace (``xp``) from :func:`namespace_of` and
ask :func:`get_func` for the few operations the array API standard does not
cover (random numbers, host transfer, ``LinearOperator``).  One small module per
library implements those operations, in the manner of ``opt_einsum.backends``.
"""

from .dispatch import (
    BACKENDS,
    backend_name,
    get_func,
    is_array,
    library_of,
    namespace_for,
    namespace_of,
    unavailable_reason,
)

__all__ = ["BACKENDS", "backend_name", "get_func", "is_array", "library_of", "namespace_for", "namespace_of",
           "unavailable_reason"]
