"""The engine's two batchings side by side: "map" (a device's runs one after another) and "vmap" (batched).

For the two-view `quick` preset (`--smoke`: `train_bench.SMOKE` at batch 64) and R runs
(seeds 0..R-1; R = 1, 3, 6, or 1, 3 with --smoke), the chunk program the sweep trains
them with, ``engine.chunk_program(experiment, n, engine.mesh(), batching)`` of n =
`--steps` steps (100; 20 with --smoke) on states from ``engine.init_program(experiment,
batching)``, built as `sweep.train_group` builds them (`sweep_program_bench.group`),
under each batching, in one process:

- `compile_s`: lower + compile of each program;
- steady state: both programs timed in the same rounds (`timing.time_interleaved`: one
  warm-up call each, then `--repeats` rounds; the state threaded through the calls and
  donated, as in the sweep): `chunk_s` (median seconds per call), `run_steps_per_s` =
  R x n / chunk_s, and per R `map_over_vmap` = map's run_steps_per_s / vmap's (above 1:
  "map" is faster);
- `equal_alone`: whether run 0's parameters after those calls are bitwise equal to
  those of run 0 trained alone (R = 1) under "map", and `max_abs_diff_alone`. "map"
  computes each run as the same program as alone, so it should be; "vmap" need not.

    python benchmarks/batching_bench.py [--runs 1 3 6] [--steps N] [--repeats N] [--out FILE.json] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sweep_program_bench import group, program_inputs  # noqa: E402
from timing import check_fits, environment, fmt, program_bytes, skip_on_oom, time_interleaved  # noqa: E402
from timing import print_table as table  # noqa: E402
from train_bench import SMOKE  # noqa: E402

from mmident_jax import engine  # noqa: E402
from mmident_jax.config import Config, replace  # noqa: E402
from mmident_jax.presets import PRESETS  # noqa: E402

REFERENCE = "map"  # run 0 alone (R = 1) under this batching is what every row is compared with


def threaded(compiled, state, args):
    """``(call, held)``: each `call()` runs `compiled` on the state the previous call returned
    (its buffers donated, as in the sweep); ``held["state"]`` is the latest."""
    held = {"state": state}

    def call():
        held["state"], losses = compiled(held["state"], *args)
        return held["state"], losses

    return call, held


def difference(a, b) -> tuple[bool, float]:
    """Whether two parameter trees are bitwise equal, and their largest absolute difference."""
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    equal = all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in pairs)
    return equal, max(float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in pairs)


def bench_runs(cfg: Config, runs: int, steps: int, repeats: int, alone) -> tuple[dict, object]:
    """The row of `runs` runs under both batchings, and run 0's final parameters under `REFERENCE`.

    `alone` is run 0's final parameters trained alone (None while that is the row being made).
    """
    where = engine.mesh()
    experiment, keys, hp = group(cfg, runs)
    calls, held, figures = {}, {}, {}
    for batching in engine.BATCHING:
        host_state = jax.device_get(engine.init_program(experiment, batching)(keys, hp))
        state, *args = program_inputs(host_state, hp, runs, where)
        start = time.perf_counter()
        compiled = engine.chunk_program(experiment, steps, where, batching).lower(state, *args).compile()
        figures[batching] = {"compile_s": time.perf_counter() - start, "program_bytes": program_bytes(compiled)}
        check_fits(compiled)
        call, held[batching] = threaded(compiled, state, args)
        calls[batching] = (call, ())
    timing = time_interleaved(calls, repeats=repeats)
    final = {b: jax.device_get(jax.tree.map(lambda x: x[0], held[b]["state"].params)) for b in engine.BATCHING}
    alone = final[REFERENCE] if alone is None else alone
    for batching, t in timing.items():
        equal, diff = difference(final[batching], alone)
        figures[batching].update(
            chunk_s=t["median_s"],
            run_steps_per_s=runs * steps / t["median_s"],
            equal_alone=equal,
            max_abs_diff_alone=diff,
            timing=t,
        )
    row = {
        "runs": runs,
        "steps_per_call": steps,
        "steps_trained": (1 + repeats) * steps,
        **figures,
        "map_over_vmap": figures["map"]["run_steps_per_s"] / figures["vmap"]["run_steps_per_s"],
        "other_cpu": timing["map"]["other_cpu"],
    }
    return row, final[REFERENCE]


def print_rows(rows: list[dict]) -> None:
    table(
        [
            r
            if "skipped" in r
            else {
                "R": str(r["runs"]),
                "compile s (map)": f"{r['map']['compile_s']:.2f}",
                "compile s (vmap)": f"{r['vmap']['compile_s']:.2f}",
                "run-steps/s (map)": f"{r['map']['run_steps_per_s']:.1f}",
                "run-steps/s (vmap)": f"{r['vmap']['run_steps_per_s']:.1f}",
                "map/vmap": f"{r['map_over_vmap']:.2f}",
                "spread (map)": f"{r['map']['timing']['rel_spread']:.1%}",
                "spread (vmap)": f"{r['vmap']['timing']['rel_spread']:.1%}",
                "bitwise = alone (map)": str(r["map"]["equal_alone"]),
                "bitwise = alone (vmap)": str(r["vmap"]["equal_alone"]),
                "other": fmt(r["other_cpu"], ".0%"),
            }
            for r in rows
        ],
        skipped="runs",
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        type=int,
        nargs="+",
        default=None,
        help="run counts R (default 1 3 6; 1 3 with --smoke); R = 1 is always timed",
    )
    parser.add_argument("--steps", type=int, default=None, help="steps per chunk (default 100; 20 with --smoke)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (after one warm-up call each)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/batching_bench.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds on a CPU")
    args = parser.parse_args(argv)

    cfg = replace(SMOKE, batch_size=64) if args.smoke else PRESETS["quick"]
    run_counts = sorted({1, *(args.runs or ([1, 3] if args.smoke else [1, 3, 6]))})
    steps = args.steps or (20 if args.smoke else 100)
    print(
        f"batching: {'smoke' if args.smoke else 'quick'} config, batch {cfg.batch_size}, widths {cfg.widths}, "
        f"{steps} steps per chunk, {args.repeats} rounds, {engine.mesh().size} device(s)",
        flush=True,
    )
    rows, alone, latest = [], None, {}
    for r in run_counts:
        print(f"R={r} ...", end=" ", flush=True)

        def one(r=r, alone=alone):
            row, latest["final"] = bench_runs(cfg, r, steps, args.repeats, alone)
            return row

        if r > 1 and alone is None:
            row = {"runs": r, "skipped": "no run alone (R = 1) to compare with"}
        else:
            row = {"runs": r, **skip_on_oom(one)}
        print(row.get("skipped") or f"map/vmap {row['map_over_vmap']:.2f}", flush=True)
        if r == 1:
            alone = latest.get("final")
        rows.append(row)

    print()
    print_rows(rows)
    result = {
        "environment": environment(),
        "smoke": args.smoke,
        "config": cfg.to_dict(),
        "steps_per_call": steps,
        "repeats": args.repeats,
        "devices": engine.mesh().size,
        "reference": REFERENCE,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
