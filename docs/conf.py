"""Sphinx configuration: MyST Markdown pages, numpydoc API reference, strict build in CI.

No intersphinx: CI reaches only package registries, so the ``objects.inv`` inventories
of NumPy, SciPy, SymPy and PyTorch cannot be fetched at build time (a failed fetch is a
warning, and the build is strict).  No PyPI package ships them (the intersphinx helpers
there map names to URLs and still fetch); Debian ships only old SciPy and SymPy ones
(python-scipy-doc, python-sympy-doc), none for NumPy or PyTorch.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import lowrank_tree  # noqa: E402

project = "lowrank-tree"
author = "lowrank-tree developers"
release = lowrank_tree.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]
# One page per object (docs/api.rst), generated at build time into docs/generated/
# (git-ignored) from the templates in docs/_templates/autosummary/.
autosummary_generate = True
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
autodoc_default_options = {"members": True, "undoc-members": False}
html_theme = "alabaster"

# The performance page includes tables rendered from the committed benchmark
# JSON, so the numbers in the docs are always the ones a command produced.
_generated = pathlib.Path(__file__).parent / "_generated"
_generated.mkdir(exist_ok=True)
import report  # noqa: E402  (bench/report.py)

(_generated / "query_table.md").write_text(report.query_table())
(_generated / "theory_rank_table.md").write_text(report.theory_table())
(_generated / "backends_tables.md").write_text(report.backends_tables())
(_generated / "backends_verdicts.md").write_text(report.backend_verdicts())
(_generated / "numba_first_call_table.md").write_text(report.numba_first_call_table())
(_generated / "mixed_table.md").write_text(report.mixed_table())
