"""High-order flow matching with separate, shared and cascaded heads (first part of the evaluation).

What is built here:

* **Data** (:func:`sample_dataset`): 2-D Gaussian mixtures with 4, 5 and 8
  modes on a circle, two interleaved spirals, two concentric circles, and a
  16-D Gaussian mixture with 8 modes and scikit-learn's 8×8 digits (64-D,
  drawn with replacement from its 1797 images), where a 2-D picture cannot
  mislead.  Every sampler takes a seed.
* **Paths and targets** (:class:`OTPath`, :class:`VPPath`): noise ``x0`` at
  ``t = 0``, data ``x1`` at ``t = 1``; the linear (OT) path
  ``x_t = (1 - t) x0 + t x1`` and the VP path ``x_t = α(t) x1 + σ(t) x0`` with
  ``α = sin(πt/2)``, ``σ = cos(πt/2)``, with closed-form k-th time
  derivatives.  Head ``k`` (``k = 1..K``) regresses the k-th derivative of
  the *conditional* path, so it learns ``E[x_t^{(k)} | x_t = x]``.  On the OT
  path every derivative past the velocity is zero, so its heads ``k >= 2``
  learn zero and the Taylor sampler reduces to Euler (up to those heads'
  fitting error); the VP path is the one whose higher heads carry information.  For a single data point the
  conditional trajectory is the only trajectory and the heads are the exact
  derivatives of the sampler's ODE solution; for a spread-out data
  distribution ``E[x^{(k)} | x_t]`` is in general *not* the k-th total
  derivative of the marginal flow (for k >= 2), which is the approximation
  HOMO-style training makes.
* **Sampler** (:func:`taylor_sample`): ``x <- x + Σ_{k=1..K} h^k/k! f_k(x, t)``
  over ``N`` equal steps from ``t = 0`` to ``t = 1``.
* **Models** (one output per order ``1..K``, input ``x`` and a few Fourier
  features of ``t``): (a) :class:`SeparateHeads`, one MLP per order (HOMO's
  layout); (b) :class:`SharedEmbedding`, one MLP with a one-hot order input;
  (c) :class:`CascadedMLP`, every linear layer a
  :class:`lowrank_tree.torch.CascadedLinear` with ``num_orders = K`` (order
  ``k`` of the model is order ``k - 1`` of the layers), a shared base plus
  rank-``r`` corrections per order (the rank capped at each layer's
  ``min(in, out)``; rank 0 shares every weight and keeps per-order biases);
  (d) trained separate heads compressed layer by layer with
  ``CascadedLinear.from_linears`` at each tolerance of ``compress_tols``
  (:meth:`CascadedMLP.from_separate`, not retrained); (e) separate heads
  that start from one shared initialisation.  Parameter counts are
  reported for every model.
* **Metrics**: HOMO's mean distance of generated points to the nearest mode
  centre (mixtures only), and the energy distance to fresh target samples
  with its noise floor (the energy distance between two independent target
  samples of the same size).  Cells are repeated over seeds and summarised
  by the mean and a 95 % Student-t interval.

* **Matched parameters** (:func:`parameter_formula`, :func:`matched_width`):
  the count of every model in closed form, and the hidden width that brings
  a family nearest a budget.  A grid model's width is an int or
  ``"matched"``: nearest the separate heads' count at ``grid["width"]`` for
  its dataset and K (within 1 % for the default grid).  Every run records
  its width and parameter count.
* **Report** (``bench/flow_report.py``, no PyTorch needed): Markdown tables
  of every slice with 95 % intervals, each model against the separate heads
  seed by seed (paired intervals: same start noise and target sample), the
  metric against sampler order and steps, and the plots (metric against
  parameters with the Pareto front; metric against sampler steps), drawn by
  ``--plot-only``.

The default grid (:data:`GRID`) is three slices of the cross product
(every dataset x path x K x model x rank at 3 seeds, one width per model,
would be 1302 training runs, several hours on two cores):

* ``families``: every model family at one parameter budget, on every 2-D
  set of HOMO (4-, 5-, 8-mode mixtures, spirals, circles) and on digits
  (64-D): VP path, K = 4 (the most heads, and the path whose higher heads
  carry information); separate heads (a) and one-init heads (e) at width
  64 (each also compressed, (d), at three tolerances), the shared network
  (b) and cascaded heads (c) of ranks 0 and 4 at the width that matches
  the separate heads' count.
* ``ranks``: the rank sweep of (c) — ranks 0, 1, 2, 4, 8, 16 at width 64,
  so the count grows with the rank — beside separate heads at width 32 and
  the shared network at width 64: points of every family at smaller sizes
  for the metric-against-parameters front; on gmm8 and digits, VP, K = 4.
* ``orders``: the sampler: OT and VP paths, K = 1, 2, 3, 4, separate heads
  and matched cascaded rank-4 heads, on gmm8 (the mixture with the most
  modes, where HOMO's metric applies).

Every model is scored at 1, 2, 4, 8 and 16 sampler steps (sampling is
cheap next to training), with 3 seeds: 58 model cells, 174 training runs.
The plan came from timing single cells with one PyTorch thread on a quiet
core of the 2-core machine at 1500 steps and 2000 points: 7 to 13 s of
training for a K = 4 model on a 2-D set (widths 64 to 131), 21 to 34 s
on digits (widths 64 to 167), 3 s for K = 1; scoring at five step counts
adds 1 to 8 s.  At the default 1200 steps and 1000 points that is about
30 core-minutes, so two processes (``--jobs 2``, one thread each) finish
in about 15 minutes on an idle machine; ``bench/results/flow_matching.json``
records the wall time and the load average it actually ran under.

Usage::

    python bench/flow_matching.py --quick --out /tmp/flow_quick.json  # a smoke run, under a minute
    python bench/flow_matching.py --dry-run                           # list the default grid's cells
    python bench/flow_matching.py --jobs 2                            # writes bench/results/flow_matching.json
    python bench/flow_matching.py --jobs 2 --resume                   # go on after an interruption (OUT.partial.jsonl)
    python bench/flow_matching.py --plot-only bench/results/flow_matching.json  # docs/_static/evaluation/*.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import time
import warnings

import numpy as np
import scipy.stats
import torch
from torch import nn

from lowrank_tree.benchmark import machine_info, write_json
from lowrank_tree.fit import DenseCorrectionWarning
from lowrank_tree.torch import CascadedLinear

#: The datasets :func:`sample_dataset` knows, with their dimension.
DATASETS = {"gmm4": 2, "gmm5": 2, "gmm8": 2, "spirals": 2, "circles": 2, "gmm16d": 16, "digits": 64}
#: Radius of the circle the 2-D mixtures' modes sit on, and every mixture's per-mode standard deviation.
MODE_RADIUS, MODE_STD = 4.0, 0.2


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def mode_centres(name: str) -> np.ndarray | None:
    """Mode centres of a mixture dataset, shape ``(modes, d)``; None for spirals and circles."""
    if name in ("gmm4", "gmm5", "gmm8"):
        modes = int(name[3:])
        angle = 2 * np.pi * np.arange(modes) / modes
        return MODE_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    if name == "gmm16d":
        # 8 fixed centres in 16-D (their own seed, so every run sees the same mixture), spread like the 2-D ones
        centres = np.random.default_rng(16).standard_normal((8, 16))
        return MODE_RADIUS * centres / np.linalg.norm(centres, axis=1, keepdims=True)
    if name in ("spirals", "circles", "digits"):
        return None
    raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")


def sample_dataset(name: str, n: int, seed: int) -> np.ndarray:
    """``n`` points of dataset ``name``, shape ``(n, DATASETS[name])``, float64, reproducible from ``seed``."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    rng = np.random.default_rng(seed)
    centres = mode_centres(name)
    if centres is not None:
        which = rng.integers(len(centres), size=n)
        return centres[which] + MODE_STD * rng.standard_normal((n, centres.shape[1]))
    if name == "digits":
        return _digits()[rng.integers(len(_digits()), size=n)]
    if name == "spirals":
        # two arms, each an Archimedean spiral r = θ, turned by π from each other
        theta = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
        arm = rng.integers(2, size=n)
        r = theta * 4.0 / (3 * np.pi)
        angle = theta + np.pi * arm
        points = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        return points + 0.1 * rng.standard_normal((n, 2))
    # circles: radii 2 and 4, equally likely
    radius = np.where(rng.integers(2, size=n) == 0, 2.0, 4.0)
    angle = rng.uniform(0, 2 * np.pi, n)
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return points + 0.1 * rng.standard_normal((n, 2))


