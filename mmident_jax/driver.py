"""One run on disk: train a program in its run directory, resumably.

`fit` prepares the run directory (`rundir`), restores the checkpoint or initialises
the state, and trains in chunks of up to `log_steps` steps. After each chunk it checks
the losses (a NaN or infinite loss stops the run and keeps the last good checkpoint),
appends a `metrics.jsonl` line (step, mean loss, steps/s and the optional monitor's
figures), writes the checkpoint atomically and moves the progress bar. A process killed
between the two leaves a line ahead of the checkpoint, which the resumed run drops, so
`metrics.jsonl` holds one line per chunk however often the run is interrupted. Every
experiment uses it: the numerical one with `scanned(cfg)` (chunks of one compiled
`lax.scan`), the image/text one with its own `Program`.

Example:
    >>> import tempfile
    >>> from mmident_jax.config import Config
    >>> cfg = Config(encoder_widths=(16,), batch_size=32, train_steps=4, log_steps=2, cond_pool=1000)
    >>> state = fit(cfg, tempfile.mkdtemp(), progress=False)
    >>> int(state.step)
    4
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mmident_jax import rundir, train
from mmident_jax.config import Config, hyper
from mmident_jax.progress import Progress
from mmident_jax.train import TrainingDiverged, chunk_length


class Program(NamedTuple):
    """What `fit` needs of an experiment: a fresh state, and n steps from a state.

    `init()` returns the state before the first step; `run(state, n)` returns the state
    after n more steps and their n losses.
    """

    init: Callable[[], Any]
    run: Callable[[Any, int], tuple[Any, Any]]


def scanned(cfg: Config) -> Program:
    """The numerical experiment: each chunk is one compiled `lax.scan` (one executable per length)."""
    hp = hyper(cfg)
    run = jax.jit(train.make_run(cfg), static_argnums=2, donate_argnums=0)
    compiled = {}

    def run_chunk(state, n):
        if n not in compiled:
            compiled[n] = run.lower(state, hp, n).compile()
        return compiled[n](state, hp)

    return Program(lambda: jax.jit(train.make_init(cfg))(jax.random.PRNGKey(cfg.seed), hp), run_chunk)


def restore(run_dir, init: Callable[[], Any]):
    """The state saved in `run_dir`, in the structure of `init()`'s result."""
    return jax.tree.map(jnp.asarray, rundir.restore_checkpoint(run_dir, jax.eval_shape(init)))


def fit(cfg, run_dir, program: Program | None = None, *, monitor: Callable[[Any], dict] | None = None,
        progress: bool = True, print_fn=print):
    """Train `cfg` in `run_dir`, resuming from its checkpoint, up to `cfg.train_steps`.

    `program` defaults to `scanned(cfg)`; `monitor(state)` adds figures to each metrics
    line (e.g. `evaluate.monitor(cfg)`). Raises `TrainingDiverged` on a non-finite loss.
    """
    program = program or scanned(cfg)
    rundir.prepare(run_dir, cfg)
    state = restore(run_dir, program.init) if rundir.has_checkpoint(run_dir) else program.init()
    start = step = int(state.step)
    rundir.drop_metrics_after(run_dir, start)
    bar = Progress({"train": cfg.train_steps}, enabled=progress, completed={"train": start})
    try:
        while step < cfg.train_steps:
            n = chunk_length(cfg, step)
            t0 = time.perf_counter()
            new_state, losses = program.run(state, n)
            losses = np.asarray(losses)
            seconds = time.perf_counter() - t0
            if not np.all(np.isfinite(losses)):
                bad = int(np.argmin(np.isfinite(losses)))
                raise TrainingDiverged(f"loss is {losses[bad]} at step {step + 1 + bad}; "
                                       f"kept the checkpoint of step {step}")
            state, step = new_state, step + n
            record = {"step": step, "loss": float(losses.mean()), "steps_per_s": n / seconds}
            record.update(monitor(state) if monitor else {})
            rundir.append_metrics(run_dir, record)
            rundir.save_checkpoint(run_dir, state)
            r2 = record.get("r2_linear/hz1/c")
            bar.advance("train", n, info=f"loss {record['loss']:.4f}" + (f"  R²(c) {r2:.3f}" if r2 is not None else ""))
    finally:
        bar.close()
    if step == start:
        print_fn(f"{run_dir}: already trained for {start} steps")
    return state
