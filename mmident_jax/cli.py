"""The `mmident-jax` command: `train`, `evaluate`, `sweep`, `report`, `score`, `multiview`, `clica`,
`misalign` and `imgtxt`.

Bad input exits with status 2 and one line naming the problem; nothing existing is
overwritten. Flags mirror the original PyTorch script (`--content-n`, `--lr`, ...).
Presets, their help and their choices come from `presets.REGISTRY`. The parser loads
no JAX, so `--help` and argument errors answer at once; each command imports what it
needs when it runs.
"""

from __future__ import annotations

import sys

from mmident_jax import grid, presets, score
from mmident_jax.clica import command as clica
from mmident_jax.config import EVAL_BATCH_SIZE, IDENTIFIABILITY_METRICS, NONLINEAR_PROBES, PROBES, Config, ConfigError
from mmident_jax.flags import Parser, add_grid, add_preset, add_train_command, positive, run_config
from mmident_jax.imgtxt import command as imgtxt
from mmident_jax.misalign import command as misalign
from mmident_jax.multiview import command as multiview

# Config fields exposed as flags (help: each field's, `config.help_of`). Booleans get --x / --no-x.
TRAIN_FLAGS = (
    "content_n",
    "style_n",
    "modality_n",
    "encoding_size",
    "style_change_prob",
    "statistical_dependence",
    "content_dependent_style",
    "c_param",
    "m_param",
    "wishart",
    "discrete_block",
    "categories",
    "n_mixing_layer",
    "mixing_init",
    "cond_pool",
    "cond_thresh_ratio",
    "shared_mixing",
    "encoder_widths",
    "shared_encoder",
    "precision",
    "encoder_init",
    "loss",
    "similarity",
    "temperature",
    "seed",
    "batch_size",
    "lr",
    "lr_schedule",
    "warmup_steps",
    "grad_clip",
    "train_steps",
    "log_steps",
)


def _add_metrics(parser) -> None:
    parser.add_argument(
        "--metrics",
        default="",
        help=f"identifiability metrics to add, comma-separated subset of "
        f"{','.join(IDENTIFIABILITY_METRICS)} (docs/metrics.md; default none)",
    )


