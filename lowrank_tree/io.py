"""Persistence of trees and cascades: one ``.npz`` archive with versioned JSON metadata.

File layout (``format_version`` 2).  A plain NumPy ``.npz`` (a zip of
``.npy`` files, readable without this library and without pickle):

``base``
    ``W_0``, shape (m, n).
``U_1 .. U_K``, ``V_1 .. V_K``
    The factors of the corrections ``Δ_k = U_k @ V_k.T``, shapes (m, r_k) and
    (n, r_k).
``errors``, ``ranks`` (cascades only)
    float64 (K + 1,) and int64 (K,).
``__metadata__``
    UTF-8 JSON as a uint8 array: ``format`` (``"lowrank-tree"``),
    ``format_version`` (2), ``kind`` (``"tree"`` or ``"cascade"``),
    ``library_version``, ``dtype``, ``shape``, ``num_orders``, ``ranks``,
    ``saved_from_backend`` (``num_orders`` is ``K``, the object's
    ``max_order``); for trees ``tol``, the tree's ``rtol`` (``null`` = the
    lossless default); for cascades ``errors`` (``null`` where unknown) and ``method``;
    ``arrays_sha256``; and ``checksum``, ``{"algorithm": "sha256", "value": ...}``.

``arrays_sha256`` is the SHA-256 of, for each array in name order, the UTF-8
of ``f"{name}\\0{dtype.str}\\0{shape}\\0"`` (``shape`` a Python tuple) followed
by the array's bytes in C order.  ``checksum`` is the SHA-256 of the canonical
JSON of every other metadata field: ``json.dumps(fields, sort_keys=True,
separators=(",", ":"), ensure_ascii=True, allow_nan=False)``.  So the checksum
covers every array and every metadata field, and its value does not depend on
how the stored JSON is spaced.

A checkpoint family (:func:`lowrank_tree.fit_checkpoints`) is saved with
``kind`` ``"checkpoints"`` in the same container and under the same two
checksums: ``num_checkpoints``, ``framework``, ``tol``, ``method`` and a
``parameters`` list (per parameter its ``name``, ``role`` ``"cascade"`` or
``"exact"``, ``shape``, checkpoint ``dtype`` and ``storage_dtype``; for a
cascade its ``ranks``, ``errors`` and methods; for an exact parameter its
``changes``, one per checkpoint after the first: ``null``, ``["dense"]`` or
``["sparse", count]``).  Parameter ``i``'s arrays are ``p{i}_base``, then
``p{i}_U_{k}``/``p{i}_V_{k}`` (cascades) or ``p{i}_d_{k}`` (a dense change) /
``p{i}_i_{k}`` and ``p{i}_v_{k}`` (flat indices and values of a sparse one).

Version 1 files (written by pre-release versions) had one checksum, of the
arrays only: their ``tol`` and ``method`` are not protected.  They still load,
with a ``UserWarning``; saving the loaded object again writes version 2.

The checksum detects corruption and edits made without recomputing it; it
is not a signature.  What makes :func:`load` safe on a file from anywhere is
that it reads the zip directory and the metadata first and checks every
entry's ``.npy`` header (shape, dtype, memory order, size) against the
metadata before any array data is decompressed, so a crafted or damaged file
is refused without allocating or decompressing what it claims to hold.

A tree is saved as its base and leaves only; internal nodes are rebuilt on
load (deterministically, so queries of a loaded tree equal the original's).

NumPy is imported inside the functions: ``lowrank_tree`` itself must import
without any array library (see ``tests/test_package.py``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pathlib
import stat as _stat
import threading
import warnings
import zipfile
import zlib
from typing import TYPE_CHECKING, Any

from ._ownership import adopting
from ._typing import PathLike
from .backends import get_func, namespace_for

if TYPE_CHECKING:
    from .checkpoints import CheckpointFamily
    from .fit import Cascade
    from .tree import LowRankSegmentTree

__all__ = ["FORMAT", "FORMAT_VERSION", "check_writable", "load", "save"]

#: Value of the ``format`` metadata field.
FORMAT = "lowrank-tree"
#: The version this library writes (it also reads version 1, with a warning).
FORMAT_VERSION = 2
_META_KEY = "__metadata__"
_DTYPES = ("float32", "float64", "complex64", "complex128")
#: The metadata is O(K) text (about 40 bytes per order); 16 MiB is room for ~400,000 orders
#: while bounding what an untrusted file can make ``json.loads`` chew on.
_MAX_METADATA_BYTES = 16 * 2**20
#: Deflate cannot expand more than 1032:1 (258-byte matches in at most 2 bits each); an entry
#: claiming more is lying about its size.  The slack covers the stream's fixed overhead.
_DEFLATE_MAX_RATIO = 1032
_DEFLATE_SLACK = 1024
#: Bytes decompressed per read when filling an array (bounds the transient buffer).
_CHUNK = 2**20


def save(obj: LowRankSegmentTree | Cascade | CheckpointFamily, path: PathLike) -> pathlib.Path:
    """Write a tree, a cascade or a checkpoint family to a ``.npz`` file.

    Parameters
    ----------
    obj : LowRankSegmentTree, Cascade or CheckpointFamily
        What to save.  Device (e.g. CuPy) arrays are copied to the host.
    path : str or os.PathLike
        Destination file.  ``.npz`` is appended when the name does not end
        with it (in any letter case), as ``numpy.savez`` does.  An existing
        file is replaced atomically: the archive is written to a temporary
        file in the same directory, flushed to disk (``fsync``), then renamed
        over the target (and the directory is synced where the system
        supports it), so an interrupted save never leaves a half-written
        file.  The target must be a file name: an existing directory, a name
        ending with a path separator, or ``""`` is refused rather than
        guessed at.

    Returns
    -------
    pathlib.Path
        The path actually written.

    Raises
    ------
    TypeError
        If ``obj`` is neither a tree nor a cascade, ``path`` is not a path,
        or the dtype is not one of float32, float64, complex64, complex128.
    ValueError
        If ``path`` is empty or ends with a path separator.
    IsADirectoryError
        If ``path`` (or ``path`` + ``.npz``) is an existing directory.
    FileNotFoundError, NotADirectoryError
        If the directory to write into does not exist (or is a file).
    PermissionError
        If that directory is not writable.
    OSError
        If writing fails (e.g. the disk is full); nothing is left behind.

    Every error names the target path (never the temporary file), and the
    path is checked before any array is copied or written.  To check a
    target before a long computation, use :func:`check_writable`.

    See Also
    --------
    load : Reads the file back.
    lowrank_tree.io.check_writable : The path checks alone, e.g. before a long fit.
    numpy.savez : The container format underneath (a zip of ``.npy`` arrays).

    Notes
    -----
    Runtime settings of a tree (``cache_bytes``) and its query caches are
    not saved.  The format (version 2: a checksum over every array and every
    metadata field) is documented in ``lowrank_tree.io`` (module docstring).

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

    from ._version import __version__
    from .fit import Cascade
    from .tree import LowRankSegmentTree

    kind, backend = _kind_of(obj)
    target = check_writable(path)
    if kind == "checkpoints":
        from .checkpoints import _family_payload

        arrays, fields = _family_payload(obj)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "library_version": __version__}
        meta.update(fields)
        return _write_sealed(target, arrays, meta)
    assert isinstance(obj, (LowRankSegmentTree, Cascade))
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
        assert isinstance(obj, LowRankSegmentTree)
        meta["tol"] = obj._tol  # the tree's rtol; None keeps "the default of the loading library's dtype"
    else:
        assert isinstance(obj, Cascade)
        errors = [float(e) for e in obj.errors]
        meta["errors"] = [None if e != e else e for e in errors]  # JSON has no NaN
        meta["method"] = str(obj.method)
        arrays["errors"] = np.asarray(errors, dtype=np.float64)
        arrays["ranks"] = np.asarray(ranks, dtype=np.int64)
    return _write_sealed(target, arrays, meta)


