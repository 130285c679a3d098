"""array_api_strict backend, used to prove the core is portable.

Random numbers are drawn by NumPy on the host and copied in; there is no
SciPy operator for strict arrays.
"""

import numpy as np

from . import _numpy


def namespace():
    import array_api_strict as xp

    return xp


def asarray(x, dtype=None, device=None):
    xp = namespace()
    if isinstance(x, np.ndarray) or not hasattr(x, "__array_namespace__"):
        return xp.asarray(np.asarray(x), dtype=dtype, device=device)
    if device is not None and x.device != device:
        x = x.to_device(device)
    return xp.asarray(x, dtype=dtype)


def to_numpy(x):
    return np.asarray(x) if not hasattr(x, "__array_namespace__") else np.from_dlpack(x)


def make_rng(seed, device=None):
    """A NumPy generator that remembers ``device``: the samples are drawn on the host and copied there."""
    return _DeviceRng(np.random.default_rng(seed), device)


class _DeviceRng:
    __slots__ = ("rng", "device")

    def __init__(self, rng, device):
        self.rng, self.device = rng, device


def standard_normal(rng, shape, dtype):
    xp = namespace()
    np_dtype = np.dtype(str(dtype).split(".")[-1]) if not isinstance(dtype, np.dtype) else dtype
    return xp.asarray(_numpy.standard_normal(rng.rng, shape, np_dtype), device=rng.device)


def prefix_sum(first, C):
    """``out[0] = first``, ``out[k + 1] = out[k] + C[k]`` with the standard's cumulative_sum."""
    xp = namespace()
    return xp.concat([first[None, ...], first[None, ...] + xp.cumulative_sum(C, axis=0)], axis=0)
