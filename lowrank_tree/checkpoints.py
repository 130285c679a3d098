"""Whole-model checkpoint families: every 2-D parameter of a run as one cascade.

:func:`fit_checkpoints` reads a training run's checkpoints (state dicts, or
``.safetensors`` / ``.npz`` / torch ``.pt`` files read one tensor at a time),
fits one cascade per 2-D floating-point parameter and stores every other
parameter exactly, and returns a :class:`CheckpointFamily` from which any
checkpoint can be rebuilt, queried, extended and saved.

PyTorch, safetensors, tqdm and Dask are optional: each is imported only where
it is used (a ``.pt`` file or torch tensors, a ``.safetensors`` file, a
progress bar, a Dask executor passed in by the caller).
"""

from __future__ import annotations

import fnmatch
import math
import os
import pathlib
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from ._typing import Array, ArrayLike, PathLike

__all__ = ["CheckpointFamily", "fit_checkpoints"]

_SUFFIXES = (".safetensors", ".npz", ".pt", ".pth", ".bin")
#: Floating dtypes fitted by a cascade, and the dtype the fit runs in.
_FIT_DTYPE = {"float16": "float32", "bfloat16": "float32", "float32": "float32", "float64": "float64"}
#: Seed of every sketch; each order ``k`` of each parameter draws from ``[_SEED, k]``.
_SEED = 0
_METHODS = ("auto", "exact", "randomized")


# --------------------------------------------------------------------------
# Reading checkpoints
# --------------------------------------------------------------------------
class _Source:
    """One checkpoint: its index, where it comes from, and how to read one parameter.

    File sources hold only the path (they pickle small, so an executor task
    reads its own parameter from the file); dict sources hold the caller's
    dict (serial use only).
    """

    index: int
    path: str | None

    @property
    def label(self) -> str:
        where = f"file {self.path}" if self.path is not None else "a state dict"
        return f"checkpoint {self.index} ({where})"

    def entries(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """``{name: (shape, dtype name)}`` without reading any values."""
        raise NotImplementedError

    def read(self, name: str) -> Any:
        """The parameter as a NumPy array (bfloat16 as float32), checked finite."""
        raise NotImplementedError

    def is_torch(self) -> bool:
        return False


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is installed where torch input exists
        raise ImportError("reading torch checkpoints needs PyTorch (pip install torch)") from exc
    return torch


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _torch_dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def _tensor_to_numpy(t):
    """A CPU NumPy array of a torch tensor; bfloat16 (no NumPy dtype) becomes float32, exactly."""
    torch = _torch()
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.to(torch.float32)
    return t.cpu().numpy()


def _check_finite_param(a, name, label):
    import numpy as np

    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{label}: parameter {name!r} holds {bad} NaN or Inf value(s)")
    return a


class _DictSource(_Source):
    def __init__(self, index, sd):
        self.index, self.path = index, None
        if not isinstance(sd, Mapping):
            raise TypeError(
                f"checkpoints[{index}] must be a state dict (a mapping of names to arrays or tensors) "
                f"or a path to a .safetensors, .npz or .pt file, got {type(sd).__name__}"
            )
        self.sd = sd

    def entries(self):
        import numpy as np

        out = {}
        for name, v in self.sd.items():
            if not isinstance(name, str):
                raise TypeError(f"{self.label}: parameter names must be strings, got {name!r}")
            if _is_tensor(v):
                out[name] = (tuple(int(s) for s in v.shape), _torch_dtype_name(v))
            else:
                a = np.asarray(v)
                if a.dtype.kind not in "biufc":
                    raise TypeError(f"{self.label}: parameter {name!r} has dtype {a.dtype}; expected numbers")
                out[name] = (tuple(a.shape), a.dtype.name)
        return out

    def read(self, name):
        import numpy as np

        v = self.sd[name]
        a = _tensor_to_numpy(v) if _is_tensor(v) else np.asarray(v)
        return _check_finite_param(a, name, self.label)

    def is_torch(self):
        return any(_is_tensor(v) for v in self.sd.values())


class _ArraysSource(_Source):
    """One parameter's value at one checkpoint, shipped to an executor task (in-memory input)."""

    def __init__(self, index, arrays):
        self.index, self.path, self.arrays = index, None, arrays

    def read(self, name):
        return _check_finite_param(self.arrays[name], name, self.label)


class _FileSource(_Source):
    def __init__(self, index, path):
        self.index = index
        self.path = os.fspath(path)
        suffix = pathlib.Path(self.path).suffix.lower()
        if suffix not in _SUFFIXES:
            raise ValueError(
                f"checkpoint {index}: {self.path}: expected a .safetensors, .npz or torch .pt/.pth/.bin file"
            )
        self.fmt = "safetensors" if suffix == ".safetensors" else "npz" if suffix == ".npz" else "pt"
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"checkpoint {index}: no such file: {self.path}")
        if os.path.isdir(self.path):
            raise ValueError(f"checkpoint {index}: {self.path} is a directory, expected a checkpoint file")

    def is_torch(self):
        if self.fmt == "pt":
            return True
        if self.fmt == "safetensors":
            try:
                import torch  # noqa: F401
            except ImportError:
                return False
            return True
        return False

    def _damaged(self, exc):
        return ValueError(f"{self.label}: cannot read the {self.fmt} file ({type(exc).__name__}: {exc})")

    # -- safetensors: safe_open reads the header, then one tensor at a time
    def _safe_open(self):
        try:
            from safetensors import safe_open
        except ImportError as exc:
            raise ImportError(
                f"{self.path}: reading .safetensors files needs safetensors (pip install 'lowrank-tree[checkpoints]')"
            ) from exc
        try:
            return safe_open(self.path, "np")
        except Exception as exc:  # noqa: BLE001 (SafetensorError derives from Exception only)
            raise self._damaged(exc) from None

    _ST_DTYPES = {
        "F64": "float64",
        "F32": "float32",
        "F16": "float16",
        "BF16": "bfloat16",
        "I64": "int64",
        "I32": "int32",
        "I16": "int16",
        "I8": "int8",
        "U8": "uint8",
        "BOOL": "bool",
    }

    def entries(self):
        if self.fmt == "safetensors":
            with self._safe_open() as f:
                out = {}
                for name in f.keys():
                    sl = f.get_slice(name)
                    code = sl.get_dtype()
                    if code not in self._ST_DTYPES:
                        raise ValueError(f"{self.label}: parameter {name!r} has unsupported dtype {code}")
                    out[name] = (tuple(int(s) for s in sl.get_shape()), self._ST_DTYPES[code])
                return out
        if self.fmt == "npz":
            return self._npz_entries()
        sd = self._torch_load()
        return {name: (tuple(int(s) for s in t.shape), _torch_dtype_name(t)) for name, t in sd.items()}

    def read(self, name):
        if self.fmt == "safetensors":
            with self._safe_open() as f:
                if self._ST_DTYPES.get(f.get_slice(name).get_dtype()) == "bfloat16":
                    a = self._read_bf16(name)
                else:
                    try:
                        a = f.get_tensor(name)
                    except Exception as exc:  # noqa: BLE001
                        raise self._damaged(exc) from None
        elif self.fmt == "npz":
            import numpy as np

            try:
                with np.load(self.path, allow_pickle=False) as data:
                    a = data[name]
            except (OSError, ValueError, EOFError, KeyError) as exc:
                raise self._damaged(exc) from None
        else:
            a = _tensor_to_numpy(self._torch_load()[name])
        return _check_finite_param(a, name, self.label)

    def _read_bf16(self, name):
        """A bfloat16 tensor of a safetensors file as float32, from its header's offsets (no torch)."""
        import json

        import numpy as np

        with open(self.path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
            info = header[name]
            start, end = info["data_offsets"]
            fh.seek(8 + n + start)
            raw = np.frombuffer(fh.read(end - start), dtype="<u2")
        if raw.size != int(np.prod(info["shape"], dtype=np.int64)):
            raise ValueError(f"{self.label}: parameter {name!r} is truncated")
        return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])

    def _npz_entries(self):
        import zipfile

        import numpy as np

        out = {}
        try:
            with zipfile.ZipFile(self.path) as zf:
                for info in zf.infolist():
                    if not info.filename.endswith(".npy"):
                        continue
                    with zf.open(info) as fp:
                        version = np.lib.format.read_magic(fp)
                        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else None
                        read = read or np.lib.format.read_array_header_2_0
                        shape, _, dtype = read(fp)
                    if dtype.kind not in "biufc" or dtype.fields is not None:
                        raise ValueError(f"array {info.filename[:-4]!r} has dtype {dtype}; expected numbers")
                    out[info.filename[:-4]] = (tuple(int(s) for s in shape), dtype.name)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise self._damaged(exc) from None
        return out

    def _torch_load(self):
        torch = _torch()
        try:
            sd = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001 (torch raises RuntimeError, pickle errors, ...)
            raise self._damaged(exc) from None
        if not isinstance(sd, Mapping) or not all(isinstance(k, str) and _is_tensor(v) for k, v in sd.items()):
            raise ValueError(f"{self.label}: expected a state dict (a mapping of names to tensors) in the .pt file")
        return sd


