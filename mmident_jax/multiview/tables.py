"""Tables and figures of a multi-view experiment: CSV rows, markdown, R² heatmap, loss curves.

Figures need matplotlib (the `plot` extra); without it the writers return False.

Example:
    >>> rows = [{"seed": s, "subset": "0,1", "view": k, "latent": f"z{i}", "content": i == 0,
    ...          "r2_linear": 0.5, "r2_nonlinear": 0.95 if i == 0 else 0.05} for s in (0, 1) for k in (0, 1)
    ...         for i in (0, 1)]
    >>> summary(rows)[0]
    {'subset': '0,1', 'content': 'z0', 'content_min': 0.95, 'content_mean': 0.95, 'other_max': 0.05}
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mmident_jax import report as common

COLUMNS = (
    "seed",
    "subset",
    "view",
    "latent",
    "content",
    "coords",
    "r2_linear",
    "r2_nonlinear",
    "r2_linear_std",
    "r2_nonlinear_std",
    "val_loss",
)


def to_csv(rows: list[dict], labels: tuple[str, ...] = ()) -> str:
    """One line per (setting,) seed x group x view x latent; a grid's `labels` first."""
    return common.csv_text(rows, [*labels, *(c for c in COLUMNS if any(c in r for r in rows))])


def _ordered(values):
    return list(dict.fromkeys(values))


