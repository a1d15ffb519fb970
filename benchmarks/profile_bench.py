"""Where the time of one paper-config train step goes: its pieces, compiled separately, timed side by side.

For each batch size (default 256 and 6144), the pieces of the real step (`train.make_step`,
built from the same library functions) are compiled as separate programs on fixed
inputs and timed round-robin in one process, so that a change in the machine's speed
(other jobs on a shared CPU) hits every piece alike:

- `sample`: the positive and negative latent blocks (`train.data`, 2 x B samples)
- `mix`: both batches joined and mixed by f1 and f2 (`train.observations`, 2B rows each)
- `encode`: both encoders forward on 2B observations each (`encoders.encode`)
- `encode_grad`: the same plus its backward: `value_and_grad` w.r.t. the parameters of
  the dummy loss <h1, g1> + <h2, g2> (fixed random g: the real backward's work)
- `loss`, `loss_grad`: the contrastive loss on fixed codes (`train.objective`), and with
  its gradient w.r.t. the codes
- `update`: clipping, Adam and the parameter update on fixed gradients (`optim.optimizer`
  and `optax.apply_updates`, as `core.make_step` applies them)
- `step`: the whole step (one step, not scanned)

Each piece gets its analytic model FLOPs (matmuls, 2 per multiply-add, counted as
`train_bench.step_flops` counts them), GFLOP/s, share of the step's time, and XLA's
cost analysis (FLOPs including elementwise work, bytes accessed): bytes/FLOP above the
machine balance (bandwidth / matmul peak, both measured in the same rounds) marks a
memory-bound piece (XLA's bytes assume no cache reuse: an upper bound). Also timed in
the same rounds: square matmuls (the peak), every matmul shape the encoders run
(forward X W, input gradient dY Wᵀ, weight gradient Xᵀ dY of each layer, with the rows
of one encoder call: the whole 2B, or `encoders.BLOCK_ROWS` on a CPU), giving the time
the encoders' forward and backward would take if each matmul ran as fast as alone; and
a large elementwise copy (the memory bandwidth). Last, XLA's own per-op view: one step
under `jax.profiler.trace`, each HLO op's time summed by the source it came from (its
metadata's name scope: `sample`, `mix`, `MLP`, `loss`, `update`; `backward` for the
transposed ops).

    python benchmarks/profile_bench.py [--batch-sizes 256 6144] [--repeats N] [--out FILE.json] [--smoke]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).parent))
from timing import check_fits, environment, fmt, skip_on_oom, time_interleaved  # noqa: E402
from train_bench import SMOKE, encoder_flops_per_sample, init_state, step_flops  # noqa: E402

from mmident_jax import encoders, optim, train  # noqa: E402
from mmident_jax.config import Config, hyper, replace  # noqa: E402
from mmident_jax.presets import PRESETS  # noqa: E402

CONTAINERS = ("while", "conditional", "call")  # HLO ops whose traced time spans other ops
PIECES = ("sample", "mix", "encode", "encode_grad", "loss", "loss_grad", "update", "step")
IN_STEP = ("sample", "mix", "encode_grad", "loss_grad", "update")  # the pieces that make up a step


# ---------------------------------------------------------------------------------- FLOPs


def sample_flops(cfg: Config) -> int:
    """Matmul FLOPs of drawing positives and negatives (the covariance factors and B); the rest is RNG."""
    nc, ns, nm = cfg.content_n, cfg.style_n, cfg.modality_n
    return 2 * 2 * cfg.batch_size * (nc * nc + 2 * ns * ns + ns * nc + 2 * nm * nm)


def piece_flops(cfg: Config) -> dict[str, int]:
    """Analytic model FLOPs of each piece; mix + encode_grad + loss_grad = `train_bench.step_flops`."""
    b = cfg.batch_size
    encode = 2 * 2 * b * encoder_flops_per_sample(cfg)
    loss = 2 * 2 * b * b * cfg.encoding_size  # two directions of a (B, d) x (d, B) product
    return {
        "sample": sample_flops(cfg),
        "mix": 2 * 2 * b * cfg.n_mixing_layer * 2 * cfg.n_latent**2,
        "encode": encode,
        "encode_grad": 3 * encode,
        "loss": loss,
        "loss_grad": 3 * loss,
        "update": 0,
        "step": step_flops(cfg),
    }


# --------------------------------------------------------------------------------- pieces


def pieces(cfg: Config, state: train.TrainState) -> dict[str, tuple]:
    """Each piece of the step as ``(fn, args)`` on inputs that the pieces before it produce."""
    hp, b = hyper(cfg), cfg.batch_size

    def mix(truth, positives, negatives):
        both = jax.tree.map(lambda p, n: jnp.concatenate([p, n]), positives, negatives)
        return train.observations(cfg, truth, both)

    def encode(params, x1, x2):
        return encoders.encode(params, cfg, 1, x1), encoders.encode(params, cfg, 2, x2)

    def encode_grad(params, x1, x2, g1, g2):
        def dummy(p):
            h1, h2 = encode(p, x1, x2)
            return jnp.vdot(h1, g1) + jnp.vdot(h2, g2)

        return jax.value_and_grad(dummy)(params)

    def loss(h1, h2, hp):
        return train.objective(cfg, hp, h1, h2, b)

    def update(params, opt_state, grads, hp):
        with jax.named_scope("update"):
            updates, opt_state = optim.optimizer(cfg, hp.lr).update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

    positives, negatives = jax.jit(lambda s, h: train.data(s, cfg, h))(state, hp)
    x1, x2 = jax.jit(mix)(state.truth, positives, negatives)
    h1, h2 = jax.jit(encode)(state.params, x1, x2)
    g1, g2 = (jax.random.normal(jax.random.PRNGKey(i), h.shape, h.dtype) for i, h in enumerate((h1, h2)))
    _, grads = jax.jit(encode_grad)(state.params, x1, x2, g1, g2)
    return {
        "sample": (lambda s, h: train.data(s, cfg, h), (state, hp)),
        "mix": (mix, (state.truth, positives, negatives)),
        "encode": (encode, (state.params, x1, x2)),
        "encode_grad": (encode_grad, (state.params, x1, x2, g1, g2)),
        "loss": (loss, (h1, h2, hp)),
        "loss_grad": (jax.value_and_grad(loss, argnums=(0, 1)), (h1, h2, hp)),
        "update": (update, (state.params, state.opt_state, grads, hp)),
        "step": (train.make_step(cfg), (state, hp)),
    }


def encoder_blocks(rows: int) -> list[tuple[int, int]]:
    """``[(rows per call, calls)]`` in which `encoders.encode` processes `rows` samples on this backend."""
    block = encoders.BLOCK_ROWS.get(jax.default_backend())
    if block is None or rows <= block:
        return [(rows, 1)]
    return [(block, rows // block)] + ([(rows % block, 1)] if rows % block else [])


def encoder_matmuls(cfg: Config) -> list[dict]:
    """The distinct matmul shapes of one encoder's forward and backward over 2B samples, with their counts.

    The rows are those of one call of the encoder (`encoder_blocks`: on a CPU, blocks of
    `encoders.BLOCK_ROWS`). ``kind``: forward X W (m x k @ k x n), input gradient dY Wᵀ
    (not for the first layer), weight gradient Xᵀ dY. ``count`` is per encoder.
    """
    sizes = (cfg.n_latent, *cfg.widths, cfg.encoding_size)
    found = collections.Counter()
    for rows, calls in encoder_blocks(2 * cfg.batch_size):
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            found[("forward", rows, a, b)] += calls
            if i > 0:
                found[("input_grad", rows, b, a)] += calls
            found[("weight_grad", a, rows, b)] += calls
    return [
        {"kind": kind, "m": m, "k": k, "n": n, "count": count, "flops": 2 * m * k * n}
        for (kind, m, k, n), count in found.items()
    ]


def matmul_program(kind: str, m: int, k: int, n: int):
    """``(fn, args)`` computing one matmul of this kind and shape, in the layout the encoders use."""
    key = jax.random.PRNGKey(0)
    if kind == "forward":  # X (m, k) @ W (k, n)
        return jnp.matmul, (jax.random.normal(key, (m, k)), jax.random.normal(key, (k, n)))
    if kind == "input_grad":  # dY (m, k) @ W.T, W (n, k)
        return (lambda dy, w: dy @ w.T), (jax.random.normal(key, (m, k)), jax.random.normal(key, (n, k)))
    # weight_grad: X.T @ dY with X (k, m), dY (k, n)
    return (lambda x, dy: x.T @ dy), (jax.random.normal(key, (k, m)), jax.random.normal(key, (k, n)))


def bandwidth_program(n: int):
    """``(fn, args)`` streaming n float32 in and n out: memory bandwidth = 8 n / time."""
    return (lambda x: x * 2.0 + 1.0), (jnp.ones((n,), jnp.float32),)


# ------------------------------------------------------------------------------ XLA views


def xla_cost(compiled) -> dict:
    """XLA's cost analysis of a compiled program: ``flops`` (elementwise included) and ``bytes`` accessed.

    XLA counts a loop's body once, and every operand of every op as memory traffic (no
    cache reuse): absolute figures undercount looped programs, and bytes/FLOP is an
    upper bound on the traffic each FLOP needs.
    """
    try:
        cost = compiled.cost_analysis()
    except Exception:  # not every backend implements it
        return {"flops": None, "bytes": None}
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    cost = cost or {}
    return {"flops": cost.get("flops"), "bytes": cost.get("bytes accessed")}


def _unwrap(part: str) -> str:
    """``transpose(jvp(MLP))`` -> ``MLP``, ``jit(leaky_relu)`` -> ``leaky_relu``, ``jvp()`` -> ``""``."""
    while (m := re.fullmatch(r"[\w.\-]+\((.*)\)", part)) is not None:
        part = m.group(1)
    return part


def op_sources(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> a readable source ("backward MLP/Dense_3/dot_general") from its metadata."""
    sources = {}
    for m in re.finditer(r"%([\w.\-]+) = .*?metadata=\{op_name=\"([^\"]*)\"", hlo_text):
        parts = m.group(2).split("/")[1:]  # drop jit(<program>)
        backward = any(p.startswith("transpose(") for p in parts)
        label = "/".join(p for p in map(_unwrap, parts) if p and p not in ("body", "closed_call"))
        sources[m.group(1)] = ("backward " if backward else "") + (label or "?")
    return sources