def _as_source(index, item):
    if isinstance(item, (str, os.PathLike)):
        return _FileSource(index, item)
    return _DictSource(index, item)


# --------------------------------------------------------------------------
# One parameter's fit (runs in the caller's process or in an executor task)
# --------------------------------------------------------------------------
class _Spec:
    """What is known of one parameter from checkpoint 0: role, shape, dtype, fit settings."""

    def __init__(self, name, shape, dtype, role, rank=None, budget=None, matrix_shape=None):
        self.name, self.shape, self.dtype, self.role = name, tuple(shape), dtype, role
        self.rank, self.budget = rank, budget
        # a convolution kernel (out, in, *k) is fitted as the matrix (out, in * prod(k))
        self.matrix_shape = tuple(matrix_shape) if matrix_shape is not None else self.shape

    @property
    def fit_dtype(self):
        return _FIT_DTYPE.get(self.dtype, self.dtype)


class _CascadeFitter:
    """The cascade of one parameter, one checkpoint at a time (the step of :func:`cascade_fit`).

    Each order is fitted from ``Ŵ_{k−1}``, ``M_k`` and the seed ``[0, k]``
    alone, so a later :meth:`CheckpointFamily.append` fits exactly the order
    a refit with the new checkpoint would.
    """

    def __init__(self, spec, tol, method):
        self.spec, self.tol, self.method = spec, tol, method
        self.next_method = "randomized" if method == "auto" else method
        self.base = self.W = None
        self.factors, self.errors, self.used = [], [0.0], set()
        self.raised = 0.0

    def start(self, M, W=None):
        import numpy as np

        self.base = np.array(M, dtype=self.spec.fit_dtype, copy=True).reshape(self.spec.matrix_shape)
        self.W = self.base if W is None else W

    def step(self, M, k, rank=None):
        import numpy as np

        from ._randomized import Sketcher
        from ._threads import small_blas
        from .fit import SMALL_BLAS_MAX, _fit_order

        spec = self.spec
        M = np.asarray(M, dtype=spec.fit_dtype).reshape(spec.matrix_shape)
        if rank is not None:
            r_req = rank
        else:
            r_req = spec.rank if not isinstance(spec.rank, list) else spec.rank[k - 1]
        seed = [_SEED, k]
        opts = dict(oversample=10, power_iters=2, seed=seed)
        with small_blas(min(M.shape) <= SMALL_BLAS_MAX):
            delta, self.W, err, raised, ran = _fit_order(
                M, self.W, r_req, self.tol, self.next_method, Sketcher(np, seed), opts, np
            )
        if ran is not None:
            self.used.add(ran)
            if self.method == "auto":  # as cascade_fit: a high-rank exact order sends the next to the full SVD
                self.next_method = "exact" if ran == "exact" and delta.rank > min(M.shape) // 4 else "randomized"
        self.raised = max(self.raised, raised)
        # C order, as a loaded family has them: the GEMM of Cascade.matrix rounds by memory layout
        self.factors.append((np.ascontiguousarray(delta._U), np.ascontiguousarray(delta._V)))
        self.errors.append(float(err))

    def result(self):
        method = "randomized" if "randomized" in self.used else "exact"
        return {
            "base": self.base,
            "factors": self.factors,
            "errors": self.errors,
            "method": method,
            "next_method": self.next_method,
            "raised": self.raised,
        }


class _ExactKeeper:
    """A parameter kept exactly: checkpoint 0, then per checkpoint the entries that differ from it.

    A change is stored sparse (flat indices and the new values) when that is
    smaller than the dense value, else dense; ``None`` when nothing differs.
    Entries are compared bit for bit, so ``-0.0`` and ``0.0`` differ.
    """

    def __init__(self, spec):
        self.spec = spec
        self.base = None
        self.changes = []

    def start(self, a):
        import numpy as np

        self.base = np.array(a, copy=True)

    def step(self, a, k):
        self.changes.append(_exact_change(self.base, a))

    def result(self):
        return {"base": self.base, "changes": self.changes}


def _exact_change(base, a):
    import numpy as np

    a = np.asarray(a, dtype=base.dtype, order="C")
    if base.size == 0:
        return None
    raw = f"u{base.dtype.itemsize}" if base.dtype.kind != "c" else f"u{base.dtype.itemsize // 2}"
    differ = base.reshape(-1).view(raw) != a.reshape(-1).view(raw)
    if base.dtype.kind == "c":
        differ = differ.reshape(-1, 2).any(axis=1)
    idx = np.flatnonzero(differ)
    if idx.size == 0:
        return None
    if idx.size * (8 + base.dtype.itemsize) < base.size * base.dtype.itemsize:
        return ("sparse", idx.astype(np.int64), a.reshape(-1)[idx].copy())
    return ("dense", a.copy())


def _make_worker(spec, tol, method):
    return _CascadeFitter(spec, tol, method) if spec.role == "cascade" else _ExactKeeper(spec)


def _check_slice(spec, a, source):
    if tuple(a.shape) != spec.shape:
        raise ValueError(
            f"{source.label}: parameter {spec.name!r} has shape {tuple(a.shape)}, "
            f"but shape {spec.shape} in checkpoint 0"
        )
    return a


