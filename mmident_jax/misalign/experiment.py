"""The misalignment experiment as a study of the sweep engine: its runs, evaluation and tables.

`study(preset)` gives the sweep engine (`sweep.sweep`) every setting x seed of a preset;
each setting is its own compiled program (its selection and perturbation fix shapes and
masks), its seeds trained together, checkpointed per chunk in `groupN.ckpt`.
`run_experiment` runs it and writes results.csv, results.md (per series and code: factors
x k, the seed-mean ± std R²) and results.png (heatmaps like the paper's Fig. 3 and 7);
the command line (`mmident_jax.misalign.command`) runs it.

The two series are read from the labels: the selection series is every setting with
nothing perturbed (columns: |I_θ| = k, the text sees s1..sk), the perturbation series every
setting that selects all factors (columns: |I_ρ| = k, s1..sk perturbed); their common
setting is a column of both.

Example:
    >>> from dataclasses import replace
    >>> from mmident_jax import sweep
    >>> from mmident_jax.misalign.config import MisalignConfig, Preset, sweep_settings
    >>> base = MisalignConfig(semantic_n=3, modality_n=1, encoder_widths=(16,), batch_size=32,
    ...                       train_steps=4, log_steps=2, cond_pool=1000)
    >>> preset = Preset(sweep_settings(base, (3, 2), (0, 1)), seeds=2, eval_batch_size=64, probes=("linear",))
    >>> [tuple(v for _, v in labels) for _, labels in preset.settings]  # latents, |I_θ|, |I_ρ|
    [('independent', 3, 0), ('independent', 2, 0), ('independent', 3, 1)]
    >>> rows = sweep.sweep(study(replace(preset, settings=preset.settings[2:])), progress=False)  # one setting
    >>> len(rows), sorted({r["seed"] for r in rows}), [(r["factor"], r["role"]) for r in rows[:2]]
    (20, [0, 1], [('s1', 'perturbed'), ('s2', 'invariant')])
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from mmident_jax import presets, report, rundir, sweep
from mmident_jax.config import Hyper, hyper, replace
from mmident_jax.misalign.config import LABELS, MisalignConfig, Preset
from mmident_jax.misalign.evaluation import evaluate
from mmident_jax.misalign.model import ENCODINGS, experiment

COLUMNS = ("seed", "encoding", "factor", "role", "r2_linear", "r2_nonlinear", "val_loss")  # after the labels
METRICS = (("r2_nonlinear", "MLP R²"), ("r2_linear", "linear R²"))


def program_key(cfg: MisalignConfig) -> MisalignConfig:
    """What fixes the compiled program: the config with its per-run numbers and seed blanked."""
    return replace(cfg, seed=0, **{name: getattr(MisalignConfig(), name) for name in Hyper._fields})


def evaluation_settings(preset: Preset) -> dict:
    return {
        "probes": list(preset.probes),
        "eval_batches": preset.eval_batches,
        "eval_batch_size": preset.eval_batch_size,
    }


def study(preset: Preset) -> sweep.Study:
    """Seeds `cfg.seed`, `cfg.seed + 1`, ... of every setting; a run's rows: R² per code x factor."""
    runs = [sweep.Run(cfg, cfg.seed + i, labels) for cfg, labels in preset.settings for i in range(preset.seeds)]

    def evaluate_run(state, run: sweep.Run) -> list[dict]:
        return evaluate(
            state, run.cfg, probes=preset.probes, num_batches=preset.eval_batches, batch_size=preset.eval_batch_size
        )

    return sweep.Study(
        runs, experiment, lambda run: hyper(run.cfg), program_key, evaluate_run, evaluation_settings(preset)
    )


# ------------------------------------------------------------------ tables


def _ordered(values) -> list:
    return list(dict.fromkeys(values))


def series(rows: list[dict], semantic_n: int) -> list[tuple[str, list[tuple[int, int]], str]]:
    """(series, its settings as (|I_θ|, |I_ρ|) in column order, what its k is) present in `rows`:
    "selection" (nothing perturbed, k = |I_θ| from n down), "perturbation" (all selected, k = |I_ρ|
    from 0 up), and "other" for any setting in neither."""
    settings = _ordered((r["selected"], r["perturbed"]) for r in rows)
    selection = sorted((s for s in settings if s[1] == 0), reverse=True)
    perturbation = sorted(s for s in settings if s[0] == semantic_n)
    other = [s for s in settings if s not in selection and s not in perturbation]
    common = [(semantic_n, 0)]  # a series of the common setting alone is a column of the other one
    if selection == common and len(perturbation) > 1:
        selection = []
    if perturbation == common and (len(selection) > 1 or selection == common):
        perturbation = []
    out = [
        ("selection", selection, "I_θ = [k], I_ρ = ∅"),
        ("perturbation", perturbation, "I_θ = all, I_ρ = [k]"),
        ("other", other, "(|I_θ|, |I_ρ|)"),
    ]
    return [s for s in out if s[1]]