def category(source: str, op: str) -> str:
    """Coarse class of an op: encoder matmul forward/backward, encoder other, loss, mix, sample, update, other."""
    backward = source.startswith("backward ")
    if "MLP" in source:
        if "dot" in source or op.startswith("dot"):
            return "encoder matmul " + ("backward" if backward else "forward")
        return "encoder elementwise"
    for scope in ("loss", "mix", "sample", "update"):
        if re.search(rf"(^|[ /]){scope}(/|$)", source):
            return scope
    return "other"


def op_view(compiled, args, top: int = 15) -> dict:
    """XLA's per-op view of one call: HLO ops' traced time summed by source and by category.

    Ops run concurrently on several threads, so op time adds up to at most threads x
    wall; ``unattributed_s`` is the rest (idle threads, and work XLA hands to Eigen
    asynchronously, e.g. XLA:CPU's plain ``dot`` thunks: only their dispatch is traced).
    """
    sources = op_sources(compiled.as_text())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with jax.profiler.trace(tmp):
                start = time.perf_counter()
                jax.block_until_ready(compiled(*args))
                wall = time.perf_counter() - start
            [path] = Path(tmp).rglob("*.xplane.pb")
            data = jax.profiler.ProfileData.from_file(str(path))
            by_source, by_category, by_kind = (collections.defaultdict(float) for _ in range(3))
            threads = set()
            for plane in data.planes:
                for line in plane.lines:
                    for event in line.events:
                        op = dict(event.stats).get("hlo_op")
                        if op is None:
                            continue
                        seconds = event.duration_ns / 1e9
                        source = sources.get(op, "?")
                        kind = op.rsplit(".", 1)[0]
                        if kind in CONTAINERS:  # their time is their bodies' ops, traced on their own
                            continue
                        threads.add((plane.name, line.name))
                        by_source[f"{source} [{kind}]"] += seconds
                        by_category[category(source, kind)] += seconds
                        by_kind[kind] += seconds
    except Exception as error:  # a profiler that is busy or absent must not cost the other figures
        return {"error": f"{type(error).__name__}: {error}"}
    total = sum(by_source.values())
    if not total:
        return {"error": "no HLO op events in the trace"}

    def ranked(d: dict, n: int | None = None) -> list[dict]:
        items = sorted(d.items(), key=lambda kv: -kv[1])[:n]
        return [{"name": k, "op_s": v, "share": v / total} for k, v in items]

    return {
        "wall_s": wall,
        "threads": len(threads),
        "op_s": total,
        "unattributed_s": max(0.0, len(threads) * wall - total),
        "by_category": ranked(by_category),
        "by_op_kind": ranked(by_kind, top),
        "top_sources": ranked(by_source, top),
    }