def _fit_parameter(spec, sources, tol, method, tick=None):
    """Fit (or keep exactly) one parameter across ``sources``; plain arrays out (picklable)."""
    if spec.role == "cascade" and spec.budget is not None:
        return _fit_budget(spec, sources, method, tick)
    worker = _make_worker(spec, tol, method)
    for k, src in enumerate(sources):
        a = _check_slice(spec, src.read(spec.name), src)
        if k == 0:
            worker.start(a)
        else:
            worker.step(a, k)
        del a
        if tick is not None:
            tick(1)
    return worker.result()


def _fit_budget(spec, sources, method, tick):
    """A budget fit needs every order of the parameter at once (the allocation compares them)."""
    import numpy as np

    from .fit import cascade_fit

    mats = []
    for src in sources:
        a = _check_slice(spec, src.read(spec.name), src)
        mats.append(np.asarray(a, dtype=spec.fit_dtype).reshape(spec.matrix_shape))
        if tick is not None:
            tick(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = cascade_fit(mats, budget=spec.budget, method=method, seed=_SEED)
    return {
        "base": np.asarray(c._base),
        "factors": [(np.ascontiguousarray(d._U), np.ascontiguousarray(d._V)) for d in c._corrections],
        "errors": c.errors,
        "method": c.method,
        "next_method": "randomized" if method == "auto" else method,
        "raised": 0.0,
    }


def _task(spec, sources, tol, method):
    """Executor task: module-level, so that a process pool or a Dask worker can import it."""
    return _fit_parameter(spec, sources, tol, method)


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------
def _progress_bar(progress, total, desc):
    """A tqdm bar (quiet when not a terminal unless ``progress=True``), or None."""
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="slice", disable=None if progress is None else False)


