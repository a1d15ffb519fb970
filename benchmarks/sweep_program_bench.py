"""The sweep's own program at paper scale: R runs in one compiled chunk, per precision.

`mmident-jax sweep` trains the runs of one program group (`sweep.group_runs`) together:
``sweep.train_group`` stacks their root keys and per-run numbers (`sweep.stack_runs`),
and `engine.train_runs` builds their initial states with ``engine.init_program(experiment,
batching)`` and calls ``engine.chunk_program(experiment, n, engine.mesh(), batching)``
once per chunk of n steps, the runs sharded over the devices. This script compiles that
same program for R copies of one `table1` setting (the paper's encoders and batch
6144; seeds 0..R-1, as ``train_group`` seeds a group's runs), with the batching the
sweep uses by default ("map", `--batching`), and, for each R and `Config.precision`:

- `compile_s` (compilation alone) and `init_s` (the initialisation's first call, its
  compilation included: ground truth and encoders of R runs);
- steady state: seconds per call of a chunk of `--steps` steps (the state threaded
  through the calls and donated, as in the sweep), so seconds per program step,
  run-steps/s (R runs x steps / s), samples/s;
- model FLOP/s (`train_bench.step_flops` per run, times R) and its fraction of a float32
  matmul peak timed in this process (`train_bench.matmul_peak`), of the peak in the row's
  own precision, and of the vendor's dense peak (`VENDOR_PEAKS`; null on a CPU);
- memory: XLA's plan for the program and the device allocator's high-water mark;
- `speedup_vs_sequential` = R x step_s(R = 1) / step_s(R): the program of R runs against
  one run at a time (about 1 under "map" on one device).

Then the paper's evaluation of one run timed (`evaluation.evaluate`, linear and kernel
probes on 5 batches of validation and test samples for both encoders, and
`evaluation.validation_loss`), after checking that the kernel probe's ~20.6 n² bytes fit
in the memory available; and from all of it the projected wall time of
``mmident-jax sweep --preset table1`` as `group_runs` groups it, per precision.

Rows run in `--plan` order, so a time budget (`--budget-s`) leaves the first ones done,
and the JSON is rewritten after every row. `--profile R:PRECISION` traces one step of
that program (`profile_bench.op_view`).

    python benchmarks/sweep_program_bench.py [--runs 1,3,10,30] [--precisions float32,tf32,bfloat16]
        [--plan float32:1,float32:30,...] [--batching map|vmap] [--steps N] [--eval/--no-eval] [--budget-s S]
        [--profile 10:float32] [--out FILE.json] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

sys.path.insert(0, str(Path(__file__).parent))
from timing import (  # noqa: E402
    _host_available_bytes,
    check_fits,
    environment,
    fmt,
    program_bytes,
    skip_on_oom,
    time_call,
)
from timing import (
    print_table as table,
)
from train_bench import SMOKE, matmul_peak, step_flops  # noqa: E402
from train_bench import VENDOR_PEAKS as _TRAIN_VENDOR_PEAKS

from mmident_jax import engine, evaluation, sweep, twoview  # noqa: E402
from mmident_jax.config import PRECISIONS, Config, replace  # noqa: E402
from mmident_jax.core import Experiment  # noqa: E402
from mmident_jax.presets import Setting, SweepPreset, sweep_preset  # noqa: E402

PRESET = "table1"
SWEEP_BATCHING = sweep.Study._field_defaults["batching"]  # how the sweep batches a device's runs by default
SMOKE_BATCH, SMOKE_STEPS, SMOKE_EVAL_BATCH = 64, 2, 256
EVAL_BATCHES = 5  # the paper's --num-eval-batches
EVAL_PROBES = ("linear", "kernel")
KERNEL_BYTES_PER_N2 = 20.6  # the exact kernel-ridge probe's peak, bytes per n² (`mmident_jax.probes`, kernel.py)

# Dense peak FLOP/s (no 2:4 sparsity) by device kind and precision: `train_bench`'s table plus
# the H200 NVL. NVIDIA H200 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h200):
# H200 SXM: FP32 67 TFLOPS, TF32 Tensor Core 989 TFLOPS*, BF16 Tensor Core 1,979 TFLOPS*;
# H200 NVL: FP32 60, TF32 835*, BF16 1,671* (* with sparsity: dense is half). The SXM
# figures are the H100 SXM's (same GH100 chip and clocks; the H200 changes the memory):
# 66.9 / 494.7 / 989.4 TFLOP/s dense in the Hopper whitepaper, which `train_bench` uses.
VENDOR_PEAKS = {**_TRAIN_VENDOR_PEAKS, "NVIDIA H200 NVL": {"float32": 60e12, "tf32": 417.5e12, "bfloat16": 835.5e12}}


def vendor_peak(device_kind: str, precision: str) -> float | None:
    return VENDOR_PEAKS.get(device_kind, {}).get(precision)


# ---------------------------------------------------------------------------- the program


def group(cfg: Config, runs: int) -> tuple[Experiment, np.ndarray, object]:
    """Seeds 0..runs-1 of `cfg` as `sweep.train_group` trains them: the experiment of their
    program (`twoview.study`, `sweep.group_runs`), their root keys and per-run numbers (`sweep.stack_runs`)."""
    study = twoview.study(SweepPreset((Setting(cfg, ()),), seeds=runs))
    [(program_cfg, group_runs)] = sweep.group_runs(study)
    return study.experiment(program_cfg), *sweep.stack_runs(study, group_runs)


def placed(tree, where: Mesh):
    """Host arrays of R runs on `where` as `engine.train_runs` places them: copies of the last
    run appended up to a multiple of the devices, the run axis sharded."""
    pad = (-len(jax.tree.leaves(tree)[0])) % where.size
    padded = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]), tree)
    return jax.device_put(padded, NamedSharding(where, engine.RUNS))


def program_inputs(host_state, host_hp, runs: int, where: Mesh) -> tuple:
    """`(states, hp, live)` of a chunk program: every run live, placed on `where`."""
    return tuple(placed(x, where) for x in (host_state, host_hp, np.ones(runs, bool)))


def table1_setting(smoke: bool):
    """The setting whose runs are timed: the first `multimodal` one of table1 (the larger encoders)."""
    setting = next(s for s in sweep_preset(PRESET).settings if s.labels()["mechanism"] == "multimodal")
    return setting, shrink(setting.cfg) if smoke else setting.cfg


def shrink(cfg: Config) -> Config:
    """Smoke size: `train_bench.SMOKE`'s encoders and mixer pool, batch 64."""
    return replace(cfg, encoder_widths=SMOKE.encoder_widths, cond_pool=SMOKE.cond_pool, batch_size=SMOKE_BATCH)


