"""One version number: ``lowrank_tree/_version.py``, read by ``pyproject.toml`` and the modules."""

import ast
import pathlib
import re
import tomllib

import lowrank_tree
from lowrank_tree import _version

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = pathlib.Path(lowrank_tree.__file__).parent


def test_pyproject_reads_the_version_from_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "lowrank_tree._version.__version__"


def test_one_version_everywhere():
    assert lowrank_tree.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", _version.__version__)
    from lowrank_tree.benchmark import machine_info

    assert machine_info()["lowrank_tree"] == _version.__version__


def test_modules_take_the_version_from_version_module_not_the_package():
    for name in ("io.py", "benchmark.py", "cli.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        sources = {
            (node.level, node.module)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and any(a.name == "__version__" for a in node.names)
        }
        assert sources == {(1, "_version")}, (name, sources)


def test_installed_metadata_carries_the_dynamic_version():
    # what the build backend resolved from pyproject's dynamic version when the
    # package was installed (pip builds with the setuptools pyproject requires,
    # not the one in the test environment)
    from importlib.metadata import version

    assert version("lowrank-tree") == _version.__version__
