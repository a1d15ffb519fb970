"""Seeds vmapped in one program, checkpointed per chunk; their evaluation and tables.

`fit_seeds` trains every seed of a config together (one `jit(vmap(...))` per chunk
length), saving the stacked state and the per-group loss curve in `out` after every
chunk of `log_steps` steps, and resumes from them. `run_experiment` adds the evaluation
and writes results.csv, results.md, results.png (heatmap) and loss.png; the command
line (`mmident_jax.multiview.command`) runs it.

Example:
    >>> from mmident_jax.multiview.structure import MultiviewConfig, Views
    >>> cfg = MultiviewConfig(Views(3, ((0, 1), (1, 2), (2, 0))), encoder_widths=(16,), batch_size=32,
    ...                       train_steps=4, log_steps=2, cond_pool=1000)
    >>> state, curve = fit_seeds(cfg, [0, 1])
    >>> state.step.tolist(), [p[0] for p in curve["points"]], len(curve["points"][0][1])
    ([4, 4], [2, 4], 2)
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

from mmident_jax import report, rundir, train
from mmident_jax.config import hyper
from mmident_jax.multiview import tables
from mmident_jax.multiview.evaluation import evaluate
from mmident_jax.multiview.model import TrainState, loss_floor, loss_terms, make_init, make_run
from mmident_jax.multiview.structure import MultiviewConfig, Preset
from mmident_jax.progress import Progress

CHECKPOINT = "state.msgpack"
CURVE = "curve.json"
ROWS = "rows.json"


def fit_seeds(cfg: MultiviewConfig, seeds: Sequence[int], out: Path | None = None, *,
              on_chunk=None) -> tuple[TrainState, dict]:
    """Train `cfg` for every seed (root key `PRNGKey(seed)`) in one vmapped program.

    With `out`, the stacked state (`state.msgpack`) and the curve (`curve.json`: per chunk,
    the step and every seed's mean loss per group) are written after every chunk and a
    rerun resumes from them. `on_chunk(step, losses)` gets each chunk's last step and mean
    losses (seeds x groups). Returns the stacked final state (host arrays) and the curve.
    """
    hp = hyper(cfg)
    keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in seeds])
    init, chunk = _programs(cfg)
    curve = {"seeds": list(seeds), "groups": [list(g.views) for g in cfg.views.plan], "points": []}
    if out is not None and (Path(out) / CHECKPOINT).exists():
        state = rundir.restore_checkpoint(out, jax.eval_shape(init, keys, hp), CHECKPOINT)
    else:
        state = init(keys, hp)
    step = int(np.asarray(state.step)[0])
    if out is not None and (Path(out) / CURVE).exists():  # points past the checkpoint's step are redone
        curve["points"] = [p for p in json.loads((Path(out) / CURVE).read_text())["points"] if p[0] <= step]
    while step < cfg.train_steps:
        n = train.chunk_length(cfg, step)
        state, losses = chunk(state, hp, n)
        losses = np.asarray(losses)
        if not np.all(np.isfinite(losses)):
            raise train.TrainingDiverged(f"loss is not finite in steps {step + 1}..{step + n}; "
                                         "kept the last checkpoint")
        step += n
        curve["points"].append([step, losses.mean(axis=1).tolist()])
        if out is not None:
            rundir.save_checkpoint(out, state, CHECKPOINT)
            rundir.write_atomic(Path(out) / CURVE, json.dumps(curve).encode())
        if on_chunk:
            on_chunk(step, losses.mean(axis=1))
    return jax.device_get(state), curve


@functools.lru_cache(maxsize=8)
def _programs(cfg: MultiviewConfig):
    """The vmapped init and chunk programs of `cfg`, jitted once per process (kept across calls)."""
    init = jax.jit(jax.vmap(make_init(cfg), in_axes=(0, None)))
    run = make_run(cfg)
    chunk = jax.jit(lambda state, hp, n: jax.vmap(lambda s: run(s, hp, n))(state), static_argnums=2,
                    donate_argnums=0)
    return init, chunk


def evaluate_seeds(state: TrainState, cfg: MultiviewConfig, seeds: Sequence[int], preset: Preset,
                   progress=None) -> list[dict]:
    """Result rows of every seed of a stacked state, each with its `seed` first."""
    rows = []
    for i, seed in enumerate(seeds):
        one = jax.tree.map(lambda x: x[i], state)
        report_progress = (lambda m, seed=seed: progress(f"seed {seed}: {m}")) if progress else None
        rows.extend({"seed": seed, **row} for row in evaluate(
            one, cfg, probes=preset.probes, num_batches=preset.eval_batches, batch_size=preset.eval_batch_size,
            progress=report_progress))
    return rows


def write_results(out: Path, name: str, rows: list[dict], seeds: int, curve: dict | None = None,
                  floor: tuple[float, list[int]] | None = None) -> list[str]:
    """results.csv, results.md, results.png and loss.png in `out` (`floor`: `tables.save_loss_curves`);
    returns what could not be written."""
    rundir.write_atomic(out / "results.csv", tables.to_csv(rows).encode())
    rundir.write_atomic(out / "results.md", tables.to_markdown(name, rows, seeds).encode())
    skipped = [] if tables.save_heatmap(out / "results.png", name, rows) else [f"results.png ({report.MISSING})"]
    if curve is not None and not tables.save_loss_curves(out / "loss.png", name, curve, floor):
        skipped.append(f"loss.png ({report.MISSING})")
    return skipped


def run_experiment(name: str, preset: Preset, out: Path | None = None, *, evaluate_runs: bool = True,
               progress: bool = True, print_fn=print) -> list[dict]:
    """Train every seed of `preset` (resuming in `out`), then evaluate them (unless
    `evaluate_runs` is False) and write the tables and figures. Returns the result rows.

    An `out` whose results are kept (`rows.json`) is neither trained nor probed again: its
    tables and figures are rewritten from the kept rows and curve.
    """
    cfg, seeds = preset.cfg, [preset.cfg.seed + i for i in range(preset.seeds)]
    done = out / ROWS if out is not None else None
    if evaluate_runs and done is not None and done.exists():
        rows, curve = json.loads(done.read_text()), json.loads((out / CURVE).read_text())
        for skipped in write_results(out, name, rows, len(seeds), curve, (loss_floor(cfg), loss_terms(cfg))):
            print_fn(f"skipped {skipped}", file=sys.stderr)
        return rows
    bar = Progress({"seed-steps": cfg.train_steps * len(seeds)}, enabled=progress)
    last = [0]

    def on_chunk(step, losses):
        bar.advance("seed-steps", (step - last[0]) * len(seeds), info=f"loss {float(losses.sum(axis=1).mean()):.3f}")
        last[0] = step

    t0 = time.perf_counter()
    try:
        state, curve = fit_seeds(cfg, seeds, out, on_chunk=on_chunk)
    finally:
        bar.close()
    print_fn(f"trained {len(seeds)} seeds to step {cfg.train_steps} in {time.perf_counter() - t0:.0f} s; final "
             f"loss per group (mean over seeds): " + ", ".join(
                 f"{{{','.join(map(str, g))}}} {x:.3f}" for g, x in zip(curve["groups"],
                                                                       np.mean(curve["points"][-1][1], axis=0))))
    if not evaluate_runs:
        if out is not None:
            tables.save_loss_curves(out / "loss.png", name, curve, (loss_floor(cfg), loss_terms(cfg)))
        return []
    t0 = time.perf_counter()
    rows = evaluate_seeds(state, cfg, seeds, preset,
                          progress=(lambda m: print_fn(m, file=sys.stderr)) if progress else None)
    print_fn(f"probed {len(seeds)} seeds in {time.perf_counter() - t0:.0f} s")
    if out is not None:
        rundir.write_atomic(done, json.dumps(rows).encode())
        for skipped in write_results(out, name, rows, len(seeds), curve, (loss_floor(cfg), loss_terms(cfg))):
            print_fn(f"skipped {skipped}", file=sys.stderr)
    return rows
