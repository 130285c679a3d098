"""The backend contract: every backend module provides what it must and nothing undeclared.

The CuPy module is checked from its source (AST), so this runs on machines
without CuPy; the others are imported (importing them loads no optional
library).  The resolved operations are then checked, on every backend, against
dense NumPy references.
"""

import ast
import importlib
import inspect
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowrank_tree
from lowrank_tree import LowRankSegmentTree
from lowrank_tree.backends import BACKENDS, MergedNode, NodePair, get_func, operations
from lowrank_tree.backends.contract import OPERATIONS, optional, portable, required

BACKEND_DIR = pathlib.Path(lowrank_tree.backends.__file__).parent
#: Backends whose module imports an optional library at import time are read from source.
FROM_SOURCE = {"cupy"}


def public_functions(backend):
    """``{name: parameter names}`` of the public functions a backend module offers."""
    module_name = BACKENDS[backend]
    if backend in FROM_SOURCE:
        tree = ast.parse((BACKEND_DIR / (module_name.lstrip(".") + ".py")).read_text())
        found = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                found[node.name] = tuple(a.arg for a in node.args.args)
            elif isinstance(node, (ast.ImportFrom, ast.Assign)):
                pytest.fail(f"{module_name}: extend public_functions to read {ast.dump(node)[:60]}")
        return found
    module = importlib.import_module(module_name, "lowrank_tree.backends")
    return {
        name: tuple(inspect.signature(obj).parameters)
        for name, obj in vars(module).items()
        if not name.startswith("_") and callable(obj) and not inspect.isclass(obj) and not inspect.ismodule(obj)
    }


def test_operations_are_declared_once_with_a_contract_each():
    names = [op.name for op in OPERATIONS]
    assert len(names) == len(set(names))
    assert required() | optional() == set(names) and not required() & optional()
    assert {"namespace", "asarray", "to_numpy", "make_rng", "standard_normal", "prefix_sum"} == required()
    for op in OPERATIONS:
        assert op.summary and "\n" not in op.summary
        assert op.signature.startswith(op.name + "(")
        assert op.fallback is None or not op.required


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_backend_module_provides_every_required_operation_and_nothing_undeclared(backend):
    found = public_functions(backend)
    declared = {op.name: op for op in OPERATIONS}
    assert required() <= set(found), f"{backend} lacks {sorted(required() - set(found))}"
    assert set(found) <= set(declared), f"{backend} defines undeclared {sorted(set(found) - set(declared))}"
    for name, params in found.items():
        assert params == declared[name].parameters, (backend, name, params)


@pytest.mark.parametrize("name", sorted(optional()))
def test_portable_versions_have_the_declared_signature(name):
    fn = portable(name)
    op = next(op for op in OPERATIONS if op.name == name)
    if op.fallback is None:
        assert fn is None
    else:
        assert tuple(inspect.signature(fn).parameters) == op.parameters


def test_portable_rejects_unknown_and_required_names():
    with pytest.raises(ValueError, match="name must be one of the optional operations"):
        portable("asarray")
    with pytest.raises(ValueError, match="name must be one of the optional operations"):
        portable("einsum")


def test_resolution_prefers_the_backend_and_falls_back_to_the_declared_portable_version():
    numpy_ops, numba_ops, strict_ops = operations("numpy"), operations("numba"), operations("array_api_strict")
    assert numpy_ops is operations("numpy")  # resolved once per backend
    assert numpy_ops.merge_pairs is portable("merge_pairs")
    assert numba_ops.merge_pairs is not portable("merge_pairs")
    assert numba_ops.accumulate_orders.__module__ == "lowrank_tree.backends._numba"
    assert strict_ops.linear_operator is None and strict_ops.read_only is portable("read_only")
    # get_func agrees with the resolved operations where the backend provides one
    assert get_func("to_numpy", "numba") is numba_ops.to_numpy
    assert get_func("merge_pairs", "numpy", default=portable("merge_pairs")) is numpy_ops.merge_pairs


def test_resolution_refuses_a_backend_without_a_required_operation():
    import types

    from lowrank_tree.backends.dispatch import Operations

    module = types.SimpleNamespace(**{name: len for name in required() - {"prefix_sum"}})
    with pytest.raises(NotImplementedError, match=r"backend 'toy' lacks the required operation prefix_sum\(first, C\)"):
        Operations("toy", module)
    ops = Operations("toy", types.SimpleNamespace(**{name: len for name in required()}))
    assert ops.prefix_sum is len and ops.merge_pairs is portable("merge_pairs") and ops.linear_operator is None


