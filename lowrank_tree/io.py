"""Persistence of trees and cascades: one ``.npz`` archive with versioned JSON metadata.

File layout (``format_version`` 1).  A plain, uncompressed NumPy ``.npz``
(a zip of ``.npy`` files, readable without this library and without pickle):

``base``
    ``W_0``, shape (m, n).
``U_1 .. U_K``, ``V_1 .. V_K``
    The factors of the corrections ``Δ_k = U_k @ V_k.T``, shapes (m, r_k) and
    (n, r_k).
``errors``, ``ranks`` (cascades only)
    float64 (K + 1,) and int64 (K,).
``__metadata__``
    UTF-8 JSON as a uint8 array: ``format`` (``"lowrank-tree"``),
    ``format_version`` (1), ``kind`` (``"tree"`` or ``"cascade"``),
    ``library_version``, ``dtype``, ``shape``, ``num_orders``, ``ranks``,
    ``saved_from_backend``; for trees ``tol`` (``null`` = the lossless
    default); for cascades ``errors`` (``null`` where unknown) and ``method``;
    and ``checksum``, the SHA-256 of the array payload.

A tree is saved as its base and leaves only; internal nodes are rebuilt on
load (deterministically, so queries of a loaded tree equal the original's).

NumPy is imported inside the functions: ``lowrank_tree`` itself must import
without any array library (see ``tests/test_package.py``).
"""

import hashlib
import json
import os
import pathlib
import threading
import zipfile
import zlib

from .backends import get_func, namespace_for

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "save"]

#: Value of the ``format`` metadata field.
FORMAT = "lowrank-tree"
#: The one version this library writes and reads.
FORMAT_VERSION = 1
_META_KEY = "__metadata__"
_DTYPES = ("float32", "float64", "complex64", "complex128")


