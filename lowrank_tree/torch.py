"""A trainable cascaded linear layer for PyTorch: shared base plus cascaded low-rank corrections.

:class:`CascadedLinear` is the structure of :func:`~lowrank_tree.cascade_fit`
as a ``torch.nn.Module``: order ``k`` (``0 <= k <= K``) applies

``y = x W_kᵀ + b_k``,  ``W_k = W_0 + Σ_{i=1..k} U_i V_iᵀ``,  ``b_k = b_0 + Σ_{i=1..k} β_i``,

to the last dimension of ``x`` like :class:`torch.nn.Linear`.  It exports to
:class:`~lowrank_tree.Cascade` and :class:`~lowrank_tree.LowRankSegmentTree`
for serving, and is built from a fitted cascade or from separately trained
per-order heads.

This module imports PyTorch; ``import lowrank_tree`` does not.
"""

from __future__ import annotations

import math
import operator
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("lowrank_tree.torch needs PyTorch (pip install torch)") from exc

import numpy as np

from .backends import get_func
from .fit import Cascade, cascade_fit

if TYPE_CHECKING:
    from .tree import LowRankSegmentTree

__all__ = ["CascadedLinear"]

#: all_orders sums the orders with ``cumsum`` below this many outputs per order (rows times
#: out_features) on the CPU, and with one addition per order from there on (see all_orders).
_CPU_CUMSUM_MAX = 4096

#: Guards every layer's cache of folded weights (CascadedLinear._folded).  One lock for the
#: module rather than one per layer: a lock attribute would stop copy.deepcopy and pickle of
#: a layer, and the guarded steps are a few dict operations (the folds run outside it).
_FOLD_LOCK = threading.Lock()