# --------------------------------------------------------------------------
# The family
# --------------------------------------------------------------------------
class CheckpointFamily(Mapping):
    """Every parameter of a run's checkpoints: one :class:`~lowrank_tree.Cascade` per 2-D parameter.

    Obtained from :func:`fit_checkpoints` or :meth:`load`.  A mapping from
    the name of each fitted (2-D, floating-point, selected) parameter to its
    :class:`~lowrank_tree.Cascade`; every other parameter is kept exactly
    (:attr:`exact_names`).

    Attributes
    ----------
    num_checkpoints : int
        ``K + 1``, the checkpoints ``0..K``.
    names : list of str
        Every parameter, in the order of checkpoint 0.
    exact_names : list of str
        The parameters stored exactly (not fitted).
    errors : dict of str to list of float
        Per fitted parameter, the ``K + 1`` relative Frobenius errors
        ``‖Ŵ_k − M_k‖_F / ‖M_k‖_F`` (``errors[name][0] = 0``).
    nbytes, dense_nbytes : int
        Bytes held by the family, and by the dense run (every parameter of
        every checkpoint in its own dtype).
    framework : {'numpy', 'torch'}
        What :meth:`state_dict` returns by default.

    Notes
    -----
    A family owns its arrays.  :meth:`append` is the only method that changes
    it; it fits every parameter first and changes nothing if any fails.
    Reading methods may run in several threads at once, but not beside
    :meth:`append`.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_tree import fit_checkpoints
    >>> rng = np.random.default_rng(0)
    >>> u, v = rng.standard_normal((6, 1)), rng.standard_normal((4, 1))
    >>> run = [{"w": k * u @ v.T, "step": np.array(k)} for k in range(3)]
    >>> fam = fit_checkpoints(run, tol=1e-12)
    >>> fam["w"].ranks, fam.exact_names
    ([1, 1], ['step'])
    >>> fam.append({"w": 3 * u @ v.T, "step": np.array(3)})
    >>> fam.num_checkpoints, int(fam.state_dict(3)["step"])
    (4, 3)
    >>> bool(np.allclose(fam.query("w", 3, np.ones(4)), 3 * u @ v.T @ np.ones(4)))
    True
    """

    def __init__(self, *, names, specs, results, num_checkpoints, framework, tol, method):
        from .fit import Cascade

        self._names = list(names)
        self._specs = dict(specs)
        self._K1 = int(num_checkpoints)
        self._framework = framework
        self._tol = tol
        self._method = method
        self._cascades: dict[str, Cascade] = {}
        self._next_method: dict[str, str] = {}
        self._exact: dict[str, dict] = {}
        self._trees: dict[str, Any] = {}
        for name in self._names:
            spec, res = self._specs[name], results[name]
            if spec.role == "cascade":
                self._cascades[name] = _cascade_from(res)
                self._next_method[name] = res.get("next_method", "randomized")
            else:
                self._exact[name] = {"base": res["base"], "changes": list(res["changes"])}
                res["base"].setflags(write=False)

    # -- mapping name -> Cascade ------------------------------------------
    def __getitem__(self, name: str) -> Any:
        try:
            return self._cascades[name]
        except KeyError:
            if name in self._exact:
                raise KeyError(f"parameter {name!r} is stored exactly, not as a cascade") from None
            raise KeyError(f"no parameter {name!r} in the family") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._cascades)

    def __len__(self) -> int:
        return len(self._cascades)

    # -- description -----------------------------------------------------
    @property
    def num_checkpoints(self) -> int:
        """``K + 1``: checkpoints ``0..K``."""
        return self._K1

    @property
    def names(self) -> list[str]:
        """Every parameter name, in the order of checkpoint 0 (a new list)."""
        return list(self._names)

    @property
    def exact_names(self) -> list[str]:
        """The parameters stored exactly (non-2-D, non-float or excluded), a new list."""
        return [n for n in self._names if n in self._exact]

    @property
    def framework(self) -> str:
        """``'torch'`` or ``'numpy'``: what :meth:`state_dict` returns by default."""
        return self._framework

    @property
    def errors(self) -> dict[str, list[float]]:
        """``{name: [e_0, ..., e_K]}`` for every fitted parameter (relative Frobenius errors)."""
        return {name: c.errors for name, c in self._cascades.items()}

    @property
    def max_error(self) -> float:
        """The largest relative error of any fitted parameter at any checkpoint (0 when none is fitted)."""
        return max((max(c.errors) for c in self._cascades.values()), default=0.0)

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of parameter ``name``."""
        return self._spec(name).shape

    def dtype(self, name: str) -> str:
        """The dtype name of parameter ``name`` in the checkpoints (e.g. ``'float32'``, ``'bfloat16'``)."""
        return self._spec(name).dtype

    def _spec(self, name):
        if name not in self._specs:
            raise KeyError(f"no parameter {name!r} in the family")
        return self._specs[name]

    @property
    def nbytes(self) -> int:
        """Bytes held: bases and factors of the cascades, bases and stored changes of the exact parameters."""
        total = sum(c.nbytes for c in self._cascades.values())
        for ex in self._exact.values():
            total += ex["base"].nbytes + sum(_change_nbytes(ch) for ch in ex["changes"])
        return total

    @property
    def dense_nbytes(self) -> int:
        """Bytes of the dense run: every parameter at every checkpoint, in its checkpoint dtype."""
        import math

        return sum(self._K1 * math.prod(s.shape) * _itemsize(s.dtype) for s in self._specs.values())

    # -- reconstruction --------------------------------------------------
    def _value(self, name, k):
        """Parameter ``name`` at checkpoint ``k`` as NumPy, in the fit dtype (cascades) or exactly."""
        import numpy as np

        if name in self._cascades:
            return np.asarray(self._cascades[name].matrix(k)).reshape(self._specs[name].shape)
        ex = self._exact[name]
        out = np.array(ex["base"], copy=True)
        ch = ex["changes"][k - 1] if k > 0 else None
        if ch is not None:
            if ch[0] == "dense":
                out[...] = ch[1]
            else:
                out.reshape(-1)[ch[1]] = ch[2]
        return out

    def state_dict(self, k: int, *, framework: str | None = None) -> dict[str, Any]:
        """Rebuild checkpoint ``k``: every parameter, in the checkpoint's names, shapes and dtypes.

        Parameters
        ----------
        k : int
            Checkpoint index, ``0 <= k < num_checkpoints``.
        framework : {'torch', 'numpy'}, optional
            What to return: torch tensors (loadable with
            ``model.load_state_dict``) or NumPy arrays.  Default
            :attr:`framework`: torch when the checkpoints were torch tensors,
            ``.pt`` files, or ``.safetensors`` files read where PyTorch is
            installed; NumPy otherwise.

        Returns
        -------
        dict of str to tensor or array
            New tensors/arrays, in the order of checkpoint 0.  Fitted
            parameters are ``Ŵ_k`` (within :attr:`errors` of the original, as
            measured in the fit dtype, float32 for float16/bfloat16) cast to
            the checkpoint dtype; the others are bit for bit the original.
            With NumPy, bfloat16 parameters come back as float32 (NumPy has
            no bfloat16).
        """
        from ._validation import check_int

        k = check_int(k, "k", 0, self._K1 - 1)
        framework = self._framework if framework is None else framework
        if framework not in ("torch", "numpy"):
            raise ValueError(f"framework must be 'torch' or 'numpy', got {framework!r}")
        out = {}
        for name in self._names:
            out[name] = _to_framework(self._value(name, k), self._specs[name].dtype, framework)
        return out

    def tree(self, name: str, **opts: Any) -> Any:
        """The :class:`~lowrank_tree.LowRankSegmentTree` of parameter ``name``.

        Parameters
        ----------
        name : str
            A fitted parameter.
        **opts
            Passed to :meth:`Cascade.tree` (e.g. ``rtol``); ``backend``
            (``'numpy'``, ``'numba'``, ``'cupy'``, ``'array_api_strict'``)
            places the tree's arrays on that library, e.g. the GPU.

        Returns
        -------
        LowRankSegmentTree
            Without ``opts``, one NumPy tree per parameter, built on the first
            call and reused (and appended to by :meth:`append`); with
            ``opts``, a new tree each time.
        """
        cascade = self[name]
        if opts:
            backend = opts.get("backend")
            if backend not in (None, "numpy", "numba"):
                cascade = _cascade_on(cascade, backend)
            return cascade.tree(**opts)
        tree = self._trees.get(name)
        if tree is None:
            tree = self._trees[name] = cascade.tree()
        return tree

    def query(self, name: str, k: int, X: ArrayLike) -> Array:
        """``Ŵ_k X`` for parameter ``name``: shape (m, b) for ``X`` of shape (n, b) (or (n,) -> (m,)).

        For a ``torch.nn.Linear`` weight (shape ``(out, in)``), ``X`` holds
        inputs as columns: ``query(name, k, x.T).T`` is ``x @ Ŵ_kᵀ``.
        """
        return self.tree(name).query(k, X)

    # -- growth ----------------------------------------------------------
    def append(self, state_dict: Mapping[str, Any] | PathLike, *, rank: int | Mapping[str, int] | None = None) -> None:
        """Add checkpoint ``K + 1``: one cascade step (one tree append) per fitted parameter.

        Parameters
        ----------
        state_dict : dict or path
            The new checkpoint, with the same parameter names and shapes
            (a state dict or a checkpoint file).
        rank : int or mapping, optional, keyword-only
            Rank of the new correction of every fitted parameter, or a
            mapping ``name -> rank``; needed for parameters fitted with one
            rank per checkpoint.  By default each parameter is fitted as
            before: by its tolerance, or its fixed rank.

        The new order of each cascade is fitted as :func:`fit_checkpoints`
        would have fitted it with this checkpoint at the end (the same
        tolerance, method and seed), from ``Ŵ_K`` rebuilt from the stored
        factors.  Trees already built are appended to (``O(log K)``).
        Nothing changes if the checkpoint is refused.

        Raises
        ------
        ValueError
            A parameter missing, extra or of another shape, NaN/Inf, a
            family fitted with a ``budget`` (a budget allocation cannot be
            extended: refit), a rank out of range or missing for a
            parameter fitted with one rank per checkpoint.
        """
        import numpy as np

        from ._validation import check_int

        if any(s.budget is not None for s in self._specs.values() if s.role == "cascade"):
            raise ValueError("append: this family was fitted with a budget, which cannot be extended; refit it")
        if isinstance(rank, Mapping):
            unknown = [n for n in rank if n not in self._cascades]
            if unknown:
                raise ValueError(f"rank: no fitted parameter {unknown[0]!r}")
        new_rank = {}
        for name in self._cascades:
            spec = self._specs[name]
            r = rank.get(name) if isinstance(rank, Mapping) else rank
            label = f"rank[{name!r}]" if isinstance(rank, Mapping) else "rank"
            if r is not None:
                new_rank[name] = check_int(r, label, 0, min(spec.matrix_shape))
            elif isinstance(spec.rank, list):
                raise ValueError(
                    f"append: parameter {name!r} was fitted with one rank per checkpoint; give its rank for "
                    f"the new one (rank=...)"
                )
        src = _as_source(self._K1, state_dict)
        _check_entries(src, self._specs, self._names)
        new_cascades, new_exact, new_next = {}, {}, {}
        for name in self._names:
            spec = self._specs[name]
            a = _check_slice(spec, src.read(name), src)
            if spec.role == "cascade":
                c = self._cascades[name]
                fitter = _CascadeFitter(spec, self._tol, self._method)
                fitter.next_method = self._next_method[name]
                fitter.start(np.asarray(c._base), W=np.asarray(c.matrix(c.max_order)))
                fitter.step(a, self._K1, new_rank.get(name))
                U, V = fitter.factors[0]
                new_cascades[name] = _extend_cascade(c, U, V, fitter.errors[1], fitter.used)
                new_next[name] = fitter.next_method
            else:
                new_exact[name] = _exact_change(self._exact[name]["base"], a)
        # everything fitted: commit
        for name, c in new_cascades.items():
            self._cascades[name] = c
            spec = self._specs[name]
            if isinstance(spec.rank, list):  # the per-checkpoint ranks stay one per correction
                spec.rank = [*spec.rank, new_rank[name]]
            self._next_method[name] = new_next[name]
            tree = self._trees.get(name)
            if tree is not None:
                d = c._corrections[-1]
                tree.append((d._U, d._V))
        for name, ch in new_exact.items():
            self._exact[name]["changes"].append(ch)
        self._K1 += 1

    # -- persistence -----------------------------------------------------
    def save(self, path: PathLike) -> pathlib.Path:
        """Write the family to one checksummed ``.npz`` file (see :func:`lowrank_tree.save`)."""
        from .io import save

        return save(self, path)

    @classmethod
    def load(cls, path: PathLike) -> CheckpointFamily:
        """Read a family written by :meth:`save` (validated as :func:`lowrank_tree.load` validates)."""
        from .io import load

        obj = load(path)
        if not isinstance(obj, cls):
            raise ValueError(f"{path}: holds a {type(obj).__name__}, not a checkpoint family")
        return obj

    # -- reporting -------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"CheckpointFamily(num_checkpoints={self._K1}, fitted={len(self._cascades)}, "
            f"exact={len(self._exact)}, max_error={self.max_error:.2e}, "
            f"bytes={self.nbytes}/{self.dense_nbytes} dense)"
        )

    def summary(self) -> str:
        """A plain-text table: per parameter, shape, dtype, ranks, worst error and bytes vs dense."""
        import math

        rows = [("parameter", "shape", "dtype", "ranks (sum/max)", "max error", "stored/dense")]
        for name in self._names:
            spec = self._specs[name]
            dense = self._K1 * math.prod(spec.shape) * _itemsize(spec.dtype)
            shape = "x".join(str(s) for s in spec.shape) or "()"
            if name in self._cascades:
                c = self._cascades[name]
                r = c.ranks
                ranks = f"{sum(r)}/{max(r, default=0)}"
                err = f"{max(c.errors):.2e}"
                stored = c.nbytes
            else:
                ex = self._exact[name]
                ranks, err = "exact", "0"
                stored = ex["base"].nbytes + sum(_change_nbytes(ch) for ch in ex["changes"])
            ratio = f"{stored / dense:.3f}" if dense else "-"
            rows.append((name, shape, spec.dtype, ranks, err, ratio))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            f"CheckpointFamily: {self._K1} checkpoints, {len(self._cascades)} fitted parameters, "
            f"{len(self._exact)} exact"
        ]
        for j, row in enumerate(rows):
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
            lines.append("  ".join(cells).rstrip())
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        total, dense = self.nbytes, self.dense_nbytes
        lines.append(
            f"stored: {total} bytes of {dense} dense ({total / dense if dense else 0:.3f}); "
            f"worst relative error {self.max_error:.2e}"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _itemsize(dtype_name):
    import numpy as np

    return 2 if dtype_name == "bfloat16" else np.dtype(dtype_name).itemsize


def _change_nbytes(ch):
    if ch is None:
        return 0
    return ch[1].nbytes if ch[0] == "dense" else ch[1].nbytes + ch[2].nbytes


def _to_framework(a, dtype_name, framework):
    import numpy as np

    if framework == "numpy":
        target = "float32" if dtype_name == "bfloat16" else dtype_name
        return np.array(a, dtype=target, copy=True)
    torch = _torch()
    t = torch.from_numpy(np.array(a, copy=True))
    return t.to(getattr(torch, dtype_name))


def _cascade_from(res):
    import numpy as np

    from ._ownership import adopting
    from .fit import Cascade

    base = np.asarray(res["base"])
    factors = [(np.asarray(U), np.asarray(V)) for U, V in res["factors"]]
    with adopting(base, *[a for pair in factors for a in pair]):
        return Cascade(base, factors, errors=res["errors"], method=res["method"])


def _cascade_on(c, backend):
    """``c`` with its arrays moved to ``backend``'s library (a new cascade)."""
    from ._ownership import adopting
    from .backends import get_func
    from .fit import Cascade

    asarray = get_func("asarray", backend)
    base = asarray(c._base)
    factors = [(asarray(d._U), asarray(d._V)) for d in c._corrections]
    with adopting(base, *[a for pair in factors for a in pair]):
        return Cascade(base, factors, errors=c.errors, method=c.method, backend=backend)