def save(obj, path):
    """Write a tree or a cascade to a ``.npz`` file.

    Parameters
    ----------
    obj : LowRankSegmentTree or Cascade
        What to save.  Device (e.g. CuPy) arrays are copied to the host.
    path : str or os.PathLike
        Destination.  ``.npz`` is appended when the name does not end with
        it, as ``numpy.savez`` does.  An existing file is replaced
        atomically (written to a temporary file in the same directory, then
        renamed), so an interrupted save never leaves a half-written file.

    Returns
    -------
    pathlib.Path
        The path actually written.

    Raises
    ------
    TypeError
        If ``obj`` is neither a tree nor a cascade, ``path`` is not a path,
        or the dtype is not one of float32, float64, complex64, complex128.

    Notes
    -----
    Runtime settings of a tree (``cache_bytes``) and its query caches are
    not saved.  The format is documented in ``lowrank_tree.io`` (module docstring).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from lowrank_tree import LowRankSegmentTree, save, load
    >>> rng = np.random.default_rng(0)
    >>> tree = LowRankSegmentTree(rng.standard_normal((4, 3)),
    ...                           [(rng.standard_normal((4, 1)), rng.standard_normal((3, 1)))])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save(tree, os.path.join(d, "model"))
    ...     again = load(path)
    >>> path.name
    'model.npz'
    >>> X = rng.standard_normal((3, 2))
    >>> bool(np.array_equal(again.query(1, X), tree.query(1, X)))
    True
    """
    import numpy as np

    from . import __version__

    kind, backend = _kind_of(obj)
    to_host = get_func("to_numpy", backend)

    def host(a):
        return np.ascontiguousarray(np.asarray(to_host(a)))

    base = host(obj.base)
    dtype = base.dtype.name
    if dtype not in _DTYPES:
        raise TypeError(f"obj has dtype {dtype}; only {', '.join(_DTYPES)} can be saved")
    arrays = {"base": base}
    ranks = []
    for k, c in enumerate(obj.corrections, start=1):
        arrays[f"U_{k}"] = host(c.U)
        arrays[f"V_{k}"] = host(c.V)
        ranks.append(int(arrays[f"U_{k}"].shape[1]))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "library_version": __version__,
        "dtype": dtype,
        "shape": [int(s) for s in base.shape],
        "num_orders": len(ranks),
        "ranks": ranks,
        "saved_from_backend": backend,
    }
    if kind == "tree":
        meta["tol"] = obj._tol  # None keeps "the default of the loading library's dtype"
    else:
        errors = [float(e) for e in obj.errors]
        meta["errors"] = [None if e != e else e for e in errors]  # JSON has no NaN
        meta["method"] = str(obj.method)
        arrays["errors"] = np.asarray(errors, dtype=np.float64)
        arrays["ranks"] = np.asarray(ranks, dtype=np.int64)
    meta["checksum"] = {"algorithm": "sha256", "value": _checksum(arrays)}
    text = json.dumps(meta, sort_keys=True, allow_nan=False)
    arrays[_META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    target = _npz_path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def load(path, backend=None):
    """Read a tree or a cascade written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  If it does not exist and its name lacks ``.npz``, the name
        with ``.npz`` appended is tried (mirroring :func:`save`).
    backend : {'numpy', 'numba', 'cupy', 'array_api_strict'}, optional
        Array library to place the arrays on; default NumPy (whatever the
        backend the object was saved from).

    Returns
    -------
    LowRankSegmentTree or Cascade
        Same kind, dtype, shape, factors (bit for bit), tolerance, errors and
        method as the saved object.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a readable ``.npz`` archive (not a zip, truncated,
        CRC error), its metadata is missing or not JSON, ``format`` is not
        ``"lowrank-tree"``, ``format_version`` is not 1 (newer or older),
        an array is missing, unexpected, or has a shape/dtype inconsistent
        with the metadata, or the SHA-256 checksum does not match.  The
        message names the file and the problem.  Also for an unknown
        ``backend`` name.
    ImportError
        If ``backend`` names a library that is not installed (or, for CuPy,
        no GPU is usable).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from lowrank_tree import LowRankSegmentTree, save, load
    >>> tree = LowRankSegmentTree(np.eye(3), [(np.ones((3, 1)), np.ones((3, 1)))], tol=1e-8)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     t = load(save(tree, os.path.join(d, "t.npz")), backend="array_api_strict")
    >>> t.backend, t.num_orders, t.tol
    ('array_api_strict', 1, 1e-08)
    """
    import numpy as np

    if backend is None:
        backend = "numpy"
    namespace_for(backend)  # fail early on an unknown or unavailable backend
    path = _existing(path)
    arrays = _read_archive(path, np)
    meta = _parse_metadata(path, arrays.pop(_META_KEY, None), np)
    _check_arrays(path, meta, arrays, np)

    asarray = get_func("asarray", backend)
    K = meta["num_orders"]
    base = asarray(arrays["base"])
    factors = [(asarray(arrays[f"U_{k}"]), asarray(arrays[f"V_{k}"])) for k in range(1, K + 1)]
    try:
        if meta["kind"] == "tree":
            from .tree import LowRankSegmentTree

            return LowRankSegmentTree(base, factors, tol=meta["tol"], backend=backend)
        from .fit import Cascade

        errors = [float("nan") if e is None else float(e) for e in meta["errors"]]
        return Cascade(base, factors, errors=errors, method=meta["method"], backend=backend)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the stored arrays do not form a valid {meta['kind']}: {exc}") from exc


# --------------------------------------------------------------------------
# internals
# --------------------------------------------------------------------------
def _kind_of(obj):
    from .fit import Cascade
    from .tree import LowRankSegmentTree

    if isinstance(obj, LowRankSegmentTree):
        return "tree", obj.backend
    if isinstance(obj, Cascade):
        return "cascade", obj.backend
    raise TypeError(f"obj must be a LowRankSegmentTree or a Cascade, got {type(obj).__name__}")


def _fspath(path):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None


def _npz_path(path):
    name = _fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if not name.endswith(".npz"):
        name += ".npz"
    return pathlib.Path(name)


def _existing(path):
    name = _fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    p = pathlib.Path(name)
    if not p.exists() and not name.endswith(".npz") and pathlib.Path(name + ".npz").exists():
        p = pathlib.Path(name + ".npz")
    if not p.exists():
        raise FileNotFoundError(f"{name}: no such lowrank-tree file")
    if p.is_dir():
        raise IsADirectoryError(f"{name}: is a directory, expected a .npz file")
    return p


def _read_archive(path, np):
    """All entries as NumPy arrays; every way a broken zip fails becomes ValueError."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a readable .npz (zip) archive; the file is truncated, "
                         f"corrupted or of another format")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                arrays[key] = npz[key]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"{path}: corrupted .npz archive ({type(exc).__name__}: {exc})") from exc
    return arrays


def _parse_metadata(path, raw, np):
    if raw is None:
        raise ValueError(f"{path}: no '{_META_KEY}' entry; not a lowrank-tree file "
                         f"(or its metadata was removed)")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{path}: '{_META_KEY}' must be a 1-D uint8 array of UTF-8 JSON, "
                         f"got {raw.dtype} with shape {raw.shape}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: metadata is not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: metadata must be a JSON object, got {type(meta).__name__}")

    fmt = meta.get("format")
    if fmt != FORMAT:
        raise ValueError(f"{path}: not a lowrank-tree file (format {fmt!r}, expected {FORMAT!r})")
    version = meta.get("format_version")
    if not _is_int(version):
        raise ValueError(f"{path}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version} is newer than this library supports "
                         f"({FORMAT_VERSION}); upgrade lowrank-tree to read it")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {version} "
                         f"(this library reads version {FORMAT_VERSION})")

    def need(key, ok, expected):
        if key not in meta:
            raise ValueError(f"{path}: metadata field {key!r} is missing")
        if not ok(meta[key]):
            raise ValueError(f"{path}: metadata field {key!r} must be {expected}, got {meta[key]!r}")

    need("kind", lambda v: v in ("tree", "cascade"), "'tree' or 'cascade'")
    need("dtype", lambda v: v in _DTYPES, f"one of {list(_DTYPES)}")
    need("shape", lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(s) and s > 0 for s in v),
         "[m, n] with m, n >= 1")
    need("num_orders", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    K = meta["num_orders"]
    need("ranks", lambda v: isinstance(v, list) and len(v) == K and all(_is_int(r) and r >= 0 for r in v),
         f"a list of {K} integers >= 0")
    need("checksum", lambda v: isinstance(v, dict) and v.get("algorithm") == "sha256"
         and isinstance(v.get("value"), str), "{'algorithm': 'sha256', 'value': <hex>}")
    if meta["kind"] == "tree":
        need("tol", lambda v: v is None or (_is_number(v) and 0 <= v < 1), "null or a number in [0, 1)")
    else:
        need("errors", lambda v: isinstance(v, list) and len(v) == K + 1
             and all(e is None or _is_number(e) for e in v), f"a list of {K + 1} numbers or nulls")
        need("method", lambda v: isinstance(v, str), "a string")
    return meta


def _check_arrays(path, meta, arrays, np):
    K, (m, n), dtype = meta["num_orders"], meta["shape"], meta["dtype"]
    expected = {"base": (m, n)}
    for k, r in enumerate(meta["ranks"], start=1):
        expected[f"U_{k}"] = (m, r)
        expected[f"V_{k}"] = (n, r)
    dtypes = dict.fromkeys(expected, dtype)
    if meta["kind"] == "cascade":
        expected.update(errors=(K + 1,), ranks=(K,))
        dtypes.update(errors="float64", ranks="int64")
    missing = [key for key in expected if key not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array {missing[0]!r} "
                         f"(metadata describes {meta['kind']} with K = {K})")
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise ValueError(f"{path}: unexpected entry {extra[0]!r} for a {meta['kind']} with K = {K}")
    for key, shape in expected.items():
        a = arrays[key]
        if tuple(a.shape) != shape:
            raise ValueError(f"{path}: array {key!r} has shape {tuple(a.shape)} but the metadata "
                             f"implies {shape}")
        if a.dtype.name != dtypes[key]:
            raise ValueError(f"{path}: array {key!r} has dtype {a.dtype} but the metadata "
                             f"implies {dtypes[key]}")
    if meta["kind"] == "cascade":
        stored = np.asarray([np.nan if e is None else e for e in meta["errors"]], dtype=np.float64)
        if not np.array_equal(arrays["errors"], stored, equal_nan=True):
            raise ValueError(f"{path}: array 'errors' disagrees with the metadata errors")
        if arrays["ranks"].tolist() != meta["ranks"]:
            raise ValueError(f"{path}: array 'ranks' disagrees with the metadata ranks")
    digest = _checksum(arrays)
    if digest != meta["checksum"]["value"]:
        raise ValueError(f"{path}: checksum mismatch (SHA-256 of the arrays is {digest[:12]}..., "
                         f"metadata says {meta['checksum']['value'][:12]}...); the data is corrupted")


def _checksum(arrays):
    """SHA-256 over names, dtypes, shapes and bytes of all arrays, in key order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        if key == _META_KEY:
            continue
        a = arrays[key]
        h.update(f"{key}\0{a.dtype.str}\0{tuple(a.shape)}\0".encode())
        h.update(a.tobytes(order="C"))
    return h.hexdigest()


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