def describe_groups(smoke: bool) -> list[dict]:
    """How `sweep.group_runs` groups the table1 preset: runs, settings and the per-run FLOPs of each group."""
    preset = sweep_preset(PRESET)
    out = []
    for g, (cfg, runs) in enumerate(sweep.group_runs(twoview.study(preset))):
        settings = dict.fromkeys(run.labels for run in runs)
        out.append(
            {
                "group": g,
                "runs": len(runs),
                "settings": [dict(labels) for labels in settings],
                "seeds": preset.seeds,
                "train_steps": cfg.train_steps,
                "n_latent": cfg.n_latent,
                "shared_encoder": cfg.shared_encoder,
                "run_step_flops": step_flops(shrink(cfg) if smoke else cfg),
            }
        )
    return out


# --------------------------------------------------------------------------------- memory


def device_memory() -> dict:
    """The default device's allocator figures (bytes), or {} where the backend keeps none (CPU)."""
    stats = jax.devices()[0].memory_stats()
    return dict(stats) if stats else {}


def available_bytes() -> int | None:
    """Memory a new computation can still get: the device allocator's limit minus what is in use;
    the host's MemAvailable on a CPU; None where unknown."""
    stats = device_memory()
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return _host_available_bytes() if jax.default_backend() == "cpu" else None


# ----------------------------------------------------------------------------------- rows


class Runs:
    """The experiment of R runs of a config, and their initial stacked states, made once per R
    (host copies: every row gets fresh device buffers)."""

    def __init__(self, batching: str):
        self.batching, self.cache = batching, {}

    def get(self, cfg: Config, runs: int):
        """`(experiment, host states, host per-run numbers, init_s)` of seeds 0..runs-1 of `cfg`."""
        experiment, keys, hp = group(cfg, runs)
        init = engine.init_program(experiment, self.batching)
        shapes = jax.eval_shape(init, keys, hp)
        hit = self.cache.get(runs)
        if (
            hit is None
            or jax.tree.structure(hit[0]) != jax.tree.structure(shapes)
            or any(np.shape(a) != b.shape for a, b in zip(jax.tree.leaves(hit[0]), jax.tree.leaves(shapes)))
        ):
            start = time.perf_counter()
            state = jax.device_get(init(keys, hp))  # as train_runs: built on one device, then placed
            hit = self.cache[runs] = (state, hp, time.perf_counter() - start)
        return (experiment, *hit)


