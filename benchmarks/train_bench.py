"""Training-step throughput of the paper's encoders, and its FLOP utilisation.

For each batch size (smallest first): compile time of a scanned chunk of steps,
steady-state steps/s and samples/s, analytic model FLOP/s, and that as a fraction
of (a) the best square matmul timed in the same process and precision (the
achievable peak here), (b) a reference matmul timed interleaved with the row's own
calls (the peak at that moment: on a shared CPU another job can halve both), and
(c) the vendor's dense peak for this device and precision, where `VENDOR_PEAKS`
knows the device. Every timing records `other_cpu`, the share of the host's CPU
that other processes took meanwhile. Also the memory of each program, and the time
to build the ground truth (latent model and both rejection-sampled mixers). A batch
that does not fit in memory is recorded as skipped.

    python benchmarks/train_bench.py [--batch-sizes 256 1024 6144 16384]
                                     [--precision float32|tf32|bfloat16] [--out FILE.json] [--smoke]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
from timing import environment, fmt, megabytes, print_table, skip_on_oom, time_call, time_jax  # noqa: E402

from mmident_jax import encoders, train  # noqa: E402
from mmident_jax.config import PRECISIONS, Config, hyper, replace  # noqa: E402
from mmident_jax.presets import PRESETS  # noqa: E402

# Tiny encoders and mixer pool: the same programs as the paper's, in seconds on a CPU.
SMOKE = replace(PRESETS["paper"], encoder_widths=(32, 32), cond_pool=1000)

# Dense (no sparsity) peak FLOP/s per chip from the vendors' datasheets, by
# `jax.devices()[0].device_kind` and `Config.precision`. TPUs publish bfloat16 only
# (XLA runs float32 matmuls there as several bfloat16 passes); V100s have no TF32 or
# bfloat16 units. Unknown devices or precisions get no vendor figure.
_H100_SXM = {"float32": 67e12, "tf32": 494.7e12, "bfloat16": 989.4e12}
_A100 = {"float32": 19.5e12, "tf32": 156e12, "bfloat16": 312e12}
VENDOR_PEAKS = {
    "NVIDIA H100 80GB HBM3": _H100_SXM,
    "NVIDIA H100 PCIe": {"float32": 51e12, "tf32": 378e12, "bfloat16": 756e12},
    "NVIDIA H200": _H100_SXM,
    "NVIDIA A100-SXM4-40GB": _A100,
    "NVIDIA A100-SXM4-80GB": _A100,
    "NVIDIA A100-PCIE-40GB": _A100,
    "NVIDIA A100 80GB PCIe": _A100,
    "Tesla V100-SXM2-16GB": {"float32": 15.7e12},
    "Tesla V100-SXM2-32GB": {"float32": 15.7e12},
    "Tesla V100-PCIE-16GB": {"float32": 14e12},
    "Tesla V100-PCIE-32GB": {"float32": 14e12},
    "TPU v4": {"bfloat16": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12},  # v5e
    "TPU v5e": {"bfloat16": 197e12},
    "TPU v5": {"bfloat16": 459e12},  # v5p
    "TPU v5p": {"bfloat16": 459e12},
}


def vendor_peak(device_kind: str, precision: str) -> float | None:
    """The vendor's dense peak FLOP/s for this device kind and precision, or None if unknown."""
    return VENDOR_PEAKS.get(device_kind, {}).get(precision)


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
    mixing = 2 * 2 * b * cfg.n_mixing_layer * 2 * cfg.n_latent**2
    return encoders + distances + mixing


def reference_matmul(precision: str, n: int):
    """``(fn, args)``: an n x n matmul in `precision`, computed as the encoders compute."""
    dtype, matmul_precision = encoders.PRECISION[precision]
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)

    def product(x, y):
        with jax.default_matmul_precision(matmul_precision):
            return x @ y

    return product, (a, a)


def matmul_peak(precision: str = "float32", max_n: int = 16384, enough_s: float = 0.5, repeats: int = 5) -> dict:
    """FLOP/s of square matmuls in `precision` (as the encoders compute); the best is the reference peak.

    n doubles from 256 until one product takes `enough_s` (so dispatch overhead does not
    count on fast devices) or reaches `max_n`.
    """
    by_size, other, n = {}, {}, 256
    while True:
        fn, args = reference_matmul(precision, n)
        t = time_jax(fn, *args, repeats=repeats)
        by_size[n], other[n] = 2 * n**3 / t["min_s"], t["other_cpu"]
        if t["min_s"] >= enough_s or n >= max_n:
            break
        n *= 2
    best = max(by_size, key=by_size.get)
    return {
        "precision": precision,
        "n": best,
        "flops_per_s": by_size[best],
        "flops_per_s_by_n": by_size,
        "other_cpu_by_n": other,
    }


@functools.cache
def init_state(cfg: Config) -> train.TrainState:
    """The training state before the first step (seed 0), cached per config.

    Batch size and precision do not change it, so one state serves every row.
    """
    return jax.jit(train.make_init(cfg))(jax.random.PRNGKey(0), hyper(cfg))


def train_chunk(cfg: Config, steps: int):
    """``(state, hp) -> (state, losses)``: `steps` optimisation steps in one `lax.scan`."""
    run = train.make_run(cfg)
    return lambda state, hp: run(state, hp, steps)


