"""The `imgtxt` command: train, evaluate, sweep over encoding sizes, export (loads no JAX until it runs).

    mmident-jax imgtxt train --run-dir DIR [--preset imgtxt-quick] [--encoding-size K ...]
    mmident-jax imgtxt evaluate --run-dir DIR
    mmident-jax imgtxt sweep --out DIR --preset imgtxt-quick [--seeds N] [--train-steps S] [--grid lr=1e-3,3e-3]
    mmident-jax imgtxt export --out DIR [--n N]

Its presets are registered here (`presets.register`), beside the command.

Example:
    >>> from mmident_jax import flags
    >>> parser = flags.Parser(prog="mmident-jax")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["imgtxt", "sweep", "--out", "o", "--preset", "imgtxt-quick"]).preset
    'imgtxt-quick'
"""

from __future__ import annotations

import argparse
import sys

from mmident_jax import grid, presets
from mmident_jax.config import ConfigError
from mmident_jax.flags import add_grid, add_preset, add_train_command, positive, run_config
from mmident_jax.imgtxt import config
from mmident_jax.imgtxt.config import ImgTxtConfig

presets.register("imgtxt", "imgtxt train", config.PAPER, "image/text at the paper's scale (ResNet-18)")
presets.register("imgtxt-quick", "imgtxt train", config.QUICK, "image/text with a small CNN on 32x32 images")
presets.register(
    "imgtxt",
    "imgtxt sweep",
    config.ImgTxtSweep(config.PAPER, (1, 2, 3, 4, 6, 8, 10, 12), 3),
    "image/text encoding sizes 1..12 x 3 seeds, paper scale",
)
presets.register(
    "imgtxt-quick",
    "imgtxt sweep",
    config.ImgTxtSweep(config.QUICK, (4, 8), 1),
    "image/text encoding sizes 4 and 8, quick scale",
)

FLAGS = (
    "encoding_size",
    "image_size",
    "image_encoder",
    "position_dependent_color",
    "temperature",
    "seed",
    "batch_size",
    "lr",
    "train_steps",
    "log_steps",
    "eval_size",
)  # ImgTxtConfig fields exposed as flags


def add_parser(commands) -> argparse.ArgumentParser:
    """Add `imgtxt train|evaluate|sweep|export` to the `mmident-jax` subcommands."""
    imgtxt = commands.add_parser("imgtxt", help="the image/text experiment on generated scenes")
    sub = imgtxt.add_subparsers(dest="imgtxt_command", required=True)
    add_train_command(
        sub, "train one image/text run (resumes from the run directory)", "imgtxt train", FLAGS, ImgTxtConfig
    )
    evaluate = sub.add_parser("evaluate", help="probe a trained run's codes; writes results.csv")
    evaluate.add_argument("--run-dir", required=True, help="a trained image/text run directory")
    sweep = sub.add_parser("sweep", help="every encoding size x seed of a preset; results and figures")
    sweep.add_argument("--out", required=True, help="directory for checkpoints and results")
    add_preset(sweep, "imgtxt sweep", True)
    sweep.add_argument("--no-progress", action="store_true", help="no progress bars")
    sweep.add_argument("--seeds", type=int, help="seeds per encoding size (default: the preset's)")
    sweep.add_argument("--train-steps", type=int, help="override the training steps")
    add_grid(sweep)
    export = sub.add_parser("export", help="write generated pairs in the Multimodal3DIdent folder layout")
    export.add_argument("--out", required=True, help="a new directory")
    export.add_argument("--n", type=int, default=1000, help="pairs (default 1000)")
    export.add_argument("--image-size", type=int, default=64, help="image side in pixels (default 64)")
    export.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    export.add_argument(
        "--position-dependent-color", action="store_true", help="hue drawn from the third of [0, 1] of the x-position"
    )
    return imgtxt


def run(args: argparse.Namespace) -> None:
    """Run `mmident-jax imgtxt COMMAND`. Bad input raises a one-line error (`ConfigError`, `RunDirError`)."""
    from pathlib import Path

    from mmident_jax import rundir, sweep
    from mmident_jax.imgtxt import experiment

    if args.imgtxt_command == "train":
        cfg = run_config(args, FLAGS, "imgtxt train", ImgTxtConfig)
        state = experiment.fit(cfg, args.run_dir, progress=not args.no_progress)
        print(f"{args.run_dir}: trained to step {int(state.step)}")
    elif args.imgtxt_command == "evaluate":
        rows = experiment.evaluate_run(args.run_dir)
        print(experiment.to_markdown(str(args.run_dir), rows, 1))
    elif args.imgtxt_command == "sweep":
        positive(args, "seeds", "train_steps")
        values = grid.from_args(ImgTxtConfig, args)
        preset = sweep_preset(args.preset, values)
        out, seeds = Path(args.out), args.seeds or preset.seeds
        study = experiment.study(preset, seeds, args.train_steps)
        recorded = {"grid": values} if values else {}  # the report rebuilds the settings from it
        rundir.prepare_out(
            out,
            sweep.identity(args.preset, study, seeds, experiment="imgtxt", train_steps=args.train_steps, **recorded),
        )
        rows = sweep.sweep(study, out, progress=not args.no_progress, say=lambda line: print(line, file=sys.stderr))
        for skipped in experiment.write_results(out, args.preset, rows, preset, seeds, args.train_steps):
            print(f"skipped {skipped}", file=sys.stderr)
        print((out / "results.md").read_text())
    else:
        import jax

        from mmident_jax.imgtxt import dataset, scenes

        if args.n < 1 or args.image_size < 16:
            raise ConfigError(f"--n must be >= 1 and --image-size >= 16, got {args.n} and {args.image_size}")
        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise rundir.RunDirError(f"--out {out} exists and is not an empty directory")
        factors = scenes.sample_factors(jax.random.PRNGKey(args.seed), args.n, args.position_dependent_color)
        dataset.export(out, factors, size=args.image_size)
        print(f"{out}: {args.n} pairs")


def sweep_preset(name: str, values: dict) -> config.ImgTxtSweep:
    """The sweep preset `name` crossed with the typed grid `values` (none: as registered)."""
    preset = presets.get("imgtxt sweep", name)
    return preset.with_grid(values) if values else preset


def report(out, identity: dict) -> list[str]:
    """Rewrite a finished image/text sweep's tables and figures in `out` from its stored rows."""
    from mmident_jax import sweep
    from mmident_jax.imgtxt import experiment

    preset = sweep_preset(identity["preset"], grid.typed(ImgTxtConfig, identity.get("grid", {})))
    study = experiment.study(preset, identity["seeds"], identity.get("train_steps"))
    rows = sweep.stored_rows(out, study)
    return experiment.write_results(
        out, identity["preset"], rows, preset, identity["seeds"], identity.get("train_steps")
    )