def _extend_cascade(c, U, V, err, used):
    from .factor import LowRank
    from .fit import Cascade

    method = "randomized" if c.method == "randomized" or "randomized" in used else "exact"
    corr = list(c._corrections) + [LowRank._from_factors(U, V, c._xp)]
    return Cascade._from_parts(c._base, corr, list(c._errors) + [err], method, c._xp, c._backend)


# --------------------------------------------------------------------------
# Validation of the checkpoints' names and shapes
# --------------------------------------------------------------------------
def _check_entries(src, specs, names):
    entries = src.entries()
    for name in names:
        if name not in entries:
            raise ValueError(f"{src.label}: parameter {name!r} is missing (it is in checkpoint 0)")
        shape, dtype = entries[name]
        spec = specs[name]
        if shape != spec.shape:
            raise ValueError(
                f"{src.label}: parameter {name!r} has shape {shape}, but shape {spec.shape} in checkpoint 0"
            )
        if dtype != spec.dtype:
            raise ValueError(f"{src.label}: parameter {name!r} has dtype {dtype}, but {spec.dtype} in checkpoint 0")
    extra = [n for n in entries if n not in specs]
    if extra:
        raise ValueError(f"{src.label}: parameter {extra[0]!r} is not in checkpoint 0")


def _patterns(value, arg):
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        pats = list(value)
    except TypeError:
        raise TypeError(f"{arg} must be a glob pattern or a list of them, got {type(value).__name__}") from None
    if not all(isinstance(p, str) for p in pats):
        raise TypeError(f"{arg} must be a glob pattern or a list of them (strings)")
    return pats


def _per_parameter(value, arg, names, check):
    """One setting for every fitted parameter, or a mapping name -> setting."""
    if isinstance(value, Mapping):
        unknown = [n for n in value if n not in names]
        if unknown:
            raise ValueError(f"{arg}: no fitted parameter {unknown[0]!r}")
        return {n: check(value[n], f"{arg}[{n!r}]") if n in value else None for n in names}
    v = check(value, arg)
    return dict.fromkeys(names, v)


def _make_specs(entries, include, exclude, ranks, budget, K1, reshape_conv=False):
    from ._validation import check_int

    inc, exc = _patterns(include, "include"), _patterns(exclude, "exclude")
    for arg, pats in (("include", inc), ("exclude", exc)):
        for p in pats or []:
            if not any(fnmatch.fnmatchcase(n, p) for n in entries):
                raise ValueError(f"{arg}: pattern {p!r} matches no parameter of checkpoint 0")
    fitted = []
    for name, (shape, dtype) in entries.items():
        ok = (len(shape) == 2 or (reshape_conv and len(shape) >= 3)) and dtype in _FIT_DTYPE
        if inc is not None:
            ok = ok and any(fnmatch.fnmatchcase(name, p) for p in inc)
        if exc is not None:
            ok = ok and not any(fnmatch.fnmatchcase(name, p) for p in exc)
        if ok:
            fitted.append(name)

    matrix_shapes = {name: (entries[name][0][0], math.prod(entries[name][0][1:])) for name in fitted}

    def rank_of(name):
        def check(v, arg):
            if v is None:
                return None
            bound = min(matrix_shapes[name])
            if isinstance(v, (list, tuple)):
                if K1 is None:
                    raise ValueError(f"{arg}: a list of ranks needs a sequence of checkpoints (K is unknown)")
                if len(v) != K1 - 1:
                    raise ValueError(f"{arg} must hold {K1 - 1} ranks (one per checkpoint after the first)")
                return [check_int(r, f"{arg}[{i}]", 0, bound) for i, r in enumerate(v)]
            return check_int(v, arg, 0, bound)

        return check

    rank_map = {}
    if ranks is not None:
        if isinstance(ranks, Mapping):
            unknown = [n for n in ranks if n not in fitted]
            if unknown:
                raise ValueError(f"ranks: no fitted parameter {unknown[0]!r}")
        for name in fitted:
            v = ranks.get(name) if isinstance(ranks, Mapping) else ranks
            rank_map[name] = rank_of(name)(v, f"ranks[{name!r}]" if isinstance(ranks, Mapping) else "ranks")
    budget_map = {}
    if budget is not None:
        budget_map = _per_parameter(
            budget, "budget", fitted, lambda v, arg: None if v is None else check_int(v, arg, 0)
        )
    specs = {}
    for name, (shape, dtype) in entries.items():
        if name in fitted:
            specs[name] = _Spec(
                name, shape, dtype, "cascade", rank_map.get(name), budget_map.get(name), matrix_shapes[name]
            )
        else:
            specs[name] = _Spec(name, shape, dtype, "exact")
    return specs