class CascadedLinear(nn.Module):
    """Linear layer with one weight per order: a shared base plus cascaded low-rank corrections.

    Order ``k`` of ``K + 1`` orders (``k = 0..K``) maps ``x`` of shape
    ``(*, in_features)`` to ``x W_kᵀ + b_k`` of shape ``(*, out_features)``,
    as :class:`torch.nn.Linear` does, with

    * ``W_k = W_0 + Σ_{i=1..k} U_i V_iᵀ``: ``U_i`` is ``out_features × r_i``
      and ``V_i`` is ``in_features × r_i`` (``r_i = 0`` allowed: order ``i``
      then adds no weight term);
    * ``b_k = b_0 + Σ_{i=1..k} β_i`` (with ``bias=True``).

    The orders and corrections are numbered as in :class:`~lowrank_tree.Cascade`
    and :class:`~lowrank_tree.LowRankSegmentTree`: order 0 is the base, and
    correction ``i`` is first applied at order ``i``.

    Parameters
    ----------
    in_features : int
        Size ``n`` of the last dimension of the input.
    out_features : int
        Size ``m`` of the last dimension of the output.
    num_orders : int
        ``K + 1``, the number of orders (at least 1; one order is a plain
        linear layer with no corrections).
    rank : int or sequence of int
        ``r_1..r_K``: one rank for every correction, or ``K = num_orders - 1``
        ranks, each in ``[0, min(in_features, out_features)]``.
    bias : bool, default True
        Learn ``b_0`` and ``β_1..β_K``.
    device, dtype : optional, keyword-only
        Where and in which floating or complex dtype the parameters live, as
        for :class:`torch.nn.Linear` (default: the current default device and
        dtype).

    Attributes
    ----------
    weight : torch.nn.Parameter, shape (out_features, in_features)
        ``W_0``, initialised like :class:`torch.nn.Linear`'s weight
        (Kaiming-uniform, bound ``1 / sqrt(in_features)``).
    bias : torch.nn.Parameter or None, shape (out_features,)
        ``b_0``, initialised like :class:`torch.nn.Linear`'s bias.
    U : torch.nn.Parameter, shape (out_features, r_1 + ... + r_K)
        The left factors side by side, ``U = [U_1 | ... | U_K]``; starts at zero.
    V : torch.nn.Parameter, shape (in_features, r_1 + ... + r_K)
        The right factors side by side, ``V = [V_1 | ... | V_K]``; starts
        uniform in ``±1 / sqrt(in_features)``.
    bias_corrections : torch.nn.Parameter or None, shape (K, out_features)
        Row ``i - 1`` is ``β_i``; starts at zero.
    factor_ranks : torch.Tensor, shape (K,), int64
        A buffer holding ``r_1..r_K``, saved in the ``state_dict`` so that a
        state of another rank layout is refused on loading.
    ranks : tuple of int
        ``(r_1, ..., r_K)``.
    max_order : int
        ``K``.

    See Also
    --------
    lowrank_tree.cascade_fit : The fit whose structure this layer trains.
    CascadedLinear.from_linears : Compress separately trained heads.
    CascadedLinear.to_tree : Serve the trained layer from a segment tree.

    Notes
    -----
    *Initialisation.*  As in LoRA, every ``U_i`` and ``β_i`` starts at zero
    and every ``V_i`` random, so all orders start equal to the base while
    the gradients of the ``U_i`` are not zero.

    *Storage.*  The factors of all corrections are kept side by side in one
    ``U`` and one ``V`` parameter: the first ``c_k = r_1 + ... + r_k``
    columns are the factors of orders ``<= k``, so a fixed-order forward is
    the base product plus one GEMM pair on views, with no concatenation.
    :meth:`factors` returns the (differentiable) views of one correction.

    *Inference.*  With gradients off (``torch.no_grad()`` or
    ``torch.inference_mode()``), outside ``torch.compile``, a fixed-order
    forward rents before it buys: it runs factored until the rows it has
    served at that order have cost as much as folding the order once
    (``b (m + n) c_k`` summed past ``m n c_k``, i.e. about ``m n / (m + n)``
    rows), then folds ``W_k`` and ``b_k`` into one dense weight and bias and
    serves every later call with a single ``nn.Linear`` product.  At most
    :attr:`inference_cache_orders` orders (default 1; ``m n`` elements each)
    stay folded, least recently used dropped first; any change to a
    parameter (an optimiser step, ``load_state_dict``, ``.to()``) invalidates
    them.  Training forwards never fold.

    *Cost* for ``b`` rows: order ``k``, ``O(b n m + b c_k (n + m))``; one
    order per row, ``O(b n m + b c_K (n + m) + b K m)`` (the corrections past a
    row's order are masked out); :meth:`all_orders`, ``O(b n m + b c_K (n + m) +
    K b m)`` and ``(K + 1) b m`` memory for the result.

    Examples
    --------
    >>> import torch
    >>> from lowrank_tree.torch import CascadedLinear
    >>> _ = torch.manual_seed(0)
    >>> layer = CascadedLinear(5, 3, num_orders=4, rank=2)
    >>> layer
    CascadedLinear(in_features=5, out_features=3, num_orders=4, ranks=(2, 2, 2), bias=True)
    >>> x = torch.randn(8, 5)
    >>> layer(x, 2).shape
    torch.Size([8, 3])
    >>> bool(torch.equal(layer(x, 3), layer(x, 0)))  # the corrections start at zero
    True
    >>> layer(x, torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])).shape  # one order per row
    torch.Size([8, 3])
    >>> layer.all_orders(x).shape
    torch.Size([4, 8, 3])
    """

    __constants__ = ["in_features", "out_features", "num_orders"]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_orders: int,
        rank: int | Sequence[int],
        bias: bool = True,
        *,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        in_features = _check_count(in_features, "in_features", 1)
        out_features = _check_count(out_features, "out_features", 1)
        num_orders = _check_count(num_orders, "num_orders", 1)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        ranks = _check_ranks(rank, num_orders - 1, min(in_features, out_features))
        dtype = _check_dtype(dtype, "dtype")
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.num_orders = num_orders
        self._ranks = ranks
        # offsets[k] = c_k = r_1 + ... + r_k: the columns of U and V in use at order k
        self._offsets = tuple(int(c) for c in np.cumsum((0,) + ranks))
        total = self._offsets[-1]
        self.weight = nn.Parameter(torch.empty((out_features, in_features), **factory))
        self.U = nn.Parameter(torch.empty((out_features, total), **factory))
        self.V = nn.Parameter(torch.empty((in_features, total), **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
            self.bias_corrections = nn.Parameter(torch.empty((num_orders - 1, out_features), **factory))
        else:
            self.register_parameter("bias", None)
            self.register_parameter("bias_corrections", None)
        self.register_buffer("factor_ranks", torch.tensor(ranks, dtype=torch.int64, device=device).reshape(-1))
        # column j of U and V belongs to correction column_order[j] (1..K): the mixed-order mask
        column_order = [i for i, r in enumerate(ranks, start=1) for _ in range(r)]
        self.register_buffer(
            "column_order", torch.tensor(column_order, dtype=torch.int64, device=device).reshape(-1), persistent=False
        )
        self.register_buffer(
            "_correction_order", torch.arange(1, num_orders, dtype=torch.int64, device=device), persistent=False
        )
        # all_orders reads the factors as (K, r_max) blocks: an index into [columns | one zero column]
        # pads the shorter ones (None when every rank is the same and plain reshapes do)
        r_max = max(ranks, default=0)
        if len(set(ranks)) > 1:
            pad = [[self._offsets[i] + j if j < r else total for j in range(r_max)] for i, r in enumerate(ranks)]
            self.register_buffer(
                "_padded_columns", torch.tensor(pad, dtype=torch.int64, device=device), persistent=False
            )
        else:
            self._padded_columns: torch.Tensor | None = None
        self._r_max = r_max
        #: How many orders an inference forward may keep folded into one dense (m, n) weight
        #: (see Notes); 0 disables folding.
        self.inference_cache_orders = 1
        # order -> [parameter state, rows seen since that state, folded (W_k, b_k) or None]
        self._fold: dict[int, list[Any]] = {}
        self.reset_parameters()

    # -- parameters -------------------------------------------------------
    def reset_parameters(self) -> None:
        """Initialise as documented: ``W_0, b_0`` like ``nn.Linear``, ``U_i, β_i = 0``, ``V_i`` random."""
        # the same initialisation as torch.nn.Linear (and, for V, as LoRA's down projection)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.V.uniform_(-bound, bound)
            self.U.zero_()
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)
                self.bias_corrections.zero_()

    @property
    def ranks(self) -> tuple[int, ...]:
        """``(r_1, ..., r_K)``, the ranks of the corrections."""
        return self._ranks

    @property
    def max_order(self) -> int:
        """``K = num_orders - 1``, the highest order."""
        return self.num_orders - 1

    def factors(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The factors ``(U_i, V_i)`` of correction ``i``, as views of :attr:`U` and :attr:`V`.

        Parameters
        ----------
        i : int
            Correction, ``1 <= i <= K``.

        Returns
        -------
        U_i : torch.Tensor, shape (out_features, r_i)
        V_i : torch.Tensor, shape (in_features, r_i)
            Views: differentiable, and writing to them (under
            ``torch.no_grad()``) changes the layer.
        """
        i = _check_order(i, "i", 1, self.max_order)
        lo, hi = self._offsets[i - 1], self._offsets[i]
        return self.U[:, lo:hi], self.V[:, lo:hi]

    # -- forward ----------------------------------------------------------
    def forward(self, x: torch.Tensor, order: int | torch.Tensor) -> torch.Tensor:
        """``x W_kᵀ + b_k`` at one order, or at one order per row.

        Parameters
        ----------
        x : torch.Tensor, shape ``(*, in_features)``
            Any number of leading dimensions (none: a single row), the
            layer's dtype and device.
        order : int or integer torch.Tensor of shape x.shape[:-1]
            ``k`` in ``0..K`` for every row (a Python or NumPy integer); or
            one order per row (a mixed batch: row ``j`` gets
            ``W_{order_j}``), an integer tensor on ``x``'s device whose shape
            is ``x.shape[:-1]`` (a 0-d tensor applies to every row).  Use
            ``order[:, None].expand(B, T)`` for one order per sequence of a
            ``(B, T, in_features)`` input.

        Returns
        -------
        torch.Tensor, shape ``(*, out_features)``

        Raises
        ------
        TypeError
            ``x`` not a tensor, of another dtype or device than the layer;
            ``order`` not an integer (``bool`` and floats included) or not an
            integer tensor.
        ValueError
            ``x`` without the trailing ``in_features`` dimension; an order
            outside ``[0, K]``; an ``order`` tensor of another shape than
            ``x.shape[:-1]``.

        Notes
        -----
        A fixed order ``k`` costs the base product plus one GEMM pair over the
        first ``c_k`` factor columns.  A mixed batch is one pass with no loop
        over rows or orders: ``Z = x V`` over all ``c_K`` columns, columns of
        corrections past each row's order zeroed by a mask, then ``Z Uᵀ`` (and
        the bias corrections by the same mask, one product with ``β``);
        checking the orders' range reads their minimum and maximum back to
        the host (one synchronisation on a GPU).
        """
        x2, batch = self._check_x(x)
        if isinstance(order, torch.Tensor):
            orders = self._check_orders(order, batch, x.device)
            y = self._mixed(x2, orders.reshape(-1))
        else:
            y = self._fixed(x2, _check_order(order, "order", 0, self.max_order))
        return y if x.ndim == 2 else y.reshape(*batch, self.out_features)

    def all_orders(self, x: torch.Tensor) -> torch.Tensor:
        """Every order at once: ``x W_kᵀ + b_k`` for ``k = 0..K``, in one pass.

        What a Taylor sampler needs (``x + v dt + a dt²/2 + ...`` from the
        velocity, acceleration, ... heads of orders ``0, 1, 2, ...``).

        Parameters
        ----------
        x : torch.Tensor, shape ``(*, in_features)``

        Returns
        -------
        torch.Tensor, shape ``(K + 1, *, out_features)``
            Entry ``k`` equals ``self(x, k)`` up to rounding.

        Notes
        -----
        ``Z = x V`` in one GEMM, the corrections' products ``Z_i U_iᵀ`` as one
        batched GEMM over the ``K`` corrections (factors padded to the largest
        rank when the ranks differ), then a running sum over the orders on top
        of the base product: ``K + 1`` heads for about the cost of one plus
        the corrections.
        """
        x2, batch = self._check_x(x)
        b, K, r, m = x2.shape[0], self.max_order, self._r_max, self.out_features
        if K == 0:
            return F.linear(x2, self.weight, self.bias).reshape(1, *batch, m)
        # the corrections' products are bmm(*factors): (K, b, r) @ (K, r, m)
        factors: tuple[torch.Tensor, torch.Tensor] | None = None
        if r:
            Z: torch.Tensor = x2 @ self.V  # (b, c_K)
            U: torch.Tensor = self.U  # (m, c_K)
            if self._padded_columns is not None:  # ranks differ: pad each block to r_max with a zero column
                idx = self._padded_columns.reshape(-1)
                Z = torch.cat([Z, Z.new_zeros(b, 1)], dim=1)[:, idx]
                U = torch.cat([U, U.new_zeros(m, 1)], dim=1)[:, idx]
            factors = Z.reshape(b, K, r).transpose(0, 1), U.reshape(m, K, r).permute(1, 2, 0)
        beta = self.bias_corrections
        # PyTorch's CPU cumsum over the leading dimension runs far below memory speed on wide
        # slices (about 10x at 256 x 256); one addition per order does not
        by_additions = x2.device.type == "cpu" and b * m >= _CPU_CUMSUM_MAX
        if not torch.is_grad_enabled():
            # inference: every step written into the result, no intermediate (K, b, m) buffers
            out = x2.new_empty((K + 1, b, m))
            if self.bias is not None:
                torch.addmm(self.bias, x2, self.weight.T, out=out[0])
            else:
                torch.mm(x2, self.weight.T, out=out[0])
            if factors is not None:
                torch.bmm(*factors, out=out[1:])
            else:
                out[1:].zero_()
            if beta is not None:
                out[1:] += beta[:, None, :]
            if by_additions:
                for k in range(1, K + 1):
                    out[k] += out[k - 1]
            else:
                out.cumsum_(dim=0)
            return out.reshape(K + 1, *batch, m)
        y0 = F.linear(x2, self.weight, self.bias)  # (b, m)
        if factors is not None:
            steps = torch.bmm(*factors)
            if beta is not None:
                steps = steps + beta[:, None, :]
        elif beta is not None:
            steps = beta[:, None, :].expand(K, b, m)
        else:
            steps = y0.new_zeros(K, b, m)
        if by_additions:
            running = [y0]
            for step in steps.unbind(0):
                running.append(running[-1] + step)
            out = torch.stack(running)
        else:
            out = torch.cat([y0[None], steps], dim=0).cumsum(dim=0)
        return out.reshape(K + 1, *batch, m)

    def _fixed(self, x2, k):
        c = self._offsets[k]
        if c and self.inference_cache_orders > 0 and not torch.is_grad_enabled():
            if not torch.compiler.is_compiling():
                folded = self._folded(k, x2.shape[0])
                if folded is not None:
                    return F.linear(x2, *folded)
        bias = self.bias
        if bias is not None and k:
            bias = bias + self.bias_corrections[:k].sum(dim=0)
        y = F.linear(x2, self.weight, bias)
        if c:
            # one GEMM pair over the factors of orders <= k (views: no copy)
            U, V = (self.U, self.V) if c == self._offsets[-1] else (self.U[:, :c], self.V[:, :c])
            y = torch.addmm(y, x2 @ V, U.T)
        return y

    def _parameter_state(self):
        """What identifies the parameters' current values: storage, version counter, device, dtype."""
        # the version counter moves on every in-place change (optimiser steps, copy_ in
        # load_state_dict); the storage moves with .to() and parameter reassignment, and .to()
        # moves every parameter to one device and dtype
        # (read from the module's parameter dict: nn.Module.__getattr__ costs about a microsecond a name)
        params = [p for p in self._parameters.values() if p is not None]
        return tuple((p.data_ptr(), p._version) for p in params) + (params[0].device, params[0].dtype)

    def _folded(self, k, rows):
        """``(W_k, b_k)`` once the rows served at order ``k`` have paid for folding it, else None.

        Rent or buy: a factored forward costs ``rows (m + n) c_k`` beyond the base
        product, folding costs ``m n c_k`` once, so the order is folded when the
        rows served since the parameters last changed reach ``m n / (m + n)``.
        """
        state = self._parameter_state()
        # the forwards of a serving layer may run in several threads: every read and write of the
        # cache is under one lock (a dict changed by another thread between two steps of an
        # iteration raises, and an unlocked read-modify-write loses counts); the fold itself,
        # the only costly step, runs outside it
        with _FOLD_LOCK:
            entry = self._fold.get(k)
            if entry is not None and entry[2] is not None and entry[0] == state:
                if next(reversed(self._fold)) != k:
                    self._fold[k] = self._fold.pop(k)  # most recently used last
                return entry[2]
            entry = self._fold.pop(k, None)
            if entry is None or entry[0] != state:
                entry = [state, 0, None]
            self._fold[k] = entry  # most recently used last
            entry[1] += rows
            m, n = self.out_features, self.in_features
            if entry[1] * (m + n) < m * n:
                return None
        c = self._offsets[k]
        W = torch.addmm(self.weight, self.U[:, :c], self.V[:, :c].T)
        b = self.bias
        if b is not None and k:
            b = b + self.bias_corrections[:k].sum(dim=0)
        with _FOLD_LOCK:
            if self._fold.get(k) is entry:  # not evicted by another thread meanwhile
                entry[2] = (W, b)
            # drop stale entries, then the least recently used folds beyond the limit
            for key in [key for key, e in self._fold.items() if e[0] != state]:
                del self._fold[key]
            folded = [key for key, e in self._fold.items() if e[2] is not None]
            for key in folded[: max(len(folded) - self.inference_cache_orders, 0)]:
                self._fold[key][1:] = [0, None]  # it rents again before it is folded again: no thrashing
        return W, b

    def _mixed(self, x2, orders):
        if self.bias is not None:
            # b_{order_t} = b_0 + Σ_i [i <= order_t] β_i as one masked GEMM (at most half the work of
            # the factors' own masked GEMM pair, and no cumsum, which is slow on the CPU), then the
            # base product added onto it
            steps = (orders[:, None] >= self._correction_order).to(x2.dtype)
            y = torch.addmm(torch.addmm(self.bias, steps, self.bias_corrections), x2, self.weight.T)
        else:
            y = F.linear(x2, self.weight)
        if self._offsets[-1]:
            # keep column j of row t when its correction's order is <= the row's order
            Z = (x2 @ self.V) * (orders[:, None] >= self.column_order)
            y = torch.addmm(y, Z, self.U.T)
        return y

    def _check_x(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (*, {self.in_features}), got {type(x).__name__}")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have shape (*, in_features) = (*, {self.in_features}), got shape {tuple(x.shape)}"
            )
        w = self._parameters["weight"]  # not self.weight: nn.Module.__getattr__ is slow on every call
        if x.dtype != w.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the layer's parameters are {w.dtype}; convert one of them "
                f"(x.to({w.dtype}) or layer.to({x.dtype}))"
            )
        if x.device != w.device:
            raise TypeError(f"x is on {x.device} but the layer's parameters are on {w.device}")
        return (x if x.ndim == 2 else x.reshape(-1, self.in_features)), tuple(x.shape[:-1])

    def _check_orders(self, order, batch, device):
        if order.dtype == torch.bool or order.is_floating_point() or order.is_complex():
            raise TypeError(f"order must be an int or an integer tensor, got a tensor of dtype {order.dtype}")
        if order.device != device:
            raise TypeError(f"order is on {order.device} but x is on {device}")
        if order.ndim == 0:
            order = order.expand(batch)
        elif tuple(order.shape) != batch:
            raise ValueError(
                f"order must have the shape of x without its last dimension, {batch}, got {tuple(order.shape)} "
                f"(for one order per leading index, expand it: order[:, None].expand{batch})"
            )
        if torch.compiler.is_compiling():
            # a compiled graph cannot branch on the values without a graph break: check on the device
            in_range = ((order >= 0) & (order <= self.max_order)).all()
            torch._assert_async(in_range, f"order must be in [0, {self.max_order}]")
        elif order.numel():
            lo, hi = torch.aminmax(order)
            lo, hi = int(lo), int(hi)
            if lo < 0 or hi > self.max_order:
                raise ValueError(f"order must be in [0, {self.max_order}], got values from {lo} to {hi}")
        return order.to(torch.int64)

    # -- reporting and persistence ----------------------------------------
    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, num_orders={self.num_orders}, "
            f"ranks={self._ranks}, bias={self.bias is not None}"
        )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors):
        # U and V hold all corrections side by side: a state with the same total rank but another
        # split between the orders would load without a shape error and mean something else
        key = prefix + "factor_ranks"
        if key in state_dict:
            theirs = tuple(int(r) for r in state_dict[key].reshape(-1).tolist())
            if theirs != self._ranks:
                errors.append(
                    f"{key}: the state holds corrections of ranks {theirs}, this layer has ranks {self._ranks}; "
                    f"build the layer with rank={list(theirs)}"
                )
                return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors)

    # -- conversions ------------------------------------------------------
    @classmethod
    def from_cascade(
        cls,
        cascade: Cascade,
        *,
        biases: Any = None,
        device: Any = None,
        dtype: Any = None,
        requires_grad: bool = True,
    ) -> CascadedLinear:
        """A layer holding a fitted cascade's base and corrections.

        Parameters
        ----------
        cascade : Cascade
            ``W_0`` of shape (m, n) and ``Δ_1..Δ_K``: the layer has
            ``in_features = n``, ``out_features = m``, ``num_orders = K + 1``
            and the cascade's ranks.  Any backend.
        biases : array_like or torch.Tensor, shape (K + 1, m), optional
            The per-order biases ``b_0..b_K`` (not their differences); the
            layer stores ``b_0`` and ``β_i = b_i - b_{i-1}``.  None: a layer
            without bias.
        device : optional
            Device of the parameters.  Default: the cascade's device for a
            cascade on the ``'torch'`` backend (its tensors are copied on the
            device, never through the host), else the current default device.
        dtype : torch.dtype, optional
            Dtype of the parameters; by default the cascade's (float64 stays
            float64).
        requires_grad : bool, default True
            Whether the parameters are trainable.

        Returns
        -------
        CascadedLinear
            ``layer(x, k)`` equals ``x @ cascade.matrix(k).T + biases[k]`` up
            to rounding.  The parameters are copies.

        Raises
        ------
        TypeError
            ``cascade`` not a :class:`~lowrank_tree.Cascade`; a bad ``dtype``.
        ValueError
            ``biases`` of another shape than ``(K + 1, m)`` or not finite.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from lowrank_tree import cascade_fit
        >>> from lowrank_tree.torch import CascadedLinear
        >>> rng = np.random.default_rng(0)
        >>> mats = np.cumsum(rng.standard_normal((3, 4, 1)) * rng.standard_normal((3, 1, 6)), axis=0)
        >>> layer = CascadedLinear.from_cascade(cascade_fit(mats))
        >>> layer
        CascadedLinear(in_features=6, out_features=4, num_orders=3, ranks=(1, 1), bias=False)
        >>> x = torch.randn(2, 6, dtype=torch.float64)
        >>> bool(torch.allclose(layer(x, 2), x @ torch.from_numpy(mats[2]).T))
        True
        """
        if not isinstance(cascade, Cascade):
            raise TypeError(f"cascade must be a lowrank_tree.Cascade, got {type(cascade).__name__}")
        if not isinstance(requires_grad, bool):
            raise TypeError(f"requires_grad must be True or False, got {requires_grad!r}")
        to_numpy = get_func("to_numpy", cascade.backend)
        base = _as_tensor(cascade.base, to_numpy)
        dtype = _check_dtype(dtype, "dtype") if dtype is not None else base.dtype
        m, n = cascade.shape
        K = cascade.max_order
        if biases is not None:
            biases = _as_tensor(biases, np.asarray)
            if tuple(biases.shape) != (K + 1, m):
                raise ValueError(
                    f"biases must have shape (K + 1, out_features) = {(K + 1, m)}, got {tuple(biases.shape)}"
                )
            if not bool(torch.isfinite(biases).all()):
                raise ValueError("biases must be finite")
        if device is None and isinstance(base, torch.Tensor) and cascade.backend == "torch":
            device = base.device
        layer = cls(n, m, K + 1, cascade.ranks, bias=biases is not None, device=device, dtype=dtype)
        corr = cascade.corrections
        with torch.no_grad():
            layer.weight.copy_(base)
            if corr and layer.U.shape[1]:
                layer.U.copy_(torch.cat([_as_tensor(c.U, to_numpy) for c in corr], dim=1))
                layer.V.copy_(torch.cat([_as_tensor(c.V, to_numpy) for c in corr], dim=1))
            if biases is not None:
                layer.bias.copy_(biases[0])
                layer.bias_corrections.copy_(torch.diff(biases, dim=0))
        layer.requires_grad_(requires_grad)
        return layer

    @classmethod
    def from_linears(
        cls,
        linears: Iterable[nn.Linear],
        *,
        tol: float | None = None,
        ranks: int | Sequence[int] | None = None,
        budget: int | None = None,
        method: str = "auto",
        device: Any = None,
        dtype: Any = None,
    ) -> CascadedLinear:
        """Compress separately trained per-order heads into one cascaded layer.

        The heads' weights ``M_0..M_K`` go through :func:`~lowrank_tree.cascade_fit`
        (base ``W_0 = M_0``; correction ``k`` fits the residual against the
        fitted order ``k - 1``); their biases are kept exactly (up to the
        rounding of ``b_0 + Σ β_i``).

        Parameters
        ----------
        linears : iterable of torch.nn.Linear
            The heads of orders ``0..K``, all of one shape, all with or all
            without bias (e.g. an ``nn.ModuleList``).
        tol, ranks, budget, method
            As for :func:`~lowrank_tree.cascade_fit` (at most one of ``tol``,
            ``ranks``, ``budget``; none: lossless).  ``tol`` bounds each
            order's relative Frobenius error ``‖Ŵ_k − M_k‖_F / ‖M_k‖_F``.
        device : optional
            Device of the layer (default: that of the first head).
        dtype : torch.dtype, optional
            Dtype of the layer (default: that of the first head).

        Returns
        -------
        CascadedLinear
            With ``bias`` when the heads have one; trainable.

        Raises
        ------
        TypeError
            A head that is not an ``nn.Linear``.
        ValueError
            No head; heads of different shapes; some heads with a bias and
            some without; the errors of :func:`~lowrank_tree.cascade_fit`.

        Notes
        -----
        The fit runs on the host in float64 (complex128 for complex heads),
        whatever the heads' dtype, so that ``tol`` means the same for float32
        heads; the factors are then cast to ``dtype``.  With a float32 layer
        the true error is the fitted one plus float32 rounding (about
        ``1e-7`` relative).  To see the fit's report (ranks, errors,
        parameter count) fit the weights yourself and use
        :meth:`from_cascade`.

        Examples
        --------
        >>> import torch
        >>> from lowrank_tree.torch import CascadedLinear
        >>> _ = torch.manual_seed(0)
        >>> heads = [torch.nn.Linear(16, 8) for _ in range(3)]
        >>> layer = CascadedLinear.from_linears(heads)  # lossless: ranks up to 8
        >>> x = torch.randn(4, 16)
        >>> bool(torch.allclose(layer(x, 2), heads[2](x), atol=1e-5))
        True
        """
        heads = list(linears) if not isinstance(linears, nn.Linear) else None
        if heads is None:
            raise TypeError("linears must be an iterable of torch.nn.Linear (one per order), got a single nn.Linear")
        if not heads:
            raise ValueError("linears must hold at least one torch.nn.Linear")
        for k, h in enumerate(heads):
            if not isinstance(h, nn.Linear):
                raise TypeError(f"linears[{k}] must be a torch.nn.Linear, got {type(h).__name__}")
        shape = tuple(heads[0].weight.shape)
        with_bias = heads[0].bias is not None
        for k, h in enumerate(heads):
            if tuple(h.weight.shape) != shape:
                raise ValueError(
                    f"linears[{k}] has weight shape {tuple(h.weight.shape)}, expected {shape} like linears[0]"
                )
            if (h.bias is not None) != with_bias:
                raise ValueError(
                    f"linears[{k}] {'has' if h.bias is not None else 'has no'} bias, unlike linears[0]; "
                    "give every head a bias or none"
                )
        first = heads[0].weight
        wide = torch.complex128 if first.is_complex() else torch.float64
        weights = [h.weight.detach().to("cpu", wide).numpy() for h in heads]
        cascade = cascade_fit(weights, tol=tol, ranks=ranks, budget=budget, method=method)
        biases = torch.stack([h.bias.detach().to("cpu", wide) for h in heads]) if with_bias else None
        return cls.from_cascade(
            cascade,
            biases=biases,
            device=first.device if device is None else device,
            dtype=first.dtype if dtype is None else dtype,
        )

    def to_cascade(self, *, backend: str = "numpy", device: Any = None) -> Cascade:
        """The layer's weights as a :class:`~lowrank_tree.Cascade` (biases: :meth:`order_biases`).

        Parameters
        ----------
        backend : str, default 'numpy'
            Backend of the cascade's arrays (any backend name the library
            knows, e.g. ``'numpy'``, ``'numba'``, ``'cupy'``, ``'torch'``).
            With ``'torch'`` the cascade holds detached tensor copies on the
            layer's device (no host round trip); other backends get host
            copies moved to their library.
        device : optional
            Device of the cascade's arrays, for backends with devices
            (default: the layer's device for ``'torch'``, else the library's
            default).

        Returns
        -------
        Cascade
            Base ``W_0`` and corrections ``(U_i, V_i)``, detached copies of
            the current parameters (``errors`` unknown: ``nan`` past order 0).
            ``cascade.matrix(k)`` is ``W_k``.
        """
        asarray = get_func("asarray", backend)  # refuses an unknown backend by name
        if backend == "torch":
            # the constructor copies what it is given: detached views of the parameters suffice
            base, U, V = self.weight.detach(), self.U.detach(), self.V.detach()
            device = base.device if device is None else device
        else:
            base, U, V = asarray(_host(self.weight)), _host(self.U), _host(self.V)
        spans = zip(self._offsets, self._offsets[1:])
        pairs = [(U[:, lo:hi], V[:, lo:hi]) for lo, hi in spans]
        if backend != "torch":
            pairs = [(asarray(a), asarray(b)) for a, b in pairs]
        return Cascade(base, pairs, backend=backend, device=device)

    def to_tree(self, *, backend: str = "numpy", device: Any = None, **tree_kwargs: Any) -> LowRankSegmentTree:
        """The layer's weights in a :class:`~lowrank_tree.LowRankSegmentTree`, for serving.

        ``tree.query(k, X)`` is ``W_k X`` for a column batch ``X`` of shape
        (in_features, b): the layer's ``layer(x, k)`` is
        ``tree.query(k, x.T).T + order_biases()[k]``.

        Parameters
        ----------
        backend : str, default 'numpy'
            Backend of the tree (see :meth:`to_cascade`).
        device : optional
            Device of the tree's arrays (see :meth:`to_cascade`).
        **tree_kwargs
            Passed to the tree (``rtol``, ``cache_bytes``).

        Returns
        -------
        LowRankSegmentTree
        """
        return self.to_cascade(backend=backend, device=device).tree(**tree_kwargs)

    def order_biases(self, *, backend: str = "numpy") -> Any:
        """The per-order biases ``b_0..b_K``, or None for a layer without bias.

        Parameters
        ----------
        backend : str, default 'numpy'
            Array library of the result (see :meth:`to_cascade`).

        Returns
        -------
        array of shape (K + 1, out_features), or None
            Row ``k`` is ``b_k = b_0 + β_1 + ... + β_k`` (a detached copy).
        """
        asarray = get_func("asarray", backend)
        if self.bias is None:
            return None
        with torch.no_grad():
            table = torch.cat([self.bias[None], self.bias_corrections]).cumsum(dim=0)
        return asarray(_host(table))


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _check_count(value, name, low):
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got the bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})") from None
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return value