def test_tree_resolves_its_operations_at_construction_and_never_looks_up_on_hot_paths():
    u = np.ones((3, 1))
    tree = LowRankSegmentTree(np.eye(3), [(u, u)], backend="numba")
    assert tree._ops is operations("numba")
    source = pathlib.Path(lowrank_tree.tree.__file__).read_text()
    calls = {n.func.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "get_func" not in calls


def test_portable_kernels_do_not_import_the_tree():
    # (that _portable imports no array library is checked with the other
    # algorithm modules in tests/test_package.py)
    tree = ast.parse(pathlib.Path(lowrank_tree._portable.__file__).read_text())
    relative = {("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert ".tree" not in relative
    numba_src = (BACKEND_DIR / "_numba.py").read_text()
    assert "..tree" not in numba_src and "lowrank_tree.tree" not in numba_src


def test_strict_operator_unavailable_names_operation_and_backend():
    import array_api_strict as xps

    tree = LowRankSegmentTree(xps.eye(2, dtype=xps.float64))
    with pytest.raises(NotImplementedError, match="'linear_operator' is not available for backend 'array_api_strict'"):
        tree.operator(0)


@st.composite
def pair_cases(draw):
    m, n = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    count = draw(st.integers(1, 3))
    ranks = [(draw(st.integers(1, 4)), draw(st.integers(1, 4))) for _ in range(count)]
    scale = 2.0 ** draw(st.integers(-30, 30))
    return m, n, ranks, draw(st.integers(0, 2**16)), scale


@settings(max_examples=15, deadline=None)
@given(case=pair_cases())
def test_resolved_merge_pairs_sums_each_pair(lib, case):
    m, n, ranks, seed, scale = case
    rng = np.random.default_rng(seed)
    ops = operations(lib.name)
    host = [tuple(scale * rng.standard_normal(s) for s in ((m, ra), (n, ra), (m, rb), (n, rb))) for ra, rb in ranks]
    pairs = [
        NodePair(lib.asarray(ua), lib.asarray(va), False, lib.asarray(ub), lib.asarray(vb), False)
        for ua, va, ub, vb in host
    ]
    merged = ops.merge_pairs(pairs, 1e-12, lib.xp)
    assert len(merged) == len(pairs)
    for node, (ua, va, ub, vb) in zip(merged, host):
        assert isinstance(node, MergedNode)
        S = ua @ va.T + ub @ vb.T
        assert node.rank == np.linalg.matrix_rank(S, tol=1e-9 * np.linalg.norm(S, 2))
        got = lib.to_numpy(node.D) if node.D is not None else lib.to_numpy(node.U) @ lib.to_numpy(node.V).T
        assert (node.D is not None) == (node.rank * (m + n) >= m * n)
        assert np.linalg.norm(got - S) <= 1e-10 * np.linalg.norm(S)


@settings(max_examples=15, deadline=None)
@given(
    m=st.integers(1, 8),
    n=st.integers(1, 8),
    r=st.integers(0, 3),
    b=st.integers(1, 20),
    K=st.integers(0, 5),
    with_w=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_resolved_apply_and_accumulate_match_dense(lib, m, n, r, b, K, with_w, seed):
    rng = np.random.default_rng(seed)
    ops = operations(lib.name)
    W, U, V, X = (rng.standard_normal(s) for s in ((m, n), (m, r), (n, r), (n, b)))
    got = ops.apply_factors(lib.asarray(W) if with_w else None, lib.asarray(U), lib.asarray(V), lib.asarray(X), lib.xp)
    ref = (W @ X if with_w else 0) + U @ (V.T @ X)
    np.testing.assert_allclose(lib.to_numpy(got), np.broadcast_to(ref, (m, b)), rtol=1e-12, atol=1e-12)

    Y0, Us, Zs = rng.standard_normal((m, b)), rng.standard_normal((K, m, r)), rng.standard_normal((K, r, b))
    out = lib.to_numpy(ops.accumulate_orders(lib.asarray(Y0), lib.asarray(Us), lib.asarray(Zs), lib.xp))
    expected = [Y0]
    for k in range(K):
        expected.append(expected[-1] + Us[k] @ Zs[k])
    np.testing.assert_allclose(out, np.stack(expected), rtol=1e-12, atol=1e-12)
