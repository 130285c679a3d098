"""Tables and plots of the flow-matching evaluation, from the JSON that ``bench/flow_matching.py`` writes.

This module needs neither PyTorch nor the models: it reads the results file
only (matplotlib is imported inside :func:`plot`, the one function that
draws).  The docs build renders the tables from the committed
``bench/results/flow_matching.json``; the plots are drawn by::

    python bench/flow_matching.py --plot-only bench/results/flow_matching.json

Every number in a table is the JSON's own value, printed to three
significant digits; intervals are the JSON's 95 % Student-t intervals over
the seeds, or paired intervals computed here from the per-seed runs.
"""

from __future__ import annotations

import math
import pathlib

import scipy.stats

#: How each model family is named in the tables and plots.
FAMILY_NAMES = {
    "separate": "separate heads",
    "separate_shared_init": "separate heads, one init",
    "shared": "shared network",
    "cascaded": "cascaded",
    "separate+compressed": "separate heads, compressed",
    "separate_shared_init+compressed": "one-init heads, compressed",
}
_FAMILY_ORDER = list(FAMILY_NAMES)


def fmt(value) -> str:
    """A number to three significant digits (``"–"`` for a missing one)."""
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def fmt_interval(stats: dict | None) -> str:
    """``"mean [low, high]"`` of a :func:`mean_interval`-style dict (``"mean"`` alone without bounds)."""
    if stats is None:
        return "–"
    if stats["low"] is None:
        return fmt(stats["mean"])
    return f"{fmt(stats['mean'])} [{fmt(stats['low'])}, {fmt(stats['high'])}]"


def model_label(entry: dict) -> str:
    """A model's name in the tables: family, then its rank or tolerance (``entry`` is a summary entry or a run)."""
    name = FAMILY_NAMES.get(entry["family"], entry["family"])
    if entry["family"] == "cascaded":
        return f"{name} r={entry['rank']}"
    if entry.get("tol") is not None:
        return f"{name} tol={entry['tol']:g}"
    return name


def _width_label(entry: dict) -> str:
    return f"{entry['width']} (matched)" if entry.get("width_rule") == "matched" else str(entry["width"])


def _sort_key(entry: dict, datasets: list[str]):
    return (
        datasets.index(entry["dataset"]) if entry["dataset"] in datasets else len(datasets),
        entry["path"],
        entry["K"],
        _FAMILY_ORDER.index(entry["family"]) if entry["family"] in _FAMILY_ORDER else len(_FAMILY_ORDER),
        entry["rank"] if entry["rank"] is not None else -1,
        entry["tol"] if entry["tol"] is not None else -1,
        entry["width"],
    )


def slice_names(data: dict) -> list[str]:
    """Names of the grid's slices (``["main"]`` for a grid without slices)."""
    grid = data["grid"]
    return [piece["name"] for piece in grid["slices"]] if "slices" in grid else ["main"]


def _datasets(data: dict) -> list[str]:
    grid = data["grid"]
    pieces = grid["slices"] if "slices" in grid else [grid]
    return list(dict.fromkeys(d for piece in pieces for d in piece["datasets"]))