# ------------------------------------------------------------------------------- profile


def profile_batch(cfg: Config, state: train.TrainState, repeats: int, squares: tuple[int, ...], stream_n: int) -> dict:
    """Pieces, encoder matmul shapes, square matmuls and bandwidth, all timed in the same rounds."""
    programs, compiled, costs, compile_s = {}, {}, {}, {}
    named = dict(pieces(cfg, state))
    matmuls = encoder_matmuls(cfg)
    for mm in matmuls:
        named[f"matmul {mm['kind']} {mm['m']}x{mm['k']}x{mm['n']}"] = matmul_program(
            mm["kind"], mm["m"], mm["k"], mm["n"]
        )
    for n in squares:
        named[f"square {n}"] = matmul_program("forward", n, n, n)
    named["bandwidth"] = bandwidth_program(stream_n)
    for name, (fn, args) in named.items():
        start = time.perf_counter()
        compiled[name] = jax.jit(fn).lower(*args).compile()
        compile_s[name] = time.perf_counter() - start
        check_fits(compiled[name])
        costs[name] = xla_cost(compiled[name])
        programs[name] = (compiled[name], args)
    t = time_interleaved(programs, repeats=repeats)

    peaks = {n: 2 * n**3 / t[f"square {n}"]["min_s"] for n in squares}
    best = max(peaks, key=peaks.get)
    peak = peaks[best]
    bandwidth = 8 * stream_n / t["bandwidth"]["min_s"]
    balance = bandwidth / peak
    flops = piece_flops(cfg)
    step_s = t["step"]["median_s"]
    rows = []
    for name in PIECES:
        seconds, cost = t[name]["median_s"], costs[name]
        bpf = cost["bytes"] / cost["flops"] if cost["flops"] and cost["bytes"] is not None else None
        rows.append(
            {
                "piece": name,
                "time_s": seconds,
                "share_of_step": seconds / step_s,
                "flops": flops[name],
                "flops_per_s": flops[name] / seconds if flops[name] else None,
                "fraction_of_peak": flops[name] / seconds / peak if flops[name] else None,
                "xla_flops": cost["flops"],
                "xla_bytes": cost["bytes"],
                "bytes_per_flop": bpf,
                "bound": None if bpf is None else ("memory" if bpf > balance else "compute"),
                "compile_s": compile_s[name],
                "timing": t[name],
            }
        )
    for mm in matmuls:
        name = f"matmul {mm['kind']} {mm['m']}x{mm['k']}x{mm['n']}"
        mm.update(
            time_s=t[name]["min_s"],
            flops_per_s=mm["flops"] / t[name]["min_s"],
            fraction_of_peak=mm["flops"] / t[name]["min_s"] / peak,
        )
    n_encoders = 2  # one pass per modality, also with a shared encoder
    forward_s = n_encoders * sum(mm["count"] * mm["time_s"] for mm in matmuls if mm["kind"] == "forward")
    all_s = n_encoders * sum(mm["count"] * mm["time_s"] for mm in matmuls)
    pieces_sum = sum(t[name]["median_s"] for name in IN_STEP)
    return {
        "batch_size": cfg.batch_size,
        "repeats": repeats,
        "other_cpu": t["step"]["other_cpu"],
        "reference": {
            "square_matmul_flops_per_s": {str(n): f for n, f in peaks.items()},
            "peak_n": best,
            "peak_flops_per_s": peak,
            "bandwidth_bytes_per_s": bandwidth,
            "balance_bytes_per_flop": balance,
            "stream_floats": stream_n,
        },
        "step_s": step_s,
        "step_flops": flops["step"],
        "step_flops_per_s": flops["step"] / step_s,
        "step_fraction_of_peak": flops["step"] / step_s / peak,
        "pieces_sum_s": pieces_sum,
        "pieces": rows,
        "encoder_blocks": [list(b) for b in encoder_blocks(2 * cfg.batch_size)],
        "encoder_matmuls": matmuls,
        "encoder_matmul_forward_s": forward_s,
        "encoder_matmul_s": all_s,
        "op_view": op_view(compiled["step"], named["step"][1]),
    }