def _metrics(args) -> tuple[str, ...]:
    metrics = tuple(m for m in args.metrics.split(",") if m)
    unknown = [m for m in metrics if m not in IDENTIFIABILITY_METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; choose from {','.join(IDENTIFIABILITY_METRICS)}")
    return metrics


def build_parser() -> Parser:
    parser = Parser(prog="mmident-jax", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    add_train_command(commands, "train one run (resumes from the run directory)", "train", TRAIN_FLAGS, Config)

    evaluate = commands.add_parser("evaluate", help="probe a trained run's codes; writes results.csv")
    evaluate.add_argument("--run-dir", required=True, help="a trained run directory")
    evaluate.add_argument(
        "--probes",
        default="linear,kernel",
        help=f"comma-separated subset of {','.join(PROBES)} (default linear,kernel)",
    )
    evaluate.add_argument(
        "--num-eval-batches",
        type=int,
        default=5,
        help="batches of 4096 samples for validation and for test (default 5)",
    )
    evaluate.add_argument(
        "--permuted-content", action="store_true", help="intervention: permute content across the batch, report c' too"
    )
    evaluate.add_argument(
        "--nonlinear-probe",
        choices=NONLINEAR_PROBES,
        default="kernel",
        help="what r2_nonlinear is: kernel ridge (default) or mlp, scikit-learn's "
        "MLPRegressor(max_iter=1000) as the original's --mlp-eval",
    )
    _add_metrics(evaluate)
    evaluate.add_argument("--no-progress", action="store_true", help="no progress display")

    sweep = commands.add_parser("sweep", help="train and evaluate every setting of a preset for many seeds")
    sweep.add_argument("--out", required=True, help="directory for checkpoints and results")
    add_preset(
        sweep,
        "sweep",
        True,
        f"; with --grid or --grid-file also a run preset of train ({', '.join(presets.names('train'))}): "
        "its config is the one setting the grid is crossed with",
        also=("train",),
    )
    add_grid(sweep)
    sweep.add_argument("--seeds", type=int, help="seeds per setting (default: the preset's, 3)")
    sweep.add_argument("--train-steps", type=int, help="override every setting's training steps")
    sweep.add_argument("--num-eval-batches", type=int, help="evaluation batches (default: the preset's)")
    sweep.add_argument(
        "--eval-size",
        type=int,
        help="samples per evaluation batch, for validation and for test (default: the preset's, "
        "4096; small values make quick checks quick)",
    )
    sweep.add_argument(
        "--nonlinear-probe",
        choices=NONLINEAR_PROBES,
        help="what r2_nonlinear is: kernel ridge (default) or mlp (the original's --mlp-eval)",
    )
    _add_metrics(sweep)
    sweep.add_argument("--coordinator-address", help="multi-host: host:port of process 0")
    sweep.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    sweep.add_argument("--process-id", type=int, help="multi-host: this process's index")
    sweep.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host with the settings a cluster manager (SLURM, TPU pod, ...) provides",
    )
    sweep.add_argument("--no-progress", action="store_true", help="no progress display")
    score.add_parser(commands)
    multiview.add_parser(commands)
    clica.add_parser(commands)
    misalign.add_parser(commands)
    report = commands.add_parser("report", help="rewrite a finished sweep's tables and figures from its stored rows")
    report.add_argument("--out", required=True, help="a sweep's directory (with sweep.json)")
    imgtxt.add_parser(commands)
    return parser


def _train(args) -> None:
    from mmident_jax import train
    from mmident_jax.evaluation import monitor

    cfg = run_config(args, TRAIN_FLAGS, "train", Config)
    state = train.fit(cfg, args.run_dir, monitor=monitor(cfg), progress=not args.no_progress)
    print(f"{args.run_dir}: trained to step {int(state.step)}")


def _evaluate(args) -> None:
    from mmident_jax.evaluation import evaluate_run, format_table

    probes = tuple(p for p in args.probes.split(",") if p)
    unknown = [p for p in probes if p not in PROBES]
    if unknown or not probes:
        raise ConfigError(f"unknown probe {unknown[0] if unknown else '(none)'!r}; choose from {','.join(PROBES)}")
    if args.num_eval_batches < 1:
        raise ConfigError(f"--num-eval-batches must be >= 1, got {args.num_eval_batches}")
    from mmident_jax.probes import check_eval_size

    check_eval_size(args.num_eval_batches, EVAL_BATCH_SIZE, probes, args.nonlinear_probe)
    metrics = _metrics(args)
    table = evaluate_run(
        args.run_dir,
        probes=probes,
        num_batches=args.num_eval_batches,
        permuted_content=args.permuted_content,
        nonlinear_probe=args.nonlinear_probe,
        metrics=metrics,
        progress=not args.no_progress,
    )
    print(format_table(table))
    from mmident_jax.report import MISSING, pyplot

    if "mcc" in metrics and pyplot() is None:
        print(f"skipped correlations.png ({MISSING})", file=sys.stderr)


def _grid_preset(name: str, values: dict) -> presets.SweepPreset:
    """The sweep of preset `name` crossed with the typed grid `values` (`grid.expand`): a sweep
    preset's settings, or a train preset's config as the one setting; without a grid, the sweep
    preset itself (a train preset is refused)."""
    import dataclasses

    if ("sweep", name) in presets.REGISTRY:
        base = presets.sweep_preset(name)
    elif values:
        base = presets.SweepPreset((presets.Setting(presets.get("train", name), ()),), labels=())
    else:
        raise ConfigError(f"{name} is a run preset of mmident-jax train: sweeping it needs --grid or --grid-file")
    if not values:
        return base
    settings = grid.expand([(s.cfg, s.label) for s in base.settings], values)
    return dataclasses.replace(
        base,
        settings=tuple(presets.Setting(cfg, labels) for cfg, labels in settings),
        labels=(*base.labels, *grid.columns(values)),
        report="grid",
    )


def _sweep(args) -> None:
    from pathlib import Path

    positive(args, "seeds", "train_steps", "num_eval_batches", "eval_size")
    if args.eval_size is not None and args.eval_size < 6:
        raise ConfigError(f"--eval-size must be >= 6 (3-fold cross-validation), got {args.eval_size}")
    values = grid.from_args(Config, args)
    preset = _grid_preset(args.preset, values).with_overrides(
        seeds=args.seeds,
        train_steps=args.train_steps,
        num_eval_batches=args.num_eval_batches,
        nonlinear_probe=args.nonlinear_probe,
        eval_size=args.eval_size,
        metrics=_metrics(args),
    )
    from mmident_jax.probes import check_eval_size

    check_eval_size(preset.num_eval_batches, preset.eval_batch_size, preset.probes, preset.nonlinear_probe)
    from mmident_jax import rundir, sweep, twoview
    from mmident_jax.core import TrainingDiverged

    if args.coordinator_address or args.distributed:
        sweep.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    out, study = Path(args.out), twoview.study(preset)
    recorded = {"grid": values} if values else {}  # a grid sweep's report rebuilds its settings from it
    rundir.prepare_out(
        out,
        sweep.identity(
            args.preset, study, preset.seeds, experiment="twoview", train_steps=args.train_steps, **recorded
        ),
    )
    import jax

    if jax.process_index() == 0:
        print(sweep.plan(study, len(preset.settings), preset.seeds), file=sys.stderr)
    rows = sweep.sweep(study, out, progress=not args.no_progress, say=lambda line: print(line, file=sys.stderr))
    if jax.process_index() == 0:
        for skipped in twoview.write_results(out, args.preset, rows, preset):
            print(f"skipped {skipped}", file=sys.stderr)
        print((out / "results.md").read_text())
    diverged = sweep.diverged_runs(rows, preset.labels)
    if diverged:
        raise TrainingDiverged(
            f"{len(diverged)} run(s) diverged and were left out of the tables: " + "; ".join(diverged)
        )


def _report_twoview(out, identity: dict) -> list[str]:
    """The tables of a two-view sweep, with its settings (and grid) from sweep.json and its
    evaluation settings from the rows it stored (for the settings line)."""
    import json

    from mmident_jax import sweep, twoview

    name = identity["preset"]
    preset = _grid_preset(name, grid.typed(Config, identity.get("grid", {})))
    preset = preset.with_overrides(seeds=identity["seeds"], train_steps=identity.get("train_steps"))
    try:
        evaluation = json.loads((out / "group0.json").read_text())["evaluation"]
        preset = preset.with_overrides(
            num_eval_batches=evaluation["num_eval_batches"],
            eval_size=evaluation["eval_batch_size"],
            nonlinear_probe=evaluation["nonlinear_probe"],
            metrics=evaluation["metrics"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no finished group: `stored_rows` says so
    return twoview.write_results(out, name, sweep.stored_rows(out, twoview.study(preset)), preset)


REPORTS = {
    "twoview": _report_twoview,
    "multiview": multiview.report,
    "imgtxt": imgtxt.report,
    "clica": clica.report,
    "misalign": misalign.report,
}


def _report(args) -> None:
    """results.csv, results.md and the figures of a finished sweep, from the rows it stored."""
    import json
    from pathlib import Path

    from mmident_jax import rundir

    out = Path(args.out)
    try:
        identity = json.loads((out / "sweep.json").read_text())
        report = REPORTS[identity["experiment"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise rundir.RunDirError(f"{out} holds no sweep (no readable sweep.json)") from None
    for item in report(out, identity):
        print(f"skipped {item}", file=sys.stderr)
    print((out / "results.md").read_text())


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)  # --help and argument errors end here, before JAX loads
    from mmident_jax.core import TrainingDiverged
    from mmident_jax.imgtxt.dataset import DatasetError
    from mmident_jax.probes import ProbeError
    from mmident_jax.rundir import RunDirError

    try:
        {
            "train": _train,
            "evaluate": _evaluate,
            "sweep": _sweep,
            "report": _report,
            "score": score.run,
            "multiview": multiview.run,
            "clica": clica.run,
            "misalign": misalign.run,
            "imgtxt": imgtxt.run,
        }[args.command](args)
    except (ConfigError, RunDirError, DatasetError, ProbeError) as e:
        print(f"mmident-jax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only or vanished directory: what was written before is kept
        where = f": {e.filename}" if e.filename else ""
        print(
            f"mmident-jax {args.command}: error: {e.strerror or e}{where}; files written before are kept",
            file=sys.stderr,
        )
        return 2
    except TrainingDiverged as e:
        print(f"mmident-jax {args.command}: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mmident-jax {args.command}: interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
