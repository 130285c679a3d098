"""CuPy backend (GPU).  Importing this module requires CuPy and a usable GPU."""


def namespace():
    try:
        import cupy
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError('the "cupy" backend needs CuPy: pip install "lowrank-tree[gpu]"') from exc
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise ImportError(f'the "cupy" backend needs a CUDA GPU: {exc}') from exc
    import array_api_compat.cupy as xp

    return xp


def asarray(x, dtype=None, device=None):
    import cupy

    if device is None:
        return cupy.asarray(x, dtype=dtype)
    with _device(device) as dev:
        if isinstance(x, cupy.ndarray) and x.device.id != dev.id:
            return cupy.array(x, dtype=dtype, copy=True)  # a peer copy to the current device
        return cupy.asarray(x, dtype=dtype)


def to_numpy(x):
    import cupy

    return cupy.asnumpy(x)


def make_rng(seed, device=None):
    import cupy

    if device is None:
        return cupy.random.default_rng(seed)
    with _device(device):
        return cupy.random.default_rng(seed)


def _device(device):
    """``cupy.cuda.Device`` of ``device`` (an id or a ``Device``, as ``array_api_compat.device`` gives)."""
    import cupy

    return cupy.cuda.Device(getattr(device, "id", device))


def standard_normal(rng, shape, dtype):
    import cupy

    dtype = cupy.dtype(dtype)
    if dtype.kind == "c":
        real = cupy.finfo(dtype).dtype
        z = rng.standard_normal(shape, dtype=real) + 1j * rng.standard_normal(shape, dtype=real)
        return (z / 2**0.5).astype(dtype)
    return rng.standard_normal(shape, dtype=dtype)


def linear_operator(shape, dtype, matvec, rmatvec, matmat):
    from cupyx.scipy.sparse.linalg import LinearOperator

    return LinearOperator(shape, matvec=matvec, rmatvec=rmatvec, matmat=matmat, dtype=dtype)


def prefix_sum(first, C):
    """``out[0] = first``, ``out[k + 1] = out[k] + C[k]``: one cumsum kernel on the device."""
    import cupy

    return cupy.concatenate([first[None, ...], first[None, ...] + cupy.cumsum(C, axis=0)], axis=0)


def synchronize():
    """Wait for the device: benchmarks time finished work, not queued kernels."""
    import cupy

    cupy.cuda.Device().synchronize()
