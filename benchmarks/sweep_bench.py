"""Seed sweeps: S seeds vmapped in one program versus the same S seeds one after another.

For each configuration (the `quick` preset's size, and the paper's batch) and each S:
compile time of the vmapped program, and seed-steps/s of (a) one call training all S
seeds together and (b) S calls of the single-seed program; their ratio is what vmapping
seeds gains on this device. `mmident-jax sweep` runs each device's runs one after another
by default (`engine.chunk_program`'s "map"); `batching_bench.py` times its programs
under both batchings.

    python benchmarks/sweep_bench.py [--seeds 1 2 4 8 16] [--paper-seeds ...] [--out FILE.json] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from timing import environment, skip_on_oom, time_call, time_jax  # noqa: E402
from train_bench import SMOKE, train_chunk  # noqa: E402

from mmident_jax import train  # noqa: E402
from mmident_jax.config import Config, hyper, replace  # noqa: E402
from mmident_jax.presets import PRESETS  # noqa: E402


def stacked_state(cfg: Config, seeds: int):
    """Initial states and per-run numbers of `seeds` runs, stacked on a leading axis."""
    keys = jax.vmap(jax.random.PRNGKey)(np.arange(seeds))
    hp = jax.tree.map(lambda x: np.repeat(np.asarray(x)[None], seeds, axis=0), hyper(cfg))
    return jax.jit(jax.vmap(train.make_init(cfg)))(keys, hp), hp


def bench_seeds(cfg: Config, seeds: int, steps: int, repeats: int) -> dict:
    """Seed-steps/s of `seeds` runs vmapped in one program and run one by one."""
    states, hp = stacked_state(cfg, seeds)
    vmapped = time_jax(jax.vmap(train_chunk(cfg, steps)), states, hp, repeats=repeats)
    single = jax.jit(train_chunk(cfg, steps))
    firsts = [jax.tree.map(lambda x, i=i: x[i], states) for i in range(seeds)]
    one_hp = hyper(cfg)
    sequential = time_call(lambda: [single(s, one_hp) for s in firsts], repeats=repeats)
    rate = lambda t: seeds * steps / t["median_s"]
    return {
        "seeds": seeds,
        "steps_per_call": steps,
        "compile_s": vmapped["compile_s"],
        "vmapped_seed_steps_per_s": rate(vmapped),
        "sequential_seed_steps_per_s": rate(sequential),
        "speedup": rate(vmapped) / rate(sequential),
        "memory": vmapped["memory"],
        "timing": {"vmapped": {k: v for k, v in vmapped.items() if k != "memory"}, "sequential": sequential},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="seed counts at the quick preset's size"
    )
    parser.add_argument(
        "--paper-seeds",
        type=int,
        nargs="+",
        default=None,
        help="seed counts at the paper's batch (default 1 2 on CPU, else 1 2 4 8 16)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sweep_bench.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds on a CPU")
    args = parser.parse_args(argv)

    on_cpu = jax.default_backend() == "cpu"
    if args.smoke:
        plans = [("smoke", replace(SMOKE, batch_size=64), [1, 2], 20)]
    else:
        paper_seeds = args.paper_seeds or ([1, 2] if on_cpu else [1, 2, 4, 8, 16])
        plans = [
            ("quick", PRESETS["quick"], args.seeds, 200),
            ("paper", PRESETS["paper"], paper_seeds, 1 if on_cpu else 20),
        ]
    results = []
    for name, cfg, seed_counts, steps in plans:
        for s in seed_counts:
            row = skip_on_oom(bench_seeds, cfg, s, steps, 2 if cfg.batch_size >= 4096 else 3)
            results.append({"config": name, "batch_size": cfg.batch_size, "seeds": s, **row})

    print(f"{'config':>7} {'batch':>6} {'seeds':>5} {'compile s':>10} {'vmapped':>12} {'sequential':>12} {'ratio':>6}")
    print(f"{'':>7} {'':>6} {'':>5} {'':>10} {'seed-steps/s':>12} {'seed-steps/s':>12}")
    for r in results:
        if "skipped" in r:
            print(f"{r['config']:>7} {r['batch_size']:>6} {r['seeds']:>5} skipped: {r['skipped']}")
            continue
        print(
            f"{r['config']:>7} {r['batch_size']:>6} {r['seeds']:>5} {r['compile_s']:>10.2f} "
            f"{r['vmapped_seed_steps_per_s']:>12.1f} {r['sequential_seed_steps_per_s']:>12.1f} "
            f"{r['speedup']:>6.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": environment(), "rows": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
