"""Fault injection: `mmident-jax train`, and a sweep, killed with SIGKILL and restarted end
where an uninterrupted run does.

Each test starts the command as a user does, in a subprocess, kills it at chosen points
(before the first checkpoint, between a metrics line and its checkpoint, mid-chunk, and
while a checkpoint's temporary file is written but not yet renamed), restarts it with the
same command, and compares the final `checkpoint.msgpack` byte for byte with that of an
uninterrupted run. Other files in the run directory (a temporary file, a kept previous
checkpoint) are tolerated.

`fit` appends a chunk's metrics line before its checkpoint, and a restart drops the lines
past its checkpoint, so the finished run has exactly one line per chunk, equal to the
uninterrupted run's (but for the speed).
"""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flax import serialization

from mmident_jax import rundir

# Six chunks of 20 steps of the quick preset (cosine schedule, 128-wide encoders): each
# chunk takes ~0.1 s on a CPU, so kills can land inside one; compilation dominates a start.
TRAIN_STEPS, LOG_STEPS = 120, 20
FLAGS = [
    "--preset",
    "quick",
    "--train-steps",
    TRAIN_STEPS,
    "--log-steps",
    LOG_STEPS,
    "--batch-size",
    256,
    "--cond-pool",
    1000,
    "--no-progress",
]
ENV = dict(os.environ, JAX_PLATFORMS="cpu")
LIMIT = 300  # seconds any one process may take before the test gives up on it

# Runs the command with `os.replace` patched: the BLOCK_AT-th rename onto checkpoint.msgpack
# prints "BLOCKED <temporary file>" and sleeps instead of renaming; every other one prints
# "SAVED <sha256 of the new checkpoint.msgpack>" after renaming.
BLOCKING = """
import hashlib, os, sys, time
from pathlib import Path
from mmident_jax import cli, rundir

block_at, calls, real_replace = int(sys.argv[1]), 0, os.replace

def replace(src, dst, *args, **kwargs):
    global calls
    if Path(dst).name != rundir.CHECKPOINT:
        return real_replace(src, dst, *args, **kwargs)
    calls += 1
    if calls == block_at:
        print("BLOCKED", src, flush=True)
        time.sleep(3600)
    real_replace(src, dst, *args, **kwargs)
    print("SAVED", hashlib.sha256(Path(dst).read_bytes()).hexdigest(), flush=True)

os.replace = replace
sys.exit(cli.main(sys.argv[2:]))
"""


def train_command(run_dir):
    return [sys.executable, "-m", "mmident_jax.cli", "train", "--run-dir", str(run_dir), *map(str, FLAGS)]


