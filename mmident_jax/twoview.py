"""The two-view experiment's sweeps: a `SweepPreset` as a study of the sweep engine, and its results.

Settings that differ only in per-run numbers (`Hyper`: p_chg, lr, ...) share one
compiled program (`program_key`); settings that change shapes or structure
(statistical or causal dependence, the mechanism) are looped by the engine.

Example:
    >>> from mmident_jax.config import Config
    >>> from mmident_jax.presets import SweepPreset, table_settings
    >>> base = Config(encoder_widths=(16,), batch_size=32, train_steps=4, cond_pool=1000)
    >>> preset = SweepPreset(table_settings(base, ("multimodal",))[:2], seeds=2,
    ...                      probes=("linear",), eval_batch_size=256)
    >>> rows = sweep.sweep(study(preset), progress=False)
    >>> len(rows), sorted(rows[0])[:4]
    (40, ['causal', 'encoding', 'mechanism', 'p_chg'])
"""

from __future__ import annotations

from pathlib import Path

from mmident_jax import ablations, presets, report, sweep, train
from mmident_jax.config import Config, Hyper, hyper, replace
from mmident_jax.evaluation import COLUMNS as PROBE_COLUMNS
from mmident_jax.evaluation import evaluate, validation_loss
from mmident_jax.presets import SweepPreset


def program_key(cfg: Config) -> Config:
    """What fixes the compiled program: the config with its per-run numbers and seed blanked."""
    return replace(cfg, seed=0, **{name: getattr(Config(), name) for name in Hyper._fields})


def evaluation_settings(preset: SweepPreset) -> dict:
    """What a sweep's evaluation depends on beyond the trained states."""
    return {
        "probes": list(preset.probes),
        "num_eval_batches": preset.num_eval_batches,
        "eval_batch_size": preset.eval_batch_size,
        "nonlinear_probe": preset.nonlinear_probe,
        "metrics": list(preset.metrics),
        "permuted_content": preset.permuted_content,
    }


def study(preset: SweepPreset) -> sweep.Study:
    """Every (setting, seed) of `preset` for the sweep engine; a run's rows: validation loss and probe scores."""

    def evaluate_run(state, run: sweep.Run) -> list[dict]:
        table = evaluate(
            state,
            run.cfg,
            probes=preset.probes,
            num_batches=preset.num_eval_batches,
            batch_size=preset.eval_batch_size,
            permuted_content=preset.permuted_content,
            nonlinear_probe=preset.nonlinear_probe,
            metrics=preset.metrics,
        )
        val_loss = validation_loss(state, run.cfg)
        return [{"val_loss": val_loss, **row} for row in table]

    runs = [sweep.Run(s.cfg, seed, s.label) for s in preset.settings for seed in range(preset.seeds)]
    return sweep.Study(
        runs, train.experiment, lambda run: hyper(run.cfg), program_key, evaluate_run, evaluation_settings(preset)
    )


REPORTS = {
    "tables": report.write_tables,
    "encoding-size": ablations.write_encoding_size,
    "dims": ablations.write_dims,
    "discrete": ablations.write_discrete,
    "grid": report.write_grid,  # any grid of settings (`grid`): takes the preset's labels too
}


def about(name: str, preset: SweepPreset) -> str:
    """How a sweep's tables were made: seeds, steps, batch, precision, evaluation, and each of
    these that differs from the registered preset `name`."""

    def facts(p: SweepPreset) -> dict:
        cfgs = [s.cfg for s in p.settings]
        one = lambda values: ", ".join(dict.fromkeys(f"{v:,}" if isinstance(v, int) else str(v) for v in values))
        return {
            "seeds": str(p.seeds),
            "steps": one(c.train_steps for c in cfgs),
            "batch": one(c.batch_size for c in cfgs),
            "precision": one(c.precision for c in cfgs),
            "evaluation": f"{p.num_eval_batches} × {p.eval_batch_size} samples",
            "probes": ", ".join(p.nonlinear_probe if x == "kernel" else x for x in p.probes),
        }

    registered = ("sweep", name) in presets.REGISTRY
    return report.settings_line(facts(preset), facts(presets.sweep_preset(name)) if registered else {})


def write_results(out: Path, name: str, rows: list[dict], preset: SweepPreset) -> list[str]:
    """results.csv (every run), results.md and the figure (healthy runs) in `out`; returns what
    could not be written. results.md says under its title how it was made (`about`); diverged
    runs are listed under the tables."""
    report.write_text(out / "results.csv", report.csv_text(rows, (*preset.labels, "seed", *PROBE_COLUMNS)))
    labels = (preset.labels,) if preset.report == "grid" else ()
    skipped = REPORTS[preset.report](out, name, [r for r in rows if "diverged_at" not in r], preset.seeds, *labels)
    title, rest = (out / "results.md").read_text().split("\n", 1)
    diverged = sweep.diverged_runs(rows, preset.labels)
    report.write_text(out / "results.md", f"{title}\n\n{about(name, preset)}\n{rest}{report.diverged_note(diverged)}")
    return skipped
