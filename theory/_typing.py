"""Type aliases of the public API.

SymPy publishes no type information, and the engine accepts many spellings of
a matrix over ℚ(t), so these aliases are ``Any`` and say in words what is
expected.
"""

from __future__ import annotations

from typing import Any, TypeAlias

#: A matrix over ℚ(t) in any form the engine accepts: a SymPy matrix, a 2-D
#: SymPy array, a ``DomainMatrix``, a nested sequence of expressions, or a
#: :class:`~theory.RationalMatrix`.
MatrixLike: TypeAlias = Any

#: A SymPy matrix (``Matrix`` or ``ImmutableMatrix``).
Matrix: TypeAlias = Any

#: A ``sympy.Symbol``.
Symbol: TypeAlias = Any

#: A SymPy expression (an entry of a matrix, a polynomial).
Expr: TypeAlias = Any
