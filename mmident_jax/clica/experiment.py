"""cl-ica's mismatch table and AnInfoNCE's runs as studies of the sweep engine, and their tables.

A `Preset` is a list of settings (config and labels) and seeds; `study` gives the sweep
engine every (setting, seed): settings that differ only in per-run numbers (κ, a
scale, τ, the learning rate) share one compiled program. Each run's row is its
evaluation (`evaluation.evaluate`); `write_results` writes results.csv, results.md
(rows = settings, the generative process and the model side by side, R² and MCC in
percent as cl-ica's tables, mean ± std over seeds) and results.png.

Example:
    >>> from mmident_jax import sweep
    >>> from mmident_jax.clica.config import IcaConfig, replace
    >>> from mmident_jax.clica.settings import Preset, setting
    >>> tiny = IcaConfig(encoder_widths=(16,), batch_size=32, train_steps=4, log_steps=2, cond_pool=100)
    >>> settings = (setting(replace(tiny, loss_p=1.0)), setting(tiny))
    >>> preset = Preset(settings, seeds=2, eval_batches=1, eval_batch_size=256)
    >>> rows = sweep.sweep(study(preset), progress=False)
    >>> [(r["model"], r["seed"]) for r in rows]
    [('unbounded, p=1', 0), ('unbounded, p=1', 1), ('unbounded, p=2', 0), ('unbounded, p=2', 1)]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from mmident_jax import presets, report, sweep
from mmident_jax.clica.config import hyper, program_key
from mmident_jax.clica.evaluation import evaluate
from mmident_jax.clica.model import experiment
from mmident_jax.clica.settings import LABELS, Preset, assumptions_met
from mmident_jax.report import count


def study(preset: Preset) -> sweep.Study:
    """Every (setting, seed) of `preset`; a run's row: R², MCC, their identity baseline (and Λ)."""
    runs = [sweep.Run(cfg, cfg.seed + i, labels) for cfg, labels in preset.settings for i in range(preset.seeds)]

    def evaluate_run(state, run: sweep.Run) -> list[dict]:
        row = evaluate(state, run.cfg, num_batches=preset.eval_batches, batch_size=preset.eval_batch_size)
        return [{"assumptions_met": assumptions_met(run.cfg), **row}]

    evaluation = {"eval_batches": preset.eval_batches, "eval_batch_size": preset.eval_batch_size}
    return sweep.Study(runs, experiment, lambda run: hyper(run.cfg), program_key, evaluate_run, evaluation)


# ------------------------------------------------------------------ tables and figure


def _percent(values: list[float]) -> str:
    return "–" if not values else f"{100 * np.mean(values):.1f}±{100 * np.std(values):.1f}"


def _lambda_cell(rows: list[dict]) -> str:
    learned = np.mean([r["lambda_learned"] for r in rows], axis=0)
    return " ".join(f"{x:.1f}" for x in learned)


def about(name: str, preset: Preset) -> str:
    """How the table was made, each fact marked where it differs from the registered preset `name`."""

    def facts(p: Preset) -> dict:
        cfgs = [c for c, _ in p.settings]
        one = lambda values: ", ".join(dict.fromkeys(f"{v:,}" if isinstance(v, int) else str(v) for v in values))
        return {
            "seeds": str(p.seeds),
            "steps": one(c.train_steps for c in cfgs),
            "batch": one(c.batch_size for c in cfgs),
            "n": one(c.n for c in cfgs),
            "evaluation": f"{count(p.eval_batches, 'batch')} of {p.eval_batch_size} fresh latents, in-sample fits",
        }

    registered = ("clica", name) in presets.REGISTRY
    return report.settings_line(facts(preset), facts(presets.get("clica", name)) if registered else {})


