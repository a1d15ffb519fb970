"""The `multiview` command: `train` and `sweep` over a preset's seeds (loads no JAX until it runs).

    mmident-jax multiview train --out DIR --preset multiview-quick [--seeds N] [--train-steps S]
    mmident-jax multiview sweep --out DIR --preset multiview-quick [--seeds N] [--train-steps S]
    mmident-jax multiview sweep --out DIR --preset multiview-quick --grid lr=1e-3,3e-3 --grid batch_size=128,256

`train` trains every seed with the sweep engine (one program, sharded over every
device, checkpointed per chunk: a rerun resumes); `sweep` trains or resumes, then
probes every subset and view and writes results.csv, results.md, results.png and
loss.png (`experiment.run_experiment`); a diverged seed is left out of the tables and
makes the command exit 1. `--grid` crosses the preset's config with values of its fields
(`mmident_jax.grid`; settings that differ only in per-run numbers share a program; recorded
in sweep.json): the tables then have a summary row per setting and subset. Bad input
raises a `ConfigError` (`MultiviewError` for a bad config) or `rundir.RunDirError` with a one-line message,
before anything is written; `mmident-jax`'s `main` turns them into exit status 2. Its presets are
registered here (the "multiview" entries of `presets.REGISTRY`).

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="mmident-jax")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["multiview", "sweep", "--out", "o", "--preset", "multiview-quick", "--seeds", "2"])
    >>> preset = preset_from_args(args)
    >>> preset.seeds, preset.cfg.train_steps
    (2, 5000)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmident_jax import flags, grid, presets
from mmident_jax.multiview import structure
from mmident_jax.multiview.structure import MultiviewConfig, Preset

presets.register(
    "multiview",
    "multiview",
    Preset(structure.MULTIVIEW, protocol="yao", **structure.YAO_EVALUATION),
    "Yao et al.'s numerical experiment: 6 latents, 4 views, every subset of >= 2 views, their "
    "joint loss and evaluation, 100,000 steps",
)
presets.register(
    "multiview-dependent",
    "multiview",
    Preset(structure.MULTIVIEW_DEPENDENT, protocol="yao", **structure.YAO_EVALUATION),
    "the same with Wishart-dependent latents",
)
presets.register(
    "multiview-quick",
    "multiview",
    Preset(structure.MULTIVIEW_QUICK, eval_batch_size=1024),
    "Yao et al.'s structure at quick scale, pairwise InfoNCE, held-out evaluation: 3 seeds in minutes on a CPU",
)
presets.register(
    "multiview-yao-quick",
    "multiview",
    Preset(structure.MULTIVIEW_YAO_QUICK, protocol="yao", **structure.YAO_EVALUATION),
    "the same scale with Yao et al.'s joint loss and evaluation protocol",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `multiview train|sweep` to the `mmident-jax` subcommands (`subparsers` of `cli.build_parser`)."""
    protocol = {
        "choices": ("yao", "heldout"),
        "help": "evaluation: yao = Yao et al.'s (10 batches of 4096, each split 75/25, linear and MLP probes); "
        "heldout = separate validation and test sets, linear and kernel probes (default: the preset's)",
    }
    return flags.add_sweep_commands(
        subparsers,
        "multiview",
        "Yao et al.'s multi-view experiment: K views of partly shared latents",
        train="train every seed of a preset (resumes from --out)",
        sweep="train (or resume) every seed, probe every subset and view; results.csv/.md/.png, loss.png",
        extra={"--protocol": protocol},
    )


def preset_from_args(args: argparse.Namespace, values: dict | None = None) -> Preset:
    """The preset with the flags' overrides and grid (`values`, default: the flags'); `ConfigError`
    on bad input."""
    flags.positive(args, "seeds", "train_steps")
    values = grid.from_args(MultiviewConfig, args) if values is None else values
    preset = presets.get("multiview", args.preset)
    return (preset.with_grid(values) if values else preset).with_overrides(
        seeds=args.seeds, train_steps=args.train_steps, protocol=getattr(args, "protocol", None)
    )


def run(args: argparse.Namespace) -> None:
    """Run `multiview train` or `multiview sweep`. Bad input raises (see the module doc)."""
    from mmident_jax.multiview.experiment import run_experiment, study

    values = grid.from_args(MultiviewConfig, args)
    flags.run_sweep_command(args, "multiview", preset_from_args(args, values), values, study, run_experiment)


def report(out, identity: dict) -> list[str]:
    """Rewrite a finished multi-view sweep's tables and figures in `out` from its stored rows."""
    import json

    from mmident_jax import sweep
    from mmident_jax.multiview.experiment import study, write_results

    evaluated = json.loads((Path(out) / "group0.json").read_text()).get("evaluation", {})
    args = argparse.Namespace(
        preset=identity["preset"],
        seeds=identity["seeds"],
        train_steps=identity.get("train_steps"),
        protocol=evaluated.get("protocol"),
    )
    preset = preset_from_args(args, grid.typed(MultiviewConfig, identity.get("grid", {})))
    return write_results(out, identity["preset"], sweep.stored_rows(out, study(preset)), preset)
