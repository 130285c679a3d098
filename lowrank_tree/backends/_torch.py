"""PyTorch backend: torch tensors on any device (CPU, CUDA) through ``array_api_compat.torch``.

The portable core runs on the tensors where they are; results stay on the
input's device.  Importing this module does not import torch (every function
imports it when called), so that ``import lowrank_tree`` never needs it.

What torch lacks, and what is done instead:

* read-only tensors: objects hand out copies of their own tensors (the
  portable ``read_only``), as on CuPy;
* a SciPy ``LinearOperator`` for device tensors: there is none, so
  ``LowRankSegmentTree.operator`` is unavailable on this backend (use
  ``query``);
* tensors that require gradients are refused by the input checks (the
  inference objects never differentiate; ``lowrank_tree.torch`` has the
  trainable layer), so no tensor here carries autograd history.
"""


def namespace():
    try:
        import torch  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError('the "torch" backend needs PyTorch: pip install torch (or "lowrank-tree[torch]")') from exc
    import array_api_compat.torch as xp

    return xp


def asarray(x, dtype=None, device=None):
    """A tensor from a tensor (same memory where no conversion is asked), any other array or a sequence.

    Arrays of other libraries (NumPy, CuPy, ...) and sequences are always
    copied, so that the result never aliases memory the caller may write to.
    Python sequences of floats become float64, as in NumPy (torch's own
    default would be float32).  ``device=None`` keeps a tensor's device and
    puts anything else on torch's default device (``torch.get_default_device``).
    """
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        return x.to(device=device if device is not None else x.device, dtype=dtype)
    if isinstance(x, (list, tuple)) and x and all(isinstance(a, torch.Tensor) for a in x):
        return torch.stack([asarray(a, dtype, device) for a in x])
    if hasattr(x, "__cuda_array_interface__") and hasattr(x, "__dlpack__"):
        # a device array of another library (CuPy): copied on the device, never through the host
        return torch.from_dlpack(x).to(device=device, dtype=dtype, copy=True)
    host = np.array(x, copy=True)  # a copy: torch.from_numpy shares memory
    if host.dtype.kind not in "biufc":
        raise TypeError(f"expected numbers, got an array of dtype {host.dtype}")
    if not host.dtype.isnative:
        host = host.astype(host.dtype.newbyteorder("="))
    return torch.from_numpy(host).to(device=device if device is not None else torch.get_default_device(), dtype=dtype)


def to_numpy(x):
    """A host NumPy copy of tensor ``x`` (a view for CPU tensors); the API boundary only (``save``, checks)."""
    import numpy as np
    import torch

    if not isinstance(x, torch.Tensor):
        return np.asarray(x)
    # conjugate and negative views are lazy bits in torch; NumPy cannot read them
    return x.detach().resolve_conj().resolve_neg().cpu().numpy()


def make_rng(seed, device=None):
    """A ``torch.Generator`` on ``device`` (torch's default device when None).

    ``seed``: a ``torch.Generator`` on ``device`` is used as it is; anything
    ``numpy.random.default_rng`` accepts (None for fresh entropy, a
    non-negative int or a sequence of them, a NumPy generator) seeds the
    torch generator with one 63-bit draw of that NumPy stream.
    """
    import numpy as np
    import torch

    dev = torch.empty(0, device=device).device
    if isinstance(seed, torch.Generator):
        if seed.device != dev:
            raise ValueError(f"seed is a torch.Generator on {seed.device}, but the arrays are on {dev}")
        return seed
    gen = torch.Generator(device=dev)
    # NumPy turns every other seed (None, ints, sequences, SeedSequence, Generator) into a stream
    gen.manual_seed(int(np.random.default_rng(seed).integers(0, 2**63)))
    return gen


def standard_normal(rng, shape, dtype):
    """Standard normal samples drawn on the generator's device; complex: unit variance (each part 1/2)."""
    import torch

    return torch.randn(tuple(shape), generator=rng, dtype=dtype, device=rng.device)


def prefix_sum(first, C):
    """``out[0] = first``, ``out[k + 1] = out[k] + C[k]``: one cumsum kernel on the device."""
    import torch

    return torch.cat([first[None, ...], first[None, ...] + torch.cumsum(C, dim=0)], dim=0)


def synchronize():
    """Wait for the current CUDA device (benchmarks time finished work, not queued kernels)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