def _write_sealed(target, arrays, meta):
    """Write ``arrays`` plus ``meta`` sealed by both checksums (every array, every metadata field)."""
    import numpy as np

    meta["arrays_sha256"] = _checksum(arrays)
    meta["checksum"] = {"algorithm": "sha256", "value": _metadata_digest(meta)}
    text = json.dumps(meta, sort_keys=True, allow_nan=False)
    arrays[_META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _write_atomically(target, arrays, np)
    return target


def check_writable(path: PathLike) -> pathlib.Path:
    """Check that :func:`save` could write to ``path``, without writing anything.

    Useful before a long computation whose result will be saved: it raises
    exactly the errors :func:`save` would raise for a bad target.

    Parameters
    ----------
    path : str or os.PathLike
        The destination :func:`save` would be given.

    Returns
    -------
    pathlib.Path
        The file :func:`save` would write (``.npz`` appended where missing).

    Raises
    ------
    TypeError
        If ``path`` is not a str or os.PathLike.
    ValueError
        If ``path`` is empty or ends with a path separator.
    IsADirectoryError
        If the target is an existing directory.
    FileNotFoundError, NotADirectoryError
        If the directory to write into does not exist (or is a file).
    PermissionError
        If that directory is not writable.

    See Also
    --------
    save : Runs the same checks, then writes.

    Examples
    --------
    >>> import os, tempfile
    >>> from lowrank_tree.io import check_writable
    >>> with tempfile.TemporaryDirectory() as d:
    ...     print(check_writable(os.path.join(d, "model")).name)
    ...     try:
    ...         check_writable(os.path.join(d, "missing", "model"))
    ...     except FileNotFoundError as exc:
    ...         print("refused:", exc.filename.endswith("model.npz"))
    model.npz
    refused: True
    """
    name = _fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if name == "":
        raise ValueError("path must name a file to save to, got ''")
    if os.path.isdir(name):
        raise IsADirectoryError(
            errno.EISDIR, "cannot save: path is a directory; give a file name inside it, e.g. model.npz", name
        )
    if name.endswith(("/", os.sep) if os.altsep is None else ("/", os.sep, os.altsep)):
        raise ValueError(f"path must name a file to save to, got {name!r} (ends with a path separator)")
    if not name.lower().endswith(".npz"):
        name += ".npz"
    if os.path.isdir(name):
        raise IsADirectoryError(errno.EISDIR, "cannot save: path is a directory", name)
    parent = os.path.dirname(name) or os.curdir
    if not os.path.isdir(parent):
        if os.path.exists(parent):
            raise NotADirectoryError(errno.ENOTDIR, f"cannot save: {parent!r} is not a directory", name)
        raise FileNotFoundError(errno.ENOENT, f"cannot save: directory {parent!r} does not exist", name)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"cannot save: directory {parent!r} is not writable", name)
    return pathlib.Path(name)


