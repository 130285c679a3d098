"""Shared fixtures: the array libraries the behavioural suite runs on."""

import numpy as np
import pytest
from hypothesis import settings

from lowrank_tree.backends import get_func, namespace_for

settings.register_profile("ci", deadline=None, max_examples=40, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.load_profile("ci")

#: Backends every behavioural test runs on.  GPU backends join in the backends issue.
PORTABLE_BACKENDS = ["numpy", "array_api_strict"]


class Lib:
    """One array library as the tests see it: convert in, convert out."""

    def __init__(self, name):
        self.name = name
        self.xp = namespace_for(name)

    def asarray(self, a):
        return get_func("asarray", self.name)(np.asarray(a))

    def to_numpy(self, a):
        return np.asarray(get_func("to_numpy", self.name)(a))

    def __repr__(self):
        return f"Lib({self.name!r})"


@pytest.fixture(params=PORTABLE_BACKENDS, scope="session")
def lib(request):
    return Lib(request.param)


def _rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (nb if nb > 0 else 1.0))


@pytest.fixture(scope="session")
def rel_err():
    """Relative Frobenius error of ``a`` against the reference ``b``."""
    return _rel_err