def chunk_steps(batch_size: int) -> int:
    """Steps per timed call: about the same work per call at every batch size."""
    return max(1, 4096 // batch_size)


def timed_calls(batch_size: int) -> int:
    """Timed calls (repeats) per row: fewer where each call is a long one."""
    return 2 if batch_size >= 4096 else 5


def throughput(cfg: Config, steps: int, t: dict) -> dict:
    """A row of figures from `time_jax`'s figures `t` for calls of `steps` steps at `cfg`.

    Where `t` has a ``reference`` (an n x n matmul timed interleaved, n in ``t["reference_n"]``),
    the row gets ``reference_matmul`` and ``fraction_of_reference``.
    """
    per_step = t["median_s"] / steps
    flops = step_flops(cfg)
    row = {
        "batch_size": cfg.batch_size,
        "precision": cfg.precision,
        "steps_per_call": steps,
        "compile_s": t["compile_s"],
        "step_s": per_step,
        "steps_per_s": 1 / per_step,
        "samples_per_s": cfg.batch_size / per_step,
        "step_flops": flops,
        "flops_per_s": flops / per_step,
        "other_cpu": t["other_cpu"],
        "memory": t["memory"],
        "timing": {k: v for k, v in t.items() if k not in ("memory", "reference", "reference_n")},
    }
    if "reference" in t:
        n, ref = t["reference_n"], t["reference"]
        row["reference_matmul"] = {"n": n, "flops_per_s": 2 * n**3 / ref["median_s"], "timing": ref}
        row["fraction_of_reference"] = row["flops_per_s"] / row["reference_matmul"]["flops_per_s"]
    return row


def bench_batch(cfg: Config, state: train.TrainState, fn=None, reference_n: int = 1024) -> dict:
    """Compile time, steady-state step time, throughput and memory of `cfg` from `state`.

    `fn` is the chunk program to time (default `train_chunk(cfg, chunk_steps(...))`; pass
    your own to reuse its compilation). A `reference_n`-square matmul in the same
    precision is timed interleaved with it (0: none).
    """
    steps = chunk_steps(cfg.batch_size)
    fn = train_chunk(cfg, steps) if fn is None else fn
    reference = reference_matmul(cfg.precision, reference_n) if reference_n else None
    t = time_jax(fn, state, hyper(cfg), repeats=timed_calls(cfg.batch_size), reference=reference)
    return throughput(cfg, steps, {**t, "reference_n": reference_n})


def print_rows(rows: list[dict]) -> None:
    print_table(
        [
            r
            if "skipped" in r
            else {
                "batch": str(r["batch_size"]),
                "compile s": f"{r['compile_s']:.2f}",
                "step s": f"{r['step_s']:.4f}",
                "spread": f"{r['timing']['rel_spread']:.1%}",
                "steps/s": f"{r['steps_per_s']:.2f}",
                "samples/s": f"{r['samples_per_s']:.0f}",
                "GFLOP/s": f"{r['flops_per_s'] / 1e9:.1f}",
                "of peak": f"{r['fraction_of_matmul_peak']:.1%}",
                "of ref": fmt(r.get("fraction_of_reference"), ".1%"),
                "of vendor": fmt(r["fraction_of_vendor_peak"], ".1%"),
                "other": fmt(r["other_cpu"], ".0%"),
                "prog MB": megabytes(r["memory"]["program_bytes"]),
                "dev MB": megabytes(r["memory"]["device_peak_bytes"]),
            }
            for r in rows
        ],
        skipped="batch_size",
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024, 6144, 16384])
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_bench.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds on a CPU")
    args = parser.parse_args(argv)

    preset = SMOKE if args.smoke else PRESETS["paper"]
    base = replace(preset, precision=args.precision)
    batch_sizes = [64] if args.smoke else sorted(args.batch_sizes)
    truth = time_call(jax.jit(lambda k: train.init_truth(k, base)), jax.random.PRNGKey(0), repeats=3)
    state = init_state(preset)
    reference_n = 256 if args.smoke else 1024
    rows = [
        {"batch_size": b, **skip_on_oom(bench_batch, replace(base, batch_size=b), state, reference_n=reference_n)}
        for b in batch_sizes
    ]
    # After the batches, so that each batch's device memory high-water mark is its own.
    peak = matmul_peak(args.precision, max_n=512 if args.smoke else 16384)
    vendor = vendor_peak(jax.devices()[0].device_kind, args.precision)
    for r in rows:
        if "skipped" not in r:
            r["fraction_of_matmul_peak"] = r["flops_per_s"] / peak["flops_per_s"]
            r["fraction_of_vendor_peak"] = None if vendor is None else r["flops_per_s"] / vendor

    print(
        f"matmul peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['n']}x{peak['n']} {args.precision}, "
        f"other processes {fmt(peak['other_cpu_by_n'][peak['n']], '.0%')} of the CPU); "
        f"vendor peak: {'unknown' if vendor is None else f'{vendor / 1e12:.1f} TFLOP/s'}"
    )
    print(
        f"ground truth (latents + 2 mixers): first call {truth['first_s']:.2f} s (with compile), "
        f"then {truth['median_s']:.3f} s"
    )
    print_rows(rows)
    result = {
        "environment": environment(),
        "config": base.to_dict(),
        "matmul_peak": peak,
        "vendor_peak_flops_per_s": vendor,
        "ground_truth": truth,
        "batches": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
