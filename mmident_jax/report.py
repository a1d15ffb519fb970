"""Reporting, for every experiment: CSV rows, mean ± std cells, markdown tables, figures.

Figures need matplotlib, which comes with the `plot` extra (`pip install ".[plot]"`);
without it the writers skip the figure and say so. The layout of the paper's tables
(one table per mechanism, settings as rows, encoder x block as columns) is here too.

Example:
    >>> rows = [{"setting": "a", "seed": s, "r2": r} for s, r in ((0, 0.9), (1, 1.0))]
    >>> print(csv_text(rows, ("setting", "seed")), end="")
    setting,seed,r2
    a,0,0.9
    a,1,1.0
    >>> summarise(rows, "r2", ("setting",), key=lambda r: "r2")
    [({'setting': 'a'}, {'r2': (0.95, 0.04999999999999999)})]
    >>> mean_std(0.95, 0.05)
    '0.95±0.05'
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from mmident_jax import rundir

MISSING = "matplotlib is not installed: pip install 'mmident-jax[plot]'"
TABLE_LABELS = ("mechanism", "p_chg", "statistical", "causal")


def settings_line(facts: dict[str, str], preset: dict[str, str]) -> str:
    """How a table was made, for under its title: each fact, marked where it differs from the
    same fact of its preset.

    >>> settings_line({"seeds": "2", "steps": "400"}, {"seeds": "3", "steps": "400"})
    'Settings: seeds 2 (**the preset: 3**); steps 400.'
    """
    marked = (
        f"{k} {v}" + (f" (**the preset: {preset[k]}**)" if preset.get(k, v) != v else "") for k, v in facts.items()
    )
    return "Settings: " + "; ".join(marked) + "."


def count(n: int, noun: str) -> str:
    """`1 seed`, `3 seeds`."""
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("ch") else "s")


def csv_text(rows: list[dict], columns) -> str:
    """CSV of `rows`: `columns` first, then every other key in sorted order; missing cells empty."""
    columns = list(columns)
    columns += sorted({k for row in rows for k in row} - set(columns))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def text_table(rows: list[dict], columns) -> str:
    """The rows as an aligned text table: floats to 3 decimals, absent values blank.

    >>> print(text_table([{"block": "c", "r2": 0.98765}, {"block": "s"}], ("block", "r2")))
    block     r2
        c  0.988
        s
    """
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    body = [[cell(row[c]) if c in row else "" for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(v.rjust(w) for v, w in zip(cells, widths)).rstrip()
    return "\n".join([line(columns)] + [line(r) for r in body])


def mean_std(mean: float, std: float) -> str:
    """A table cell: mean ± std with two decimals; "–" for a missing (NaN) mean."""
    return "–" if math.isnan(mean) else f"{mean:.2f}±{std:.2f}"


def cell(cells: dict, key: str) -> str:
    """The `mean_std` cell of `key` in a `summarise` result ("–" when absent)."""
    return mean_std(*cells[key]) if key in cells else "–"


def block_key(row: dict) -> str:
    """The column of a probe row in the paper's tables: "hz1: c", ..."""
    return f"{row['encoding']}: {row['predicted_factors']}"


def summarise(
    rows: list[dict], metric: str, labels=TABLE_LABELS, key=block_key
) -> list[tuple[dict, dict[str, tuple[float, float]]]]:
    """Per setting (in order of appearance): {key(row): (mean, std over seeds)} of `metric`.

    Rows without `metric` (e.g. accuracies of continuous blocks) are left out.
    """
    settings: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        cells = settings.setdefault(tuple(r[c] for c in labels), {})
        if metric in r:
            cells.setdefault(key(r), []).append(r[metric])
    return [
        (dict(zip(labels, k)), {c: (float(np.mean(v)), float(np.std(v))) for c, v in cells.items()})
        for k, cells in settings.items()
    ]


