"""Runs a tiny sweep and prints what it found as JSON; the multi-device tests start it.

    python tests/sweep_worker.py [--out DIR [--stop-at STEP]] [COORDINATOR NUM_PROCESSES PROCESS_ID]

Every process prints {"process", "devices", "probed": runs it evaluated, "first" and
"params": the first parameter leaf of the first group's runs it holds, from index
"first"}, and process 0 adds "rows". With --stop-at, the first group trains into DIR
until that step and the worker exits with status 3, as if killed.
"""

import json
import sys
from pathlib import Path

from mmident_jax import stacked, sweep, twoview
from mmident_jax.config import Config
from mmident_jax.presets import SweepPreset, table_settings

TINY = Config(encoder_widths=(16, 16), batch_size=32, cond_pool=1000, lr=1e-3, train_steps=20, log_steps=10)
PRESET = SweepPreset(
    table_settings(TINY, ("multimodal",))[:3], seeds=3, probes=("linear",), eval_batch_size=512, num_eval_batches=1
)


def main(argv):
    out = stop_at = None
    if argv[:1] == ["--out"]:
        out, argv = Path(argv[1]), argv[2:]
    if argv[:1] == ["--stop-at"]:
        stop_at, argv = int(argv[1]), argv[2:]
    if argv:
        sweep.initialize_distributed(argv[0], int(argv[1]), int(argv[2]))
    import jax

    study = twoview.study(PRESET)
    (cfg, runs), *_ = sweep.group_runs(study)
    store = stacked.Stacked(out / "group0.ckpt") if out is not None else None
    if stop_at is not None:

        def stop(chunk):
            if chunk.step > stop_at:
                sys.exit(3)

        sweep.train_group(study, cfg, runs, store, on_chunk=stop)
    probed = []
    study = study._replace(evaluate=lambda *args: probed.append(1) or twoview.study(PRESET).evaluate(*args))
    rows = sweep.sweep(study, out, progress=False, say=lambda line: None)
    trained = sweep.train_group(study, cfg, runs, store)  # restored when `out` holds it
    report = {
        "process": jax.process_index(),
        "devices": jax.device_count(),
        "probed": len(probed),
        "first": trained.first,
        "params": jax.tree.leaves(trained.state.params)[0].tolist(),
    }
    if jax.process_index() == 0:
        report["rows"] = rows
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
