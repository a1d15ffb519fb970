"""The sweep engine: every run of a study, a few compiled programs in all, resumable.

A `Study` is what an experiment's sweep supplies: its runs (config, seed, labels), how
a config becomes the core's `Experiment` and its per-run numbers, which configs share
one compiled program (`program_key`), and how one trained run is evaluated into rows.
Runs that share a program are trained together by the engine (`engine.train_runs`:
stacked, sharded over every device of every process); the groups are looped. Each
group is checkpointed per chunk (`stacked`: each process writes its runs), so a sweep
resumes on any number of devices and processes; each process evaluates the runs it
holds and process 0 gathers the rows. A run whose loss stops being finite is marked
and frozen while the others finish. Each finished group's rows are kept with their
evaluation settings and provenance, so it is not trained again, and evaluated again
only when those differ.

Example, two runs of the core's counter, evaluated by their final value:
    >>> import jax.numpy as jnp, numpy as np
    >>> from mmident_jax.core import Experiment
    >>> def counter(cfg):
    ...     return Experiment(lambda key, hp: {"step": jnp.int32(0), "x": jnp.float32(0)},
    ...                       lambda s, hp: ({"step": s["step"] + 1, "x": s["x"] + hp}, s["x"]), 3, 3)
    >>> runs = [Run("demo", seed, (("rate", r),)) for r in (1.0, 2.0) for seed in (0,)]
    >>> study = Study(runs, counter, hyper=lambda run: np.float32(run.labels[0][1]), program_key=lambda cfg: cfg,
    ...               evaluate=lambda state, run: [{"x": float(state["x"])}])
    >>> sweep(study, progress=False)
    [{'rate': 1.0, 'seed': 0, 'x': 3.0}, {'rate': 2.0, 'seed': 0, 'x': 6.0}]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from mmident_jax import engine, provenance, rundir, stacked
from mmident_jax.core import Experiment
from mmident_jax.progress import Progress


class Run(NamedTuple):
    """One run of a sweep: its config, seed (root key `PRNGKey(seed)`) and labels ((column, value) pairs)."""

    cfg: Any
    seed: int
    labels: tuple[tuple[str, Any], ...]


class Study(NamedTuple):
    """What the sweep engine needs of an experiment's sweep.

    - `runs`: every run, in the order of the tables.
    - `experiment(cfg)`: the core's experiment for the configs of one program.
    - `hyper(run)`: the run's per-run numbers (arrays of the same shapes for one program).
    - `program_key(cfg)`: equal for configs whose runs share one compiled program.
    - `evaluate(state, run)`: the rows of one trained run (its labels and seed are added).
    - `evaluation`: the evaluation settings, kept with the rows (rows made otherwise are redone).
    - `batching`: how each device computes its runs (`engine.BATCHING`).
    """

    runs: list[Run]
    experiment: Callable[[Any], Experiment]
    hyper: Callable[[Run], Any]
    program_key: Callable[[Any], Hashable]
    evaluate: Callable[[Any, Run], list[dict]]
    evaluation: dict = {}
    batching: str = "map"


def group_runs(study: Study) -> list[tuple[Any, list[Run]]]:
    """(program config, runs) of each compiled program, in the study's order."""
    groups: dict[Hashable, list[Run]] = {}
    for run in study.runs:
        groups.setdefault(study.program_key(run.cfg), []).append(run)
    return list(groups.items())


def plan(study: Study, settings: int, seeds: int) -> str:
    """What a sweep trains, in one line: "6 settings × 3 seeds in 2 compiled programs"."""
    from mmident_jax.report import count

    programs = len(group_runs(study))
    return f"{count(settings, 'setting')} × {count(seeds, 'seed')} in {count(programs, 'compiled program')}"


def stack_runs(study: Study, runs: list[Run]) -> tuple[np.ndarray, Any]:
    """The runs' root keys and per-run numbers, stacked on a leading run axis (host arrays)."""
    keys = np.stack([np.asarray(jax.random.PRNGKey(run.seed)) for run in runs])
    return keys, jax.tree.map(lambda *xs: np.stack(xs), *(jax.device_get(study.hyper(run)) for run in runs))


