"""Package-level contracts: the algorithm modules touch no array library."""

import ast
import pathlib
import subprocess
import sys

import pytest

import lowrank_tree

PACKAGE = pathlib.Path(lowrank_tree.__file__).parent
ALGORITHM_MODULES = [
    "factor.py",
    "fit.py",
    "tree.py",
    "diagnostics.py",
    "_validation.py",
    "_randomized.py",
    "_portable.py",
    "_budget.py",
    "_norms.py",
    "_threads.py",
]
ARRAY_LIBRARIES = {"numpy", "scipy", "cupy", "cupyx", "numba", "array_api_compat", "array_api_strict", "torch", "jax"}


def imported_roots(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("name", ALGORITHM_MODULES)
def test_algorithm_module_imports_no_array_library(name):
    path = PACKAGE / name
    if not path.exists():
        pytest.fail(f"algorithm module {name} is missing")
    assert not imported_roots(path) & ARRAY_LIBRARIES


def test_core_imports_with_numpy_blocked():
    # like opt_einsum's check_no_numpy: the core must import without NumPy;
    # only the backends load an array library, and only when asked to.
    code = (
        "import sys; sys.modules['numpy'] = None; sys.modules['scipy'] = None\n"
        "import lowrank_tree, lowrank_tree.tree, lowrank_tree.fit, lowrank_tree.diagnostics\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_public_api():
    for name in [
        "LowRank",
        "LowRankSegmentTree",
        "cascade_fit",
        "Cascade",
        "numerical_difference_profile",
        "save",
        "load",
    ]:
        assert hasattr(lowrank_tree, name), name