def start(argv, log: Path, **kwargs) -> subprocess.Popen:
    """`argv` in a subprocess, stderr appended to `log`; killed if it outlives `LIMIT`."""
    with open(log, "a") as err:
        proc = subprocess.Popen(argv, env=ENV, stderr=err, text=True, **kwargs)
    watchdog = threading.Timer(LIMIT, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    proc.watchdog = watchdog
    return proc


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate()
    proc.watchdog.cancel()
    return out or ""


def kill(proc: subprocess.Popen) -> bool:
    """SIGKILL `proc`; False when it had already exited."""
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.watchdog.cancel()
    if proc.stdout:
        proc.stdout.close()
    return alive


def checkpoint_step(path: Path):
    """The step stored in a checkpoint file (None if there is none); fails if it is unreadable."""
    if not path.is_file():
        return None
    return int(serialization.msgpack_restore(path.read_bytes())["step"])


def metrics_steps(run_dir) -> list[int]:
    return [m["step"] for m in rundir.read_metrics(run_dir)]


def landing(run_dir) -> dict:
    """Where a kill landed: the checkpoint's step and the metrics lines on disk."""
    return {"checkpoint": checkpoint_step(Path(run_dir) / rundir.CHECKPOINT), "metrics": metrics_steps(run_dir)}


def wait_for(condition, proc, what: str):
    while not condition():
        assert proc.poll() is None, f"training exited ({proc.returncode}) before {what}"
        time.sleep(0.005)


def assert_finished_like(run_dir, reference, log: Path, note=""):
    """Final checkpoint byte-identical to the reference; metrics lines its, one per chunk."""
    note = f"{note}\n{log.read_text()[-3000:]}"
    assert (Path(run_dir) / rundir.CHECKPOINT).read_bytes() == reference["checkpoint"], note
    records = rundir.read_metrics(run_dir)
    steps = [m["step"] for m in records]
    assert steps == sorted(reference["metrics"]), f"metrics steps {steps}; {note}"
    same_fields = lambda m: {k: v for k, v in m.items() if k != "steps_per_s"}
    for record in records:  # the resumed trajectory is the uninterrupted one: same losses, same probes
        assert same_fields(record) == same_fields(reference["metrics"][record["step"]]), note


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: its checkpoint bytes and its metrics records by step."""
    run = tmp_path_factory.mktemp("reference") / "run"
    log = run.parent / "stderr.log"
    proc = start(train_command(run), log, stdout=subprocess.PIPE)
    out = finish(proc)
    assert proc.returncode == 0, log.read_text()
    assert f"trained to step {TRAIN_STEPS}" in out
    metrics = {m["step"]: m for m in rundir.read_metrics(run)}
    assert sorted(metrics) == list(range(LOG_STEPS, TRAIN_STEPS + 1, LOG_STEPS))
    return {"checkpoint": (run / rundir.CHECKPOINT).read_bytes(), "metrics": metrics}


@pytest.mark.slow
def test_sigkill_at_random_points_then_restart_ends_as_the_uninterrupted_run(reference, tmp_path):
    rng = random.Random(20240601)
    run, log = tmp_path / "run", tmp_path / "stderr.log"
    metrics = run / rundir.METRICS
    count = lambda: len(metrics.read_text().splitlines()) if metrics.exists() else 0

    def during_startup(proc):  # importing and compiling: ~5 s before the first checkpoint on 2 cores
        time.sleep(rng.uniform(0.2, 2.0))

    def after_a_metrics_line(proc):  # right after this start's first metrics line, before its checkpoint
        target = count() + 1
        wait_for(lambda: count() >= target, proc, f"metrics line {target}")

    def mid_training(proc):  # 1 or 2 chunks into this start, then up to a chunk and its line
        target = count() + rng.randint(1, 2)
        wait_for(lambda: count() >= target, proc, f"metrics line {target}")
        time.sleep(rng.uniform(0.0, 0.15))

    landings = []
    for kill_point in (during_startup, after_a_metrics_line, mid_training):
        proc = start(train_command(run), log, stdout=subprocess.DEVNULL)
        kill_point(proc)
        killed = kill(proc)
        landings.append((kill_point.__name__, "killed" if killed else f"had exited ({proc.returncode})", landing(run)))
        # the surviving checkpoint is whole and at a chunk boundary
        step = landings[-1][2]["checkpoint"]
        assert step is None or step % LOG_STEPS == 0, landings
    proc = start(train_command(run), log, stdout=subprocess.PIPE)
    out = finish(proc)
    note = f"kills landed at {landings}"
    print(note)
    assert proc.returncode == 0 and f"trained to step {TRAIN_STEPS}" in out, note
    assert_finished_like(run, reference, log, note)


@pytest.mark.slow
def test_sigkill_while_a_checkpoint_is_renamed_keeps_the_previous_one(reference, tmp_path):
    run, log = tmp_path / "run", tmp_path / "stderr.log"
    checkpoint = run / rundir.CHECKPOINT

    def blocked_write(block_at: int):
        """Train until the `block_at`-th checkpoint write of this start has its temporary file written
        but not renamed; returns the (sleeping) process, that file and the digests SAVED before it."""
        proc = start(
            [sys.executable, "-c", BLOCKING, str(block_at), *train_command(run)[3:]], log, stdout=subprocess.PIPE
        )
        saved = []
        for line in proc.stdout:
            word, arg = line.split(maxsplit=1) if " " in line else (line.strip(), "")
            if word == "SAVED":
                saved.append(arg.strip())
            elif word == "BLOCKED":
                return proc, Path(arg.strip()), saved
        proc.wait()
        pytest.fail(f"training exited ({proc.returncode}) without blocking: {log.read_text()[-3000:]}")

    # 1. a fresh run, killed during its first checkpoint write: nothing to resume from
    proc, tmp, saved = blocked_write(1)
    try:
        assert saved == [] and not checkpoint.exists()
        assert checkpoint_step(tmp) == LOG_STEPS  # the new checkpoint is complete, only not yet in place
    finally:
        assert kill(proc)
    assert metrics_steps(run) == [LOG_STEPS]  # logged, not checkpointed: the restart drops it

    # 2. restarted (from scratch), killed while the second checkpoint is renamed into place
    before_start = checkpoint.read_bytes() if checkpoint.exists() else None
    proc, tmp, saved = blocked_write(2)
    try:
        # the kill comes while checkpoint.msgpack is the one written before, untouched by this write
        at_kill = checkpoint.read_bytes()
        assert before_start is None and len(saved) == 1
        assert hashlib.sha256(at_kill).hexdigest() == saved[0]
        assert checkpoint_step(checkpoint) == LOG_STEPS
        assert checkpoint_step(tmp) == 2 * LOG_STEPS
    finally:
        assert kill(proc)
    assert checkpoint.read_bytes() == at_kill
    assert metrics_steps(run) == [LOG_STEPS, 2 * LOG_STEPS]

    # 3. restarted normally: resumes from step 20 (dropping the line of 40) and ends as the uninterrupted run
    proc = start(train_command(run), log, stdout=subprocess.PIPE)
    out = finish(proc)
    assert proc.returncode == 0 and f"trained to step {TRAIN_STEPS}" in out, log.read_text()[-3000:]
    assert metrics_steps(run) == list(range(LOG_STEPS, TRAIN_STEPS + 1, LOG_STEPS))
    assert_finished_like(run, reference, log)


# ------------------------------------------------------------------------------------ sweeps

WORKER = str(Path(__file__).parent / "sweep_worker.py")

# The sweep worker with `os.replace` patched: the BLOCK_AT-th commit of a group checkpoint
# (the rename onto latest.json, after this step's part is written) prints "BLOCKED" and sleeps.
BLOCKING_SWEEP = """
import os, runpy, sys, time
from pathlib import Path

block_at, calls, real_replace = int(sys.argv[1]), 0, os.replace

def replace(src, dst, *args, **kwargs):
    global calls
    if Path(dst).name == "latest.json":
        calls += 1
        if calls == block_at:
            print("BLOCKED", src, flush=True)
            time.sleep(3600)
    real_replace(src, dst, *args, **kwargs)

os.replace = replace
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def sweep_command(out):
    return [sys.executable, WORKER, "--out", str(out)]


def committed_step(out: Path, group: int = 0):
    latest = out / f"group{group}.ckpt" / "latest.json"
    return json.loads(latest.read_text())["step"] if latest.exists() else None


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory):
    """The uninterrupted sweep's rows and group 0's parameters, as JSON text."""
    out = tmp_path_factory.mktemp("sweep-reference") / "out"
    proc = start(sweep_command(out), out.parent / "stderr.log", stdout=subprocess.PIPE)
    report = finish(proc)
    assert proc.returncode == 0, (out.parent / "stderr.log").read_text()[-3000:]
    return results(report)