def load(
    path: PathLike, *, backend: str | None = None, device: Any = None
) -> LowRankSegmentTree | Cascade | CheckpointFamily:
    """Read a tree, a cascade or a checkpoint family written by :func:`save`.

    Safe on files from untrusted sources: nothing is unpickled, and the zip
    directory, the metadata (at most 16 MiB) and every array's ``.npy``
    header are checked against each other before any array data is
    decompressed, so a decompression bomb, an entry whose header or zip
    sizes lie, or a header declaring a huge shape is refused at once,
    without allocating what it claims.  Then the data is read and its
    checksum verified.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  If it does not exist and its name lacks ``.npz``, the name
        with ``.npz`` appended is tried (mirroring :func:`save`).
    backend : {'numpy', 'numba', 'cupy', 'torch', 'array_api_strict'}, optional
        Array library to place the arrays on; default NumPy (whatever the
        backend the object was saved from).
    device : optional
        Device to place them on (``'cuda'``, ``'cpu'`` for torch); default
        the library's default device.

    Returns
    -------
    LowRankSegmentTree, Cascade or CheckpointFamily
        Same kind, dtype, shape, factors (bit for bit), tolerance, errors and
        method as the saved object.  A checkpoint family is always on NumPy
        (``backend`` and ``device`` apply to trees and cascades).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    IsADirectoryError
        If ``path`` is a directory.
    PermissionError
        If the file cannot be read for lack of permission.
    ValueError
        If the file is not a regular file (a device or a pipe), not a
        readable ``.npz`` archive (not a zip, truncated, CRC error), its metadata is missing, too large or not JSON,
        ``format`` is not ``"lowrank-tree"``, ``format_version`` is not 1 or
        2, an entry is missing, unexpected, not a ``.npy`` array, of object
        dtype, or has a shape, dtype, memory order or size inconsistent with
        the metadata, or the SHA-256 checksum (of the metadata or of the
        arrays) does not match.  The message names the file and the problem.
        Also for an unknown ``backend`` name, or a ``device`` that backend
        does not have.
    ImportError
        If ``backend`` names a library that is not installed (or, for CuPy,
        no GPU is usable).

    Warns
    -----
    UserWarning
        For a version 1 file: its checksum covers the arrays but not the
        metadata (the tree's ``rtol``, stored as ``tol``, the cascade's ``method``), so an edit
        to those cannot be detected.  Save the loaded object to upgrade it.

    See Also
    --------
    save : Writes the file.
    numpy.load : Reads ``.npz`` files without these checks (and may unpickle objects).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from lowrank_tree import LowRankSegmentTree, save, load
    >>> tree = LowRankSegmentTree(np.eye(3), [(np.ones((3, 1)), np.ones((3, 1)))], rtol=1e-8)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     t = load(save(tree, os.path.join(d, "t.npz")), backend="array_api_strict")
    >>> t.backend, t.max_order, t.rtol
    ('array_api_strict', 1, 1e-08)
    """
    import numpy as np

    from ._validation import resolve_device

    if backend is None:
        backend = "numpy"
    # fail early on an unknown or unavailable backend or device
    device = resolve_device(namespace_for(backend), device)
    path, f = _open_for_reading(path)
    with f:
        meta, arrays = _read_archive(path, f, np)
    if meta["format_version"] == 1:
        warnings.warn(
            f"{path}: a format_version 1 file, whose checksum covers the arrays but not "
            f"the metadata (the tree's tol, the cascade's method): an edit to those cannot "
            f"be detected.  Check them, and save the object again to write format_version "
            f"{FORMAT_VERSION}.",
            UserWarning,
            stacklevel=2,
        )

    if meta["kind"] == "checkpoints":
        from .checkpoints import _family_from

        try:
            return _family_from(meta, arrays)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: the stored arrays do not form a valid checkpoint family: {exc}") from exc
    asarray = get_func("asarray", backend)
    K = meta["num_orders"]
    base = asarray(arrays["base"], device=device)
    factors = [
        (asarray(arrays[f"U_{k}"], device=device), asarray(arrays[f"V_{k}"], device=device)) for k in range(1, K + 1)
    ]
    # the arrays were just read into memory nobody else references: the
    # constructors may take them without the copy they make of a caller's arrays
    fresh = [base] + [a for pair in factors for a in pair]
    try:
        with adopting(*fresh):
            if meta["kind"] == "tree":
                from .tree import LowRankSegmentTree

                return LowRankSegmentTree(base, factors, rtol=meta["tol"], backend=backend)
            from .fit import Cascade

            errors = [float("nan") if e is None else float(e) for e in meta["errors"]]
            return Cascade(base, factors, errors=errors, method=meta["method"], backend=backend)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the stored arrays do not form a valid {meta['kind']}: {exc}") from exc