def column_label(name: str, setting: tuple[int, int]) -> str:
    """A table column: "[k]" (the first k factors), "∅", or "|I_θ|=a, |I_ρ|=b"."""
    k = setting[0] if name == "selection" else setting[1] if name == "perturbation" else None
    if k is None:
        return f"|I_θ|={setting[0]}, |I_ρ|={setting[1]}"
    return "∅" if k == 0 else f"[{k}]"


def cells(rows: list[dict], metric: str) -> dict[tuple, tuple[float, float, str]]:
    """(latents, |I_θ|, |I_ρ|, encoding, factor) -> (mean, std over seeds, role) of `metric`."""
    groups: dict[tuple, list] = {}
    for r in rows:
        key = (r["latents"], r["selected"], r["perturbed"], r["encoding"], r["factor"])
        groups.setdefault(key, [r["role"]]).append(r[metric])
    return {k: (float(np.mean(v[1:])), float(np.std(v[1:])), v[0]) for k, v in groups.items()}


def panels(rows: list[dict], preset: Preset) -> list[tuple[str, list[dict]]]:
    """The rows of each latent model (and grid value), in order, each with its title: "dependent
    latents" or, with a grid, "dependent latents, lr=0.001"."""
    out = []
    for values, mine in report.by_setting(rows, ("latents", *preset.labels[len(LABELS) :])):
        latents = values.pop("latents")
        out.append((", ".join([f"{latents} latents", *filter(None, [report.setting_title(values)])]), mine))
    return out


def _semantic_n(preset: Preset) -> int:
    return preset.settings[0][0].semantic_n


def nonlinear_probe(preset: Preset) -> str:
    return "MLP" if "mlp" in preset.probes else "none"


def about(name: str, preset: Preset) -> str:
    """How a results table was made: seeds, steps, batch, encoders, evaluation sizes and probes,
    each marked where it differs from the registered preset `name`."""

    def facts(p: Preset) -> dict:
        cfgs = [cfg for cfg, _ in p.settings]
        one = lambda values: ", ".join(dict.fromkeys(f"{v:,}" if isinstance(v, int) else str(v) for v in values))
        widths = lambda c: ",".join(map(str, c.encoder_widths)) if c.encoder_widths else "10d, 50d x 4, 10d"
        n = p.eval_batches * p.eval_batch_size
        return {
            "seeds": str(p.seeds),
            "steps": one(c.train_steps for c in cfgs),
            "batch": one(c.batch_size for c in cfgs),
            "encoders": one(widths(c) for c in cfgs),
            "evaluation": f"{n:,} validation and as many test samples",
            "probes": ", ".join(p.probes),
        }

    registered = ("misalign", name) in presets.REGISTRY
    return report.settings_line(facts(preset), facts(presets.get("misalign", name)) if registered else {})


def to_markdown(name: str, rows: list[dict], preset: Preset, seeds: int) -> str:
    """Per latent model, probe, series and code: factors (rows) x settings (columns), mean ± std over
    seeds; a misaligned factor's cell (omitted or perturbed in that setting) in italics."""
    n = _semantic_n(preset)
    lines = [
        f"# {name}",
        "",
        about(name, preset),
        "",
        f"R² of each factor from the image's code (hz_x) and the text's (hz_t); mean ± std over {seeds} seed(s). "
        "[k] = the first k semantic factors s1..sk; *italics*: the factor is misaligned in that setting "
        "(perturbed, or omitted from the text).",
        "",
    ]
    for panel, mine in panels(rows, preset):
        factors = _ordered(r["factor"] for r in mine)
        for metric, title in METRICS:
            if all(math.isnan(r[metric]) for r in mine):
                continue
            means = cells(mine, metric)
            for which, settings, meaning in series(mine, n):
                for encoding in ENCODINGS:
                    lines += [f"## {panel}, {which} series ({meaning}): {encoding}, {title}", ""]
                    head = ["factor", *(column_label(which, s) for s in settings)]
                    body = []
                    for factor in factors:
                        row = [factor]
                        for s in settings:
                            got = means.get((mine[0]["latents"], *s, encoding, factor))
                            text = "–" if got is None else report.mean_std(got[0], got[1])
                            row.append(f"*{text}*" if got is not None and got[2] in ("perturbed", "omitted") else text)
                        body.append(row)
                    lines += [*report.markdown_table(head, body), ""]
    return "\n".join(lines)


