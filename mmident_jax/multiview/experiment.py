"""The multi-view experiment as a study of the sweep engine: its seeds, evaluation and tables.

`study(preset)` gives the sweep engine (`sweep.sweep`) every seed of the preset's config,
or of every setting of its grid (one compiled program for the settings that differ only in
per-run numbers: their seeds are trained together, sharded over every device,
checkpointed per chunk in `groupN.ckpt`, a diverging seed marked while the others
finish). `run_experiment` runs it and writes results.csv, results.md, results.png
(heatmap) and loss.png; the command line (`mmident_jax.multiview.command`) runs it.

Example:
    >>> from mmident_jax import sweep
    >>> from mmident_jax.multiview.structure import MultiviewConfig, Preset, Views
    >>> cfg = MultiviewConfig(Views(3, ((0, 1), (1, 2), (2, 0))), encoder_widths=(16,), batch_size=32,
    ...                       train_steps=4, log_steps=2, cond_pool=1000)
    >>> rows = sweep.sweep(study(Preset(cfg, seeds=2, eval_batch_size=64, probes=("linear",))), progress=False)
    >>> len(rows), sorted({r["seed"] for r in rows}), rows[0]["subset"]
    (36, [0, 1], '0,1')
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from mmident_jax import presets, report, rundir, sweep
from mmident_jax.config import Hyper, hyper, replace
from mmident_jax.multiview import tables
from mmident_jax.multiview.evaluation import evaluate
from mmident_jax.multiview.model import experiment, loss_floor, loss_terms
from mmident_jax.multiview.structure import MultiviewConfig, Preset
from mmident_jax.report import count

CURVE = "group0.curve.json"


def program_key(cfg: MultiviewConfig) -> MultiviewConfig:
    """What fixes the compiled program: the config with its per-run numbers and seed blanked."""
    return replace(cfg, seed=0, **{name: getattr(MultiviewConfig(cfg.views), name) for name in Hyper._fields})


def study(preset: Preset) -> sweep.Study:
    """Seeds `cfg.seed`, `cfg.seed + 1`, ... of every setting; a run's rows: R² per group x view x latent."""
    runs = [sweep.Run(cfg, cfg.seed + i, labels) for cfg, labels in preset.settings for i in range(preset.seeds)]

    def evaluate_run(state, run: sweep.Run) -> list[dict]:
        return evaluate(
            state,
            run.cfg,
            protocol=preset.protocol,
            probes=preset.probes,
            num_batches=preset.eval_batches,
            batch_size=preset.eval_batch_size,
        )

    evaluation = {
        "protocol": preset.protocol,
        "probes": list(preset.probes),
        "eval_batches": preset.eval_batches,
        "eval_batch_size": preset.eval_batch_size,
    }
    return sweep.Study(runs, experiment, lambda run: hyper(run.cfg), program_key, evaluate_run, evaluation)


def loss_curve(out: Path, cfg: MultiviewConfig) -> dict:
    """The training curve for `tables.save_loss_curves`: seeds, groups, per chunk each seed's losses per group."""
    stored = sweep.read_curve(out / CURVE)
    return {
        "seeds": [r["seed"] for r in stored["runs"]],
        "groups": [list(g.views) for g in cfg.views.plan],
        "points": stored["points"],
    }


def nonlinear_probe(preset: Preset) -> str:
    """The name of the probe behind r2_nonlinear."""
    return "MLP" if "mlp" in preset.probes else "kernel ridge"