def cells(rows: list[dict], metric: str) -> dict[tuple[str, int, str], tuple[float, float]]:
    """(subset, view, latent) -> (mean, std over seeds) of `metric`."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["subset"], r["view"], r["latent"]), []).append(r[metric])
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in groups.items()}


def summary(rows: list[dict], metric: str = "r2_nonlinear") -> list[dict]:
    """Per group: its content latents, the lowest and the mean (over views and content latents) of
    the seed-mean `metric`, and the highest seed-mean `metric` of the other latents (NaN if none)."""
    means = cells(rows, metric)
    out = []
    for subset in _ordered(r["subset"] for r in rows):
        mine = [r for r in rows if r["subset"] == subset]
        content = _ordered(r["latent"] for r in mine if r["content"])
        other = _ordered(r["latent"] for r in mine if not r["content"])
        viewed = _ordered(r["view"] for r in mine)
        c = [means[subset, k, z][0] for k in viewed for z in content]
        o = [means[subset, k, z][0] for k in viewed for z in other]
        out.append(
            {
                "subset": subset,
                "content": ",".join(content),
                "content_min": round(min(c), 6),
                "content_mean": round(float(np.mean(c)), 6),
                "other_max": round(max(o), 6) if o else math.nan,
            }
        )
    return out


def to_markdown(
    name: str,
    rows: list[dict],
    seeds: int,
    *,
    nonlinear: str = "kernel ridge",
    about: str = "",
    content_target: float = 0.9,
    other_target: float = 0.2,
) -> str:
    """A summary per group, then one table per metric: rows = (group, view), columns = latents,
    mean ± std over seeds, content latents in bold. `nonlinear` names the nonlinear probe;
    `about`, a paragraph under the title, says how the numbers were made."""
    lines = [
        f"# {name}",
        "",
        *([about, ""] if about else []),
        f"## Summary: nonlinear R² ({nonlinear}), mean over {common.count(seeds, 'seed')}",
        "",
        f"Content: the lowest and the mean over views and content latents (target ≥ {content_target}); "
        f"others: the highest over views and the other latents (target ≤ {other_target} for independent "
        "latents).",
        "",
        "| subset V | content C_V | content min | content mean | others max |",
        "|---|---|---|---|---|",
    ]
    for s in summary(rows):
        other = "–" if math.isnan(s["other_max"]) else f"{s['other_max']:.3f}"
        lines.append(
            f"| {{{s['subset']}}} | {s['content']} | {s['content_min']:.3f} | {s['content_mean']:.3f} | {other} |"
        )
    latents = _ordered(r["latent"] for r in rows)
    keys = _ordered((r["subset"], r["view"]) for r in rows)
    content = {(r["subset"], r["latent"]) for r in rows if r["content"]}
    for metric, title in (("r2_nonlinear", f"Nonlinear R² ({nonlinear})"), ("r2_linear", "Linear R²")):
        if all(math.isnan(r[metric]) for r in rows):
            continue
        means = cells(rows, metric)
        bold = lambda text, subset, z: f"**{text}**" if (subset, z) in content else text
        lines += ["", f"## {title}, mean ± std over {common.count(seeds, 'seed')} (bold: content of V)", ""]
        lines += common.markdown_table(
            ["subset V", "view", *latents],
            [
                [
                    f"{{{subset}}}",
                    str(view),
                    *(
                        bold(common.mean_std(*means.get((subset, view, z), (math.nan, 0.0))), subset, z)
                        for z in latents
                    ),
                ]
                for subset, view in keys
            ],
        )
    return "\n".join(lines) + "\n"


def grid_markdown(
    name: str, rows: list[dict], labels: tuple[str, ...], seeds: int, *, nonlinear: str, about: str
) -> str:
    """A grid's tables: per metric, a row per setting x subset V with `summary`'s columns."""
    lines = [f"# {name}", "", about, ""]
    for metric, title in (("r2_nonlinear", f"Nonlinear R² ({nonlinear})"), ("r2_linear", "Linear R²")):
        if all(math.isnan(r[metric]) for r in rows):
            continue
        body = [
            [
                *map(common.label_text, setting.values()),
                f"{{{s['subset']}}}",
                s["content"],
                f"{s['content_min']:.3f}",
                f"{s['content_mean']:.3f}",
                "–" if math.isnan(s["other_max"]) else f"{s['other_max']:.3f}",
            ]
            for setting, mine in common.by_setting(rows, labels)
            for s in summary(mine, metric)
        ]
        lines += [f"## {title}, mean over {common.count(seeds, 'seed')}", ""]
        lines += common.markdown_table(
            [*labels, "subset V", "content C_V", "content min", "content mean", "others max"], body
        )
        lines.append("")
    return "\n".join(lines)


def save_grid_heatmap(path: Path, name: str, rows: list[dict], labels: tuple[str, ...]) -> bool:
    """A grid's heatmap: rows = settings, columns = subsets V, the lowest seed-mean nonlinear R² of
    V's content. False when matplotlib is missing."""
    plt = common.pyplot()
    if plt is None:
        return False
    settings = common.by_setting(rows, labels)
    subsets = _ordered(r["subset"] for r in rows)
    lowest = {(i, s["subset"]): s["content_min"] for i, (_, mine) in enumerate(settings) for s in summary(mine)}
    grid = np.array([[lowest.get((i, v), np.nan) for v in subsets] for i in range(len(settings))])
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * len(subsets), 1.2 + 0.35 * len(settings)))
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            colour = "black" if value > 0.6 else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(subsets)))
    ax.set_xticklabels([f"{{{v}}}" for v in subsets], fontsize=7, rotation=45)
    ax.set_yticks(range(len(settings)))
    ax.set_yticklabels([common.setting_title(values) for values, _ in settings], fontsize=7)
    ax.set_title(f"{name}: lowest content R² of each subset V", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    common.save_figure(fig, path)
    return True


def save_heatmap(path: Path, name: str, rows: list[dict], metric: str = "r2_nonlinear") -> bool:
    """Heatmap of the seed-mean `metric`: rows = (group, view), columns = latents, content boxed.
    False when matplotlib is missing."""
    plt = common.pyplot()
    if plt is None:
        return False
    latents = _ordered(r["latent"] for r in rows)
    keys = _ordered((r["subset"], r["view"]) for r in rows)
    means = cells(rows, metric)
    grid = np.array([[means.get((s, v, z), (np.nan, 0.0))[0] for z in latents] for s, v in keys])
    fig, ax = plt.subplots(figsize=(1.2 + 0.75 * len(latents), 1.2 + 0.3 * len(keys)))
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    content = {(r["subset"], r["view"], r["latent"]) for r in rows if r["content"]}
    for i, (s, v) in enumerate(keys):
        for j, z in enumerate(latents):
            if not np.isnan(grid[i, j]):
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if grid[i, j] > 0.6 else "white",
                )
            if (s, v, z) in content:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2))
    ax.set_xticks(range(len(latents)))
    ax.set_xticklabels(latents)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([f"V={{{s}}} view {v}" for s, v in keys], fontsize=7)
    ax.set_title(f"{name}: {metric} (boxed: content of V)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    common.save_figure(fig, path)
    return True


def save_loss_curves(path: Path, name: str, curve: dict, floor: tuple[float, list[int]] | None = None) -> bool:
    """Training loss per group against steps (mean over seeds, band: min to max; the NaN of a
    diverged seed left out). With `floor` =
    (floor of one InfoNCE term, terms per group), from `model.loss_floor` and `model.loss_terms`, a
    second panel shows each group's gap to its floor per term on a log scale. False without matplotlib."""
    plt = common.pyplot()
    if plt is None or not curve["points"]:
        return False
    steps = np.array([p[0] for p in curve["points"]])
    losses = np.array([p[1] for p in curve["points"]])  # (points, seeds, groups)
    fig, axes = plt.subplots(1, 1 if floor is None else 2, figsize=(6.5 if floor is None else 13, 4.2), squeeze=False)
    colours = plt.get_cmap("tab20")
    for g, group in enumerate(curve["groups"]):
        series = [losses[:, :, g]] + ([] if floor is None else [losses[:, :, g] / floor[1][g] - floor[0]])
        for ax, y in zip(axes[0], series):
            ax.plot(steps, np.nanmean(y, axis=1), label="{" + ",".join(map(str, group)) + "}", color=colours(g % 20))
            ax.fill_between(steps, np.nanmin(y, axis=1), np.nanmax(y, axis=1), alpha=0.2, color=colours(g % 20))
    axes[0, 0].set_ylabel("training loss (mean per chunk)")
    axes[0, 0].set_title(f"{name}: loss per subset V, mean over {common.count(losses.shape[1], 'seed')}", fontsize=9)
    if floor is not None:
        axes[0, 1].set_yscale("log")
        axes[0, 1].set_ylabel("loss per InfoNCE term − floor")
        axes[0, 1].set_title(f"gap to the floor −log(n + 1) = {floor[0]:.3f} per term", fontsize=9)
    for ax in axes[0]:
        ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=7, ncol=2)
    common.save_figure(fig, path)
    return True
