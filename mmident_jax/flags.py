"""What every command of `mmident-jax` shares: one-line errors, presets and config fields as flags.

Presets, their help and their choices come from `presets.REGISTRY`; a config field's
flag takes its type and its help from the dataclass field (`config.setting`), as does
docs/settings.md (`settings_page`). Nothing here loads JAX until a command runs.

Example:
    >>> from mmident_jax.config import Config
    >>> parser = Parser(prog="demo")
    >>> add_config_flags(parser, ("lr",), "train", Config)
    >>> parser.parse_args(["--lr", "0.5"]).lr
    0.5
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mmident_jax import presets
from mmident_jax.config import ConfigError, help_of, replace


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block) with exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _flag_type(field: dataclasses.Field):
    return {"int": int, "float": float, "str": str, "tuple[int, ...]": _widths}[field.type]


def _preset_defaults(name: str, command: str) -> str:
    show = lambda v: ",".join(map(str, v)) if isinstance(v, tuple) else v
    return ", ".join(f"{p}: {show(getattr(presets.get(command, p), name))}" for p in presets.names(command))


def add_preset(
    parser: argparse.ArgumentParser, command: str, required: bool, default_help: str = "", also: tuple[str, ...] = ()
) -> None:
    """--preset with the registry's choices for `command` (and for the commands `also`, which
    `default_help` then explains), each of `command`'s listed with its one line."""
    about = "; ".join(f"{name}: {presets.REGISTRY[command, name].about}" for name in presets.names(command))
    choices = list(dict.fromkeys(name for c in (command, *also) for name in presets.names(c)))
    parser.add_argument("--preset", required=required, choices=choices, metavar="NAME", help=f"{about}{default_help}")


def add_grid(parser: argparse.ArgumentParser) -> None:
    """--grid and --grid-file (`grid.from_args` reads them): config fields crossed with every setting."""
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="sweep a config field over these values (repeatable: every combination; a tuple value has ':' "
        "between its numbers, e.g. encoder_widths=64:64,128:128:128), crossed with every setting of the preset",
    )
    parser.add_argument(
        "--grid-file", metavar="FILE", help="a sweep file (.toml or .json) mapping config fields to lists of values"
    )


def add_sweep_commands(subparsers, command: str, about: str, train: str, sweep: str, extra: dict | None = None):
    """`mmident-jax COMMAND train|sweep` (helps `train`, `sweep`) with the flags every experiment's sweep
    takes: --out, --preset (the registry's `command` presets), --seeds, --train-steps, --grid,
    --grid-file, the flags of `extra` ({flag: `add_argument`'s keywords}), --no-progress. Returns
    COMMAND's parser."""
    parser = subparsers.add_parser(command, help=about)
    sub = parser.add_subparsers(dest=f"{command}_command", required=True)
    for name, text in (("train", train), ("sweep", sweep)):
        p = sub.add_parser(name, help=text)
        p.add_argument("--out", required=True, help="directory for the checkpoints, curves and results")
        add_preset(p, command, True)
        p.add_argument("--seeds", type=int, help="seeds 0..N-1 of every setting (default: the preset's)")
        p.add_argument("--train-steps", type=int, help="override every setting's training steps")
        add_grid(p)
        for flag_name, options in (extra or {}).items():
            p.add_argument(flag_name, **options)
        p.add_argument("--no-progress", action="store_true", help="no progress display")
    return parser


def run_sweep_command(args, experiment: str, preset, values: dict, study, run_experiment) -> None:
    """Run `mmident-jax EXPERIMENT train|sweep` of `preset` (with its grid `values`) in --out:
    sweep.json first (`rundir.prepare_out`: another sweep's --out is refused before anything is
    written), then `run_experiment`; prints the table. A diverged run (left out of the tables)
    raises `TrainingDiverged`, exit status 1."""
    from mmident_jax import rundir
    from mmident_jax import sweep as engine
    from mmident_jax.core import TrainingDiverged

    out = Path(args.out)
    recorded = {"grid": values} if values else {}  # the report rebuilds the settings from it
    identity = engine.identity(
        args.preset, study(preset), preset.seeds, experiment=experiment, train_steps=args.train_steps, **recorded
    )
    rundir.prepare_out(out, identity)
    evaluate = getattr(args, f"{experiment}_command") == "sweep"
    rows = run_experiment(args.preset, preset, out, evaluate_runs=evaluate, progress=not args.no_progress)
    if rows:
        print((out / "results.md").read_text())
    diverged = engine.diverged_runs(rows, preset.labels)
    if diverged:
        raise TrainingDiverged(
            f"{len(diverged)} run(s) diverged and were left out of the tables: " + "; ".join(diverged)
        )


def flag(name: str) -> str:
    """The command-line flag of config field `name`: `--content-n`."""
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, flags, command: str, kind: type) -> None:
    """One flag per config field named in `flags`, with the field's help and every preset's default."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    for name in flags:
        help_text = f"{help_of(kind, name)} (default {_preset_defaults(name, command)})"
        if fields[name].type == "bool":
            parser.add_argument(flag(name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag(name), type=_flag_type(fields[name]), default=None, help=help_text)


def add_train_command(commands, help_text: str, command: str, flags, kind: type) -> argparse.ArgumentParser:
    """A `train` sub-command: `--run-dir`, `--preset` of `command` (required for a new run;
    resuming takes the stored config), one flag per config field in `flags`, `--no-progress`."""
    train = commands.add_parser("train", help=help_text)
    train.add_argument("--run-dir", required=True, help="directory for config, checkpoint and metrics")
    add_preset(train, command, False, " (required for a new run directory; resuming takes its stored config)")
    add_config_flags(train, flags, command, kind)
    train.add_argument("--no-progress", action="store_true", help="no progress display")
    return train


def run_config(args: argparse.Namespace, flags, command: str, kind: type):
    """A run's config: `--preset` (or, resuming, the stored config), then the flags. A new run
    without `--preset` is refused (`ConfigError`) with the presets: none is silently days long."""
    from mmident_jax import rundir

    if args.preset is not None:
        base = presets.get(command, args.preset)
    elif (Path(args.run_dir) / rundir.CONFIG).is_file():
        base = rundir.load_config(args.run_dir, kind)
    else:
        choices = "; ".join(f"{name} ({presets.REGISTRY[command, name].about})" for name in presets.names(command))
        raise ConfigError(f"{args.run_dir} holds no run: a new run needs --preset, one of {choices}")
    overrides = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    return replace(base, **overrides)


def positive(args, *names: str) -> None:
    """Refuse (`ConfigError`) any of the flags `names` given below 1."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