def markdown_table(head: list[str], body: list[list[str]]) -> list[str]:
    """The lines of a markdown table."""
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|", *("| " + " | ".join(r) + " |" for r in body)]


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend, or None when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig, path: Path) -> None:
    """Lay out, write (120 dpi) and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


def write_text(path: Path, text: str) -> None:
    rundir.write_atomic(path, text.encode())


def loss_curves(out: Path) -> list[tuple[dict, list[int], list[float]]]:
    """Every run's training-loss curve kept in a sweep's `out`: (labels and seed, steps, losses)."""
    curves = []
    for path in sorted(out.glob("group*.curve.json"), key=lambda p: int(p.name[5:].split(".")[0])):
        data = json.loads(path.read_text())
        steps = [p[0] for p in data["points"]]
        curves.extend((run, steps, [p[1][i] for p in data["points"]]) for i, run in enumerate(data["runs"]))
    return curves


def correlation_heatmaps(path: Path, panels: list[tuple[str, np.ndarray, list[str], list[str]]]) -> bool:
    """|correlation| heatmaps side by side: (title, matrix latents x codes, row labels, column labels) each.

    False (nothing written) when matplotlib is missing.
    """
    plt = pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(0.45 * sum(len(p[3]) for p in panels) + 3 * len(panels), 0.3 * max(len(p[2]) for p in panels) + 1.5),
        squeeze=False,
    )
    for ax, (title, corr, rows, columns) in zip(axes[0], panels):
        image = ax.imshow(np.abs(corr), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_xticks(range(len(columns)), columns, fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label="|Pearson correlation|")
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return True


# ------------------------------------------------------------------ the paper's tables


def own_blocks(encoding: str, rows: list[dict]) -> list[str]:
    """The blocks shown for an encoder: content, its own style and modality block, and c'."""
    own = {"hz1": ("c", "s", "m1"), "hz2": ("c", "s~", "m2")}[encoding] + ("c'",)
    present = {r["predicted_factors"] for r in rows}
    return [b for b in own if b in present]


TABLE_METRICS = (
    ("r2_nonlinear", "Nonlinear R² (kernel ridge)"),
    ("r2_linear", "Linear R²"),
    ("mcc_pearson_out", "MCC (Pearson, matched on validation, scored on test)"),
    ("ceiling_kernel", "Content ceiling: R² of the true content (kernel ridge)"),
    ("norm_nonlinear", "Recovered beyond the content ceiling (normalised kernel-ridge score)"),
)


def tables_markdown(name: str, rows: list[dict], seeds: int) -> str:
    """The paper's layout: one table per mechanism and metric, rows = settings, columns = blocks.

    R² always; MCC, ceilings and normalised scores when the rows have them (`--metrics`).
    """
    lines = [f"# {name}", ""]
    present = {k for r in rows for k in r}
    for metric, title in (t for t in TABLE_METRICS if t[0] in present):
        for mechanism in dict.fromkeys(r["mechanism"] for r in rows):
            mrows = [r for r in rows if r["mechanism"] == mechanism]
            columns = [f"{e}: {b}" for e in ("hz1", "hz2") for b in own_blocks(e, mrows)]
            body = [
                [
                    f"{labels['p_chg']:g}",
                    "yes" if labels["statistical"] else "no",
                    "yes" if labels["causal"] else "no",
                    *(cell(cells, c) for c in columns),
                ]
                for labels, cells in summarise(mrows, metric)
            ]
            lines += [
                f"## {title}, {mechanism}, mean ± std over {count(seeds, 'seed')}",
                "",
                *markdown_table(["p_chg", "stat.", "caus.", *columns], body),
                "",
            ]
    return "\n".join(lines)


def tables_figure(path: Path, name: str, rows: list[dict]) -> bool:
    """Bar chart of nonlinear R² per setting and block (hz1); False if matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        return False
    mechanisms = list(dict.fromkeys(r["mechanism"] for r in rows))
    fig, axes = plt.subplots(1, len(mechanisms), figsize=(6 * len(mechanisms), 3.6), squeeze=False)
    for ax, mechanism in zip(axes[0], mechanisms):
        mrows = [r for r in rows if r["mechanism"] == mechanism]
        blocks = own_blocks("hz1", mrows)
        summary = summarise(mrows, "r2_nonlinear")
        width = 0.8 / len(blocks)
        for j, block in enumerate(blocks):
            means, stds = zip(*(cells.get(f"hz1: {block}", (np.nan, 0.0)) for _, cells in summary))
            ax.bar(np.arange(len(summary)) + j * width, means, width, yerr=stds, label=block, capsize=2)
        ax.set_xticks(np.arange(len(summary)) + 0.4 - width / 2)
        ax.set_xticklabels(
            [f"p={s['p_chg']:g}{chr(10)}{'stat ' * s['statistical']}{'caus' * s['causal']}" for s, _ in summary],
            fontsize=8,
        )
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("nonlinear R² (hz1)")
        ax.set_title(f"{name}: {mechanism}")
        ax.legend(fontsize=8)
    save_figure(fig, path)
    return True


def write_tables(out: Path, name: str, rows: list[dict], seeds: int) -> list[str]:
    """The paper's tables as results.md and their figure as results.png; returns what could not be written."""
    write_text(out / "results.md", tables_markdown(name, rows, seeds))
    return [] if tables_figure(out / "results.png", name, rows) else [f"results.png ({MISSING})"]