def results(report: str) -> str:
    """The rows and parameters of a worker's report, as JSON text (NaN-safe to compare)."""
    found = json.loads(report.strip().splitlines()[-1])
    return json.dumps({"rows": found["rows"], "params": found["params"]})


@pytest.mark.slow
def test_a_sweep_killed_anywhere_ends_as_the_uninterrupted_one(sweep_reference, tmp_path):
    rng = random.Random(7)
    out, log = tmp_path / "out", tmp_path / "stderr.log"
    landings = []
    # 1. at a random point of the start (importing, compiling, the first chunks)
    proc = start(sweep_command(out), log, stdout=subprocess.DEVNULL)
    time.sleep(rng.uniform(1.0, 6.0))
    assert kill(proc), "the sweep finished before it was killed"
    landings.append(committed_step(out))
    # 2. while a group's checkpoint is committed: its part is written, latest.json not yet renamed
    before = committed_step(out)
    proc = start([sys.executable, "-c", BLOCKING_SWEEP, "1", *sweep_command(out)[1:]], log, stdout=subprocess.PIPE)
    assert proc.stdout.readline().startswith("BLOCKED"), log.read_text()[-3000:]
    kill(proc)
    assert committed_step(out) == before  # the new step's files are there, but not named
    assert (out / "group0.ckpt" / "latest.json.tmp").exists() or (out / "group1.ckpt" / "latest.json.tmp").exists()
    landings.append(committed_step(out))
    # 3. once group 1 has a checkpoint: group 0 finished, evaluated and kept
    proc = start(sweep_command(out), log, stdout=subprocess.DEVNULL)
    wait_for(lambda: committed_step(out, 1) is not None, proc, "group 1's first checkpoint")
    time.sleep(rng.uniform(0.0, 0.1))
    kill(proc)
    landings.append((committed_step(out), committed_step(out, 1)))
    assert json.loads((out / "group0.json").read_text())["rows"]
    proc = start(sweep_command(out), log, stdout=subprocess.PIPE)
    report = finish(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    print(f"kills landed at committed steps {landings}")
    assert results(report) == sweep_reference, f"kills landed at {landings}"  # bitwise
