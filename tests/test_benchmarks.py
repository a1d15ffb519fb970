"""The benchmark suite's smoke run finishes and writes the JSON that benchmarks/README.md documents."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def check_timing(t: dict) -> None:
    assert positive(t["compile_s"]) and t["repeats"] >= 1
    assert 0 < t["min_s"] <= t["median_s"] <= t["max_s"]
    assert t["rel_spread"] >= 0


def check_throughput(row: dict, backend: str) -> None:
    for key in ("compile_s", "step_s", "steps_per_s", "samples_per_s", "step_flops", "flops_per_s"):
        assert positive(row[key]), (key, row[key])
    assert isinstance(row["steps_per_call"], int) and row["steps_per_call"] >= 1
    check_timing(row["timing"])
    assert isinstance(row["memory"]["program_bytes"], int) and row["memory"]["program_bytes"] > 0
    peak = row["memory"]["device_peak_bytes"]
    assert peak is None if backend == "cpu" else (isinstance(peak, int) and peak > 0)


def test_smoke_run_writes_documented_json(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/run.py", "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "== summary ==" in proc.stdout
    [path] = tmp_path.glob("bench_*_smoke.json")
    result = json.loads(path.read_text())

    env = result["environment"]
    for key in ("jax", "backend", "device_kind", "platform", "python", "date"):
        assert isinstance(env[key], str) and env[key], key
    assert env["device_count"] >= 1
    assert result["smoke"] is True
    bench = result["benchmarks"]
    assert set(bench) == {"train", "precision", "sweep", "probe", "profile"}
    assert not any("error" in section for section in bench.values())

    train = bench["train"]
    assert train["environment"]["device_kind"] == env["device_kind"]
    assert positive(train["matmul_peak"]["flops_per_s"])
    assert train["vendor_peak_flops_per_s"] is None or positive(train["vendor_peak_flops_per_s"])
    assert positive(train["ground_truth"]["median_s"])
    assert train["batches"]
    for row in train["batches"]:
        assert "skipped" not in row
        check_throughput(row, env["backend"])
        assert positive(row["fraction_of_matmul_peak"])
        assert positive(row["reference_matmul"]["flops_per_s"]) and positive(row["fraction_of_reference"])
        assert row["other_cpu"] is None or 0 <= row["other_cpu"] <= 1
        assert row["fraction_of_vendor_peak"] is None or positive(row["fraction_of_vendor_peak"])

    rows = {row["precision"]: row for row in bench["precision"]["rows"]}
    assert list(rows) == ["float32", "tf32", "bfloat16"]
    for name, row in rows.items():
        check_throughput(row, env["backend"])
        assert positive(row["speedup"])
        assert row["train_steps"] >= row["last_steps"] >= 1
        for key in ("first_loss", "final_loss", "last_mean_loss", "final_loss_diff", "last_mean_loss_diff"):
            assert math.isfinite(row[key]), (name, key)
    assert rows["float32"]["speedup"] == 1.0
    assert rows["float32"]["final_loss_diff"] == rows["float32"]["last_mean_loss_diff"] == 0.0

    sweep = bench["sweep"]
    assert isinstance(sweep["skipped"], str) if "skipped" in sweep else positive(sweep["wall_s"])

    probe = bench["probe"]
    assert positive(probe["wall_s"]) and probe["rows"]
    for row in probe["rows"]:
        assert positive(row["ours"]["median_s"]) and positive(row["theirs"]["median_s"])

    profile = bench["profile"]
    assert profile["batches"]
    for row in profile["batches"]:
        assert "skipped" not in row
        ref = row["reference"]
        for key in ("peak_flops_per_s", "bandwidth_bytes_per_s", "balance_bytes_per_flop"):
            assert positive(ref[key]), key
        assert positive(row["step_s"]) and positive(row["step_flops"]) and positive(row["pieces_sum_s"])
        pieces = {p["piece"]: p for p in row["pieces"]}
        assert list(pieces) == ["sample", "mix", "encode", "encode_grad", "loss", "loss_grad", "update", "step"]
        for name, p in pieces.items():
            assert positive(p["time_s"]) and positive(p["share_of_step"]), name
            assert p["flops_per_s"] is None if p["flops"] == 0 else positive(p["flops_per_s"]), name
            assert p["bound"] in (None, "memory", "compute"), name
        assert pieces["step"]["share_of_step"] == 1.0
        assert pieces["step"]["flops"] == (pieces["mix"]["flops"] + pieces["encode_grad"]["flops"]
                                           + pieces["loss_grad"]["flops"])
        assert row["encoder_matmuls"] and all(positive(m["flops_per_s"]) for m in row["encoder_matmuls"])
        assert positive(row["encoder_matmul_s"]) and row["encoder_matmul_forward_s"] < row["encoder_matmul_s"]
        view = row["op_view"]
        if "error" not in view:  # a trace the profiler could not take is recorded, not fatal
            assert positive(view["op_s"]) and view["threads"] >= 1 and view["top_sources"]
            assert abs(sum(c["share"] for c in view["by_category"]) - 1) < 1e-6