# ------------------------------------------------------------------ any grid of settings


def label_text(value) -> str:
    """A label's table cell: floats as `:g`, booleans yes/no, anything else as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def by_setting(rows: list[dict], labels) -> list[tuple[dict, list[dict]]]:
    """({label: value}, that setting's rows) of each setting, in order of appearance."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in labels), []).append(r)
    return [(dict(zip(labels, k)), rs) for k, rs in groups.items()]


def setting_title(values: dict) -> str:
    """A setting's labels in a title: "lr=0.001, content_n=3" ("" for none)."""
    return ", ".join(f"{k}={label_text(v)}" for k, v in values.items())


def diverged_note(diverged: list[str]) -> str:
    """The line under a results.md's tables that lists its diverged runs ("" for none)."""
    return "\nLeft out of the tables, diverged: " + "; ".join(diverged) + ".\n" if diverged else ""


def grid_markdown(name: str, rows: list[dict], seeds: int, labels) -> str:
    """The layout of any grid of settings: one table per metric, a row per setting (its labels
    first), a column per encoder x block (`own_blocks`); R² always, the identifiability metrics
    when the rows have them."""
    lines = [f"# {name}", ""]
    present = {k for r in rows for k in r}
    columns = [f"{e}: {b}" for e in ("hz1", "hz2") for b in own_blocks(e, rows)]
    for metric, title in (t for t in TABLE_METRICS if t[0] in present):
        body = [
            [*(label_text(values[k]) for k in labels), *(cell(cells, c) for c in columns)]
            for values, cells in summarise(rows, metric, labels)
        ]
        lines += [
            f"## {title}, mean ± std over {count(seeds, 'seed')}",
            "",
            *markdown_table([*labels, *columns], body),
            "",
        ]
    return "\n".join(lines)


def grid_figure(path: Path, name: str, rows: list[dict], labels) -> bool:
    """Bar chart of nonlinear R² of hz1's blocks per setting; False if matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        return False
    blocks = own_blocks("hz1", rows)
    summary = summarise(rows, "r2_nonlinear", labels)
    ticks = ["\n".join(f"{k}={label_text(s[k])}" for k in labels) for s, _ in summary]
    longest = max((len(line) for tick in ticks for line in tick.split("\n")), default=0)
    fig, ax = plt.subplots(figsize=(max(6, len(summary) * max(1.2, 0.07 * longest) + 1.5), 3.4 + 0.15 * len(labels)))
    width = 0.8 / max(len(blocks), 1)
    for j, block in enumerate(blocks):
        means, stds = zip(*(cells.get(f"hz1: {block}", (np.nan, 0.0)) for _, cells in summary))
        ax.bar(np.arange(len(summary)) + j * width, means, width, yerr=stds, label=block, capsize=2)
    ax.set_xticks(np.arange(len(summary)) + 0.4 - width / 2)
    ax.set_xticklabels(ticks, fontsize=7)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("nonlinear R² (hz1)")
    ax.set_title(name)
    if blocks:
        ax.legend(fontsize=8)
    save_figure(fig, path)
    return True


def write_grid(out: Path, name: str, rows: list[dict], seeds: int, labels) -> list[str]:
    """A grid sweep's tables as results.md and its figure as results.png; returns what could not be written."""
    write_text(out / "results.md", grid_markdown(name, rows, seeds, labels))
    return [] if grid_figure(out / "results.png", name, rows, labels) else [f"results.png ({MISSING})"]
