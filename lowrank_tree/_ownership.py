"""Who owns an array: the copy-on-construction and read-only-exposure rules.

Every object of the package owns the arrays it reads later: the constructors
(and :meth:`~lowrank_tree.LowRankSegmentTree.update` /
:meth:`~lowrank_tree.LowRankSegmentTree.append`) copy the caller's arrays, so
that writing to them afterwards cannot change a result.  The objects never
write to their own arrays after construction, so immutable objects may share
them (a ``LowRank`` passed to a tree, a cascade's factors in ``cascade.tree()``).

Arrays handed out (``tree.base``, ``LowRank.U``, ...) cannot be used to change
the object: on NumPy (the ``numpy`` and ``numba`` backends) they are read-only
views, which cost no copy; libraries without read-only arrays
(``array_api_strict``, CuPy, PyTorch) get a copy.  The backend module decides, through
its ``read_only`` operation.
"""

import contextlib
import contextvars

from .backends import backend_name, get_func, is_array

#: ids of arrays the current thread's constructor call may take without a copy
#: (set only by internal callers that pass arrays of an immutable object).
_ADOPTED: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar("lowrank_tree_adopted", default=frozenset())


@contextlib.contextmanager
def adopting(*arrays):
    """Let constructors called inside the block share ``arrays`` instead of copying them.

    Only for arrays that nobody can ever write to: the private arrays of an
    immutable object (a cascade's base, a ``LowRank``'s factors).
    """
    token = _ADOPTED.set(_ADOPTED.get() | {id(a) for a in arrays})
    try:
        yield
    finally:
        _ADOPTED.reset(token)


def take(x, src, dtype, xp):
    """``x`` in ``dtype``, in memory that no caller can write to.

    Parameters
    ----------
    x : array
        The validated form of the caller's argument ``src`` (``src`` itself,
        or a conversion of it).
    src : object or None
        What the caller passed; None when ``x`` belongs to an immutable
        object (a ``LowRank``'s factor) and may be shared.
    dtype
        The dtype the object stores.
    xp : module
        Array namespace of ``x``.

    Returns
    -------
    array
        A copy, unless ``x`` is already a fresh array (a dtype or library
        conversion of the caller's array) or ``src`` was adopted: one copy at
        most, never a second.
    """
    # a conversion of an array or of a Python sequence is a new array; anything
    # else (an object with __array__, say) may hand out memory it keeps
    converted = x is not src and (is_array(src) or isinstance(src, (list, tuple)))
    fresh = src is None or converted or id(src) in _ADOPTED.get()
    return xp.astype(x, dtype, copy=not fresh)


def copy_of(a):
    """Portable ``read_only``: a copy (for libraries without read-only arrays)."""
    import array_api_compat

    return array_api_compat.array_namespace(a).asarray(a, copy=True)


def exposed(a, xp):
    """What a property hands out for the internal array ``a``: a read-only view or a copy."""
    return get_func("read_only", backend_name(xp), default=copy_of)(a)