def train_group(
    study: Study,
    cfg,
    runs: list[Run],
    store: engine.Store | None = None,
    on_chunk: Callable[[engine.Chunk], None] | None = None,
) -> engine.Trained:
    """Train the runs of one program (`group_runs`) together, sharded over every device."""
    keys, hp = stack_runs(study, runs)
    return engine.train_runs(study.experiment(cfg), keys, hp, store=store, on_chunk=on_chunk, batching=study.batching)


def evaluate_group(study: Study, trained: engine.Trained, runs: list[Run], on_run=None) -> list[dict]:
    """Rows of the runs `trained` holds: labels, seed, the study's rows, and for a diverged
    run the step (`diverged_at`) whose parameters before it were evaluated."""
    rows = []
    for i in range(len(jax.tree.leaves(trained.state)[0])):
        run = runs[trained.first + i]
        diverged = int(trained.diverged_at[trained.first + i])
        rows.extend(
            {**dict(run.labels), "seed": run.seed, **row, **({"diverged_at": diverged} if diverged else {})}
            for row in study.evaluate(jax.tree.map(lambda x: x[i], trained.state), run)
        )
        if on_run:
            on_run()
    return rows


def _gather_rows(rows: list[dict]) -> list[dict]:
    """Every process's rows, in process order, on every process."""
    if jax.process_count() == 1:
        return rows
    data = np.frombuffer(json.dumps(rows).encode(), np.uint8)
    sizes = multihost_utils.process_allgather(np.array([data.size])).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: data.size] = data
    everyone = multihost_utils.process_allgather(padded)
    return [row for p, size in enumerate(sizes) for row in json.loads(everyone[p, :size].tobytes())]


def _reusable(path: Path | None, evaluation: dict, say) -> list[dict] | None:
    """A group's stored rows when they were made by this evaluation, computed as today; else None."""
    if path is None or not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
        stored["rows"]
    except (ValueError, TypeError, KeyError):
        say(f"{path.name}: not readable; evaluating again")
        return None
    if stored.get("evaluation") != json.loads(json.dumps(evaluation)):
        say(f"{path.name}: evaluated with other settings; evaluating again")
    elif mismatch := provenance.mismatch(stored.get("made_by")):
        say(f"{path.name}: {mismatch}; evaluating again")
    else:
        return stored["rows"]
    return None


def label(run: Run) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in run.labels)


def sweep(
    study: Study, out: Path | None = None, *, train_only: bool = False, progress: bool = True, say=print
) -> list[dict]:
    """Train and evaluate every run of `study`; returns their rows, in the study's order.

    With `out`, each group's checkpoint (`groupN.ckpt`), training-loss curve
    (`groupN.curve.json`: per chunk, the step and each run's mean losses) and results
    (`groupN.json`: rows, evaluation settings, provenance) are kept there, so a rerun
    resumes; a finished group whose evaluation settings or version differ is evaluated
    again from its checkpoint, without training. `train_only` trains (or resumes) and
    evaluates nothing. Processes share the runs of a group for both training and
    evaluation; `say` reports (on process 0) what is evaluated again.
    """
    say = say if jax.process_index() == 0 else (lambda message: None)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(study)
    steps = sum(study.experiment(cfg).train_steps * len(runs) for cfg, runs in groups)
    bar = Progress(
        {"seed-steps": steps, **({} if train_only else {"runs probed": len(study.runs)})},
        enabled=progress and jax.process_index() == 0,
    )
    rows = []
    for g, (cfg, runs) in enumerate(groups):
        train_steps = study.experiment(cfg).train_steps
        done = out / f"group{g}.json" if out is not None else None
        stored = None if train_only else _reusable(done, study.evaluation, say)
        if stored is not None:
            rows.extend(stored)
            bar.skip("seed-steps", train_steps * len(runs))
            bar.skip("runs probed", len(runs))
            continue
        bar.advance("seed-steps", info=f"training {', '.join(dict.fromkeys(label(r) for r in runs))}")
        curve = Curve(out / f"group{g}.curve.json" if out is not None else None, runs)
        at = [None]  # the step the group's bar has reached

        def on_chunk(chunk, runs=runs, curve=curve, at=at):
            if at[0] is None:
                curve.start(chunk)
                at[0] = chunk.step - chunk.length
                bar.skip("seed-steps", at[0] * len(runs))  # resumed from a checkpoint
            bar.advance("seed-steps", (chunk.step - at[0]) * len(runs))
            at[0] = chunk.step
            curve.append(chunk)

        store = stacked.Stacked(out / f"group{g}.ckpt") if out is not None else None
        trained = train_group(study, cfg, runs, store, on_chunk)
        if at[0] is None:  # trained before, not yet evaluated
            bar.skip("seed-steps", train_steps * len(runs))
        if train_only:
            continue
        bar.advance("seed-steps", info="probing codes")
        group_rows = _gather_rows(evaluate_group(study, trained, runs, on_run=lambda: bar.advance("runs probed", 1)))
        if done is not None and jax.process_index() == 0:
            rundir.write_atomic(
                done,
                json.dumps(
                    {"evaluation": study.evaluation, "made_by": provenance.provenance(), "rows": group_rows}
                ).encode(),
            )
        rows.extend(group_rows)
    bar.finish()
    return rows


