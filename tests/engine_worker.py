"""Trains tiny runs in a process with a given number of (forced host) devices; prints JSON.

    python tests/engine_worker.py invariance
    python tests/engine_worker.py multiview --out DIR [--stop-at STEP]

`invariance`: seed 0 of a two-view and of a multi-view config trained alone on one
device, inside a group of three seeds on one device and inside six seeds spread over
every device; prints {"devices", "twoview": [alone == group, alone == spread], "multiview": ...}
(bitwise comparisons of every leaf of the state).
`multiview`: a three-seed multi-view sweep in DIR (with --stop-at, stopped after the
checkpoint of that step with exit status 3, as if killed); prints {"devices", "rows",
"params": the first parameter leaf of every seed}.
"""

import json
import sys
from pathlib import Path

import jax
import numpy as np

from mmident_jax import config, engine, stacked, sweep, train
from mmident_jax.multiview import experiment, model
from mmident_jax.multiview.structure import MultiviewConfig, Preset, Views

TWO_VIEW = config.Config(encoder_widths=(16, 16), batch_size=32, cond_pool=1000, lr=1e-3, train_steps=12, log_steps=4)
MULTIVIEW = MultiviewConfig(
    Views(3, ((0, 1, 2), (0, 1), (0, 2))),
    encoder_widths=(16,),
    batch_size=32,
    cond_pool=1000,
    lr=1e-3,
    grad_clip=2.0,
    train_steps=8,
    log_steps=4,
)
PRESET = Preset(MULTIVIEW, seeds=3, eval_batch_size=64, probes=("linear",))


def seed_zero(exp, hp, seeds: int, devices) -> list:
    keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in range(seeds)])
    hps = jax.tree.map(lambda x: np.stack([np.asarray(x)] * seeds), hp)
    return jax.tree.leaves(jax.tree.map(lambda x: x[0], engine.train_runs(exp, keys, hps, devices=devices).state))


def invariance() -> dict:
    report = {"devices": jax.device_count()}
    for name, exp, hp in (
        ("twoview", train.experiment(TWO_VIEW), config.hyper(TWO_VIEW)),
        ("multiview", model.experiment(MULTIVIEW), config.hyper(MULTIVIEW)),
    ):
        alone = seed_zero(exp, hp, 1, jax.devices()[:1])
        group = seed_zero(exp, hp, 3, jax.devices()[:1])
        spread = seed_zero(exp, hp, 6, None)
        report[name] = [all(np.array_equal(a, b) for a, b in zip(alone, other)) for other in (group, spread)]
    return report


def multiview(out: Path, stop_at: int | None) -> dict:
    study = experiment.study(PRESET)
    ((cfg, runs),) = sweep.group_runs(study)
    store = stacked.Stacked(out / "group0.ckpt")
    if stop_at is not None:

        def stop(chunk):
            if chunk.step > stop_at:
                sys.exit(3)

        sweep.train_group(study, cfg, runs, store, on_chunk=stop)
    rows = sweep.sweep(study, out, progress=False, say=lambda line: None)
    trained = sweep.train_group(study, cfg, runs, store)  # restored: finished
    return {"devices": jax.device_count(), "rows": rows, "params": jax.tree.leaves(trained.state.params)[0].tolist()}


if __name__ == "__main__":
    if sys.argv[1] == "invariance":
        print(json.dumps(invariance()))
    else:
        stop_at = int(sys.argv[5]) if sys.argv[4:5] == ["--stop-at"] else None
        print(json.dumps(multiview(Path(sys.argv[3]), stop_at)))
