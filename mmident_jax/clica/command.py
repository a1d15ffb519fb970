"""The `clica` command: `train` and `sweep` over a preset's settings and seeds (loads no JAX until it runs).

    mmident-jax clica sweep --out DIR --preset clica-quick [--seeds N] [--train-steps S]
    mmident-jax clica sweep --out DIR --preset aninfonce-quick --grid lr=1e-3,3e-3

`train` trains every run with the sweep engine (settings that differ only in per-run
numbers share one program; all runs sharded over every device, checkpointed per chunk:
a rerun resumes); `sweep` trains or resumes, then evaluates every run and writes
results.csv, results.md and results.png (`experiment.run_experiment`); a diverged run
is left out of the table and makes the command exit 1. Bad input raises a `ConfigError`
(`IcaError` for a bad config) or `rundir.RunDirError` with a one-line message, before anything is
written. The presets are registered here (the "clica" entries of `presets.REGISTRY`).

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="mmident-jax")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> preset = preset_from_args(parser.parse_args(["clica", "sweep", "--out", "o", "--preset", "clica-quick"]))
    >>> len(preset.settings), preset.seeds
    (10, 3)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmident_jax import flags, grid, presets
from mmident_jax.clica import settings
from mmident_jax.clica.config import ANINFONCE, ANINFONCE_QUICK, CLICA, CLICA_QUICK, IcaConfig
from mmident_jax.clica.settings import Preset

presets.register(
    "clica",
    "clica",
    Preset(settings.cl_ica_settings(CLICA)),
    "cl-ica's numerical tables (Zimmermann et al. 2021): 17 spaces, conditionals and models, 300,003 steps each",
)
presets.register(
    "clica-quick",
    "clica",
    Preset(settings.quick_settings(CLICA_QUICK), eval_batches=5, eval_batch_size=4096),
    "ten of those rows at CPU scale: 3 seeds in minutes",
)
presets.register(
    "aninfonce",
    "clica",
    Preset(settings.aninfonce_settings(ANINFONCE), eval_batch_size=1000),
    "Rusak et al. 2024: bimodal and linearly spaced anisotropic conditionals, AnInfoNCE beside InfoNCE",
)
presets.register(
    "aninfonce-quick",
    "clica",
    Preset(settings.aninfonce_settings(ANINFONCE_QUICK), eval_batches=5, eval_batch_size=4096),
    "the same at CPU scale",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `clica train|sweep` to the `mmident-jax` subcommands (`subparsers` of `cli.build_parser`)."""
    return flags.add_sweep_commands(
        subparsers,
        "clica",
        "cl-ica's and AnInfoNCE's experiments: one mixer, latent spaces, Lp and anisotropic InfoNCE",
        train="train every run of a preset (resumes from --out)",
        sweep="train (or resume) every run, evaluate R² and MCC; results.csv/.md/.png",
    )


def preset_from_args(args: argparse.Namespace, values: dict | None = None) -> Preset:
    """The preset with the flags' overrides and grid (`values`, default: the flags'); `ConfigError` on bad input."""
    flags.positive(args, "seeds", "train_steps")
    values = grid.from_args(IcaConfig, args) if values is None else values
    preset = presets.get("clica", args.preset)
    return (preset.with_grid(values) if values else preset).with_overrides(
        seeds=args.seeds, train_steps=args.train_steps
    )


def run(args: argparse.Namespace) -> None:
    """Run `clica train` or `clica sweep`. Bad input raises (see the module doc)."""
    from mmident_jax.clica.experiment import run_experiment, study

    values = grid.from_args(IcaConfig, args)
    flags.run_sweep_command(args, "clica", preset_from_args(args, values), values, study, run_experiment)


def report(out, identity: dict) -> list[str]:
    """Rewrite a finished cl-ica / AnInfoNCE sweep's tables and figure in `out` from its stored rows."""
    from mmident_jax import sweep
    from mmident_jax.clica.experiment import study, write_results

    args = argparse.Namespace(
        preset=identity["preset"], seeds=identity["seeds"], train_steps=identity.get("train_steps")
    )
    preset = preset_from_args(args, grid.typed(IcaConfig, identity.get("grid", {})))
    return write_results(Path(out), identity["preset"], sweep.stored_rows(Path(out), study(preset)), preset)