class Curve:
    """A group's training-loss curve, kept (atomically, by process 0) beside its checkpoint:
    {"runs": [labels and seed of each run], "points": [[step, [mean loss of each run]], ...]}."""

    def __init__(self, path: Path | None, runs: list[Run]):
        self.path, self.runs = path, [{**dict(r.labels), "seed": r.seed} for r in runs]
        self.points = read_curve(path)["points"] if path is not None and path.exists() else []

    def start(self, chunk: engine.Chunk) -> None:
        """Resume at the first chunk trained now: points past its start, written before a crash, are dropped."""
        begin = chunk.step - chunk.length
        self.points = [p for p in self.points if p[0] <= begin]

    def append(self, chunk: engine.Chunk) -> None:
        losses = np.where(chunk.diverged_at.reshape((-1,) + (1,) * (chunk.losses.ndim - 1)) > 0, np.nan, chunk.losses)
        self.points.append([chunk.step, losses.mean(axis=1).tolist()])
        if self.path is not None and jax.process_index() == 0:
            rundir.write_atomic(self.path, json.dumps({"runs": self.runs, "points": self.points}).encode())


def read_curve(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def initialize_distributed(coordinator_address=None, num_processes=None, process_id=None) -> None:
    """Join a multi-process sweep through JAX's distributed runtime (before any computation).

    Without arguments the cluster manager's settings are used (SLURM, TPU pods, ...).
    CPU processes exchange data with gloo collectives.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # accelerators ignore it
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )


def identity(name: str, study: Study, seeds: int, **extra) -> dict:
    """What fixes a sweep's training: its preset's name, seeds, how the devices batch the runs
    (`Study.batching`) and the resolved config of every setting (labels and config), as
    `sweep.json` records it."""
    settings = {}
    for run in study.runs:
        settings.setdefault(run.labels, run.cfg)
    return json.loads(
        json.dumps(
            {
                "preset": name,
                "seeds": seeds,
                **extra,
                "batching": study.batching,
                "settings": [{"labels": dict(labels), "config": cfg.to_dict()} for labels, cfg in settings.items()],
            }
        )
    )


def stored_rows(out: Path, study: Study) -> list[dict]:
    """The result rows a finished sweep keeps in `out` (`groupN.json`), in the study's order."""
    paths = [out / f"group{g}.json" for g in range(len(group_runs(study)))]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise rundir.RunDirError(f"{out} has no results for {', '.join(missing)}; run the sweep first")
    return [row for path in paths for row in json.loads(path.read_text())["rows"]]


def diverged_runs(rows: list[dict], labels) -> list[str]:
    """One phrase per diverged run of `rows`: its labels, seed and the step it diverged at."""
    runs = {(*(r[k] for k in labels), r["seed"]): r["diverged_at"] for r in rows if "diverged_at" in r}
    return [
        " ".join(f"{k}={v}" for k, v in zip((*labels, "seed"), run)) + f" at step {step}" for run, step in runs.items()
    ]
