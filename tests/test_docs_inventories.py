"""The local intersphinx inventories (docs/_inventories.py) cover every external link the docstrings make."""

import importlib.util
import pathlib
import re
import zlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("_inventories", ROOT / "docs" / "_inventories.py")
inventories = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(inventories)

EXTERNAL = ("numpy.", "scipy.", "sympy.", "torch.")


def test_inventories_are_sphinx_version_2_files(tmp_path):
    mapping = inventories.write_inventories(tmp_path)
    assert set(mapping) == {"numpy", "scipy", "sympy", "torch"}
    for project, (base, path) in mapping.items():
        assert base.startswith("https://") and base.endswith("/")
        raw = pathlib.Path(path).read_bytes()
        lines = raw.split(b"\n", 4)
        assert lines[0] == b"# Sphinx inventory version 2"
        assert lines[1] == f"# Project: {project}".encode()
        assert lines[3] == b"# The remainder of this file is compressed using zlib."
        body = zlib.decompress(lines[4]).decode().splitlines()
        want = [f"{n} {r} 1 {p} -" for n, r, p in inventories.OBJECTS[project][1]]
        assert body == want


def _external_references():
    """Names of NumPy/SciPy/SymPy/PyTorch objects in See Also sections and Sphinx roles."""
    names = set()
    for path in list((ROOT / "lowrank_tree").rglob("*.py")) + list((ROOT / "theory").rglob("*.py")):
        text = path.read_text()
        names |= set(re.findall(r":(?:class|func|meth|obj):`~?((?:numpy|scipy|sympy|torch)\.[\w.]+)`", text))
        for block in re.findall(r"See Also\n[ \t]*-+\n((?:[ \t]*\S.*\n)+)", text):
            for line in block.splitlines():
                name = line.strip().split(" : ")[0].split(",")[0].strip()
                if name.startswith(EXTERNAL):
                    names.add(name)
    return names


def test_every_external_reference_is_in_an_inventory():
    listed = {name for _, entries in inventories.OBJECTS.values() for name, _, _ in entries}
    found = _external_references()
    assert found, "the scan found no external reference at all: it is broken"
    assert found <= listed, f"add these to docs/_inventories.py: {sorted(found - listed)}"