_DIGITS: list[np.ndarray] = []


def _digits() -> np.ndarray:
    """scikit-learn's digits, pixels 0..16 mapped to [-2, 2] (about the noise's scale), loaded once."""
    if not _DIGITS:
        from sklearn.datasets import load_digits

        _DIGITS.append(load_digits().data / 4.0 - 2.0)
    return _DIGITS[0]


# --------------------------------------------------------------------------
# interpolation paths and their derivatives
# --------------------------------------------------------------------------
class OTPath:
    """The linear (OT) path ``x_t = (1 - t) x0 + t x1``: velocity ``x1 - x0``, higher derivatives zero."""

    name = "ot"

    @staticmethod
    def coefficients(t: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a_k(t), s_k(t))`` with ``d^k x_t / dt^k = a_k(t) x1 + s_k(t) x0``; same shape as ``t``."""
        if k == 0:
            return t, 1 - t
        if k == 1:
            return torch.ones_like(t), -torch.ones_like(t)
        return torch.zeros_like(t), torch.zeros_like(t)

    @classmethod
    def derivative(cls, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, k: int) -> torch.Tensor:
        """k-th time derivative of the path at ``t`` (shape ``(B, 1)``), for ``x0``, ``x1`` of shape ``(B, d)``."""
        a, s = cls.coefficients(t, k)
        return a * x1 + s * x0


class VPPath(OTPath):
    """The VP path ``x_t = sin(πt/2) x1 + cos(πt/2) x0``.

    ``d^k/dt^k sin(ωt) = ω^k sin(ωt + kπ/2)`` and ``d^k/dt^k cos(ωt) = ω^k cos(ωt + kπ/2)``
    with ``ω = π/2``.
    """

    name = "vp"

    @staticmethod
    def coefficients(t: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        omega = math.pi / 2
        phase = omega * t + k * math.pi / 2
        return omega**k * torch.sin(phase), omega**k * torch.cos(phase)


PATHS = {"ot": OTPath, "vp": VPPath}


def targets(path, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, K: int) -> torch.Tensor:
    """The regression targets of heads ``1..K``: shape ``(K, B, d)``, entry ``k - 1`` the k-th derivative."""
    _check_int(K, "K", 1)
    return torch.stack([path.derivative(x0, x1, t, k) for k in range(1, K + 1)])


# --------------------------------------------------------------------------
# the Taylor sampler
# --------------------------------------------------------------------------
def taylor_sample(field, x: torch.Tensor, K: int, steps: int) -> torch.Tensor:
    """Integrate from ``t = 0`` to ``t = 1`` with ``x <- x + Σ_{k=1..K} h^k / k! f_k(x, t)``.

    Parameters
    ----------
    field : callable
        ``field(x, t)`` with ``x`` of shape ``(B, d)`` and ``t`` of shape
        ``(B, 1)`` returns ``(K', B, d)`` with ``K' >= K``: entry ``k - 1``
        is the k-th time derivative ``f_k``.
    x : torch.Tensor, shape (B, d)
        Start points (noise at ``t = 0``).
    K : int
        Order of the sampler (``K = 1`` is Euler).
    steps : int
        Number ``N`` of equal steps, ``h = 1 / N``.

    Returns
    -------
    torch.Tensor, shape (B, d)
        The points at ``t = 1``.
    """
    if not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be an int >= 1, got {K!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    h = 1.0 / steps
    weights = [h**k / math.factorial(k) for k in range(1, K + 1)]
    for i in range(steps):
        t = torch.full((x.shape[0], 1), i * h, dtype=x.dtype, device=x.device)
        f = field(x, t)
        x = x + sum(w * f[k] for k, w in enumerate(weights))
    return x


# --------------------------------------------------------------------------
# models: (K, B, d) outputs for orders 1..K
# --------------------------------------------------------------------------
def time_features(t: torch.Tensor) -> torch.Tensor:
    """``[t, sin πt, cos πt, sin 2πt, cos 2πt]`` for ``t`` of shape ``(B, 1)``: shape ``(B, 5)``."""
    return torch.cat(
        [t, torch.sin(math.pi * t), torch.cos(math.pi * t), torch.sin(2 * math.pi * t), torch.cos(2 * math.pi * t)],
        dim=1,
    )


TIME_FEATURES = 5


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def _mlp(n_in, width, depth, n_out):
    layers, size = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.SiLU()]
        size = width
    layers.append(nn.Linear(size, n_out))
    return nn.Sequential(*layers)


class SeparateHeads(nn.Module):
    """(a) One MLP per order, each ``depth`` hidden layers of ``width`` units (HOMO's layout).

    With ``shared_init`` every head starts from the first head's initial
    parameters, (e): the heads then differ only by what training changed.
    """

    family = "separate"

    def __init__(self, d: int, K: int, width: int, depth: int, shared_init: bool = False):
        super().__init__()
        self.K = K
        self.heads = nn.ModuleList(_mlp(d + TIME_FEATURES, width, depth, d) for _ in range(K))
        if shared_init:
            for head in self.heads[1:]:
                head.load_state_dict(self.heads[0].state_dict())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        z = torch.cat([x, time_features(t)], dim=1)
        return torch.stack([head(z) for head in self.heads])


class SharedEmbedding(nn.Module):
    """(b) One MLP for every order, told the order by a one-hot input."""

    family = "shared"

    def __init__(self, d: int, K: int, width: int, depth: int):
        super().__init__()
        self.K = K
        self.net = _mlp(d + TIME_FEATURES + K, width, depth, d)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        z = torch.cat([x, time_features(t)], dim=1)
        onehot = torch.eye(self.K, dtype=x.dtype, device=x.device).repeat_interleave(B, dim=0)
        out = self.net(torch.cat([z.repeat(self.K, 1), onehot], dim=1))
        return out.reshape(self.K, B, -1)


class CascadedMLP(nn.Module):
    """(c) Every linear layer a :class:`CascadedLinear`: shared base weights plus rank-``r`` corrections per order.

    The first layer sees the same input at every order, so it runs
    ``all_orders``; the later layers see one hidden state per order and run
    one mixed-order forward over the ``K B`` rows.
    """

    family = "cascaded"

    def __init__(self, d: int, K: int, width: int, depth: int, rank: int):
        super().__init__()
        self.K, self.rank = K, rank
        sizes = [d + TIME_FEATURES] + [width] * depth + [d]
        self.layers = nn.ModuleList(
            CascadedLinear(a, b, num_orders=K, rank=min(rank, a, b)) for a, b in zip(sizes[:-1], sizes[1:])
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        z = torch.cat([x, time_features(t)], dim=1)
        h = self.layers[0].all_orders(z)  # (K, B, width)
        orders = torch.arange(self.K, device=x.device).repeat_interleave(B)
        for layer in self.layers[1:]:
            h = layer(nn.functional.silu(h).reshape(self.K * B, -1), orders).reshape(self.K, B, -1)
        return h

    @classmethod
    def from_separate(cls, model: SeparateHeads, tol: float) -> CascadedMLP:
        """(d) Compress trained separate heads layer by layer with :meth:`CascadedLinear.from_linears`.

        Layer ``l`` of the result holds layer ``l`` of heads ``1..K`` as a base
        (head 1's) plus corrections fitted to relative Frobenius error ``tol``
        per order; the biases are kept exactly.
        """
        heads = [[m for m in head if isinstance(m, nn.Linear)] for head in model.heads]
        out = cls.__new__(cls)
        nn.Module.__init__(out)
        out.K, out.rank = model.K, -1  # the ranks come from the fit: see ``layers[l].ranks``
        with torch.no_grad(), warnings.catch_warnings():
            # independently trained heads are often not low-rank apart: the fit then warns that a
            # correction costs more than dense; here that is a measured outcome (the parameter count)
            warnings.simplefilter("ignore", DenseCorrectionWarning)
            out.layers = nn.ModuleList(
                CascadedLinear.from_linears([h[i] for h in heads], tol=tol) for i in range(len(heads[0]))
            )
        return out


def build_model(family: str, d: int, K: int, width: int, depth: int, rank: int = 0) -> nn.Module:
    """A model of ``family`` (``"separate"``, ``"separate_shared_init"``, ``"shared"`` or ``"cascaded"``), float64."""
    for value, name, low in ((d, "d", 1), (K, "K", 1), (width, "width", 1), (depth, "depth", 0), (rank, "rank", 0)):
        _check_int(value, name, low)
    if family in ("separate", "separate_shared_init"):
        model = SeparateHeads(d, K, width, depth, shared_init=family == "separate_shared_init")
    elif family == "shared":
        model = SharedEmbedding(d, K, width, depth)
    elif family == "cascaded":
        model = CascadedMLP(d, K, width, depth, rank)
    else:
        raise ValueError(f"family must be 'separate', 'separate_shared_init', 'shared' or 'cascaded', got {family!r}")
    return model.double()


def parameter_count(model: nn.Module) -> int:
    """Number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_formula(family: str, d: int, K: int, width: int, depth: int, rank: int = 0) -> int:
    """Parameter count of :func:`build_model`'s model, in closed form (no model is built).

    With layer sizes ``s_0 = d + 5`` (``+ K`` for the shared network's
    one-hot order), ``s_1 = .. = s_depth = width``, ``s_{depth+1} = d``, a
    dense layer ``a -> b`` holds ``a b + b`` numbers; separate heads hold
    ``K`` copies of every layer; a cascaded layer holds its base plus, for
    each of the ``K - 1`` orders after the first, a bias and a rank
    ``min(rank, a, b)`` correction of ``min(rank, a, b) (a + b)`` numbers.
    """
    for value, name, low in ((d, "d", 1), (K, "K", 1), (width, "width", 1), (depth, "depth", 0), (rank, "rank", 0)):
        _check_int(value, name, low)
    first = d + TIME_FEATURES + (K if family == "shared" else 0)
    sizes = [first] + [width] * depth + [d]
    layers = list(zip(sizes[:-1], sizes[1:]))
    dense = sum(a * b + b for a, b in layers)
    if family in ("separate", "separate_shared_init"):
        return K * dense
    if family == "shared":
        return dense
    if family == "cascaded":
        return dense + (K - 1) * sum(b + min(rank, a, b) * (a + b) for a, b in layers)
    raise ValueError(f"family must be 'separate', 'separate_shared_init', 'shared' or 'cascaded', got {family!r}")


def matched_width(family: str, d: int, K: int, depth: int, target: int, rank: int = 0) -> int:
    """The hidden width whose model of ``family`` has the parameter count nearest ``target``.

    The count grows strictly with the width, so the nearest count is found
    by bisection; a tie goes to the smaller width.  The achieved count is
    within half a width step of ``target`` (``|count(w) - target| <=
    (count(w + 1) - count(w - 1)) / 2``), which for the default grid's
    budgets is under 1 % of it; with ``depth = 0`` there is no hidden
    layer and the width does not matter (1 is returned).
    """
    _check_int(target, "target", 1)
    if depth == 0:
        parameter_formula(family, d, K, 1, depth, rank)  # checks the arguments
        return 1
    low, high = 1, 2
    while parameter_formula(family, d, K, high, depth, rank) < target:
        low, high = high, 2 * high
    while high - low > 1:  # count(low) < target <= count(high), or low = 1
        mid = (low + high) // 2
        if parameter_formula(family, d, K, mid, depth, rank) < target:
            low = mid
        else:
            high = mid
    below, above = (parameter_formula(family, d, K, w, depth, rank) for w in (low, high))
    return low if target - below <= above - target else high


def train(model: nn.Module, path, dataset: str, K: int, steps: int, batch: int, seed: int, lr: float = 5e-3) -> float:
    """Fit heads ``1..K`` to the path's derivatives by mean squared error with Adam; returns the last loss."""
    g = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    # a fresh data sample every step, from a data seed that differs from the evaluation's
    rng = np.random.default_rng([seed, 1])
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        x1 = torch.from_numpy(sample_dataset(dataset, batch, int(rng.integers(2**31))))
        x0 = torch.randn(x1.shape, generator=g, dtype=x1.dtype)
        t = torch.rand((batch, 1), generator=g, dtype=x1.dtype)
        xt = path.derivative(x0, x1, t, 0)
        loss = ((model(xt, t) - targets(path, x0, x1, t, K)) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return float(loss.detach())


# --------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------
def nearest_mode_distance(points: np.ndarray, centres: np.ndarray) -> float:
    """HOMO's metric: mean over ``points`` (n, d) of the distance to the nearest of ``centres`` (modes, d)."""
    dist = np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2)
    return float(dist.min(axis=1).mean())


def _mean_pairwise(a: np.ndarray, b: np.ndarray) -> float:
    # the direct difference formula: the matrix-product form |a|² + |b|² - 2 a·b cancels for near points
    # (and leaves the diagonal of a sample against itself off zero)
    dist = torch.cdist(torch.from_numpy(a), torch.from_numpy(b), compute_mode="donot_use_mm_for_euclid_dist")
    return float(dist.mean())


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` between samples ``x`` (n, d) and ``y`` (m, d).

    The within-sample terms are U-statistics (pairs of distinct points), so
    the estimate is unbiased and may come out slightly negative when the two
    distributions are equal; it is zero in expectation exactly then.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, d) and (m, d) with the same d, got {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"x and y need at least 2 points each, got {len(x)} and {len(y)}")
    n, m = len(x), len(y)
    within_x = _mean_pairwise(x, x) * n / (n - 1)  # the diagonal is zero: rescale to the n (n - 1) distinct pairs
    within_y = _mean_pairwise(y, y) * m / (m - 1)
    return 2 * _mean_pairwise(x, y) - within_x - within_y


def mean_interval(values, confidence: float = 0.95) -> dict:
    """Mean and two-sided Student-t ``confidence`` interval of ``values`` (None bounds for one value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence of numbers, got shape {v.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(v.mean())
    if len(v) < 2:
        return {"mean": mean, "low": None, "high": None, "n": len(v)}
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(v)}


def evaluate(model: nn.Module, dataset: str, K: int, steps: int, n: int, seed: int) -> dict:
    """Sample ``n`` points with the order-``K`` Taylor sampler in ``steps`` steps and score them."""
    d = DATASETS[dataset]
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((n, d), generator=g, dtype=torch.float64)
    started = time.perf_counter()
    with torch.no_grad():
        points = taylor_sample(model, noise, K, steps).numpy()
    seconds = time.perf_counter() - started
    reference = sample_dataset(dataset, n, seed + 10_000)
    centres = mode_centres(dataset)
    finite = bool(np.isfinite(points).all())
    return {
        "energy_distance": energy_distance(points, reference) if finite else float("inf"),
        "mode_distance": None
        if centres is None
        else nearest_mode_distance(points, centres)
        if finite
        else float("inf"),
        "sampling_seconds": seconds,
    }


# --------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------
QUICK_GRID = {
    "datasets": ["gmm8"],
    "paths": ["vp"],
    "K": [2],
    "models": [["separate", 0], ["separate_shared_init", 0], ["shared", 0], ["cascaded", 0], ["cascaded", 2]],
    "compress_tols": [0.3],
    "width": 32,
    "depth": 2,
    "train_steps": 800,
    "batch": 256,
    "sampler_steps": [2, 8],
    "eval_points": 500,
    "seeds": [0],
}
#: The default configuration: three slices of the full cross product (see the module docstring).
#: A model is ``[family, rank]`` (hidden width ``width``) or ``[family, rank, width]`` with ``width``
#: an int or ``"matched"``: the width whose parameter count is nearest that of the separate heads
#: at ``width`` (the reference budget of its dataset and K).
GRID = {
    "width": 64,
    "depth": 2,
    "train_steps": 1200,
    "batch": 256,
    "sampler_steps": [1, 2, 4, 8, 16],
    "eval_points": 1000,
    "seeds": [0, 1, 2],
    "compress_tols": [0.03, 0.1, 0.3],
    "slices": [
        {
            "name": "families",
            "datasets": ["gmm4", "gmm5", "gmm8", "spirals", "circles", "digits"],
            "paths": ["vp"],
            "K": [4],
            "models": [
                ["separate", 0, 64],
                ["separate_shared_init", 0, 64],
                ["shared", 0, "matched"],
                ["cascaded", 0, "matched"],
                ["cascaded", 4, "matched"],
            ],
        },
        {
            "name": "ranks",
            "datasets": ["gmm8", "digits"],
            "paths": ["vp"],
            "K": [4],
            "models": [["separate", 0, 32], ["shared", 0, 64]] + [["cascaded", r, 64] for r in (0, 1, 2, 4, 8, 16)],
        },
        {
            "name": "orders",
            "datasets": ["gmm8"],
            "paths": ["ot", "vp"],
            "K": [1, 2, 3, 4],
            "models": [["separate", 0, 64], ["cascaded", 4, "matched"]],
        },
    ],
}


def grid_slices(grid: dict) -> list[dict]:
    """The slices of ``grid``: its ``"slices"``, or the whole grid as one slice named ``"main"``."""
    if "slices" in grid:
        return grid["slices"]
    return [{"name": "main", **{key: grid[key] for key in ("datasets", "paths", "K", "models")}}]


def grid_cells(grid: dict) -> list[dict]:
    """Every distinct model cell of ``grid``: dataset, path, K, family, rank and resolved width.

    A cell that several slices name is listed once, with every slice's name
    in ``"slices"``; cascaded models with ``K = 1`` and a rank above 0 are
    left out (one order has no corrections: every rank is the same model).
    Each cell carries ``"budget"``, the separate heads' parameter count at
    ``grid["width"]`` for its dataset and K, the target of ``"matched"`` widths.
    """
    cells: dict[tuple, dict] = {}
    for piece in grid_slices(grid):
        for dataset in piece["datasets"]:
            d = DATASETS[dataset]
            for path_name in piece["paths"]:
                for K in piece["K"]:
                    budget = parameter_formula("separate", d, K, grid["width"], grid["depth"])
                    for spec in piece["models"]:
                        family, rank = spec[0], spec[1]
                        rule = spec[2] if len(spec) > 2 else grid["width"]
                        if family == "cascaded" and K == 1 and rank > 0:
                            continue
                        if rule == "matched":
                            width = matched_width(family, d, K, grid["depth"], budget, rank)
                        else:
                            width = _check_int(rule, "width", 1)
                        key = (dataset, path_name, K, family, rank, width)
                        cell = cells.setdefault(
                            key,
                            {
                                "dataset": dataset,
                                "path": path_name,
                                "K": K,
                                "family": family,
                                "rank": rank,
                                "width": width,
                                "width_rule": "matched" if rule == "matched" else "fixed",
                                "budget": budget,
                                "slices": [],
                            },
                        )
                        if piece["name"] not in cell["slices"]:
                            cell["slices"].append(piece["name"])
    return list(cells.values())


def run_cell(dataset, path_name, K, family, rank, grid, seed, width=None) -> list[dict]:
    """Train one model on one (dataset, path, K) and score it, untrained and trained, at every step count.

    ``width`` is the hidden width (default ``grid["width"]``).  Returns the
    model's run, followed for separate heads by one run per tolerance in
    ``grid["compress_tols"]``: the trained heads compressed with
    :meth:`CascadedMLP.from_separate` (family ``"<family>+compressed"``,
    not retrained).
    """
    width = grid["width"] if width is None else width
    torch.manual_seed(seed)
    model = build_model(family, DATASETS[dataset], K, width, grid["depth"], rank)
    n = grid["eval_points"]
    untrained = {N: evaluate(model, dataset, K, N, n, seed) for N in grid["sampler_steps"]}
    started = time.perf_counter()
    loss = train(model, PATHS[path_name], dataset, K, grid["train_steps"], grid["batch"], seed)
    train_seconds = time.perf_counter() - started
    trained = {N: evaluate(model, dataset, K, N, n, seed) for N in grid["sampler_steps"]}
    run = {
        "dataset": dataset,
        "path": path_name,
        "K": K,
        "family": family,
        "rank": rank,
        "tol": None,
        "width": width,
        "seed": seed,
        "parameters": parameter_count(model),
        "final_loss": loss,
        "train_seconds": train_seconds,
        "untrained": {str(N): v for N, v in untrained.items()},
        "trained": {str(N): v for N, v in trained.items()},
    }
    runs = [run]
    if isinstance(model, SeparateHeads) and K > 1:
        for tol in grid["compress_tols"]:
            compressed = CascadedMLP.from_separate(model, tol)
            scores = {N: evaluate(compressed, dataset, K, N, n, seed) for N in grid["sampler_steps"]}
            runs.append(
                {
                    **run,
                    "family": f"{family}+compressed",
                    "rank": None,
                    "tol": tol,
                    "layer_ranks": [list(layer.ranks) for layer in compressed.layers],
                    "parameters": parameter_count(compressed),
                    "final_loss": None,
                    "trained": {str(N): v for N, v in scores.items()},
                }
            )
    return runs


def summarise(runs: list[dict], grid: dict) -> list[dict]:
    """Mean and 95 % interval over the seeds of every (dataset, path, K, model, width, sampler steps) cell.

    Each entry names the slices its model cell belongs to (``"slices"``),
    its width rule and the reference budget (see :func:`grid_cells`).
    """
    about = {(c["dataset"], c["path"], c["K"], c["family"], c["rank"], c["width"]): c for c in grid_cells(grid)}
    cells: dict[tuple, dict] = {}
    for run in runs:
        for N, scores in run["trained"].items():
            key = (run["dataset"], run["path"], run["K"], run["family"], run["rank"], run["tol"], run["width"], int(N))
            cells.setdefault(key, {"runs": [], "scores": []})
            cells[key]["runs"].append(run)
            cells[key]["scores"].append(scores)
    out = []
    for (dataset, path, K, family, rank, tol, width, N), cell in cells.items():
        # a compressed model belongs to the cell of the separate heads it was fitted to
        source = about.get(
            (dataset, path, K, family.removesuffix("+compressed"), 0 if tol is not None else rank, width)
        )
        entry = {
            "dataset": dataset,
            "path": path,
            "K": K,
            "family": family,
            "rank": rank,
            "tol": tol,
            "width": width,
            "width_rule": source["width_rule"] if source else "fixed",
            "budget": source["budget"] if source else None,
            "slices": source["slices"] if source else [],
            "sampler_steps": N,
            # compressed models' ranks (and so their size) may differ from seed to seed
            "parameters": mean_interval([r["parameters"] for r in cell["runs"]]),
            "energy_distance": mean_interval([s["energy_distance"] for s in cell["scores"]]),
            "train_seconds": mean_interval([r["train_seconds"] for r in cell["runs"]]),
            "sampling_seconds": mean_interval([s["sampling_seconds"] for s in cell["scores"]]),
        }
        if cell["scores"][0]["mode_distance"] is not None:
            entry["mode_distance"] = mean_interval([s["mode_distance"] for s in cell["scores"]])
        out.append(entry)
    return out


def noise_floors(grid: dict) -> dict:
    """Energy distance between two independent target samples of the evaluation's size, per dataset and seed."""
    n = grid["eval_points"]
    datasets = dict.fromkeys(dataset for piece in grid_slices(grid) for dataset in piece["datasets"])
    return {
        dataset: mean_interval(
            [
                energy_distance(sample_dataset(dataset, n, seed + 20_000), sample_dataset(dataset, n, seed + 10_000))
                for seed in grid["seeds"]
            ]
        )
        for dataset in datasets
    }


def _tasks(grid: dict) -> list[tuple]:
    """One ``(dataset, path, K, family, rank, width, seed)`` per training run, in the grid's order."""
    return [
        (c["dataset"], c["path"], c["K"], c["family"], c["rank"], c["width"], seed)
        for c in grid_cells(grid)
        for seed in grid["seeds"]
    ]


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_task(task: tuple, grid: dict) -> list[dict]:
    dataset, path_name, K, family, rank, width, seed = task
    return run_cell(dataset, path_name, K, family, rank, grid, seed, width=width)


def _flow_report():
    """``bench/flow_report.py`` (tables and plots; no PyTorch), imported from beside this file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("flow_report", pathlib.Path(__file__).with_name("flow_report.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - no load average on this platform
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny grid for a smoke run (seconds)")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "flow_matching.json"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="training runs in parallel, one process each (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="list the model cells and the run count, run nothing")
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs already logged in OUT.partial.jsonl by an interrupted run"
    )
    parser.add_argument(
        "--plot-only",
        metavar="JSON",
        help="draw the plots of a results file into --plot-dir and print its report tables; run nothing",
    )
    parser.add_argument(
        "--plot-dir", default=str(pathlib.Path(__file__).parent.parent / "docs" / "_static" / "evaluation")
    )
    args = parser.parse_args(argv)
    if args.plot_only:
        flow_report = _flow_report()
        data = json.loads(pathlib.Path(args.plot_only).read_text())
        for written in flow_report.plot(data, args.plot_dir):
            print(f"wrote {written}")
        print(flow_report.report(data))
        return 0
    grid = QUICK_GRID if args.quick else GRID
    _check_int(args.jobs, "--jobs", 1)
    _check_int(args.threads, "--threads", 1)
    tasks = _tasks(grid)
    if args.dry_run:
        for cell in grid_cells(grid):
            print(" ".join(f"{k}={v}" for k, v in cell.items()))
        print(f"{len(grid_cells(grid))} model cells, {len(tasks)} training runs")
        return 0
    torch.set_num_threads(args.threads)
    started, load_start = time.perf_counter(), _load_average()
    partial = pathlib.Path(str(args.out) + ".partial.jsonl")
    done: dict[tuple, list[dict]] = {}
    if args.resume and partial.exists():
        for line in partial.read_text().splitlines():
            record = json.loads(line)
            done[tuple(record["task"])] = record["runs"]
    else:
        partial.unlink(missing_ok=True)
    loads = []

    def finished(task, runs):
        done[task] = runs
        loads.append(_load_average())
        with partial.open("a") as fh:
            fh.write(json.dumps({"task": list(task), "runs": runs}) + "\n")
        for run in runs:
            best = min(v["energy_distance"] for v in run["trained"].values())
            print(
                f"[{len(done)}/{len(tasks)} {time.perf_counter() - started:.0f}s] {run['dataset']} {run['path']} "
                f"K={run['K']} {run['family']}/{run['rank']}/{run['tol']} width={run['width']} seed={run['seed']}"
                f" params={run['parameters']} best energy distance={best:.3g}",
                flush=True,
            )

    todo = [task for task in tasks if task not in done]
    if args.jobs == 1:
        for task in todo:
            finished(task, _run_task(task, grid))
    else:
        import concurrent.futures
        import multiprocessing

        # the costliest runs first, so that the last ones to finish are short (K orders, width² per layer)
        order = sorted(todo, key=lambda task: -task[2] * (1 + (task[5] / 64) ** 2))
        with concurrent.futures.ProcessPoolExecutor(
            args.jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(args.threads,),
        ) as pool:
            futures = {pool.submit(_run_task, task, grid): task for task in order}
            for future in concurrent.futures.as_completed(futures):
                finished(futures[future], future.result())
    runs = [run for task in tasks for run in done[task]]
    payload = {
        "machine": {**machine_info(), "torch": torch.__version__},
        "benchmark": "flow_matching",
        "quick": args.quick,
        "torch_threads": torch.get_num_threads(),
        "jobs": args.jobs,
        "dtype": "float64",
        "grid": grid,
        "noise_floor": noise_floors(grid),
        "summary": summarise(runs, grid),
        "wall_seconds": time.perf_counter() - started,
        "resumed_runs": sum(len(done_runs) for task, done_runs in done.items() if task not in todo),
        "load_average": {
            "start": load_start,
            "end": _load_average(),
            "mean_1min_over_runs": float(np.mean([v[0] for v in loads if v])) if any(loads) else None,
        },
        "runs": runs,
    }
    path = write_json(args.out, payload)
    partial.unlink(missing_ok=True)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