# --------------------------------------------------------------------------
# fit_checkpoints
# --------------------------------------------------------------------------
def fit_checkpoints(
    checkpoints: Iterable[Mapping[str, Any] | PathLike],
    *,
    tol: float | None = None,
    ranks: int | Sequence[int] | Mapping[str, Any] | None = None,
    budget: int | Mapping[str, int] | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    method: str = "auto",
    executor: Executor | None = None,
    progress: bool | None = None,
    reshape_conv: bool = False,
) -> CheckpointFamily:
    """Fit one cascade per 2-D parameter across a run's checkpoints.

    Parameters
    ----------
    checkpoints : sequence or iterator of state dicts or paths, length K + 1
        In time order.  A state dict maps parameter names to NumPy arrays or
        torch tensors (any device; copied to the host one parameter at a
        time).  A path names a ``.safetensors`` file (read with
        ``safetensors.safe_open``, one tensor at a time, without loading the
        file), an ``.npz`` archive (one array per parameter, read per key) or
        a torch ``.pt``/``.pth``/``.bin`` state dict (``torch.load`` with
        ``weights_only=True, mmap=True``).  Parameters are matched by name;
        checkpoint 0 fixes the names, shapes and dtypes.  An iterator of
        paths is listed (paths only); an iterator of state dicts is read once,
        holding the current checkpoint and the fitted state, never the run.
    tol : float, optional
        Relative Frobenius error per parameter and checkpoint, in ``[0, 1)``
        (as in :func:`~lowrank_tree.cascade_fit`); default: lossless.
    ranks : int, list of int or mapping, optional
        Fixed rank of every correction of every fitted parameter; a list of
        ``K`` ranks (one per checkpoint after the first); or a mapping
        ``name -> int or list`` (parameters it leaves out are fitted by
        ``tol``).  Overrides ``tol`` where given.
    budget : int or mapping, optional
        Parameter budget of each fitted parameter's corrections (or a mapping
        ``name -> budget``), allocated as :func:`~lowrank_tree.cascade_fit`
        does; this holds all ``K + 1`` values of one parameter at a time (and
        needs re-readable checkpoints: a sequence or files).
    include, exclude : str or list of str, optional
        Glob patterns (``fnmatch``, case-sensitive) of the 2-D parameters to
        fit; parameters not fitted are stored exactly.  By default every 2-D
        float16/bfloat16/float32/float64 parameter is fitted.  A pattern that
        matches no parameter raises ``ValueError`` (a typo would otherwise
        silently change what is fitted).
    method : {'auto', 'exact', 'randomized'}
        SVD method of each step (see :func:`~lowrank_tree.cascade_fit`).
    executor : concurrent.futures.Executor, optional
        Fits parameters in parallel, one task per parameter: a
        ``ProcessPoolExecutor``, a Dask ``distributed.Client.get_executor()``,
        a Ray executor...  With files, each task reads its own parameter from
        every file (the paths must be readable by the workers); with state
        dicts, each task is sent that parameter's values.  The results equal
        the serial ones bit for bit where the workers run the same NumPy and
        BLAS: each step is seeded from its checkpoint index alone.  Not
        available for an iterator of state dicts.
    progress : bool, optional
        A tqdm progress bar over parameters × checkpoints (if tqdm is
        installed): ``None`` shows it on a terminal only, ``True`` always,
        ``False`` never.
    reshape_conv : bool, optional
        Also fit floating-point parameters of 3 or more dimensions —
        convolution kernels ``(out, in, *kernel)`` — as the matrices
        ``(out, in * prod(kernel))`` (the layout of ``weight.flatten(1)``);
        their trees and :meth:`CheckpointFamily.query` work on that matrix.
        Default False: such parameters are stored exactly.

    Returns
    -------
    CheckpointFamily

    Raises
    ------
    ValueError
        A parameter missing, added, or of another shape or dtype in
        checkpoint ``k`` (the message names the checkpoint's index, its path
        and the parameter); a damaged or truncated file (named); NaN or Inf
        in a parameter (checkpoint and parameter named); no checkpoint;
        conflicting or out-of-range settings.
    TypeError
        A checkpoint that is neither a mapping nor a path; settings of the
        wrong type.
    FileNotFoundError
        A checkpoint file that does not exist.

    Notes
    -----
    *What is fitted.* Each 2-D floating-point parameter (after ``include`` /
    ``exclude``) becomes a cascade in its fit dtype (float32 for
    float16/bfloat16/float32, float64 for float64): checkpoint 0 is the base,
    and checkpoint ``k``'s correction approximates ``M_k − Ŵ_{k−1}``.
    Convolution kernels (unless ``reshape_conv``) and every other parameter are stored exactly:
    checkpoint 0, then per checkpoint only the entries that differ from it
    (sparse when fewer than about half differ, else dense).

    *Memory.* Serially, one parameter is fitted at a time; it holds the
    parameter's running fit, the value being read and its factors.  With an
    iterator of state dicts every fitted parameter keeps its running fit
    (one dense copy of the model) besides the checkpoint being read.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_tree import fit_checkpoints
    >>> rng = np.random.default_rng(0)
    >>> w0, b0 = rng.standard_normal((8, 6)), np.zeros(8)
    >>> run = [{"w": w0 + k * np.outer(np.ones(8), np.arange(6.0)), "b": b0 + k} for k in range(4)]
    >>> fam = fit_checkpoints(run, tol=1e-10)
    >>> fam.num_checkpoints, list(fam), fam.exact_names, fam["w"].ranks
    (4, ['w'], ['b'], [1, 1, 1])
    >>> bool(np.allclose(fam.state_dict(3)["w"], run[3]["w"])), bool((fam.state_dict(3)["b"] == 3).all())
    (True, True)
    """
    from ._validation import check_tol

    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    tol = check_tol(tol)
    if ranks is not None and budget is not None:
        raise ValueError("give at most one of ranks and budget")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be None, True or False, got {progress!r}")
    if executor is not None and not isinstance(executor, Executor) and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
    if checkpoints is None or isinstance(checkpoints, (str, bytes, os.PathLike, Mapping)):
        raise TypeError(
            "checkpoints must be a sequence or an iterator of state dicts or checkpoint paths, "
            f"got {type(checkpoints).__name__} (wrap a single checkpoint in a list)"
        )
    if not isinstance(checkpoints, Sequence):
        it = iter(checkpoints)
        try:
            first = next(it)
        except StopIteration:
            raise ValueError("checkpoints holds no checkpoint") from None
        if isinstance(first, (str, os.PathLike)):
            checkpoints = [first, *it]  # only paths: listing them reads nothing
        else:
            return _fit_stream(
                first, it, tol, ranks, budget, include, exclude, method, executor, progress, reshape_conv
            )
    if len(checkpoints) == 0:
        raise ValueError("checkpoints holds no checkpoint")
    sources = [_as_source(k, c) for k, c in enumerate(checkpoints)]
    entries = sources[0].entries()
    specs = _make_specs(entries, include, exclude, ranks, budget, len(sources), reshape_conv)
    names = list(entries)
    for src in sources[1:]:  # every file's names and shapes before any fitting
        _check_entries(src, specs, names)
    framework = "torch" if sources[0].is_torch() else "numpy"
    K1 = len(sources)
    bar = _progress_bar(progress, len(names) * K1, "fit_checkpoints")
    results = {}
    try:
        if executor is None:
            tick = bar.update if bar is not None else None
            for name in names:
                results[name] = _fit_parameter(specs[name], sources, tol, method, tick)
        else:
            results = _fit_parallel(executor, specs, names, sources, tol, method, bar)
    finally:
        if bar is not None:
            bar.close()
    _warn_fit(specs, results, tol)
    return CheckpointFamily(
        names=names, specs=specs, results=results, num_checkpoints=K1, framework=framework, tol=tol, method=method
    )