def print_batch(r: dict) -> None:
    ref = r["reference"]
    print(
        f"\nbatch {r['batch_size']}: step {r['step_s']:.4f} s, {r['step_flops_per_s'] / 1e9:.1f} GFLOP/s = "
        f"{r['step_fraction_of_peak']:.1%} of the matmul peak {ref['peak_flops_per_s'] / 1e9:.1f} GFLOP/s "
        f"(n={ref['peak_n']}); bandwidth {ref['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s, balance "
        f"{ref['balance_bytes_per_flop']:.3f} B/FLOP; other processes {fmt(r['other_cpu'], '.0%')} of the CPU"
    )
    print(
        f"{'piece':<12} {'time s':>9} {'spread':>7} {'of step':>8} {'GFLOP':>8} {'GFLOP/s':>8} {'of peak':>8} "
        f"{'B/FLOP':>7} {'bound':>8}"
    )
    for p in r["pieces"]:
        print(
            f"{p['piece']:<12} {p['time_s']:>9.4f} {p['timing']['rel_spread']:>7.1%} {p['share_of_step']:>8.1%} "
            f"{p['flops'] / 1e9:>8.2f} {fmt(p['flops_per_s'] and p['flops_per_s'] / 1e9, '.1f'):>8} "
            f"{fmt(p['fraction_of_peak'], '.1%'):>8} {fmt(p['bytes_per_flop'], '.3f'):>7} {fmt(p['bound'], ''):>8}"
        )
    print(
        f"{'sum':<12} {r['pieces_sum_s']:>9.4f} {'':>7} {r['pieces_sum_s'] / r['step_s']:>8.1%}  "
        f"(sample + mix + encode_grad + loss_grad + update)"
    )
    print(
        f"encoder matmuls alone: forward {r['encoder_matmul_forward_s']:.4f} s, forward + backward "
        f"{r['encoder_matmul_s']:.4f} s (both encoders, each shape at its own speed):"
    )
    for mm in r["encoder_matmuls"]:
        print(
            f"  {mm['kind']:<11} {mm['m']:>6} x {mm['k']:>6} x {mm['n']:>5}  x{mm['count']}  "
            f"{mm['flops_per_s'] / 1e9:>7.1f} GFLOP/s ({mm['fraction_of_peak']:.0%} of peak)"
        )
    view = r["op_view"]
    if "error" in view:
        print(f"op view: {view['error']}")
        return
    print(
        f"XLA op view of one step ({view['threads']} threads, wall {view['wall_s'] * 1e3:.1f} ms, op time "
        f"{view['op_s'] * 1e3:.1f} ms, unattributed {view['unattributed_s'] * 1e3:.1f} ms):"
    )
    for c in view["by_category"]:
        print(f"  {c['name']:<26} {c['op_s'] * 1e3:>9.1f} ms {c['share']:>6.1%}")
    print("  top sources:")
    for c in view["top_sources"][:10]:
        print(f"  {c['name'][:64]:<64} {c['op_s'] * 1e3:>9.1f} ms {c['share']:>6.1%}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 6144])
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds (default 20 for batches up to 1024, else 3)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile_bench.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds on a CPU")
    args = parser.parse_args(argv)

    preset = SMOKE if args.smoke else PRESETS["paper"]
    batch_sizes = [64] if args.smoke else sorted(args.batch_sizes)
    squares, stream_n = ((128, 256), 2**20) if args.smoke else ((1024, 2048), 2**25)
    state = init_state(preset)
    rows = []
    for b in batch_sizes:
        repeats = args.repeats or (3 if args.smoke or b > 1024 else 20)
        row = skip_on_oom(profile_batch, replace(preset, batch_size=b), state, repeats, squares, stream_n)
        rows.append({"batch_size": b, **row})
        if "skipped" in row:
            print(f"\nbatch {b} skipped: {row['skipped']}")
        else:
            print_batch(rows[-1])
    result = {"environment": environment(), "config": preset.to_dict(), "batches": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