def middle_steps(data: dict) -> int:
    """The middle of the grid's sampler step counts (4 of 1, 2, 4, 8, 16)."""
    steps = sorted(data["grid"]["sampler_steps"])
    return steps[len(steps) // 2]


def slice_entries(data: dict, name: str, sampler_steps: int | None = None) -> list[dict]:
    """Summary entries of slice ``name`` at ``sampler_steps`` (default: the finest), in table order.

    A results file without slices (``--quick``) has one slice, ``"main"``,
    holding every entry.
    """
    steps = max(data["grid"]["sampler_steps"]) if sampler_steps is None else sampler_steps
    entries = [
        e
        for e in data["summary"]
        if e["sampler_steps"] == steps and (name in e.get("slices", []) or name == "main" and not e.get("slices"))
    ]
    datasets = _datasets(data)
    return sorted(entries, key=lambda e: _sort_key(e, datasets))


def cell_table(data: dict, name: str, sampler_steps: int | None = None) -> str:
    """Markdown table of slice ``name``: one row per model and cell, metrics with their 95 % intervals."""
    rows = [
        "| dataset | path | K | model | width | parameters | energy distance [95 % CI] "
        "| nearest-mode distance [95 % CI] | train s | sample s |",
        "|---|---|---:|---|---:|---:|---|---|---:|---:|",
    ]
    for e in slice_entries(data, name, sampler_steps):
        rows.append(
            f"| {e['dataset']} | {e['path']} | {e['K']} | {model_label(e)} | {_width_label(e)} "
            f"| {fmt(e['parameters']['mean'])} | {fmt_interval(e['energy_distance'])} "
            f"| {fmt_interval(e.get('mode_distance'))} | {fmt(e['train_seconds']['mean'])} "
            f"| {fmt(e['sampling_seconds']['mean'])} |"
        )
    return "\n".join(rows) + "\n"


def _runs_of(data: dict, entry: dict) -> dict[int, dict]:
    """The runs (by seed) behind a summary entry."""
    return {
        r["seed"]: r
        for r in data["runs"]
        if (r["dataset"], r["path"], r["K"], r["family"], r["rank"], r["tol"], r["width"])
        == (entry["dataset"], entry["path"], entry["K"], entry["family"], entry["rank"], entry["tol"], entry["width"])
    }


def paired_difference(data: dict, entry: dict, reference: dict, metric: str = "energy_distance") -> dict | None:
    """Mean and 95 % Student-t interval of ``metric(entry) - metric(reference)`` over the seeds both ran.

    Runs with the same seed share the sampler's start noise and the target
    sample they are scored against, so the per-seed difference removes that
    part of the spread; None with fewer than two common seeds or no metric.
    """
    steps = str(entry["sampler_steps"])
    mine, theirs = _runs_of(data, entry), _runs_of(data, reference)
    seeds = sorted(set(mine) & set(theirs))
    diffs = [mine[s]["trained"][steps].get(metric) for s in seeds]
    base = [theirs[s]["trained"][steps].get(metric) for s in seeds]
    if len(seeds) < 2 or any(v is None for v in diffs + base):
        return None
    diffs = [a - b for a, b in zip(diffs, base)]
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in diffs) / (n - 1))
    half = float(scipy.stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def verdict(diff: dict | None) -> str:
    """Plain words for a paired difference (lower is better for both metrics)."""
    if diff is None:
        return "–"
    if diff["high"] < 0:
        return "better"
    if diff["low"] > 0:
        return "worse"
    return "no difference resolved"


def _entries_and_references(data: dict, name: str, sampler_steps: int | None):
    """The summary entries of slice ``name`` and, per (dataset, path, K), the separate heads they are compared with.

    The reference is the separate heads at the grid's width (the budget that "matched" widths aim
    at), from whichever slice holds them, at the same sampler step count.
    """
    entries = slice_entries(data, name, sampler_steps)
    steps = entries[0]["sampler_steps"] if entries else None
    references = {
        (e["dataset"], e["path"], e["K"]): e
        for e in data["summary"]
        if e["family"] == "separate" and e["width"] == data["grid"]["width"] and e["sampler_steps"] == steps
    }
    return entries, references


def comparison_table(data: dict, name: str = "families", sampler_steps: int | None = None) -> str:
    """Every model of slice ``name`` against the separate heads of its cell at the grid's width, seed by seed.

    Columns: the parameter ratio to the separate heads, the energy distance
    and nearest-mode distance differences (model minus separate heads, mean
    and paired 95 % interval) and the verdict of each (``better`` when the
    whole interval is below zero).
    """
    entries, references = _entries_and_references(data, name, sampler_steps)
    rows = [
        "| dataset | path | K | model | parameters / separate | Δ energy distance [95 % CI] | verdict "
        "| Δ nearest-mode distance [95 % CI] | verdict |",
        "|---|---|---:|---|---:|---|---|---|---|",
    ]
    for e in entries:
        ref = references.get((e["dataset"], e["path"], e["K"]))
        if ref is None or e is ref:
            continue
        ed = paired_difference(data, e, ref, "energy_distance")
        md = paired_difference(data, e, ref, "mode_distance") if "mode_distance" in e else None
        rows.append(
            f"| {e['dataset']} | {e['path']} | {e['K']} | {model_label(e)} "
            f"| {fmt(e['parameters']['mean'] / ref['parameters']['mean'])} "
            f"| {fmt_interval(ed)} | {verdict(ed)} | {fmt_interval(md)} | {verdict(md)} |"
        )
    return "\n".join(rows) + "\n"


def verdict_summary(data: dict, name: str = "families", sampler_steps: int | None = None) -> str:
    """Per model of slice ``name``: on how many datasets it is better, unresolved or worse than separate heads.

    The counts are of :func:`comparison_table`'s verdicts (paired 95 %
    intervals over the seeds), for the energy distance and, on the datasets
    that have modes, the nearest-mode distance; the parameter column gives
    the range of the model's count over the separate heads' across datasets.
    """
    entries, references = _entries_and_references(data, name, sampler_steps)
    tallies: dict[str, dict] = {}
    for e in entries:
        ref = references.get((e["dataset"], e["path"], e["K"]))
        if ref is None or e is ref:
            continue
        label = model_label(e) + (" (matched width)" if e.get("width_rule") == "matched" else f" (width {e['width']})")
        tally = tallies.setdefault(label, {"ratio": [], "energy_distance": [], "mode_distance": []})
        tally["ratio"].append(e["parameters"]["mean"] / ref["parameters"]["mean"])
        for metric in ("energy_distance", "mode_distance"):
            diff = paired_difference(data, e, ref, metric) if metric in e else None
            if diff is not None:
                tally[metric].append(verdict(diff))

    def counts(verdicts):
        if not verdicts:
            return "–"
        return " / ".join(str(verdicts.count(v)) for v in ("better", "no difference resolved", "worse"))

    rows = [
        "| model | parameters / separate | energy distance: better / unresolved / worse "
        "| nearest-mode distance: better / unresolved / worse |",
        "|---|---|---|---|",
    ]
    for label, tally in tallies.items():
        low, high = min(tally["ratio"]), max(tally["ratio"])
        ratio = fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)} – {fmt(high)}"
        rows.append(f"| {label} | {ratio} | {counts(tally['energy_distance'])} | {counts(tally['mode_distance'])} |")
    return "\n".join(rows) + "\n"