def bench_row(cfg: Config, runs: int, steps: int, repeats: int, initial, batching: str) -> tuple[dict, object]:
    """Figures of the chunk program of `runs` runs of `cfg` (`Runs.get`'s `initial`), and the state it ends with."""
    experiment, host_state, host_hp, init_s = initial
    where = engine.mesh()
    state, *args = program_inputs(host_state, host_hp, runs, where)  # args: (hp, live)
    peak_before = device_memory().get("peak_bytes_in_use")
    start = time.perf_counter()
    compiled = engine.chunk_program(experiment, steps, where, batching).lower(state, *args).compile()
    compile_s = time.perf_counter() - start
    check_fits(compiled)
    held = {"state": state}

    def call():  # the state goes through the chunks as in the sweep (its buffers are donated)
        held["state"], losses = compiled(held["state"], *args)
        held["losses"] = losses
        return held["state"], losses

    t = time_call(call, repeats=repeats, warmup=1)
    losses = np.asarray(held["losses"])[:runs]
    peak_after = device_memory().get("peak_bytes_in_use")
    step_s = t["median_s"] / steps
    run_flops = step_flops(cfg)
    row = {
        "precision": cfg.precision,
        "runs": runs,
        "batching": batching,
        "steps_per_call": steps,
        "compile_s": compile_s,
        "init_s": init_s,
        "step_s": step_s,
        "run_step_s": step_s / runs,
        "run_steps_per_s": runs / step_s,
        "samples_per_s": runs * cfg.batch_size / step_s,
        "run_step_flops": run_flops,
        "step_flops": runs * run_flops,
        "flops_per_s": runs * run_flops / step_s,
        "other_cpu": t["other_cpu"],
        "final_mean_loss": float(losses[:, -1].mean()),
        "finite": bool(np.all(np.isfinite(losses))),
        "memory": {
            "program_bytes": program_bytes(compiled),
            "device_peak_bytes": peak_after,
            "device_peak_is_own": None if peak_after is None else bool(peak_after > (peak_before or 0)),
        },
        "timing": t,
    }
    return row, held["state"]


def add_fractions(row: dict, peaks: dict, device_kind: str) -> None:
    """Fractions of the float32 matmul peak, of the row's own precision's peak, and of the vendor's."""
    f32 = peaks.get("float32")
    own = peaks.get(row["precision"])
    vendor = vendor_peak(device_kind, row["precision"])
    row["fraction_of_fp32_matmul_peak"] = row["flops_per_s"] / f32["flops_per_s"] if f32 else None
    row["fraction_of_matmul_peak"] = row["flops_per_s"] / own["flops_per_s"] if own else None
    row["vendor_peak_flops_per_s"] = vendor
    row["fraction_of_vendor_peak"] = None if vendor is None else row["flops_per_s"] / vendor


def add_speedups(rows: list[dict]) -> None:
    """`speedup_vs_sequential` = R x step_s(R = 1) / step_s(R), where R = 1 of that precision was timed."""
    single = {r["precision"]: r["step_s"] for r in rows if "step_s" in r and r["runs"] == 1}
    for r in rows:
        if "step_s" in r:
            one = single.get(r["precision"])
            r["speedup_vs_sequential"] = None if one is None else r["runs"] * one / r["step_s"]


# ----------------------------------------------------------------------------- evaluation


def eval_memory_needed(n: int) -> int:
    return int(KERNEL_BYTES_PER_N2 * n * n)


def bench_evaluation(state, cfg: Config, batch_size: int, warmup: bool = True) -> dict:
    """Time `evaluation.evaluate` (linear + kernel, 5 batches) and `validation_loss` on one run's state.

    A first call (compilation included), then the timed one; without `warmup` one call
    only, which is then both (`steady_includes_compile`).
    """
    n = EVAL_BATCHES * batch_size
    needed, available = eval_memory_needed(n), available_bytes()
    info = {
        "n": n,
        "num_batches": EVAL_BATCHES,
        "batch_size": batch_size,
        "probes": list(EVAL_PROBES),
        "memory_needed_bytes": needed,
        "memory_available_bytes": available,
    }
    if available is not None and needed > available:
        return {
            **info,
            "skipped": f"the kernel probe at n = {n} needs ~{needed / 2**30:.1f} GiB "
            f"({KERNEL_BYTES_PER_N2} n² bytes), {available / 2**30:.1f} GiB available",
        }
    t = time_call(
        lambda: evaluation.evaluate(state, cfg, probes=EVAL_PROBES, num_batches=EVAL_BATCHES, batch_size=batch_size),
        repeats=1,
        warmup=int(warmup),
    )
    v = time_call(lambda: evaluation.validation_loss(state, cfg), repeats=1, warmup=int(warmup))
    return {
        **info,
        "first_s": t["first_s"],
        "steady_s": t["median_s"],
        "validation_loss_first_s": v["first_s"],
        "validation_loss_s": v["median_s"],
        "run_s": t["median_s"] + v["median_s"],
        "steady_includes_compile": not warmup,
        "device_peak_bytes": device_memory().get("peak_bytes_in_use"),
        "timing": t,
    }