def _check_order(value, name, low, high):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or an integer tensor, got the bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or an integer tensor, got {value!r} ({type(value).__name__})") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _check_ranks(rank, K, bound):
    if isinstance(rank, torch.Tensor) or isinstance(rank, np.ndarray) and rank.ndim:
        rank = rank.tolist()
    if isinstance(rank, (Sequence, np.ndarray)) and not isinstance(rank, (str, bytes)):
        ranks = list(rank)
        if len(ranks) != K:
            raise ValueError(f"rank must be an int or hold num_orders - 1 = {K} ranks, got {len(ranks)}")
        names = [f"rank[{i}]" for i in range(K)]
    else:
        ranks, names = [rank] * K, ["rank"] * K
        if K == 0:  # still check it
            _check_count(rank, "rank", 0)
    out = []
    for r, name in zip(ranks, names):
        r = _check_count(r, name, 0)
        if r > bound:
            raise ValueError(f"{name} must be in [0, min(in_features, out_features)] = [0, {bound}], got {r}")
        out.append(r)
    return tuple(out)


def _check_dtype(dtype, name):
    if dtype is None:
        return None
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype, got {dtype!r}")
    if not (dtype.is_floating_point or dtype.is_complex):
        raise TypeError(f"{name} must be a floating or complex torch.dtype, got {dtype}")
    return dtype


def _host(t):
    """A detached NumPy copy of a parameter (host memory)."""
    return t.detach().to("cpu", copy=True).resolve_conj().numpy()


def _as_tensor(a, to_numpy):
    """A tensor copy of an array of any backend: a tensor stays on its device (detached), others go through the host."""
    if isinstance(a, torch.Tensor):
        return a.detach().clone()
    return torch.from_numpy(np.array(to_numpy(a), copy=True))