def orders_table(data: dict, name: str = "orders", metric: str = "energy_distance") -> str:
    """Markdown table of ``metric`` (mean over seeds, 95 % interval) against sampler order K and step count.

    Trained models only (the compressed heads are compared in the other slices).
    """
    steps = data["grid"]["sampler_steps"]
    by_cell: dict[tuple, dict[int, dict]] = {}
    for N in steps:
        for e in slice_entries(data, name, N):
            if metric in e and e["tol"] is None:  # trained models only: the compressed ones are in the other slices
                key = (e["dataset"], e["path"], model_label(e), _width_label(e), e["K"])
                by_cell.setdefault(key, {})[N] = e
    rows = [
        "| dataset | path | model | width | K | " + " | ".join(f"{N} steps" for N in steps) + " |",
        "|---|---|---|---:|---:|" + "---|" * len(steps),
    ]
    for (dataset, path, label, width, K), cells in by_cell.items():
        values = " | ".join(fmt_interval(cells[N][metric]) if N in cells else "–" for N in steps)
        rows.append(f"| {dataset} | {path} | {label} | {width} | {K} | {values} |")
    return "\n".join(rows) + "\n"


def run_summary(data: dict) -> str:
    """What ran: the command, the machine, threads and processes, the wall time, the load and the noise floors."""
    mach, load = data["machine"], data.get("load_average") or {}
    grid = data["grid"]
    lines = [
        f"* Command: `{mach.get('command')}`" + (" (`--quick`)" if data.get("quick") else ""),
        f"* Machine: {mach.get('cpu_count')} CPUs ({mach.get('processor')}), {mach.get('platform')}; "
        f"PyTorch {mach.get('torch')}, NumPy {mach.get('numpy')}; {data.get('dtype', 'float64')}.",
        f"* Parallelism: {data.get('jobs', 1)} training process(es), {data['torch_threads']} PyTorch thread(s) each.",
        f"* Wall time of the whole run: {fmt(data['wall_seconds'] / 60)} min"
        + (
            f"; load average (1, 5, 15 min) {load.get('start')} at the start, {load.get('end')} at the end, "
            f"{fmt(load.get('mean_1min_over_runs'))} on average over the runs."
            if load
            else "."
        ),
        f"* Training: {grid['train_steps']} Adam steps of batch {grid['batch']} (cosine learning-rate "
        f"schedule), {grid['depth']} hidden layer(s); {len(grid['seeds'])} seed(s) per model; "
        f"{len(data['runs'])} scored models from {sum(r['tol'] is None for r in data['runs'])} training runs.",
        f"* Reference budget: separate heads of width {grid['width']}; compression tolerances "
        f"{', '.join(f'{t:g}' for t in grid['compress_tols'])}.",
        f"* Scoring: {grid['eval_points']} generated points against {grid['eval_points']} fresh target points, "
        f"sampler steps {', '.join(str(n) for n in grid['sampler_steps'])}.",
        "* Noise floor of the energy distance (two independent target samples of the evaluation's size): "
        + "; ".join(f"{name} {fmt_interval(stats)}" for name, stats in data["noise_floor"].items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


def docs_fragments(data: dict) -> dict[str, str]:
    """The Markdown pieces the docs page includes, by file name (the docs build writes them to ``docs/_generated``).

    Per slice other than ``orders``: its table, its comparison with the
    separate heads and the verdict counts at the finest sampler; for the
    first slice also the verdict counts at the middle step count; for
    ``orders``: the energy-distance and nearest-mode tables against K and
    steps, and its comparison with the separate heads at the finest sampler.
    """
    names = slice_names(data)
    pieces = {"flow_matching_run.md": run_summary(data)}
    for i, name in enumerate(n for n in names if n != "orders"):
        pieces[f"flow_matching_{name}_table.md"] = cell_table(data, name)
        pieces[f"flow_matching_{name}_comparison.md"] = comparison_table(data, name)
        pieces[f"flow_matching_{name}_verdicts.md"] = verdict_summary(data, name)
        if i == 0:
            # and at a middle step count, where the higher-order heads' share of each Taylor step is larger
            pieces[f"flow_matching_{name}_verdicts_mid.md"] = verdict_summary(data, name, middle_steps(data))
    if "orders" in names:
        pieces["flow_matching_orders_energy.md"] = orders_table(data, "orders", "energy_distance")
        pieces["flow_matching_orders_mode.md"] = orders_table(data, "orders", "mode_distance")
        pieces["flow_matching_orders_comparison.md"] = comparison_table(data, "orders")
    return pieces


def report(data: dict) -> str:
    """The whole report in Markdown: what ran, then every slice's table and comparison."""
    parts = ["## What ran\n", run_summary(data)]
    for name in slice_names(data):
        parts += [f"\n## Slice `{name}`\n\n", cell_table(data, name)]
        if name != "orders":
            parts += ["\n", comparison_table(data, name)]
    if "orders" in slice_names(data):
        parts += ["\n", orders_table(data, "orders", "energy_distance")]
    return "".join(parts)


def _front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The Pareto front (fewest parameters, lowest metric) of ``(parameters, metric)`` points, by parameters."""
    front, best = [], math.inf
    for p, m in sorted(points):
        if m < best:
            front.append((p, m))
            best = m
    return front


def _floor_line(data: dict, dataset: str) -> float | None:
    """Where to draw a dataset's noise floor on a log axis: the upper end of its interval (None if not positive).

    The floor's energy distance is zero in expectation, so its mean may be
    negative; the upper bound says how large a difference sampling noise alone makes.
    """
    stats = data["noise_floor"].get(dataset)
    if stats is None:
        return None
    value = stats["high"] if stats["high"] is not None else abs(stats["mean"])
    return value if value > 0 else None


def plot(data: dict, out_dir) -> list[pathlib.Path]:
    """Draw the metric-vs-parameters (Pareto) and metric-vs-sampler-steps figures as PNGs into ``out_dir``.

    One ``pareto_<metric>.png`` per metric (a panel per dataset; every
    trained and compressed model at K = max of the families and ranks
    slices, the finest step count, error bars the 95 % intervals, the dashed
    line the front over all models, the dotted line the energy distance's
    noise floor) and, when the grid has an ``orders`` slice (or for a grid
    without slices), ``sampler_<metric>.png``: the metric against the
    step count, one line per trained model and sampler order K.  Returns the paths written.
    """
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    names = [n for n in slice_names(data) if n != "orders"]
    datasets = _datasets(data)
    colours = {family: f"C{i}" for i, family in enumerate(_FAMILY_ORDER)}
    for metric, title in (("energy_distance", "energy distance"), ("mode_distance", "nearest-mode distance")):
        entries = {id(e): e for n in names for e in slice_entries(data, n) if metric in e}
        shown = [d for d in datasets if any(e["dataset"] == d for e in entries.values())]
        if not shown:
            continue
        cols = min(3, len(shown))
        rows = math.ceil(len(shown) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(max(4.2 * cols, 9), 3.4 * rows + 0.6), squeeze=False)
        for ax, dataset in zip(axes.flat, shown):
            mine = [e for e in entries.values() if e["dataset"] == dataset]
            for family in _FAMILY_ORDER:
                points = sorted((e for e in mine if e["family"] == family), key=lambda e: e["parameters"]["mean"])
                if not points:
                    continue
                x = [e["parameters"]["mean"] for e in points]
                y = [e[metric]["mean"] for e in points]
                err = [
                    [m - (e[metric]["low"] if e[metric]["low"] is not None else m) for m, e in zip(y, points)],
                    [(e[metric]["high"] if e[metric]["high"] is not None else m) - m for m, e in zip(y, points)],
                ]
                ax.errorbar(x, y, yerr=err, fmt="o", ms=4, capsize=2, color=colours[family], label=FAMILY_NAMES[family])
            front = _front([(e["parameters"]["mean"], e[metric]["mean"]) for e in mine])
            ax.plot(*zip(*front), "k--", lw=0.8, label="front")
            floor = _floor_line(data, dataset) if metric == "energy_distance" else None
            if floor is not None:
                ax.axhline(floor, color="grey", ls=":", label="noise floor (95 % bound)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            # ticks at 1, 2 and 5 times powers of ten, plainly labelled: parameter ranges span about one decade
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.6g}"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(f"{dataset}, K = {mine[0]['K']}, {mine[0]['path']}")
            ax.set_xlabel("parameters")
            ax.set_ylabel(title)
        for ax in list(axes.flat)[len(shown) :]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize="small")
        fig.tight_layout(rect=(0, 0.08 if rows > 1 else 0.14, 1, 1))
        path = out_dir / f"pareto_{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    name = "orders" if "orders" in slice_names(data) else "main" if slice_names(data) == ["main"] else None
    if name is not None:
        steps = data["grid"]["sampler_steps"]
        for metric, title in (("energy_distance", "energy distance"), ("mode_distance", "nearest-mode distance")):
            lines: dict[tuple, dict[int, dict]] = {}
            for N in steps:
                for e in slice_entries(data, name, N):
                    if metric in e and e["tol"] is None:
                        lines.setdefault((e["dataset"], e["path"], model_label(e), e["K"]), {})[N] = e
            panels = list(dict.fromkeys((key[0], key[1]) for key in lines))
            if not panels:
                continue
            fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
            for ax, (dataset, path) in zip(axes.flat, panels):
                for (d, p, label, K), cells in lines.items():
                    if (d, p) != (dataset, path):
                        continue
                    x = sorted(cells)
                    style = "-" if label == FAMILY_NAMES["separate"] else "--"
                    ax.plot(x, [cells[N][metric]["mean"] for N in x], style, marker="o", ms=3, label=f"{label}, K={K}")
                floor = _floor_line(data, dataset) if metric == "energy_distance" else None
                if floor is not None:
                    ax.axhline(floor, color="grey", ls=":")
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_xlabel("sampler steps")
                ax.set_ylabel(title)
                ax.set_title(f"{dataset}, {path} path")
                ax.legend(fontsize="x-small")
            fig.tight_layout()
            path = out_dir / f"sampler_{metric}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written