def to_markdown(name: str, rows: list[dict], preset: Preset) -> str:
    """results.md: one row per setting, generative process | model | M. | R² and MCC (identity, trained)."""
    aninfonce = any("lambda_learned" in r for r in rows)
    extra = preset.labels[len(LABELS) :]  # a grid's columns
    head = ["space", "p(z)", "p(z̃|z)", "model", *extra, "M.", "R² identity", "R²", "MCC identity", "MCC"]
    if aninfonce:
        head += ["learned Λ (latent order, mean over seeds)", "corr(Λ̂, Λ)"]
    body = []
    settings = report.by_setting(rows, preset.labels)
    for labels, rs in settings:
        line = [*(str(labels[k]) for k in preset.labels), "✓" if rs[0]["assumptions_met"] else "✗"]
        line += [_percent([r[k] for r in rs]) for k in ("r2_identity", "r2_linear", "mcc_identity", "mcc")]
        if aninfonce:
            learned = [r for r in rs if "lambda_learned" in r]
            corr = [r["lambda_corr"] for r in learned if not np.isnan(r["lambda_corr"])]
            line += [_lambda_cell(learned) if learned else "–", f"{np.mean(corr):.3f}" if corr else "–"]
        body.append(line)
    seeds = max((len(rs) for _, rs in settings), default=0)
    return "\n".join(
        [
            f"# {name}",
            "",
            about(name, preset),
            "",
            f"Linear R² and MCC in percent, mean ± std over {count(seeds, 'seed')}; "
            "identity: of the observations g(z).",
            "",
            *report.markdown_table(head, body),
            "",
        ]
    )


def save_figure(path: Path, name: str, rows: list[dict], labels=LABELS) -> bool:
    """Bars of R² and MCC per setting (and learned against true Λ for AnInfoNCE); False without matplotlib."""
    plt = report.pyplot()
    if plt is None:
        return False
    settings = report.by_setting(rows, labels)
    learned = [r for r in rows if "lambda_learned" in r]
    fig, axes = plt.subplots(1, 2 if learned else 1, figsize=(max(6, 0.9 * len(settings)) + (4 if learned else 0), 4.6))
    ax = axes[0] if learned else axes
    x = np.arange(len(settings))
    for j, (key, title) in enumerate((("r2_linear", "linear R²"), ("mcc", "MCC"))):
        values = [[r[key] for r in rs] for _, rs in settings]
        ax.bar(x + 0.4 * j, [np.mean(v) for v in values], 0.4, yerr=[np.std(v) for v in values], label=title)
    ticks = ["\n".join([f"{s[labels[0]]}, {s[labels[1]]}", *(str(s[k]) for k in labels[2:])]) for s, _ in settings]
    ax.set_xticks(x + 0.2, ticks, fontsize=6, rotation=60)
    ax.set_ylim(0, 1.05)
    ax.set_title(name)
    ax.legend(fontsize=8)
    if learned:
        for i, (labels, rs) in enumerate(settings):  # one colour per setting, every seed's points
            for r in (r for r in rs if "lambda_learned" in r):
                axes[1].scatter(r["lambda_true"], r["lambda_learned"], s=12, color=f"C{i}", label=labels["conditional"])
        top = max(max(r["lambda_true"] + r["lambda_learned"]) for r in learned)
        axes[1].plot([0, top], [0, top], "k:", lw=1)
        axes[1].set_xlabel("true Λ")
        axes[1].set_ylabel("learned Λ (matched code)")
        handles, names = axes[1].get_legend_handles_labels()
        unique = dict(zip(names, handles))
        axes[1].legend(unique.values(), unique.keys(), fontsize=7)
    report.save_figure(fig, path)
    return True


def write_results(out: Path, name: str, rows: list[dict], preset: Preset) -> list[str]:
    """results.csv (every run), results.md and results.png (healthy runs); returns what could not be written."""
    healthy = [r for r in rows if "diverged_at" not in r]
    report.write_text(out / "results.csv", report.csv_text(rows, (*preset.labels, "seed")))
    diverged = sweep.diverged_runs(rows, preset.labels)
    tail = "\nLeft out of the table, diverged: " + "; ".join(diverged) + ".\n" if diverged else ""
    report.write_text(out / "results.md", to_markdown(name, healthy, preset) + tail)
    return [] if save_figure(out / "results.png", name, healthy, preset.labels) else [f"results.png ({report.MISSING})"]


def run_experiment(
    name: str, preset: Preset, out: Path, *, evaluate_runs: bool = True, progress: bool = True
) -> list[dict]:
    """Train every run of `preset` in `out` (resuming), evaluate them and write the tables."""
    t0 = time.perf_counter()
    study_ = study(preset)
    print(sweep.plan(study_, len(preset.settings), preset.seeds), file=sys.stderr)
    rows = sweep.sweep(
        study_, out, train_only=not evaluate_runs, progress=progress, say=lambda line: print(line, file=sys.stderr)
    )
    print(f"{len(study_.runs)} runs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if evaluate_runs:
        for skipped in write_results(out, name, rows, preset):
            print(f"skipped {skipped}", file=sys.stderr)
    return rows