# --------------------------------------------------------------------------
# internals: saving
# --------------------------------------------------------------------------
def _kind_of(obj):
    from .fit import Cascade
    from .tree import LowRankSegmentTree

    if isinstance(obj, LowRankSegmentTree):
        return "tree", obj.backend
    if isinstance(obj, Cascade):
        return "cascade", obj.backend
    from .checkpoints import CheckpointFamily

    if isinstance(obj, CheckpointFamily):
        return "checkpoints", "numpy"
    raise TypeError(f"obj must be a LowRankSegmentTree or a Cascade (or a CheckpointFamily), got {type(obj).__name__}")


def _fspath(path):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None


def _write_atomically(target, arrays, np):
    """Write to a temporary sibling, fsync, rename over ``target``; errors name ``target``."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if not isinstance(exc, OSError):
            raise
        reason = exc.strerror or str(exc)
        if exc.errno is None:
            raise OSError(f"{target}: cannot save: {reason}") from exc
        # OSError(errno, ...) builds the matching subclass (PermissionError, ...), named by target.
        raise OSError(exc.errno, f"cannot save: {reason}", str(target)) from exc
    _fsync_directory(target.parent)


def _fsync_directory(directory):
    """Make the rename durable where the system allows syncing a directory (POSIX)."""
    flag = getattr(os, "O_DIRECTORY", None)
    if flag is None:  # Windows: directories cannot be opened; NTFS journals the rename
        return
    try:
        fd = os.open(directory, os.O_RDONLY | flag)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the file itself is synced
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# internals: loading
# --------------------------------------------------------------------------
def _open_for_reading(path):
    """(path, binary file object); OS errors name the path the user gave."""
    name = _fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    candidates = [name]
    if not name.lower().endswith(".npz"):
        candidates.append(name + ".npz")
    for i, candidate in enumerate(candidates):
        if os.path.isdir(candidate):
            raise IsADirectoryError(errno.EISDIR, "is a directory, expected a .npz file", candidate)
        _require_regular(candidate, os.stat, candidate)  # a FIFO would block open()
        try:
            f = open(candidate, "rb")  # noqa: SIM115 (returned to the caller, who closes it)
        except FileNotFoundError:
            if i + 1 < len(candidates):
                continue
            raise FileNotFoundError(errno.ENOENT, "no such lowrank-tree file", name) from None
        except PermissionError as exc:
            raise PermissionError(exc.errno, "permission denied: cannot read this file", candidate) from None
        try:
            _require_regular(candidate, os.fstat, f.fileno())
        except BaseException:
            f.close()
            raise
        return pathlib.Path(candidate), f


def _require_regular(name, stat, target):
    """Refuse devices, pipes and sockets: a zip reader would read /dev/zero until memory runs out."""
    try:
        mode = stat(target).st_mode
    except FileNotFoundError:
        return  # reported by open(), with the name the user gave
    except PermissionError as exc:
        raise PermissionError(exc.errno, "permission denied: cannot read this file", name) from None
    if not _stat.S_ISREG(mode):
        raise ValueError(f"{name}: not a regular file, expected a .npz file")


def _broken(path, exc):
    return ValueError(f"{path}: corrupted .npz archive ({type(exc).__name__}: {exc})")


#: Every way a damaged zip or .npy stream fails while being read.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    SyntaxError,
    ValueError,
)


def _read_archive(path, f, np):
    """Validated ``(meta, arrays)``: directory, metadata and headers checked before any data."""
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ValueError(
            f"{path}: not a readable .npz (zip) archive; the file is truncated, "
            f"corrupted or of another format ({type(exc).__name__}: {exc})"
        ) from None
    with zf:
        entries = _directory(path, zf, os.fstat(f.fileno()).st_size)
        if _META_KEY not in entries:
            raise ValueError(f"{path}: no '{_META_KEY}' entry; not a lowrank-tree file (or its metadata was removed)")
        meta = _parse_metadata(path, _read_metadata_entry(path, zf, entries.pop(_META_KEY), np))
        expected = _expected_entries(meta)
        missing = [key for key in expected if key not in entries]
        K = meta["num_orders"] if meta["kind"] != "checkpoints" else meta["num_checkpoints"] - 1
        if missing:
            raise ValueError(f"{path}: missing array {missing[0]!r} (metadata describes {meta['kind']} with K = {K})")
        extra = sorted(set(entries) - set(expected))
        if extra:
            raise ValueError(f"{path}: unexpected entry {extra[0]!r} for a {meta['kind']} with K = {K}")
        # Every header before any data: a lie anywhere is refused before anything is inflated.
        headers = {key: _read_header(path, zf, entries[key], key, np, *expected[key]) for key in expected}
        arrays = {key: _read_data(path, zf, entries[key], key, np, *headers[key]) for key in expected}

    digest = _checksum(arrays)
    recorded = meta["arrays_sha256"] if meta["format_version"] >= 2 else meta["checksum"]["value"]
    if digest != recorded:
        raise ValueError(
            f"{path}: checksum mismatch: the SHA-256 of the arrays ({digest[:12]}...) "
            f"does not match the one recorded in the metadata ({recorded[:12]}...); "
            f"the data is corrupted or was modified"
        )
    arrays = {key: a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("=")) for key, a in arrays.items()}
    if meta["kind"] == "cascade":
        stored = np.asarray([np.nan if e is None else e for e in meta["errors"]], dtype=np.float64)
        if not np.array_equal(arrays["errors"], stored, equal_nan=True):
            raise ValueError(f"{path}: array 'errors' disagrees with the metadata errors")
        if arrays["ranks"].tolist() != meta["ranks"]:
            raise ValueError(f"{path}: array 'ranks' disagrees with the metadata ranks")
    return meta, arrays


def _directory(path, zf, disk_size):
    """``{key: ZipInfo}`` of the ``key.npy`` entries, with their sizes checked against the file."""
    entries = {}
    total_stored = 0
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy") or "/" in name or name == ".npy":
            raise ValueError(f"{path}: unexpected entry {name!r}: a lowrank-tree .npz holds only .npy arrays")
        key = name[:-4]
        if key in entries:
            raise ValueError(f"{path}: entry {key!r} appears twice in the archive")
        if info.flag_bits & 0x1:
            raise ValueError(f"{path}: entry {key!r} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size != info.compress_size:
                raise ValueError(
                    f"{path}: entry {key!r} is stored uncompressed but declares "
                    f"{info.file_size} bytes in {info.compress_size}"
                )
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + _DEFLATE_SLACK:
                raise ValueError(
                    f"{path}: entry {key!r} declares {info.file_size} bytes from "
                    f"{info.compress_size} compressed, more than deflate can produce"
                )
        else:
            raise ValueError(
                f"{path}: entry {key!r} uses zip compression method "
                f"{info.compress_type}; only stored and deflated entries are read"
            )
        total_stored += info.compress_size
        entries[key] = info
    # Entries may not share bytes (the overlapping-entry bomb): with the per-entry ratios above,
    # the total that can be inflated is bounded by about 1032 times the size of the file.
    if total_stored > disk_size:
        raise ValueError(
            f"{path}: the zip directory declares {total_stored} bytes of entries in a "
            f"file of {disk_size} bytes; the file is truncated or corrupted"
        )
    return entries


def _open_entry(path, zf, info, key):
    try:
        return zf.open(info)
    except _READ_ERRORS as exc:
        raise ValueError(f"{path}: corrupted .npz archive (entry {key!r}: {type(exc).__name__}: {exc})") from None


def _npy_header(path, fp, key, np):
    """(shape, fortran_order, dtype, data offset) of an ``.npy`` stream; reads no data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not read here")
    except Exception as exc:  # noqa: BLE001
        # NumPy parses the header text with tokenize and ast.literal_eval: a damaged
        # header can raise tokenize.TokenError, RecursionError, TypeError, ... as well
        # as ValueError.  Whatever it raises, the entry is not a valid .npy array.
        if isinstance(exc, MemoryError):
            raise
        raise ValueError(
            f"{path}: corrupted entry {key!r}: not a valid .npy array ({type(exc).__name__}: {exc})"
        ) from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(
            f"{path}: corrupted or unsafe entry {key!r}: dtype {dtype} (object and "
            f"structured arrays are refused; no pickles are ever loaded)"
        )
    return shape, fortran, dtype, fp.tell()