# ----------------------------------------------------------------------------- projection


def estimate(points: dict[int, float], runs: int) -> tuple[float, str]:
    """A figure at `runs` from figures measured at other R: exact, piecewise linear in R, or
    linear extrapolation from the two nearest measured R; from one R, proportional to R."""
    if runs in points:
        return points[runs], "measured"
    xs = sorted(points)
    if len(xs) == 1:
        return points[xs[0]] * runs / xs[0], "proportional"
    if xs[0] < runs < xs[-1]:
        return float(np.interp(runs, xs, [points[x] for x in xs])), "interpolated"
    a, b = (xs[0], xs[1]) if runs < xs[0] else (xs[-2], xs[-1])
    return points[a] + (points[b] - points[a]) * (runs - a) / (b - a), "extrapolated"


def project(rows: list[dict], groups: list[dict], evaluation_figures: dict | None) -> dict:
    """Projected wall time of `mmident-jax sweep --preset table1` per precision, and the best.

    Training: each group's `train_steps` x step_s(R = its runs) (timed config: the
    multimodal encoders, which also stand for the original mechanism's smaller ones, so
    this is an upper bound; `train_s_flop_scaled` scales each group by its per-run FLOPs
    instead); plus, per group, its initialisation and two compilations (the
    `log_steps` chunk and the last one-step chunk). Evaluation: runs x (evaluate +
    validation_loss) plus one compilation per setting. Checkpoint writes are not counted.
    """
    preset = sweep_preset(PRESET)
    n_runs = sum(g["runs"] for g in groups)
    ev = evaluation_figures if evaluation_figures and "steady_s" in evaluation_figures else None
    eval_s = (
        None
        if ev is None
        else (
            n_runs * ev["run_s"]
            + len(preset.settings)
            * max(0.0, ev["first_s"] - ev["steady_s"] + ev["validation_loss_first_s"] - ev["validation_loss_s"])
        )
    )
    out = {
        "preset": PRESET,
        "settings": len(preset.settings),
        "seeds": preset.seeds,
        "runs": n_runs,
        "group_runs": [g["runs"] for g in groups],
        "train_steps": groups[0]["train_steps"],
        "evaluation_s": eval_s,
        "includes_evaluation": eval_s is not None,
        "by_precision": {},
    }
    for precision in dict.fromkeys(r["precision"] for r in rows):
        done = [r for r in rows if r["precision"] == precision and "step_s" in r]
        if not done:
            continue
        step = {r["runs"]: r["step_s"] for r in done}
        timed_run_flops = done[0]["run_step_flops"]
        per_group, train_s, scaled_s, overhead_s = [], 0.0, 0.0, 0.0
        for g in groups:
            s, source = estimate(step, g["runs"])
            compile_s, _ = estimate({r["runs"]: r["compile_s"] for r in done}, g["runs"])
            init_s, _ = estimate({r["runs"]: r["init_s"] for r in done}, g["runs"])
            per_group.append({"group": g["group"], "runs": g["runs"], "step_s": s, "source": source})
            train_s += g["train_steps"] * s
            scaled_s += g["train_steps"] * s * g["run_step_flops"] / timed_run_flops
            overhead_s += 2 * compile_s + init_s
        total = train_s + overhead_s + (eval_s or 0.0)
        entry = {
            "groups": per_group,
            "train_s": train_s,
            "train_s_flop_scaled": scaled_s,
            "compile_and_init_s": overhead_s,
            "wall_s": total,
            "wall_h": total / 3600,
        }
        if n_runs in step:  # every run in one program (needs one program key: R copies of one setting)
            entry["one_program_train_s"] = out["train_steps"] * step[n_runs]
        if 1 in step:  # one run at a time
            entry["sequential_train_s"] = n_runs * out["train_steps"] * step[1]
            entry["speedup_grouped_vs_sequential"] = entry["sequential_train_s"] / train_s
            if n_runs in step:
                entry["speedup_one_program_vs_sequential"] = n_runs * step[1] / step[n_runs]
        out["by_precision"][precision] = entry
    if out["by_precision"]:
        best = min(out["by_precision"], key=lambda p: out["by_precision"][p]["wall_s"])
        out["best"] = {"precision": best, **{k: out["by_precision"][best][k] for k in ("wall_s", "wall_h")}}
    return out


