"""Type aliases of the public API.

The core is written against the array API standard, so one function takes
and returns NumPy, CuPy or array_api_strict arrays alike; no static type
describes "an array of whichever library the backend uses", so these aliases
are ``Any`` and say in words what is expected.
"""

from __future__ import annotations

import os
from typing import Any, TypeAlias

#: An array of the backend's library (``numpy.ndarray``, ``cupy.ndarray``,
#: an ``array_api_strict`` array, ...).  Results are always of this kind.
Array: TypeAlias = Any

#: Anything the backend's ``asarray`` accepts: an :data:`Array`, a nested
#: sequence of numbers, a NumPy array for a GPU backend.
ArrayLike: TypeAlias = Any

#: A correction ``Δ``: a :class:`~lowrank_tree.LowRank`, a ``(U, V)`` pair of
#: factors, or a dense (m, n) array.
CorrectionLike: TypeAlias = Any

#: A file name: ``str`` or an ``os.PathLike``.
PathLike: TypeAlias = "str | os.PathLike[str]"

#: Seed of the random sketches: ``None``, an ``int`` or a ``numpy.random.Generator``.
Seed: TypeAlias = Any

__all__ = ["Array", "ArrayLike", "CorrectionLike", "PathLike", "Seed"]