def _fit_parallel(executor, specs, names, sources, tol, method, bar):
    from concurrent.futures import FIRST_EXCEPTION, wait

    files = all(isinstance(s, _FileSource) for s in sources)
    futures = {}
    for name in names:
        if files:
            task_sources = sources
        else:  # in-memory: ship this parameter's values only
            task_sources = [_ArraysSource(s.index, {name: s.read(name)}) for s in sources]
        futures[executor.submit(_task, specs[name], task_sources, tol, method)] = name
    pending = set(futures)
    results = {}
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                results[futures[fut]] = fut.result()  # re-raises a task's error here
                if bar is not None:
                    bar.update(len(sources))
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise
    return results


def _fit_stream(first, rest, tol, ranks, budget, include, exclude, method, executor, progress, reshape_conv):
    """An iterator of state dicts, read once: every parameter advances one checkpoint at a time."""
    if executor is not None:
        raise ValueError(
            "executor needs checkpoints that can be read per parameter (a sequence, or files); "
            "an iterator of state dicts is fitted in this process"
        )
    if budget is not None:
        raise ValueError("budget needs every checkpoint of a parameter at once; pass a sequence or files")
    src0 = _as_source(0, first)
    entries = src0.entries()
    # ranks as a per-checkpoint list need K, unknown for an iterator: only ints or mappings of ints
    specs = _make_specs(entries, include, exclude, ranks, None, None, reshape_conv)
    names = list(entries)
    workers = {name: _make_worker(specs[name], tol, method) for name in names}
    framework = "torch" if src0.is_torch() else "numpy"
    bar = _progress_bar(progress, None, "fit_checkpoints")
    try:
        for name in names:
            workers[name].start(_check_slice(specs[name], src0.read(name), src0))
        if bar is not None:
            bar.update(len(names))
        del first, src0
        k = 0
        for sd in rest:
            k += 1
            src = _as_source(k, sd)
            _check_entries(src, specs, names)
            for name in names:
                workers[name].step(src.read(name), k)
            if bar is not None:
                bar.update(len(names))
            del sd, src
    finally:
        if bar is not None:
            bar.close()
    results = {name: w.result() for name, w in workers.items()}
    _warn_fit(specs, results, tol)
    return CheckpointFamily(
        names=names, specs=specs, results=results, num_checkpoints=k + 1, framework=framework, tol=tol, method=method
    )