# -------------------------------------------------------------------------------- profile


def trace_summary(compiled, state, args, top: int = 25, keep: Path | None = None) -> tuple[dict, object]:
    """One call of `compiled` under `jax.profiler.trace`: busy time and event count of every traced
    line, and the device's kernels (GPU/TPU planes): how many ran, their total time, the
    longest by name, and how many took under 10 µs (launch-bound work). Returns the summary
    and the state the call produced. With `keep`, the raw trace is copied there if <= 15 MiB.
    """
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with jax.profiler.trace(tmp):
                start = time.perf_counter()
                state, _ = jax.block_until_ready(compiled(state, *args))
                wall = time.perf_counter() - start
            [path] = Path(tmp).rglob("*.xplane.pb")
            if keep is not None and path.stat().st_size <= 15 * 2**20:
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, keep)
            data = jax.profiler.ProfileData.from_file(str(path))
            lines, kernels, names = [], [], {}
            for plane in data.planes:
                device = plane.name.startswith("/device:") and "CPU" not in plane.name
                for line in plane.lines:
                    events = list(line.events)
                    if not events:
                        continue
                    lines.append(
                        {
                            "plane": plane.name,
                            "line": line.name,
                            "events": len(events),
                            "busy_s": sum(e.duration_ns for e in events) / 1e9,
                        }
                    )
                    if device:
                        for e in events:
                            kernels.append(e.duration_ns / 1e9)
                            names[e.name] = names.get(e.name, 0.0) + e.duration_ns / 1e9
    except Exception as error:  # a busy or absent profiler must not cost the other figures
        return {"error": f"{type(error).__name__}: {error}"}, state
    lines.sort(key=lambda x: -x["busy_s"])
    summary = {"wall_s": wall, "lines": lines[:top]}
    if kernels:
        total = sum(kernels)
        summary["device_kernels"] = {
            "count": len(kernels),
            "total_s": total,
            "under_10us": sum(k < 1e-5 for k in kernels),
            "under_10us_s": sum(k for k in kernels if k < 1e-5),
            "top": [
                {"name": n[:160], "s": t, "share": t / total}
                for n, t in sorted(names.items(), key=lambda kv: -kv[1])[:top]
            ],
        }
    return summary, state


def profile_program(cfg: Config, runs: int, initial, batching: str, top: int = 25, keep: Path | None = None) -> dict:
    """One step of the `runs`-run program after a warm-up call: the events of its trace (`trace_summary`)
    and XLA's per-op view by source (`profile_bench.op_view`), each from its own call."""
    from profile_bench import op_view

    experiment, host_state, host_hp, _ = initial
    where = engine.mesh()
    state, *args = program_inputs(host_state, host_hp, runs, where)  # args: (hp, live)
    compiled = engine.chunk_program(experiment, 1, where, batching).lower(state, *args).compile()
    state, _ = jax.block_until_ready(compiled(state, *args))
    trace, state = trace_summary(compiled, state, args, top=top, keep=keep)
    view = op_view(compiled, (state, *args), top=top)
    return {
        "runs": runs,
        "precision": cfg.precision,
        "batching": batching,
        "steps": 1,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "run_step_flops": step_flops(cfg),
        "trace": trace,
        **view,
    }


