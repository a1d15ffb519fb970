"""Precision options of the encoders: the speed of each, and whether training still follows float32.

For each `Config.precision` (float32; tf32, the "tensorfloat32" matmul precision;
bfloat16 computation with float32 parameters), at one batch size of the paper's
configuration: the steady-state step time as `train_bench` measures it (its own
`bench_batch`, with the interleaved reference matmul and `other_cpu`), its speed-up
over float32 and the program's memory; then N training steps from the same initial
state on the same data (same key), reporting the first and final loss and the mean
loss of the last N/10 steps, and the differences of the last two from float32's.
A speed-up whose loss drifts from float32's by more than the float32 run's own
progress is not a free one.

    python benchmarks/precision_bench.py [--batch-size 1024] [--steps 100] [--out FILE.json] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from timing import environment, fmt, megabytes, skip_on_oom  # noqa: E402
from timing import print_table as table  # noqa: E402
from train_bench import SMOKE, bench_batch, chunk_steps, init_state, train_chunk  # noqa: E402

from mmident_jax.config import PRECISIONS, Config, hyper, replace  # noqa: E402
from mmident_jax.presets import PRESETS  # noqa: E402


def train_losses(run, cfg: Config, state, steps: int, chunk: int) -> np.ndarray:
    """Per-step losses of `steps` training steps from `state`, by calls of `run` (`chunk` steps each)."""
    hp, losses = hyper(cfg), []
    for _ in range(-(-steps // chunk)):
        state, chunk_losses = run(state, hp)
        losses.append(np.asarray(chunk_losses))
    return np.concatenate(losses)[:steps]


def bench_precision(cfg: Config, state, steps: int, reference_n: int = 1024) -> dict:
    """`train_bench`'s row for `cfg` (its own `bench_batch`), and the losses of `steps` steps with the same program."""
    chunk = chunk_steps(cfg.batch_size)
    fn = train_chunk(cfg, chunk)
    row = bench_batch(cfg, state, fn=fn, reference_n=reference_n)
    losses = train_losses(jax.jit(fn), cfg, state, steps, chunk)  # bench_batch compiled it into jit's cache
    last = max(1, steps // 10)
    return {
        **row,
        "train_steps": steps,
        "first_loss": float(losses[0]),
        "final_loss": float(losses[-1]),
        "last_mean_loss": float(losses[-last:].mean()),
        "last_steps": last,
    }


def compare(rows: list[dict]) -> None:
    """Add speed-up and loss differences from the float32 row to each row that ran (None if float32 did not)."""
    ref = next(r for r in rows if r["precision"] == "float32")
    for r in rows:
        if "skipped" not in r:
            ok = "skipped" not in ref
            r["speedup"] = ref["step_s"] / r["step_s"] if ok else None
            r["final_loss_diff"] = r["final_loss"] - ref["final_loss"] if ok else None
            r["last_mean_loss_diff"] = r["last_mean_loss"] - ref["last_mean_loss"] if ok else None


def print_table(rows: list[dict]) -> None:
    table(
        [
            r
            if "skipped" in r
            else {
                "precision": r["precision"],
                "step s": f"{r['step_s']:.4f}",
                "spread": f"{r['timing']['rel_spread']:.1%}",
                "steps/s": f"{r['steps_per_s']:.2f}",
                "speedup": fmt(r["speedup"], ".2f"),
                "first loss": f"{r['first_loss']:.4f}",
                "final loss": f"{r['final_loss']:.4f}",
                "d final": fmt(r["final_loss_diff"], "+.2e"),
                "last mean": f"{r['last_mean_loss']:.4f}",
                "d mean": fmt(r["last_mean_loss_diff"], "+.2e"),
                "other": fmt(r["other_cpu"], ".0%"),
                "prog MB": megabytes(r["memory"]["program_bytes"]),
                "dev MB": megabytes(r["memory"]["device_peak_bytes"]),
            }
            for r in rows
        ],
        skipped="precision",
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=100, help="training steps compared with float32")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/precision_bench.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds on a CPU")
    args = parser.parse_args(argv)

    preset = SMOKE if args.smoke else PRESETS["paper"]
    batch_size, steps = (64, 128) if args.smoke else (args.batch_size, args.steps)
    state = init_state(preset)
    reference_n = 256 if args.smoke else 1024
    rows = [
        {
            "precision": p,
            **skip_on_oom(
                bench_precision, replace(preset, batch_size=batch_size, precision=p), state, steps, reference_n
            ),
        }
        for p in PRECISIONS
    ]
    compare(rows)

    print(f"batch {batch_size}, {steps} training steps from the same state and data; d = difference from float32")
    print_table(rows)
    result = {"environment": environment(), "config": replace(preset, batch_size=batch_size).to_dict(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
