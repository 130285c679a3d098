"""Shared fixtures: the array libraries the behavioural suite runs on, and the hypothesis profiles."""

import os

import numpy as np
import pytest
from hypothesis import settings

from lowrank_tree.backends import get_func, namespace_for, unavailable_reason

settings.register_profile("ci", deadline=None, max_examples=40, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=10)
settings.register_profile("thorough", deadline=None, max_examples=400, print_blob=True)
#: Pick one with HYPOTHESIS_PROFILE=dev (fast local loop) or =thorough (a long hunt); CI uses "ci".
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


#: Why the CuPy backend cannot run here (None on a machine with CuPy and a CUDA GPU).
GPU_MISSING = unavailable_reason("cupy")
requires_gpu = pytest.mark.skipif(GPU_MISSING is not None, reason=f"needs CuPy and a CUDA GPU ({GPU_MISSING})")


def _torch_cuda_missing():
    """Why torch tensors cannot go to a CUDA device here, or None."""
    if unavailable_reason("torch") is not None:
        return "PyTorch is not installed"
    import torch

    return None if torch.cuda.is_available() else "torch.cuda.is_available() is False"


#: Why the torch backend cannot run here (None where PyTorch is installed; no GPU needed).
TORCH_MISSING = unavailable_reason("torch")
if TORCH_MISSING is None:
    import torch

    # One intra-op thread: on CI's two shared cores torch's threads spin against the other
    # processes and the suite's small CPU operations ran about 6x slower (docs/backends.md).
    torch.set_num_threads(1)
requires_torch = pytest.mark.skipif(TORCH_MISSING is not None, reason="needs PyTorch: pip install torch")
#: Why torch's CUDA device cannot be used here (None with PyTorch built with CUDA and a GPU).
TORCH_CUDA_MISSING = _torch_cuda_missing()
requires_torch_cuda = pytest.mark.skipif(
    TORCH_CUDA_MISSING is not None, reason=f"needs PyTorch with a CUDA GPU ({TORCH_CUDA_MISSING})"
)

#: Array libraries (what diagnostics and the portable core run on).
ARRAY_LIBRARIES = [
    "numpy",
    "array_api_strict",
    pytest.param("cupy", marks=requires_gpu),
    pytest.param("torch", marks=requires_torch),
    pytest.param("torch-cuda", marks=requires_torch_cuda),
]
#: Backends every behavioural test of the tree, the fit and the factors runs on.
BACKENDS = [
    "numpy",
    "numba",
    "array_api_strict",
    pytest.param("cupy", marks=requires_gpu),
    pytest.param("torch", marks=requires_torch),
    pytest.param("torch-cuda", marks=requires_torch_cuda),
]


class Lib:
    """One backend as the tests see it: convert in, convert out, and the ``backend=`` to pass.

    ``'torch-cuda'`` is the torch backend with its arrays on device ``'cuda'``:
    ``name`` is ``'torch'``, ``device`` ``'cuda'``, and ``kw`` passes both.
    """

    def __init__(self, param):
        self.param = param
        self.name, _, device = param.partition("-")
        self.device = device or None
        self.xp = namespace_for(self.name)
        self.kw = {"backend": self.name} if self.device is None else {"backend": self.name, "device": self.device}

    def asarray(self, a):
        return get_func("asarray", self.name)(np.asarray(a), device=self.device)

    def to_numpy(self, a):
        return np.asarray(get_func("to_numpy", self.name)(a))

    def __repr__(self):
        return f"Lib({self.param!r})"


@pytest.fixture(params=BACKENDS, scope="session")
def lib(request):
    return Lib(request.param)


@pytest.fixture(params=ARRAY_LIBRARIES, scope="session")
def array_lib(request):
    return Lib(request.param)


def _rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (nb if nb > 0 else 1.0))


@pytest.fixture(scope="session")
def rel_err():
    """Relative Frobenius error of ``a`` against the reference ``b``."""
    return _rel_err


@pytest.fixture(scope="session")
def theory_claim_results():
    """The theory claim suite, run once per test session (seed 0).

    ``python -m theory``, ``lowrank-tree check`` and their tests all print the
    table of these results; the tests monkeypatch ``theory.cli.run_checks`` to
    return them instead of rerunning the suite (the slowest part of the theory
    tests).
    """
    pytest.importorskip("sympy")
    from theory.cli import run_checks

    return run_checks(seed=0)
