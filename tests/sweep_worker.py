"""Runs a tiny sweep and prints its results as JSON; the multi-device tests start it.

    python tests/sweep_worker.py [COORDINATOR NUM_PROCESSES PROCESS_ID]
"""

import json
import sys

from mmident_jax import sweep
from mmident_jax.presets import SweepPreset, table_settings
from mmident_jax.config import Config

TINY = Config(encoder_widths=(16, 16), batch_size=32, cond_pool=1000, lr=1e-3, train_steps=20, log_steps=10)
PRESET = SweepPreset(table_settings(TINY, ("multimodal",))[:3], seeds=3,
                     probes=("linear",), eval_batch_size=512, num_eval_batches=1)


def main(argv):
    if argv:
        sweep.initialize_distributed(argv[0], int(argv[1]), int(argv[2]))
    import jax

    rows = sweep.sweep(PRESET, progress=False)
    groups = sweep.group_runs(PRESET)
    params = [jax.tree.leaves(sweep.train_group(cfg, runs).params)[0].tolist() for cfg, runs in groups[:1]]
    if jax.process_index() == 0:
        print(json.dumps({"devices": jax.device_count(), "rows": rows, "params": params}))


if __name__ == "__main__":
    main(sys.argv[1:])