def _warn_fit(specs, results, tol):
    from .fit import DenseCorrectionWarning, PrecisionFloorWarning

    raised = {n: r["raised"] for n, r in results.items() if specs[n].role == "cascade" and r["raised"] > 0}
    if raised:
        worst = max(raised.values())
        warnings.warn(
            f"tol={tol:.3g} is below the lossless level of the fit dtype for {len(raised)} parameter(s) "
            f"(e.g. {next(iter(raised))!r}); those used a relative tolerance of up to {worst:.3g}",
            PrecisionFloorWarning,
            stacklevel=3,
        )
    costly = []
    for n, r in results.items():
        spec = specs[n]
        if spec.role != "cascade":
            continue
        m, nn = spec.matrix_shape
        if any(U.shape[1] and U.shape[1] * (m + nn) >= m * nn for U, _ in r["factors"]):
            costly.append(n)
    if costly:
        warnings.warn(
            f"{len(costly)} fitted parameter(s) (e.g. {costly[0]!r}) have corrections that store more "
            f"numbers factored than dense (the changes between these checkpoints are close to full rank "
            f"at this tolerance); see CheckpointFamily.summary()",
            DenseCorrectionWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------
# Persistence (called by lowrank_tree.io, which owns the file format)
# --------------------------------------------------------------------------
_STORAGE_DTYPES = (
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)


def _family_payload(fam):
    """``(arrays, metadata fields)`` of a family for :func:`lowrank_tree.save`."""
    import numpy as np

    arrays, params = {}, []
    for i, name in enumerate(fam._names):
        spec = fam._specs[name]
        entry = {"name": name, "role": spec.role, "shape": list(spec.shape), "dtype": spec.dtype}
        if spec.role == "cascade" and spec.matrix_shape != spec.shape:
            entry["matrix_shape"] = list(spec.matrix_shape)
        if spec.role == "cascade":
            c = fam._cascades[name]
            arrays[f"p{i}_base"] = np.asarray(c._base, order="C")
            for k, d in enumerate(c._corrections, start=1):
                arrays[f"p{i}_U_{k}"] = np.asarray(d._U, order="C")
                arrays[f"p{i}_V_{k}"] = np.asarray(d._V, order="C")
            errors = [float(e) for e in c.errors]
            entry.update(
                storage_dtype=np.dtype(c.dtype).name,
                ranks=c.ranks,
                errors=[None if e != e else e for e in errors],
                method=c.method,
                next_method=fam._next_method[name],
                rank=spec.rank,
                budget=spec.budget,
            )
        else:
            ex = fam._exact[name]
            arrays[f"p{i}_base"] = np.asarray(ex["base"], order="C")
            changes = []
            for k, ch in enumerate(ex["changes"], start=1):
                if ch is None:
                    changes.append(None)
                elif ch[0] == "dense":
                    arrays[f"p{i}_d_{k}"] = np.asarray(ch[1], order="C")
                    changes.append(["dense"])
                else:
                    arrays[f"p{i}_i_{k}"] = ch[1]
                    arrays[f"p{i}_v_{k}"] = ch[2]
                    changes.append(["sparse", int(ch[1].size)])
            entry.update(storage_dtype=ex["base"].dtype.name, changes=changes)
        params.append(entry)
    fields = {
        "num_checkpoints": fam._K1,
        "framework": fam._framework,
        "tol": fam._tol,
        "method": fam._method,
        "parameters": params,
    }
    return arrays, fields


def _family_check_metadata(path, meta):
    """Every field of a family's metadata, checked before any array is read (untrusted files)."""
    import math

    def fail(what):
        raise ValueError(f"{path}: metadata field {what}")

    K1 = meta.get("num_checkpoints")
    if not (isinstance(K1, int) and not isinstance(K1, bool) and K1 >= 1):
        fail(f"'num_checkpoints' must be an integer >= 1, got {K1!r}")
    if meta.get("framework") not in ("torch", "numpy"):
        fail(f"'framework' must be 'torch' or 'numpy', got {meta.get('framework')!r}")
    tol = meta.get("tol")
    if not (tol is None or (_is_num(tol) and 0 <= tol < 1)):
        fail(f"'tol' must be null or a number in [0, 1), got {tol!r}")
    if meta.get("method") not in _METHODS:
        fail(f"'method' must be one of {list(_METHODS)}, got {meta.get('method')!r}")
    params = meta.get("parameters")
    if not isinstance(params, list):
        fail("'parameters' must be a list")
    seen = set()
    K = K1 - 1
    for j, p in enumerate(params):
        where = f"'parameters'[{j}]"
        if not isinstance(p, dict):
            fail(f"{where} must be an object")
        name = p.get("name")
        if not isinstance(name, str) or name in seen:
            fail(f"{where}.name must be a unique string, got {name!r}")
        seen.add(name)
        shape = p.get("shape")
        if not (isinstance(shape, list) and all(_is_count(s) for s in shape)):
            fail(f"{where}.shape must be a list of integers >= 0, got {shape!r}")
        if not isinstance(p.get("dtype"), str) or (p["dtype"] not in _STORAGE_DTYPES and p["dtype"] != "bfloat16"):
            fail(f"{where}.dtype: unsupported {p.get('dtype')!r}")
        if p.get("storage_dtype") not in _STORAGE_DTYPES:
            fail(f"{where}.storage_dtype: unsupported {p.get('storage_dtype')!r}")
        role = p.get("role")
        if role == "cascade":
            if "matrix_shape" in p:
                ms = p["matrix_shape"]
                if not (
                    len(shape) >= 3
                    and isinstance(ms, list)
                    and len(ms) == 2
                    and all(_is_count(s) for s in ms)
                    and ms[0] == shape[0]
                    and ms[1] == math.prod(shape[1:])
                ):
                    fail(f"{where}.matrix_shape must be [shape[0], prod(shape[1:])] of a 3-D or higher shape")
                shape = ms
            if len(shape) != 2 or p["storage_dtype"] not in ("float32", "float64"):
                fail(f"{where}: a fitted parameter must be 2-D float32 or float64")
            ranks = p.get("ranks")
            if not (isinstance(ranks, list) and len(ranks) == K and all(_is_count(r) for r in ranks)):
                fail(f"{where}.ranks must be a list of {K} integers >= 0")
            if any(r > min(shape) for r in ranks):
                fail(f"{where}.ranks exceed min(m, n) = {min(shape)}")
            errors = p.get("errors")
            if not (isinstance(errors, list) and len(errors) == K1 and all(e is None or _is_num(e) for e in errors)):
                fail(f"{where}.errors must be a list of {K1} numbers or nulls")
            for key, allowed in (("method", ("exact", "randomized")), ("next_method", ("exact", "randomized"))):
                if p.get(key) not in allowed:
                    fail(f"{where}.{key} must be one of {list(allowed)}, got {p.get(key)!r}")
            rank = p.get("rank")
            if not (rank is None or _is_count(rank) or (isinstance(rank, list) and all(_is_count(r) for r in rank))):
                fail(f"{where}.rank must be null, an integer or a list of integers")
            if not (p.get("budget") is None or _is_count(p.get("budget"))):
                fail(f"{where}.budget must be null or an integer >= 0")
        elif role == "exact":
            changes = p.get("changes")
            size = math.prod(shape)
            ok = isinstance(changes, list) and len(changes) == K
            for ch in changes if ok else []:
                ok = ok and (
                    ch is None
                    or ch == ["dense"]
                    or (
                        isinstance(ch, list)
                        and len(ch) == 2
                        and ch[0] == "sparse"
                        and _is_count(ch[1])
                        and 0 < ch[1] <= size
                    )
                )
            if not ok:
                fail(f"{where}.changes must be a list of {K} entries: null, ['dense'] or ['sparse', count]")
        else:
            fail(f"{where}.role must be 'cascade' or 'exact', got {role!r}")


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _family_expected(meta):
    """``{key: (shape, dtype name)}`` of every array a family's metadata describes."""
    out = {}
    for i, p in enumerate(meta["parameters"]):
        shape, dt = tuple(p["shape"]), p["storage_dtype"]
        out[f"p{i}_base"] = (tuple(p.get("matrix_shape", shape)), dt)
        if p["role"] == "cascade":
            m, n = p.get("matrix_shape", shape)
            for k, r in enumerate(p["ranks"], start=1):
                out[f"p{i}_U_{k}"] = ((m, r), dt)
                out[f"p{i}_V_{k}"] = ((n, r), dt)
        else:
            for k, ch in enumerate(p["changes"], start=1):
                if ch == ["dense"]:
                    out[f"p{i}_d_{k}"] = (shape, dt)
                elif ch is not None:
                    out[f"p{i}_i_{k}"] = ((ch[1],), "int64")
                    out[f"p{i}_v_{k}"] = ((ch[1],), dt)
    return out


def _family_from(meta, arrays):
    """The :class:`CheckpointFamily` of a checked file's metadata and arrays."""
    import math

    import numpy as np

    specs, results, names = {}, {}, []
    for i, p in enumerate(meta["parameters"]):
        name = p["name"]
        names.append(name)
        base = arrays[f"p{i}_base"]
        if p["role"] == "cascade":
            specs[name] = _Spec(name, p["shape"], p["dtype"], "cascade", p["rank"], p["budget"], p.get("matrix_shape"))
            K = len(p["ranks"])
            results[name] = {
                "base": base,
                "factors": [(arrays[f"p{i}_U_{k}"], arrays[f"p{i}_V_{k}"]) for k in range(1, K + 1)],
                "errors": [float("nan") if e is None else float(e) for e in p["errors"]],
                "method": p["method"],
                "next_method": p["next_method"],
            }
        else:
            specs[name] = _Spec(name, p["shape"], p["dtype"], "exact")
            size = math.prod(p["shape"])
            changes = []
            for k, ch in enumerate(p["changes"], start=1):
                if ch is None:
                    changes.append(None)
                elif ch == ["dense"]:
                    changes.append(("dense", arrays[f"p{i}_d_{k}"]))
                else:
                    idx = arrays[f"p{i}_i_{k}"]
                    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= size):
                        raise ValueError(f"sparse change {k} of parameter {name!r} indexes outside its {size} entries")
                    changes.append(("sparse", idx, arrays[f"p{i}_v_{k}"]))
            results[name] = {"base": np.asarray(base), "changes": changes}
    return CheckpointFamily(
        names=names,
        specs=specs,
        results=results,
        num_checkpoints=meta["num_checkpoints"],
        framework=meta["framework"],
        tol=meta["tol"],
        method=meta["method"],
    )
