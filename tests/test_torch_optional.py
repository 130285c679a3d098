"""PyTorch is optional: ``import lowrank_tree`` never loads it, and a missing torch fails only where it is used."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


#: Makes ``import torch`` fail as it does where PyTorch is not installed (``sys.modules['torch'] = None``
#: would not do: array_api_compat looks modules up there).
NO_TORCH = (
    "import sys\n"
    "class NoTorch:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'torch':\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, NoTorch())\n"
)


def _run(code, *args):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)


def test_import_lowrank_tree_does_not_import_torch():
    code = (
        "import sys\n"
        "import lowrank_tree, lowrank_tree.fit, lowrank_tree.tree, lowrank_tree.io, lowrank_tree.cli\n"
        "import lowrank_tree.benchmark, lowrank_tree.diagnostics\n"
        "print('torch' in sys.modules)"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_without_torch_only_lowrank_tree_torch_fails_with_the_install_hint():
    code = NO_TORCH + (
        "import lowrank_tree\n"
        "print(lowrank_tree.cascade_fit([[[1.0]], [[2.0]]]).ranks)\n"
        "try:\n"
        "    import lowrank_tree.torch\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[1]", "lowrank_tree.torch needs PyTorch (pip install torch)"]


def test_without_torch_the_suite_collects_without_errors():
    # the directories, as CI collects them (a file named on the command line is always collected)
    code = NO_TORCH + (
        "import pytest\n"
        "sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', '-rs', "
        "'lowrank_tree', 'tests/lowrank_tree/test_torch_layer.py']))"
    )
    out = _run(code)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "lowrank_tree/torch.py" not in out.stdout  # its doctests are not collected
    assert "lowrank_tree/fit.py::lowrank_tree.fit.cascade_fit" in out.stdout  # the others are
    assert "error" not in out.stdout.lower(), out.stdout
    assert "lowrank_tree.torch needs PyTorch" in out.stdout  # the skip is reported with its reason
