"""The reports of the paper's ablations: encoding size, latent dimensions, discrete latents.

Every ablation (its sweep presets are in `presets`) varies one thing in the multimodal
setting with independent latents (f1 != f2, two encoders, p_chg = 0.75; Table 1's second
row) and reports it its own way: the encoding-size ablation the validation loss per size and its elbow (the
model selection the paper suggests), the dimension ablation R² per block for each
nm and ns and the training-loss curves, the discrete ablation classification
accuracy beside chance for the discrete block.

Example, the elbow of the paper's validation-loss curve:
    >>> elbow([1, 3, 5, 7, 9, 11, 13, 15], [-2.54, -6.70, -8.20, -8.15, -8.22, -8.29, -8.24, -8.25])
    5
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmident_jax.evaluation import VALIDATION_SIZE
from mmident_jax.report import (
    MISSING,
    cell,
    count,
    loss_curves,
    markdown_table,
    pyplot,
    save_figure,
    summarise,
    write_text,
)

BLOCKS = {"hz1": ("c", "s", "m1"), "hz2": ("c", "s~", "m2")}  # what each encoder's columns show
NO_FIGURE = [f"results.png ({MISSING})"]


def elbow(sizes, losses, tolerance: float = 0.05, noise: float = 0.1) -> int:
    """The smallest size whose loss is within `tolerance` x (max - min loss) of the lowest loss.

    Differences below `noise` (in loss units; seed-to-seed spread of the validation
    loss is about 0.1 nats) never count, so a flat curve has its elbow at the smallest size.

    >>> elbow([1, 2, 3, 4], [0.0, -5.0, -5.1, -5.05])
    2
    """
    losses = np.asarray(losses, float)
    threshold = losses.min() + max(tolerance * (losses.max() - losses.min()), noise)
    return int(np.asarray(sizes)[np.argmax(losses <= threshold)])


# ------------------------------------------------------------------ tables and figures


def _columns() -> list[str]:
    return [f"{e}: {b}" for e, blocks in BLOCKS.items() for b in blocks]


def _table(rows: list[dict], labels: tuple[str, ...], metric: str, extra=None) -> list[str]:
    """A markdown table: one line per setting, one column per encoder x block (and `extra`'s)."""
    summary = summarise(rows, metric, labels)
    present = {k for _, cells in summary for k in cells}
    columns = [c for c in _columns() if c in present]
    head = list(labels) + (list(extra[0]) if extra else []) + columns
    body = [
        [str(values[k]) for k in labels] + (extra[1][i] if extra else []) + [cell(cells, c) for c in columns]
        for i, (values, cells) in enumerate(summary)
    ]
    return markdown_table(head, body)


def _val_losses(rows: list[dict]) -> dict[int, list[float]]:
    """Validation loss per encoding size, one value per seed."""
    per_run = {(r["encoding_size"], r["seed"]): r["val_loss"] for r in rows}
    out: dict[int, list[float]] = {}
    for (size, _), loss in per_run.items():
        out.setdefault(size, []).append(loss)
    return out


def _r2_panel(ax, rows, labels, x_label):
    """Nonlinear R² of hz1's blocks against one label."""
    summary = summarise(rows, "r2_nonlinear", labels)
    xs = [v[x_label] for v, _ in summary]
    for block in BLOCKS["hz1"]:
        cells = [c.get(f"hz1: {block}", (np.nan, 0.0)) for _, c in summary]
        ax.errorbar(xs, [m for m, _ in cells], [s for _, s in cells], marker="o", capsize=2, label=block)
    ax.set_xlabel(x_label)
    ax.set_ylabel("nonlinear R² (hz1)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)


def write_encoding_size(out: Path, name: str, rows: list[dict], seeds: int) -> list[str]:
    """results.md: validation loss and R² per encoding size, and the elbow; results.png: both curves."""
    losses = _val_losses(rows)
    sizes = sorted(losses)
    means = [float(np.mean(losses[k])) for k in sizes]
    best = elbow(sizes, means)
    extra = (["val_loss"], [[f"{np.mean(losses[k]):.2f}±{np.std(losses[k]):.2f}"] for k in sizes])
    lines = [
        f"# {name}",
        "",
        f"Validation loss ({VALIDATION_SIZE} samples) and nonlinear R² per encoding size, "
        f"mean ± std over {count(seeds, 'seed')}.",
        "",
        f"**Elbow of the validation loss: encoding size {best}** (the smallest size within 5 % of the "
        "loss range, and at least 0.1, above the lowest loss; `mmident_jax.ablations.elbow`).",
        "",
        *_table(rows, ("encoding_size",), "r2_nonlinear", extra),
        "",
        "Linear R²:",
        "",
        *_table(rows, ("encoding_size",), "r2_linear"),
        "",
    ]
    write_text(out / "results.md", "\n".join(lines))
    plt = pyplot()
    if plt is None:
        return NO_FIGURE
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.errorbar(sizes, means, [np.std(losses[k]) for k in sizes], marker="o", capsize=2)
    left.axvline(best, color="gray", linestyle="--", label=f"elbow: {best}")
    left.set_xlabel("encoding size")
    left.set_ylabel("validation loss")
    left.legend(fontsize=8)
    _r2_panel(right, rows, ("encoding_size",), "encoding_size")
    fig.suptitle(name)
    save_figure(fig, out / "results.png")
    return []


def write_dims(out: Path, name: str, rows: list[dict], seeds: int) -> list[str]:
    """results.md: R² per block for each nm (ns = 5) and each ns (nm = 5); results.png: R² and loss curves."""
    series = (("nm", "ns"), ("ns", "nm"))  # (varied, fixed at 5)
    lines = [f"# {name}", "", f"Nonlinear R² (kernel ridge), mean ± std over {count(seeds, 'seed')}.", ""]
    series_rows = {
        varied: sorted((r for r in rows if r[fixed] == 5), key=lambda r: r[varied]) for varied, fixed in series
    }
    for varied, fixed in series:
        part = series_rows[varied]
        lines += [f"## {varied} varied, {fixed} = 5", "", *_table(part, (varied, fixed), "r2_nonlinear"), ""]
    write_text(out / "results.md", "\n".join(lines))
    plt = pyplot()
    if plt is None:
        return NO_FIGURE
    curves = loss_curves(out)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for (varied, fixed), (r2_ax, curve_ax) in zip(series, axes.T):
        _r2_panel(r2_ax, series_rows[varied], (varied, fixed), varied)
        r2_ax.set_title(f"{varied} varied, {fixed} = 5")
        values = sorted({run[varied] for run, _, _ in curves if run[fixed] == 5})
        for value in values:
            runs = [(steps, loss) for run, steps, loss in curves if run[fixed] == 5 and run[varied] == value]
            curve_ax.plot(runs[0][0], np.mean([loss for _, loss in runs], axis=0), label=f"{varied} = {value}")
        curve_ax.set_xlabel("step")
        curve_ax.set_ylabel(f"training loss (mean of {count(seeds, 'seed')})")
        if values:  # the curves are kept in `out` by `sweep.sweep`
            curve_ax.legend(fontsize=8)
    fig.suptitle(name)
    save_figure(fig, out / "results.png")
    return []


def write_discrete(out: Path, name: str, rows: list[dict], seeds: int) -> list[str]:
    """results.md: accuracy (with chance) of the discrete block, R² of the others; results.png: both."""
    labels = ("discrete", "k")
    lines = [
        f"# {name}",
        "",
        f"Mean ± std over {count(seeds, 'seed')}. Discrete blocks: accuracy of the MLP classifier "
        "(chance = 1/k); continuous blocks: nonlinear R² (kernel ridge).",
        "",
        "## Accuracy of the discrete block",
        "",
        *_table(rows, labels, "acc_nonlinear"),
        "",
        "## Linear (logistic regression) accuracy of the discrete block",
        "",
        *_table(rows, labels, "acc_linear"),
        "",
        "## Nonlinear R² of the continuous blocks",
        "",
        *_table(rows, labels, "r2_nonlinear"),
        "",
    ]
    write_text(out / "results.md", "\n".join(lines))
    plt = pyplot()
    if plt is None:
        return NO_FIGURE
    accuracy = summarise(rows, "acc_nonlinear", labels)
    r2 = summarise(rows, "r2_nonlinear", labels)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(accuracy)), 3.8))
    width = 0.8 / len(BLOCKS["hz1"])
    for j, block in enumerate(BLOCKS["hz1"]):
        cells = [
            acc.get(f"hz1: {block}", r.get(f"hz1: {block}", (np.nan, 0.0))) for (_, acc), (_, r) in zip(accuracy, r2)
        ]
        ax.bar(
            np.arange(len(cells)) + j * width,
            [m for m, _ in cells],
            width,
            yerr=[s for _, s in cells],
            capsize=2,
            label=block,
        )
    for i, (values, _) in enumerate(accuracy):
        ax.hlines(1 / values["k"], i - width / 2, i + 0.8 - width / 2, colors="black", linestyles=":")
    ax.set_xticks(np.arange(len(accuracy)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{v['discrete']} discrete\nk={v['k']}" for v, _ in accuracy], fontsize=8)
    ax.set_ylabel("accuracy (discrete) / R² (continuous), hz1")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{name} (dotted: chance 1/k)")
    ax.legend(fontsize=8)
    save_figure(fig, out / "results.png")
    return []