def save_heatmaps(path: Path, name: str, rows: list[dict], preset: Preset) -> bool:
    """One panel per latent model x series x code: factors x k, the seed-mean MLP R² (linear when the
    MLP was not probed), clipped to [0, 1] and annotated. False when matplotlib is missing."""
    plt = report.pyplot()
    if plt is None:
        return False
    metric = "r2_nonlinear" if "mlp" in preset.probes else "r2_linear"
    n = _semantic_n(preset)
    shown = []
    for panel, mine in panels(rows, preset):
        latents, means = mine[0]["latents"], cells(mine, metric)
        factors = _ordered(r["factor"] for r in mine)
        for which, settings, _ in series(mine, n):
            for encoding in ENCODINGS:
                grid = np.array(
                    [[means.get((latents, *s, encoding, f), (np.nan,))[0] for s in settings] for f in factors]
                )
                labels = [column_label(which, s) for s in settings]
                shown.append((f"{panel}, {which}: {encoding}", np.clip(grid, 0.0, 1.0), labels, factors))
    if not shown:
        return False
    cols = len(ENCODINGS)
    rows_n = -(-len(shown) // cols)
    width = max(len(p[2]) for p in shown)
    fig, axes = plt.subplots(rows_n, cols, figsize=(cols * (1.6 + 0.5 * width), rows_n * 4.2), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, (title, grid, columns, factors) in zip(axes.flat, shown):
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if not np.isnan(grid[i, j]):
                    colour = "black" if grid[i, j] > 0.6 else "white"
                    ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=6, color=colour)
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels(columns, fontsize=7)
        ax.set_yticks(range(len(factors)))
        ax.set_yticklabels(factors, fontsize=7)
        ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02)
    fig.suptitle(f"{name}: {'MLP' if metric == 'r2_nonlinear' else 'linear'} R², mean over seeds", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_results(out: Path, name: str, rows: list[dict], preset: Preset) -> list[str]:
    """results.csv (every run), results.md and results.png (healthy runs) in `out`; returns what
    could not be written. Diverged runs are listed under the tables."""
    healthy = [r for r in rows if "diverged_at" not in r]
    diverged = sweep.diverged_runs(rows, preset.labels)
    rundir.write_atomic(out / "results.csv", report.csv_text(rows, (*preset.labels, *COLUMNS)).encode())
    seeds = len({r["seed"] for r in healthy}) if healthy else 0
    markdown = to_markdown(name, healthy, preset, seeds) + report.diverged_note(diverged)
    rundir.write_atomic(out / "results.md", markdown.encode())
    return [] if save_heatmaps(out / "results.png", name, healthy, preset) else [f"results.png ({report.MISSING})"]


def run_experiment(
    name: str, preset: Preset, out: Path, *, evaluate_runs: bool = True, progress: bool = True, print_fn=print
) -> list[dict]:
    """Train every setting x seed of `preset` in `out` (resuming), then evaluate them (unless
    `evaluate_runs` is False) and write the tables and the figure. Returns the result rows.

    Runs already evaluated as today are neither trained nor probed again (`sweep.sweep`).
    """
    t0 = time.perf_counter()
    print_fn(sweep.plan(study(preset), len(preset.settings), preset.seeds), file=sys.stderr)
    rows = sweep.sweep(
        study(preset),
        out,
        train_only=not evaluate_runs,
        progress=progress,
        say=lambda line: print_fn(line, file=sys.stderr),
    )
    runs = len(preset.settings) * preset.seeds
    print_fn(f"{runs} run(s) of {len(preset.settings)} setting(s) in {time.perf_counter() - t0:.0f} s")
    if not evaluate_runs:
        return []
    for skipped in write_results(out, name, rows, preset):
        print_fn(f"skipped {skipped}", file=sys.stderr)
    return rows