def print_profile(p: dict) -> None:
    print(
        f"\none step of the R = {p['runs']} {p['precision']} program, batching {p['batching']} "
        f"(XLA_FLAGS={p['xla_flags']!r})"
    )
    trace = p["trace"]
    if "error" in trace:
        print(f"trace: {trace['error']}")
    else:
        print(f"trace: wall {trace['wall_s'] * 1e3:.2f} ms; busiest lines:")
        for x in trace["lines"][:8]:
            print(f"  {x['plane'][:30]:<30} {x['line'][:30]:<30} {x['events']:>7} events {x['busy_s'] * 1e3:>9.2f} ms")
        k = trace.get("device_kernels")
        if k:
            print(
                f"device kernels: {k['count']} in {k['total_s'] * 1e3:.2f} ms; {k['under_10us']} under 10 µs "
                f"({k['under_10us_s'] * 1e3:.2f} ms); longest:"
            )
            for x in k["top"]:
                print(f"  {x['name'][:72]:<72} {x['s'] * 1e3:>9.3f} ms {x['share']:>6.1%}")
    if "error" in p:
        print(f"op view: {p['error']}")
        return
    print(
        f"XLA op view ({p['threads']} threads/streams, wall {p['wall_s'] * 1e3:.2f} ms, "
        f"op time {p['op_s'] * 1e3:.2f} ms):"
    )
    for c in p["by_category"]:
        print(f"  {c['name']:<26} {c['op_s'] * 1e3:>9.3f} ms {c['share']:>6.1%}")
    print("  by op kind:")
    for c in p["by_op_kind"]:
        print(f"  {c['name'][:40]:<40} {c['op_s'] * 1e3:>9.3f} ms {c['share']:>6.1%}")
    print("  top sources:")
    for c in p["top_sources"]:
        print(f"  {c['name'][:72]:<72} {c['op_s'] * 1e3:>9.3f} ms {c['share']:>6.1%}")


# ---------------------------------------------------------------------------------- output


def print_rows(rows: list[dict]) -> None:
    mb = lambda b: fmt(None if b is None else b / 2**20, ".0f")
    table(
        [
            {**r, "skipped": f"R={r['runs']}: {r['skipped']}"}
            if "skipped" in r
            else {
                "prec": r["precision"],
                "R": str(r["runs"]),
                "compile s": f"{r['compile_s']:.2f}",
                "init s": f"{r['init_s']:.2f}",
                "step s": f"{r['step_s']:.5f}",
                "spread": f"{r['timing']['rel_spread']:.1%}",
                "run-steps/s": f"{r['run_steps_per_s']:.2f}",
                "samples/s": f"{r['samples_per_s']:.0f}",
                "TFLOP/s": f"{r['flops_per_s'] / 1e12:.3f}",
                "of fp32": fmt(r.get("fraction_of_fp32_matmul_peak"), ".1%"),
                "of vendor": fmt(r.get("fraction_of_vendor_peak"), ".1%"),
                "vs seq": fmt(r.get("speedup_vs_sequential"), ".2f"),
                "prog MB": mb(r["memory"]["program_bytes"]),
                "dev MB": mb(r["memory"]["device_peak_bytes"]),
            }
            for r in rows
        ],
        skipped="precision",
    )


def print_projection(p: dict) -> None:
    ev = "not included" if p["evaluation_s"] is None else f"{p['evaluation_s'] / 3600:.2f} h"
    print(
        f"\nprojected `mmident-jax sweep --preset {p['preset']}`: {p['runs']} runs x {p['train_steps']:,} steps "
        f"in groups of {p['group_runs']}; evaluation {ev}"
    )
    for precision, e in p["by_precision"].items():
        extra = ""
        if "sequential_train_s" in e:
            extra += f", one run at a time {e['sequential_train_s'] / 3600:.1f} h"
        if "one_program_train_s" in e:
            extra += f", all {p['runs']} in one program {e['one_program_train_s'] / 3600:.1f} h"
        if "speedup_one_program_vs_sequential" in e:
            extra += f" (x{e['speedup_one_program_vs_sequential']:.2f} over one at a time)"
        print(
            f"  {precision:>8}: {e['wall_h']:.2f} h (training {e['train_s'] / 3600:.2f} h, FLOP-scaled "
            f"{e['train_s_flop_scaled'] / 3600:.2f} h; compile + init {e['compile_and_init_s']:.0f} s{extra})"
        )
    if "best" in p:
        print(f"  best: {p['best']['precision']}, {p['best']['wall_h']:.2f} h")