def about(name: str, preset: Preset) -> str:
    """How a results table was made: seeds, steps, batch, objective, selection, evaluation protocol,
    sizes and probes, each marked where it differs from the registered preset `name`."""

    def facts(p: Preset) -> dict:
        how = (
            f"{count(p.eval_batches, 'batch')} of {p.eval_batch_size}, each split 75/25"
            if p.protocol == "yao"
            else f"{p.eval_batches * p.eval_batch_size} validation and as many test samples"
        )
        return {
            "seeds": str(p.seeds),
            "steps": f"{p.cfg.train_steps:,}",
            "batch": str(p.cfg.batch_size),
            "objective": p.cfg.objective,
            "selection": p.cfg.views.selection,
            "evaluation": f"{p.protocol} ({how})",
            "probes": ", ".join(p.probes),
        }

    registered = ("multiview", name) in presets.REGISTRY
    return report.settings_line(facts(preset), facts(presets.get("multiview", name)) if registered else {})


def write_results(out: Path, name: str, rows: list[dict], preset: Preset) -> list[str]:
    """results.csv (every seed), results.md, results.png (healthy seeds) and loss.png in `out`;
    returns what could not be written. Diverged seeds are listed under the tables. With a grid:
    a summary row per setting and subset (`tables.grid_markdown`), its heatmap, no loss.png."""
    cfg, healthy = preset.cfg, [r for r in rows if "diverged_at" not in r]
    diverged = sweep.diverged_runs(rows, preset.labels)
    rundir.write_atomic(out / "results.csv", tables.to_csv(rows, preset.labels).encode())
    seeds, nonlinear = len({r["seed"] for r in healthy}), nonlinear_probe(preset)
    if preset.labels:
        markdown = tables.grid_markdown(
            name, healthy, preset.labels, seeds, nonlinear=nonlinear, about=about(name, preset)
        )
        drawn = tables.save_grid_heatmap(out / "results.png", name, healthy, preset.labels)
    else:
        markdown = tables.to_markdown(name, healthy, seeds, nonlinear=nonlinear, about=about(name, preset))
        drawn = tables.save_heatmap(out / "results.png", name, healthy)
    rundir.write_atomic(out / "results.md", (markdown + report.diverged_note(diverged)).encode())
    skipped = [] if drawn else [f"results.png ({report.MISSING})"]
    if not preset.labels and not tables.save_loss_curves(
        out / "loss.png", name, loss_curve(out, cfg), (loss_floor(cfg), loss_terms(cfg))
    ):
        skipped.append(f"loss.png ({report.MISSING})")
    return skipped


def run_experiment(
    name: str, preset: Preset, out: Path, *, evaluate_runs: bool = True, progress: bool = True, print_fn=print
) -> list[dict]:
    """Train every seed of `preset` in `out` (resuming), then evaluate them (unless
    `evaluate_runs` is False) and write the tables and figures. Returns the result rows.

    Seeds already evaluated as today are neither trained nor probed again (`sweep.sweep`).
    """
    t0, study_ = time.perf_counter(), study(preset)
    if preset.labels:
        print_fn(sweep.plan(study_, len(preset.settings), preset.seeds), file=sys.stderr)
    rows = sweep.sweep(
        study_,
        out,
        train_only=not evaluate_runs,
        progress=progress,
        say=lambda line: print_fn(line, file=sys.stderr),
    )
    if preset.labels:  # a grid: its settings' curves are in their groups' files
        print_fn(f"{len(study_.runs)} runs in {time.perf_counter() - t0:.0f} s")
    else:
        curve = loss_curve(out, preset.cfg)
        final = np.nanmean(curve["points"][-1][1], axis=0)
        print_fn(
            f"{len(curve['seeds'])} seed(s) at step {curve['points'][-1][0]} in {time.perf_counter() - t0:.0f} s; "
            "final loss per group (mean over seeds): "
            + ", ".join(f"{{{','.join(map(str, g))}}} {x:.3f}" for g, x in zip(curve["groups"], final))
        )
        if not evaluate_runs:
            tables.save_loss_curves(out / "loss.png", name, curve, (loss_floor(preset.cfg), loss_terms(preset.cfg)))
    if not evaluate_runs:
        return []
    for skipped in write_results(out, name, rows, preset):
        print_fn(f"skipped {skipped}", file=sys.stderr)
    return rows