def _check_size(path, info, key, offset, nbytes):
    if info.file_size != offset + nbytes:
        raise ValueError(
            f"{path}: entry {key!r} holds {info.file_size - offset} bytes of data but its .npy header declares {nbytes}"
        )


def _read_metadata_entry(path, zf, info, np):
    with _open_entry(path, zf, info, _META_KEY) as fp:
        shape, fortran, dtype, offset = _npy_header(path, fp, _META_KEY, np)
    if dtype != np.uint8 or len(shape) != 1 or fortran:
        raise ValueError(
            f"{path}: '{_META_KEY}' must be a 1-D uint8 array of UTF-8 JSON, got {dtype} with shape {shape}"
        )
    if shape[0] > _MAX_METADATA_BYTES:
        raise ValueError(
            f"{path}: '{_META_KEY}' declares {shape[0]} bytes, more than the "
            f"{_MAX_METADATA_BYTES} a lowrank-tree file's metadata may take"
        )
    _check_size(path, info, _META_KEY, offset, shape[0])
    return _read_data(path, zf, info, _META_KEY, np, shape, dtype, offset).tobytes()


def _read_header(path, zf, info, key, np, shape, dtype_name):
    """Check one entry's header against the metadata; returns (shape, dtype, data offset)."""
    with _open_entry(path, zf, info, key) as fp:
        got_shape, fortran, dtype, offset = _npy_header(path, fp, key, np)
    if tuple(got_shape) != shape:
        raise ValueError(f"{path}: array {key!r} has shape {tuple(got_shape)} but the metadata implies {shape}")
    want = np.dtype(dtype_name)
    if dtype not in (want.newbyteorder("<"), want.newbyteorder(">")):
        raise ValueError(f"{path}: array {key!r} has dtype {dtype} but the metadata implies {want}")
    if fortran and len(shape) > 1:
        raise ValueError(f"{path}: array {key!r} is stored in Fortran order; lowrank-tree files store C-order arrays")
    nbytes = dtype.itemsize
    for s in shape:
        nbytes *= s
    _check_size(path, info, key, offset, nbytes)
    return shape, dtype, offset


