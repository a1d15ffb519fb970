"""The `misalign` command: `train` and `sweep` over a preset's settings and seeds (loads no JAX until it runs).

    mmident-jax misalign train --out DIR --preset misalign-quick [--seeds N] [--train-steps S]
    mmident-jax misalign sweep --out DIR --preset misalign-quick [--seeds N] [--train-steps S] [--probes P]
    mmident-jax misalign sweep --out DIR --preset misalign-quick --grid encoding_size=0,10

`train` trains every setting x seed with the sweep engine (one program per setting, its
seeds together, checkpointed per chunk: a rerun resumes); `sweep` trains or resumes, then
probes both codes for every factor and writes results.csv, results.md and results.png
(`mmident_jax.misalign.experiment.run_experiment`); a diverged run is left out of the tables
and makes the command exit 1. `--grid` crosses every setting with values of config fields
(`mmident_jax.grid`; recorded in sweep.json, so a rerun resumes). `--probes linear,mlp` on a
finished sweep probes its trained runs again with those probes (the probes are not part of
the sweep's identity). Bad input raises a `ConfigError` (`MisalignError` for a bad config) or
`rundir.RunDirError` with a one-line message, before anything is written. Its presets are
registered here (the "misalign" entries of `presets.REGISTRY`).

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="mmident-jax")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["misalign", "sweep", "--out", "o", "--preset", "misalign-quick", "--seeds", "2"])
    >>> preset = preset_from_args(args)
    >>> preset.seeds, len(preset.settings), preset.settings[0][0].train_steps
    (2, 14, 5000)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmident_jax import flags, grid, presets
from mmident_jax.misalign import config as C
from mmident_jax.misalign.config import MisalignConfig, MisalignError, Preset

presets.register(
    "misalign",
    "misalign",
    Preset(C.sweep_settings(C.MISALIGN)),
    "Cai et al.'s numerical experiment, independent latents: the selection series I_theta = [10]..[1] and the "
    "perturbation series I_rho = [1]..[9], 3 seeds, 100,001 steps at batch 6144",
)
presets.register(
    "misalign-dependent",
    "misalign",
    Preset(C.sweep_settings(C.MISALIGN, latents=(True,))),
    "the same with Wishart-dependent latents",
)
presets.register(
    "misalign-quick",
    "misalign",
    Preset(
        C.sweep_settings(C.MISALIGN_QUICK, C.QUICK_SELECTION, C.QUICK_PERTURBATION, latents=(False, True)),
        eval_batches=1,
        probes=("linear",),
    ),
    "both latent models at CPU scale: I_theta = [10], [7], [4], [1] and I_rho = [3], [6], [9], 3 seeds, "
    "4096 validation and test samples, the linear probe (--probes linear,mlp adds the MLP)",
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `misalign train|sweep` to the `mmident-jax` subcommands (`subparsers` of `cli.build_parser`)."""
    probes = (
        "comma-separated subset of linear,mlp (default: the preset's); another choice evaluates the trained runs "
        "of --out again, without training"
    )
    return flags.add_sweep_commands(
        subparsers,
        "misalign",
        "Cai et al.'s misalignment experiment: the text sees some semantic factors, some perturbed",
        train="train every setting and seed of a preset (resumes from --out)",
        sweep="train (or resume) every setting and seed, probe both codes; results.csv/.md/.png",
        extra={"--probes": {"help": probes}},
    )


def preset_from_args(args: argparse.Namespace, values: dict | None = None) -> Preset:
    """The preset with the flags' overrides and grid (`values`, default: the flags'); `ConfigError`
    on bad input."""
    flags.positive(args, "seeds", "train_steps")
    probes = None
    if getattr(args, "probes", None) is not None:
        probes = tuple(dict.fromkeys(p for p in args.probes.split(",") if p))
        unknown = [p for p in probes if p not in C.PROBES]
        if unknown or not probes:
            raise MisalignError(
                f"--probes: unknown probe {unknown[0] if unknown else '(none)'!r}; choose from {','.join(C.PROBES)}"
            )
    values = grid.from_args(MisalignConfig, args) if values is None else values
    preset = presets.get("misalign", args.preset)
    return (preset.with_grid(values) if values else preset).with_overrides(
        seeds=args.seeds, train_steps=args.train_steps, probes=probes
    )


def run(args: argparse.Namespace) -> None:
    """Run `misalign train` or `misalign sweep`. Bad input raises (see the module doc)."""
    from mmident_jax.misalign.experiment import run_experiment, study

    values = grid.from_args(MisalignConfig, args)
    flags.run_sweep_command(args, "misalign", preset_from_args(args, values), values, study, run_experiment)


def report(out, identity: dict) -> list[str]:
    """Rewrite a finished misalignment sweep's tables and figure in `out` from its stored rows
    (evaluated with the probes its results record)."""
    import json

    from mmident_jax import sweep
    from mmident_jax.misalign.experiment import study, write_results

    evaluated = json.loads((Path(out) / "group0.json").read_text()).get("evaluation", {})
    args = argparse.Namespace(
        preset=identity["preset"], seeds=identity["seeds"], train_steps=identity.get("train_steps"), probes=None
    )
    preset = preset_from_args(args, grid.typed(MisalignConfig, identity.get("grid", {})))
    preset = preset.with_overrides(probes=evaluated.get("probes"))
    return write_results(Path(out), identity["preset"], sweep.stored_rows(Path(out), study(preset)), preset)
