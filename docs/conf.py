"""Sphinx configuration: MyST Markdown pages, numpydoc API reference, strict build in CI.

Intersphinx links to NumPy, SciPy, SymPy and PyTorch come from small local
inventories (``docs/_inventories.py``): the build runs where only package
registries are reachable, so the projects' ``objects.inv`` cannot be fetched.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "docs"))

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
    "sphinx.ext.intersphinx",
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

import _inventories  # noqa: E402  (docs/_inventories.py)

intersphinx_mapping = _inventories.write_inventories(pathlib.Path(__file__).parent / "_generated" / "inventories")
intersphinx_disabled_reftypes = ["std:doc"]

# The performance page includes tables rendered from the committed benchmark
# JSON, so the numbers in the docs are always the ones a command produced.
_generated = pathlib.Path(__file__).parent / "_generated"
_generated.mkdir(exist_ok=True)
import report  # noqa: E402  (bench/report.py)

(_generated / "query_table.md").write_text(report.query_table())
(_generated / "tree_ops_tables.md").write_text(report.tree_ops_tables())
(_generated / "fit_table.md").write_text(report.fit_table())
(_generated / "tree_ops_query_table.md").write_text(report.tree_ops_query_table())
(_generated / "theory_rank_table.md").write_text(report.theory_table())
(_generated / "backends_tables.md").write_text(report.backends_tables())
(_generated / "backends_verdicts.md").write_text(report.backend_verdicts())
(_generated / "numba_first_call_table.md").write_text(report.numba_first_call_table())
(_generated / "mixed_table.md").write_text(report.mixed_table())
(_generated / "torch_layer_table.md").write_text(report.torch_layer_tables())
(_generated / "tree_worth_table.md").write_text(report.tree_worth_table())

# The evaluation page's tables come from the committed flow-matching results (bench/flow_report.py).
import json  # noqa: E402

import flow_report  # noqa: E402  (bench/flow_report.py)

_flow = json.loads((ROOT / "bench" / "results" / "flow_matching.json").read_text())
for _name, _text in flow_report.docs_fragments(_flow).items():
    (_generated / _name).write_text(_text)