def _read_data(path, zf, info, key, np, shape, dtype, offset):
    """The array of a checked entry, inflated in bounded chunks straight into its buffer."""
    out = np.empty(shape, dtype=dtype)
    buf = memoryview(out.reshape(-1).view(np.uint8))
    size = len(buf)
    try:
        with zf.open(info) as fp:
            fp.read(offset)  # the header, already checked
            pos = 0
            while pos < size:
                chunk = fp.read(min(_CHUNK, size - pos))
                if not chunk:
                    raise EOFError(f"entry {key!r} ends after {pos} of {size} data bytes")
                buf[pos : pos + len(chunk)] = chunk
                pos += len(chunk)
            if fp.read(1):  # also reaches the end of the entry, where its CRC is checked
                raise ValueError(f"entry {key!r} has data after its {size} bytes")
    except _READ_ERRORS as exc:
        raise _broken(path, exc) from None
    return out


def _parse_metadata(path, raw):
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: metadata is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: metadata must be a JSON object, got {type(meta).__name__}")

    fmt = meta.get("format")
    if fmt != FORMAT:
        raise ValueError(f"{path}: not a lowrank-tree file (format {fmt!r}, expected {FORMAT!r})")
    version = meta.get("format_version")
    if not _is_int(version):
        raise ValueError(f"{path}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version} is newer than this library supports "
            f"({FORMAT_VERSION}); upgrade lowrank-tree to read it"
        )
    if version not in (1, FORMAT_VERSION):
        raise ValueError(
            f"{path}: unsupported format_version {version} (this library reads versions 1 and {FORMAT_VERSION})"
        )

    def need(key, ok, expected):
        if key not in meta:
            raise ValueError(f"{path}: metadata field {key!r} is missing")
        if not ok(meta[key]):
            raise ValueError(f"{path}: metadata field {key!r} must be {expected}, got {meta[key]!r}")

    need(
        "checksum",
        lambda v: isinstance(v, dict) and v.get("algorithm") == "sha256" and _is_hex_digest(v.get("value")),
        "{'algorithm': 'sha256', 'value': <64 hex digits>}",
    )
    if version >= 2:
        # Before any other field is believed: every field below is covered by this digest.
        digest = _metadata_digest(meta)
        recorded = meta["checksum"]["value"]
        if digest != recorded:
            ours = f"{digest[:12]}..." if digest else "not computable: NaN or Infinity in the JSON"
            raise ValueError(
                f"{path}: checksum mismatch: the SHA-256 of the metadata ({ours}) does "
                f"not match the recorded checksum ({recorded[:12]}...); the metadata was "
                f"edited or corrupted"
            )
        need("arrays_sha256", _is_hex_digest, "64 hex digits")
    need("kind", lambda v: v in ("tree", "cascade", "checkpoints"), "'tree', 'cascade' or 'checkpoints'")
    if meta["kind"] == "checkpoints":
        if version < 2:
            raise ValueError(f"{path}: a checkpoint family needs format_version 2, got {version}")
        from .checkpoints import _family_check_metadata

        _family_check_metadata(path, meta)
        return meta
    need("dtype", lambda v: v in _DTYPES, f"one of {list(_DTYPES)}")
    need(
        "shape",
        lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(s) and s > 0 for s in v),
        "[m, n] with m, n >= 1",
    )
    need("num_orders", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    K = meta["num_orders"]
    need(
        "ranks",
        lambda v: isinstance(v, list) and len(v) == K and all(_is_int(r) and r >= 0 for r in v),
        f"a list of {K} integers >= 0",
    )
    if meta["kind"] == "tree":
        need("tol", lambda v: v is None or (_is_number(v) and 0 <= v < 1), "null or a number in [0, 1)")
    else:
        need(
            "errors",
            lambda v: isinstance(v, list) and len(v) == K + 1 and all(e is None or _is_number(e) for e in v),
            f"a list of {K + 1} numbers or nulls",
        )
        need("method", lambda v: isinstance(v, str), "a string")
    return meta


def _expected_entries(meta):
    """``{key: (shape, dtype name)}`` of every array the metadata describes."""
    if meta["kind"] == "checkpoints":
        from .checkpoints import _family_expected

        return _family_expected(meta)
    K, (m, n), dtype = meta["num_orders"], meta["shape"], meta["dtype"]
    expected = {"base": ((m, n), dtype)}
    for k, r in enumerate(meta["ranks"], start=1):
        expected[f"U_{k}"] = ((m, r), dtype)
        expected[f"V_{k}"] = ((n, r), dtype)
    if meta["kind"] == "cascade":
        expected.update(errors=((K + 1,), "float64"), ranks=((K,), "int64"))
    return expected


def _checksum(arrays):
    """SHA-256 over names, dtypes, shapes and bytes of all arrays, in key order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        if key == _META_KEY:
            continue
        a = arrays[key]
        h.update(f"{key}\0{a.dtype.str}\0{tuple(a.shape)}\0".encode())
        if not a.flags.c_contiguous:
            a = a.copy(order="C")
        h.update(a.reshape(-1).view("u1"))  # the C-order bytes, without a copy of the whole array
    return h.hexdigest()


def _metadata_digest(meta):
    """SHA-256 of the canonical JSON of every metadata field but ``checksum`` (None if not JSON-able)."""
    body = {key: value for key, value in meta.items() if key != "checksum"}
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None  # e.g. an edited file with NaN or Infinity in it: cannot match
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _is_hex_digest(v):
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
