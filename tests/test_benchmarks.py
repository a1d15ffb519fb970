"""The benchmark suite's smoke run finishes and writes the JSON that benchmarks/README.md documents."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_smoke_run_writes_documented_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
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
    assert set(bench) == {"train", "precision", "sweep", "probe", "profile", "sweep_program", "batching", "metrics"}
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

    program = bench["sweep_program"]
    assert program["rows"] and all("step_s" in row for row in program["rows"])
    assert program["projection"]["best"]["wall_s"] > 0

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
        assert pieces["step"]["flops"] == (
            pieces["mix"]["flops"] + pieces["encode_grad"]["flops"] + pieces["loss_grad"]["flops"]
        )
        assert row["encoder_matmuls"] and all(positive(m["flops_per_s"]) for m in row["encoder_matmuls"])
        assert positive(row["encoder_matmul_s"]) and row["encoder_matmul_forward_s"] < row["encoder_matmul_s"]
        view = row["op_view"]
        if "error" not in view:  # a trace the profiler could not take is recorded, not fatal
            assert positive(view["op_s"]) and view["threads"] >= 1 and view["top_sources"]
            assert abs(sum(c["share"] for c in view["by_category"]) - 1) < 1e-6


def load_sweep_program_bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import sweep_program_bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return sweep_program_bench


def test_sweep_program_estimate_between_and_beyond_measured_runs():
    estimate = load_sweep_program_bench().estimate
    points = {1: 1.0, 3: 2.0, 10: 9.0}
    assert estimate(points, 3) == (2.0, "measured")
    assert estimate(points, 6) == (2.0 + 7.0 * 3 / 7, "interpolated")
    assert estimate(points, 30) == (9.0 + 7.0 * 20 / 7, "extrapolated")
    assert estimate({3: 2.0}, 6) == (4.0, "proportional")


@pytest.mark.slow
def test_sweep_program_bench_smoke_projection_matches_its_rows(tmp_path):
    """R = 1 and 3 timed; table1's groups of 3 use R = 3's step, its groups of 6 the line through R = 1 and 3."""
    out = tmp_path / "sweep_program.json"
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/sweep_program_bench.py",
            "--smoke",
            "--runs",
            "1,3",
            "--precisions",
            "float32",
            "--eval-batch-size",
            "64",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "projected `mmident-jax sweep --preset table1`" in proc.stdout
    result = json.loads(out.read_text())
    backend = result["environment"]["backend"]
    assert result["smoke"] is True and result["config"]["batch_size"] == 64
    assert result["timed_setting"]["mechanism"] == "multimodal"
    assert result["args"]["batching"] == "map"  # the sweep's default

    groups = result["table1_groups"]  # two mechanisms: p_chg 1 and 0.75 share a program, the others not
    assert sorted(g["runs"] for g in groups) == [3] * 6 + [6] * 2
    assert all(g["train_steps"] == 300_001 and positive(g["run_step_flops"]) for g in groups)

    peak = result["matmul_peaks"]["float32"]["flops_per_s"]
    rows = {row["runs"]: row for row in result["rows"]}
    assert list(rows) == [1, 3]
    for r, row in rows.items():
        assert row["precision"] == "float32" and row["batching"] == "map"
        assert row["steps_per_call"] == 2 and row["finite"]
        check_timing({**row["timing"], "compile_s": row["compile_s"]})
        assert positive(row["init_s"])
        assert math.isclose(row["step_s"], row["timing"]["median_s"] / 2)
        assert math.isclose(row["run_steps_per_s"], r / row["step_s"])
        assert math.isclose(row["samples_per_s"], r * 64 / row["step_s"])
        assert row["step_flops"] == r * row["run_step_flops"] == r * groups[4]["run_step_flops"]
        assert math.isclose(row["flops_per_s"], row["step_flops"] / row["step_s"])
        assert math.isclose(row["fraction_of_fp32_matmul_peak"], row["flops_per_s"] / peak)
        assert math.isclose(row["speedup_vs_sequential"], r * rows[1]["step_s"] / row["step_s"])
        assert row["memory"]["program_bytes"] > 0
        if backend == "cpu":
            assert row["vendor_peak_flops_per_s"] is None and row["fraction_of_vendor_peak"] is None
            assert row["memory"]["device_peak_bytes"] is None

    ev = result["evaluation"]
    assert ev["n"] == 5 * 64 and ev["memory_needed_bytes"] == int(20.6 * 320**2)
    assert positive(ev["steady_s"]) and positive(ev["validation_loss_s"])
    assert math.isclose(ev["run_s"], ev["steady_s"] + ev["validation_loss_s"])

    p = result["projection"]
    assert p["runs"] == 30 and p["train_steps"] == 300_001 and p["includes_evaluation"]
    assert math.isclose(p["evaluation_s"], 30 * ev["run_s"])  # one call each: compilation counted in run_s
    f32 = p["by_precision"]["float32"]
    s1, s3 = rows[1]["step_s"], rows[3]["step_s"]
    s6 = s3 + (s3 - s1) * (6 - 3) / (3 - 1)
    assert [(g["runs"], g["source"]) for g in f32["groups"]] == [
        (g["runs"], "measured" if g["runs"] == 3 else "extrapolated") for g in groups
    ]
    assert math.isclose(f32["train_s"], 300_001 * (6 * s3 + 2 * s6))
    assert f32["train_s_flop_scaled"] < f32["train_s"]  # the original mechanism's encoders are smaller
    assert positive(f32["compile_and_init_s"])
    assert math.isclose(f32["wall_s"], f32["train_s"] + f32["compile_and_init_s"] + p["evaluation_s"])
    assert math.isclose(f32["sequential_train_s"], 30 * 300_001 * s1)
    assert p["best"] == {"precision": "float32", "wall_s": f32["wall_s"], "wall_h": f32["wall_s"] / 3600}


@pytest.mark.slow
def test_batching_bench_smoke_map_is_bitwise_the_run_alone(tmp_path):
    out = tmp_path / "batching.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/batching_bench.py", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "bitwise = alone" in proc.stdout
    result = json.loads(out.read_text())
    assert result["environment"]["device_kind"] and result["smoke"] is True
    assert result["steps_per_call"] == 20 and result["reference"] == "map" and result["devices"] >= 1
    rows = {row["runs"]: row for row in result["rows"]}
    assert list(rows) == [1, 3]
    for r, row in rows.items():
        assert row["steps_per_call"] == 20 and row["steps_trained"] == 20 * (1 + result["repeats"])
        for batching in ("map", "vmap"):
            b = row[batching]
            check_timing({**b["timing"], "compile_s": b["compile_s"]})
            assert math.isclose(b["chunk_s"], b["timing"]["median_s"])
            assert math.isclose(b["run_steps_per_s"], r * 20 / b["chunk_s"])
            assert isinstance(b["equal_alone"], bool) and b["max_abs_diff_alone"] >= 0
            assert b["program_bytes"] > 0
        assert math.isclose(row["map_over_vmap"], row["map"]["run_steps_per_s"] / row["vmap"]["run_steps_per_s"])
        assert row["map"]["equal_alone"] and row["map"]["max_abs_diff_alone"] == 0
