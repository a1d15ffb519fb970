"""Training-step throughput of the paper's encoders, and its FLOP utilisation.

For each batch size: compile time of a scanned chunk of steps, steady-state
steps/s and samples/s, analytic model FLOP/s, and that as a fraction of a large
float32 matmul timed in the same process (the best of a few sizes: the achievable
peak here). Also the
time to build the ground truth (latent model and both rejection-sampled mixers).

    python benchmarks/train_bench.py [--batch-sizes 256 1024 6144] [--out FILE.json] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from timing import environment, time_call, time_jax  # noqa: E402

from mmident_jax import train  # noqa: E402
from mmident_jax.config import PRESETS, Config, hyper, replace  # noqa: E402


def encoder_flops_per_sample(cfg: Config) -> int:
    """Forward FLOPs of one encoder on one sample (2 per multiply-add of each Dense layer)."""
    sizes = (cfg.n_latent, *cfg.widths, cfg.encoding_size)
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def step_flops(cfg: Config) -> int:
    """Model FLOPs of one InfoNCE step: 2 encoders x (positives + negatives), forward + backward (3x).

    The loss's pairwise distances (4 B² d) and the mixers are included; elementwise work is not.
    """
    b = cfg.batch_size
    encoders = 3 * 2 * 2 * b * encoder_flops_per_sample(cfg)
    distances = 3 * 2 * 2 * b * b * cfg.encoding_size
    mixing = 2 * 2 * b * cfg.n_mixing_layer * 2 * cfg.n_latent ** 2
    return encoders + distances + mixing


def matmul_peak(sizes=(1024, 2048, 4096), repeats: int = 5) -> dict:
    """FLOP/s of square float32 matmuls; the best size is the in-process reference peak."""
    by_size = {}
    for n in sizes:
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
        by_size[n] = 2 * n ** 3 / time_jax(jnp.matmul, a, a, repeats=repeats)["min_s"]
    best = max(by_size, key=by_size.get)
    return {"n": best, "flops_per_s": by_size[best], "flops_per_s_by_n": by_size}


def bench_batch(cfg: Config, steps: int, repeats: int) -> dict:
    hp = hyper(cfg)
    state = jax.jit(train.make_init(cfg))(jax.random.PRNGKey(0), hp)
    run = train.make_run(cfg)
    t = time_jax(lambda s, h: run(s, h, steps), state, hp, repeats=repeats)
    per_step = t["median_s"] / steps
    flops = step_flops(cfg)
    return {"batch_size": cfg.batch_size, "steps_per_call": steps, "compile_s": t["compile_s"],
            "step_s": per_step, "steps_per_s": 1 / per_step, "samples_per_s": cfg.batch_size / per_step,
            "step_flops": flops, "flops_per_s": flops / per_step, "timing": t}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024, 6144])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_bench.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds on a CPU")
    args = parser.parse_args(argv)

    base = PRESETS["paper"]
    if args.smoke:
        base = replace(base, encoder_widths=(32, 32), cond_pool=1000)
        args.batch_sizes = [64]
    peak = matmul_peak((256, 512) if args.smoke else (1024, 2048, 4096))
    truth = time_call(jax.jit(lambda k: train.init_truth(k, base)), jax.random.PRNGKey(0), repeats=3)
    rows = []
    for b in args.batch_sizes:
        steps = max(1, 4096 // b)  # about the same work per timed call
        row = bench_batch(replace(base, batch_size=b), steps, repeats=2 if b >= 4096 else 5)
        row["fraction_of_matmul_peak"] = row["flops_per_s"] / peak["flops_per_s"]
        rows.append(row)

    print(f"matmul peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['n']}x{peak['n']} float32)")
    print(f"ground truth (latents + 2 mixers): first call {truth['first_s']:.2f} s (with compile), "
          f"then {truth['median_s']:.3f} s")
    print(f"{'batch':>6} {'compile s':>10} {'step s':>8} {'steps/s':>8} {'samples/s':>10} "
          f"{'GFLOP/s':>8} {'of peak':>8}")
    for r in rows:
        print(f"{r['batch_size']:>6} {r['compile_s']:>10.2f} {r['step_s']:>8.4f} {r['steps_per_s']:>8.2f} "
              f"{r['samples_per_s']:>10.0f} {r['flops_per_s'] / 1e9:>8.1f} {r['fraction_of_matmul_peak']:>8.1%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": environment(), "config": base.to_dict(),
                                    "matmul_peak": peak, "ground_truth": truth, "batches": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
