"""Collection rules for the whole repository (tests and the doctests of the packages)."""


def pytest_ignore_collect(collection_path, config):
    # lowrank_tree/torch.py imports PyTorch, an optional dependency: without it there are no
    # doctests to run there (tests/lowrank_tree/test_torch_layer.py reports the skip by name)
    if collection_path.name == "torch.py" and collection_path.parent.name == "lowrank_tree":
        try:
            import torch  # noqa: F401
        except ImportError:
            return True
    return None