def write_json(path: Path, result: dict) -> None:
    """Atomically (a run killed mid-write keeps the previous file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(result, f, indent=2, default=str)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


def parse_plan(text: str) -> list[tuple[str, int]]:
    plan = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        precision, runs = item.split(":")
        if precision not in PRECISIONS:
            raise SystemExit(f"--plan: unknown precision {precision!r} (one of {', '.join(PRECISIONS)})")
        plan.append((precision, int(runs)))
    return plan


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", default=None, help="R values, comma-separated (default 1,3,10,30; 1,3 on a CPU and in smoke runs)"
    )
    parser.add_argument(
        "--precisions",
        default=None,
        help="comma-separated (default float32,tf32,bfloat16; float32 on a CPU, float32,bfloat16 in smoke runs)",
    )
    parser.add_argument(
        "--plan",
        default=None,
        help="PRECISION:R,... in the order to run them (overrides --runs/--precisions; '' for none)",
    )
    parser.add_argument(
        "--batching",
        choices=engine.BATCHING,
        default=SWEEP_BATCHING,
        help=f"how each device computes its runs (default {SWEEP_BATCHING!r}, as the sweep)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"steps per timed chunk (default 10; 1 on a CPU; {SMOKE_STEPS} in smoke runs)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks per row (after one warm-up)")
    parser.add_argument(
        "--eval",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time the evaluation of one run (default: on, except outside smoke runs on a CPU, "
        "where n = 20,480 takes tens of minutes)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="skip rows that would end later than this many seconds after the start (minus --eval-reserve-s)",
    )
    parser.add_argument(
        "--eval-reserve-s",
        type=float,
        default=None,
        help="seconds of the budget kept for the evaluation (default 120; 0 in smoke runs)",
    )
    parser.add_argument(
        "--profile",
        default=None,
        metavar="R:PRECISION",
        help="trace one step of that program and add its op view (e.g. 10:float32)",
    )
    parser.add_argument("--profile-text", type=Path, default=None, help="also write the profile's tables here")
    parser.add_argument(
        "--keep-trace",
        type=Path,
        default=None,
        help="copy the profile's raw trace (.xplane.pb) here if it is at most 15 MiB",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file (default benchmarks/results/sweep_program_<backend>[_smoke].json)",
    )
    parser.add_argument(
        "--eval-batch-size",
        type=int,
        default=None,
        help=f"samples per evaluation batch (default {evaluation.BATCH_SIZE}; {SMOKE_EVAL_BATCH} in smoke runs)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds on a CPU")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    backend = jax.default_backend()
    on_cpu_full = backend == "cpu" and not args.smoke
    out = args.out or Path(f"benchmarks/results/sweep_program_{backend}{'_smoke' if args.smoke else ''}.json")
    small = on_cpu_full or args.smoke  # each program takes seconds to compile on a CPU, even at smoke size
    runs = [int(r) for r in (args.runs or ("1,3" if small else "1,3,10,30")).split(",")]
    precisions = (
        args.precisions or ("float32,bfloat16" if args.smoke else "float32" if on_cpu_full else ",".join(PRECISIONS))
    ).split(",")
    plan = (
        parse_plan(args.plan)
        if args.plan is not None
        else parse_plan(",".join(f"{p}:{r}" for p in precisions for r in runs))
    )
    steps = args.steps or (SMOKE_STEPS if args.smoke else 1 if backend == "cpu" else 10)
    do_eval = args.eval if args.eval is not None else not on_cpu_full
    reserve = (
        0.0
        if not do_eval
        else (args.eval_reserve_s if args.eval_reserve_s is not None else 0.0 if args.smoke else 120.0)
    )
    eval_batch = args.eval_batch_size or (SMOKE_EVAL_BATCH if args.smoke else evaluation.BATCH_SIZE)
    setting, base = table1_setting(args.smoke)
    device_kind = jax.devices()[0].device_kind
    groups = describe_groups(args.smoke)

    result = {
        "environment": environment(),
        "smoke": args.smoke,
        "config": base.to_dict(),
        "timed_setting": setting.labels(),
        "args": {
            "plan": [f"{p}:{r}" for p, r in plan],
            "batching": args.batching,
            "steps_per_call": steps,
            "repeats": args.repeats,
            "eval": do_eval,
            "budget_s": args.budget_s,
            "eval_reserve_s": reserve,
        },
        "table1_groups": groups,
        "vendor_peaks_flops_per_s": {p: vendor_peak(device_kind, p) for p in PRECISIONS},
        "matmul_peaks": {},
        "rows": [],
        "evaluation": None,
        "projection": None,
    }

    def save():
        add_speedups(result["rows"])
        result["projection"] = project(result["rows"], groups, result["evaluation"])
        result["elapsed_s"] = time.perf_counter() - start
        write_json(out, result)

    print(
        f"sweep program: {setting.labels()} x R seeds, batch {base.batch_size}, widths {base.widths}, "
        f"{steps} steps per chunk, batching {args.batching}; table1 groups (runs): {[g['runs'] for g in groups]}",
        flush=True,
    )
    peak_max_n = 512 if args.smoke else 16384
    peaks = result["matmul_peaks"]
    if plan:
        peaks["float32"] = matmul_peak("float32", max_n=peak_max_n)
    initial, eval_state, done_s = Runs(args.batching), None, []
    for precision, r in plan:
        label = {"precision": precision, "runs": r, "batching": args.batching}
        if args.budget_s is not None:
            elapsed = time.perf_counter() - start
            timed_runs = max((x["runs"] for x in result["rows"] if "step_s" in x), default=1)
            guess = max(done_s, default=0.0) * max(1.0, r / timed_runs)  # the longest row so far, scaled to R
            if elapsed + guess > args.budget_s - reserve:
                result["rows"].append(
                    {
                        **label,
                        "skipped": f"time budget ({elapsed:.0f} s used, this row "
                        f"~{guess:.0f} s, {args.budget_s:.0f} s budget)",
                    }
                )
                print(f"{precision} R={r}: skipped (time budget)", flush=True)
                save()
                continue
        if precision not in peaks:
            peaks[precision] = matmul_peak(precision, max_n=peak_max_n)
        cfg = replace(base, precision=precision)
        row_start = time.perf_counter()
        print(f"{precision} R={r} ...", end=" ", flush=True)
        holder = {}

        def one(cfg=cfg, r=r):
            row, holder["state"] = bench_row(cfg, r, steps, args.repeats, initial.get(cfg, r), args.batching)
            return row

        row = {**label, **skip_on_oom(one)}
        if "skipped" not in row:
            add_fractions(row, peaks, device_kind)
            if eval_state is None or (precision == "float32" and eval_state[1].precision != "float32"):
                eval_state = (jax.tree.map(lambda x: x[0], holder["state"]), cfg)
            print(f"{row['step_s']:.5f} s/step, compile {row['compile_s']:.1f} s", flush=True)
        else:
            print(f"skipped: {row['skipped']}", flush=True)
        holder.clear()
        done_s.append(time.perf_counter() - row_start)
        result["rows"].append(row)
        save()
    initial.cache.clear()

    if do_eval and plan:
        if eval_state is None:
            result["evaluation"] = {"skipped": "no trained state (every row was skipped)"}
        else:
            print("evaluation of one run ...", end=" ", flush=True)
            result["evaluation"] = {
                "precision": eval_state[1].precision,
                **skip_on_oom(bench_evaluation, eval_state[0], eval_state[1], eval_batch, warmup=not args.smoke),
            }
            e = result["evaluation"]
            print(
                f"skipped: {e['skipped']}"
                if "skipped" in e
                else f"{e['steady_s']:.2f} s (first {e['first_s']:.2f} s), "
                f"validation loss {e['validation_loss_s']:.3f} s",
                flush=True,
            )
    elif plan:
        result["evaluation"] = {
            "skipped": "--no-eval"
            if args.eval is False
            else "CPU: the paper's evaluation (n = 20,480) runs in smoke size only here (--eval forces it)"
        }
    eval_state = None
    save()

    if args.profile:
        r_text, precision = args.profile.split(":")
        cfg = replace(base, precision=precision)
        print(f"profile {precision} R={r_text} ...", flush=True)
        result["profile"] = {
            "runs": int(r_text),
            "precision": precision,
            **skip_on_oom(
                profile_program,
                cfg,
                int(r_text),
                Runs(args.batching).get(cfg, int(r_text)),
                args.batching,
                keep=args.keep_trace,
            ),
        }
        save()

    print()
    if result["rows"]:
        print_rows(result["rows"])
    if result["evaluation"] and "steady_s" in result["evaluation"]:
        e = result["evaluation"]
        print(
            f"evaluation of one run (n = {e['n']}, {'+'.join(e['probes'])}, both encoders): {e['steady_s']:.2f} s "
            f"(first call {e['first_s']:.2f} s), validation loss {e['validation_loss_s']:.3f} s"
        )
    elif result["evaluation"]:
        print(f"evaluation: skipped: {result['evaluation']['skipped']}")
    if result["projection"]["by_precision"]:
        print_projection(result["projection"])
    if "profile" in result:
        p = result["profile"]
        if "skipped" in p:
            print(f"profile: skipped: {p['skipped']}")
        else:
            print_profile(p)
            if args.profile_text:
                text = io.StringIO()
                with contextlib.redirect_stdout(text):
                    print_profile(p)
                args.profile_text.parent.mkdir(parents=True, exist_ok=True)
                args.profile_text.write_text(text.getvalue())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
