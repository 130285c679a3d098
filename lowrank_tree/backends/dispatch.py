"""Namespace resolution and per-backend function lookup.

``namespace_of(*arrays)`` returns the array-API namespace shared by the inputs
(through :mod:`array_api_compat`) and refuses to mix libraries.
``operations(backend)`` resolves every operation of the backend contract
(:mod:`lowrank_tree.backends.contract`) once: what the backend module
provides, else the declared portable version.  ``get_func(name, backend)``
looks up a single operation, cached like ``opt_einsum.backends.dispatch.get_func``.
"""

import functools
import importlib

import array_api_compat

from .contract import BACKENDS, OPERATIONS, portable


def backend_name(xp):
    """Name of the backend behind namespace ``xp`` (looked up once per namespace).

    Parameters
    ----------
    xp : module
        An array namespace as returned by :func:`namespace_of`.

    Returns
    -------
    str
        One of the keys of :data:`BACKENDS`.

    Examples
    --------
    >>> import numpy as np
    >>> backend_name(namespace_of(np.ones(2)))
    'numpy'
    """
    try:
        return _backend_name(xp)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        return _backend_name.__wrapped__(xp)


@functools.lru_cache(maxsize=32)
def _backend_name(xp):
    # called several times per order of a fit: the namespace tests cost more than the arithmetic
    for name in BACKENDS:
        # the first backend whose library owns xp ('numba' shares NumPy's and has no test)
        is_namespace = getattr(array_api_compat, f"is_{name}_namespace", None)
        if is_namespace is not None and is_namespace(xp):
            return name
    raise TypeError(f"unsupported array namespace {getattr(xp, '__name__', xp)!r}; expected one of {sorted(BACKENDS)}")


def namespace_of(*arrays, names=None):
    """Array-API namespace shared by ``arrays``.

    Python scalars, lists and ``None`` are ignored; if no array remains the
    NumPy namespace is returned.

    Parameters
    ----------
    *arrays : array_like
        Arrays of one library (NumPy, CuPy, PyTorch, array_api_strict), on
        one device.
    names : sequence of str, optional
        Argument names used in the error message when libraries or devices
        are mixed.

    Returns
    -------
    module
        The (compat-wrapped) namespace.

    Raises
    ------
    TypeError
        If the arrays come from more than one array library, or sit on more
        than one device (a CPU and a CUDA tensor, say).

    Examples
    --------
    >>> import numpy as np
    >>> namespace_of(np.ones(3), np.zeros((2, 2))).__name__
    'array_api_compat.numpy'
    """
    present = [(i, a) for i, a in enumerate(arrays) if _is_array(a)]
    if not present:
        return namespace_for("numpy")
    spaces, devices = {}, {}
    for i, a in present:
        xp = array_api_compat.array_namespace(a)
        label = names[i] if names is not None and i < len(names) else f"argument {i}"
        spaces.setdefault(xp, []).append(label)
        devices.setdefault(str(device_of(a)), []).append(label)
    if len(spaces) > 1:
        detail = "; ".join(f"{', '.join(v)} from {backend_name(k)}" for k, v in spaces.items())
        raise TypeError(f"mixed array libraries ({detail}); expected all arrays from one library")
    if len(devices) > 1:
        detail = "; ".join(f"{', '.join(v)} on {k}" for k, v in devices.items())
        raise TypeError(f"arrays on more than one device ({detail}); expected all arrays on one device")
    return next(iter(spaces))


def device_of(x):
    """The device of array ``x`` (``'cpu'`` for NumPy), as ``array_api_compat.device`` gives it.

    Examples
    --------
    >>> import numpy as np
    >>> device_of(np.ones(2))
    'cpu'
    """
    return array_api_compat.device(x)


@functools.lru_cache(maxsize=None)
def namespace_for(backend):
    """Array-API namespace for a backend name.

    Parameters
    ----------
    backend : {'numpy', 'numba', 'cupy', 'torch', 'array_api_strict'}
        Backend name.  ``'numba'`` uses NumPy arrays (the NumPy namespace).

    Returns
    -------
    module

    Raises
    ------
    ValueError
        If ``backend`` is not a known name.
    ImportError
        If the library is not installed (or, for CuPy, no GPU is usable).
        ``'torch'`` needs PyTorch, not a GPU: its tensors may live on the CPU.

    Examples
    --------
    >>> namespace_for("numpy").__name__
    'array_api_compat.numpy'
    """
    _check_backend(backend)
    return get_func("namespace", backend)()


