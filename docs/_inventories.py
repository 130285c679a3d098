"""Local intersphinx inventories for NumPy, SciPy, SymPy and PyTorch.

The strict docs build runs where only package registries are reachable, so the
projects' own ``objects.inv`` files cannot be fetched at build time.  Instead
this module writes small inventories, in Sphinx's version-2 format, for the
objects these docs link to; the links point at each project's published
documentation.  Add a line to ``OBJECTS`` to link another object.
"""

import pathlib
import zlib

#: project -> (base URL of its published docs, [(name, role, path relative to the base)])
OBJECTS = {
    "numpy": (
        "https://numpy.org/doc/stable/",
        [
            ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html"),
            ("numpy.linalg.svd", "py:function", "reference/generated/numpy.linalg.svd.html"),
            ("numpy.linalg.matrix_rank", "py:function", "reference/generated/numpy.linalg.matrix_rank.html"),
            ("numpy.linalg.norm", "py:function", "reference/generated/numpy.linalg.norm.html"),
            ("numpy.load", "py:function", "reference/generated/numpy.load.html"),
            ("numpy.savez", "py:function", "reference/generated/numpy.savez.html"),
        ],
    ),
    "scipy": (
        "https://docs.scipy.org/doc/scipy/",
        [
            (
                "scipy.sparse.linalg.LinearOperator",
                "py:class",
                "reference/generated/scipy.sparse.linalg.LinearOperator.html",
            ),
            ("scipy.linalg.svd", "py:function", "reference/generated/scipy.linalg.svd.html"),
            ("scipy.linalg.pinv", "py:function", "reference/generated/scipy.linalg.pinv.html"),
            ("scipy.optimize.least_squares", "py:function", "reference/generated/scipy.optimize.least_squares.html"),
        ],
    ),
    "sympy": (
        "https://docs.sympy.org/latest/",
        [
            ("sympy.matrices.dense.Matrix", "py:class", "modules/matrices/dense.html"),
            ("sympy.polys.matrices.DomainMatrix", "py:class", "modules/polys/domainmatrix.html"),
        ],
    ),
    "torch": (
        "https://pytorch.org/docs/stable/",
        [
            ("torch.Tensor", "py:class", "tensors.html"),
            ("torch.nn.Linear", "py:class", "generated/torch.nn.Linear.html"),
        ],
    ),
}


def inventory_bytes(project, entries):
    """One ``objects.inv`` (Sphinx inventory version 2) for ``entries``."""
    header = (
        f"# Sphinx inventory version 2\n# Project: {project}\n# Version: \n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    body = "".join(f"{name} {role} 1 {path} -\n" for name, role, path in entries)
    return header + zlib.compress(body.encode())


def write_inventories(folder):
    """Write every inventory under ``folder``; return Sphinx's ``intersphinx_mapping``."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for project, (base, entries) in OBJECTS.items():
        path = folder / f"{project}.inv"
        path.write_bytes(inventory_bytes(project, entries))
        mapping[project] = (base, str(path))
    return mapping