@functools.lru_cache(maxsize=None)
def _backend_module(backend):
    _check_backend(backend)
    return importlib.import_module(BACKENDS[backend], __package__)


@functools.lru_cache(maxsize=None)
def get_func(name, backend="numpy", default=None):
    """Backend implementation of operation ``name`` (cached).

    Parameters
    ----------
    name : str
        Operation name, e.g. ``'standard_normal'``, ``'to_numpy'``,
        ``'asarray'``, ``'linear_operator'``.
    backend : str
        Backend name (see :data:`BACKENDS`).
    default : callable, optional
        Returned when the backend has no specialised implementation: the
        algorithm modules pass their portable array-API version, and a
        backend module overrides only what it does better (the Numba kernels).

    Returns
    -------
    callable

    Raises
    ------
    NotImplementedError
        If the backend lacks ``name`` and no ``default`` is given.

    Examples
    --------
    >>> get_func("to_numpy", "numpy")([1.0, 2.0])
    array([1., 2.])
    >>> get_func("merge_pairs", "numpy", default=len) is len
    True
    """
    module = _backend_module(backend)
    try:
        return getattr(module, name)
    except AttributeError:
        if default is not None:
            return default
        raise NotImplementedError(f"operation {name!r} is not available for backend {backend!r}") from None


class Operations:
    """The contract's operations resolved for one backend (see :func:`operations`).

    One attribute per operation of :data:`~lowrank_tree.backends.contract.OPERATIONS`:
    the backend module's function, else the declared portable version, else
    None (an optional operation with no portable version, such as
    ``linear_operator`` on ``array_api_strict``: the feature is unavailable).

    Attributes
    ----------
    backend : str
        The backend name.
    """

    __slots__ = ("backend",) + tuple(op.name for op in OPERATIONS)

    def __init__(self, backend, module):
        self.backend = backend
        for op in OPERATIONS:
            fn = getattr(module, op.name, None)
            if fn is None and op.required:
                raise NotImplementedError(f"backend {backend!r} lacks the required operation {op.signature}")
            setattr(self, op.name, fn if fn is not None else portable(op.name))

    def __repr__(self):
        return f"Operations(backend={self.backend!r})"


@functools.lru_cache(maxsize=None)
def operations(backend):
    """Every contract operation of ``backend``, resolved once (cached).

    Parameters
    ----------
    backend : str
        Backend name (see :data:`BACKENDS`).

    Returns
    -------
    Operations
        The backend module's functions, the portable versions where it
        provides none.

    Raises
    ------
    ValueError
        If ``backend`` is not a known name.

    Examples
    --------
    >>> ops = operations("numpy")
    >>> ops.merge_pairs.__name__, ops.to_numpy([1.0, 2.0])
    ('recompress_pairs', array([1., 2.]))
    >>> operations("numba").merge_pairs.__module__
    'lowrank_tree.backends._numba'
    """
    return Operations(backend, _backend_module(backend))


def unavailable_reason(backend):
    """Why ``backend`` cannot run on this machine, or None when it can.

    Parameters
    ----------
    backend : str
        Backend name (see :data:`BACKENDS`).

    Returns
    -------
    str or None
        The ``ImportError`` message (library not installed; for CuPy, no
        usable CUDA GPU), or None.

    Examples
    --------
    >>> unavailable_reason("numpy") is None
    True
    """
    try:
        namespace_for(backend)
    except ImportError as exc:
        return str(exc)
    return None


def is_array(x):
    """Whether ``x`` is an array of a supported library (not a list or scalar)."""
    return _is_array(x)


def library_of(x):
    """Backend name of array ``x``."""
    return backend_name(array_api_compat.array_namespace(x))


def _check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")


def _is_array(a):
    return a is not None and array_api_compat.is_array_api_obj(a)
