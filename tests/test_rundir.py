"""The run directory keeps what it holds through bad luck: full disks, read-only folders,
damaged checkpoints; and it records what made the run."""

import errno
import json
import os
from pathlib import Path

import chex
import jax
import numpy as np
import pytest
from flax import serialization

from mmident_jax import provenance, rundir, stacked


def files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir()}


@pytest.mark.slow  # trains twice; sweep.json's record is checked in the default run (test_sweep.py)
def test_config_records_every_version_that_trained_the_run(tmp_path, monkeypatch, cli, tiny_flags):
    run = tmp_path / "run"
    assert cli("train", "--run-dir", run, "--train-steps", 2, "--log-steps", 2, *tiny_flags).returncode == 0
    stored = json.loads((run / rundir.CONFIG).read_text())
    assert stored["made_by"] == [provenance.provenance()]
    assert set(stored["made_by"][0]) == {"mmident_jax", "git", "jax", "backend", "devices"}
    later = {**provenance.provenance(), "mmident_jax": "9.9.9"}
    monkeypatch.setattr(provenance, "provenance", lambda: later)
    assert (
        cli("train", "--run-dir", run, "--train-steps", 4, "--log-steps", 2, *tiny_flags).returncode == 0
    )  # resumed by another version
    assert json.loads((run / rundir.CONFIG).read_text())["made_by"] == [stored["made_by"][0], later]
    assert rundir.load_config(run).train_steps == 4


def test_a_damaged_checkpoint_is_named_and_the_one_before_it_is_kept(tmp_path, cli, tiny_flags):
    whole, damaged = tmp_path / "whole", tmp_path / "damaged"
    for run in (whole, damaged):
        assert cli("train", "--run-dir", run, "--train-steps", 4, "--log-steps", 2, *tiny_flags).returncode == 0
    previous = (damaged / "checkpoint.prev.msgpack").read_bytes()
    assert serialization.msgpack_restore(previous)["step"] == 2  # the checkpoint of the chunk before
    checkpoint = (damaged / rundir.CHECKPOINT).read_bytes()
    (damaged / rundir.CHECKPOINT).write_bytes(checkpoint[: len(checkpoint) // 2])
    result = cli("train", "--run-dir", damaged, "--train-steps", 6, "--log-steps", 2, *tiny_flags)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "checkpoint.msgpack is not a readable checkpoint" in result.stderr
    assert "kept as checkpoint.prev.msgpack" in result.stderr
    assert (damaged / "checkpoint.prev.msgpack").read_bytes() == previous
    os.replace(damaged / "checkpoint.prev.msgpack", damaged / rundir.CHECKPOINT)  # as the message says
    assert (
        cli("train", "--run-dir", damaged, "--train-steps", 4, "--log-steps", 2, *tiny_flags).returncode == 0
    )  # trains steps 3 and 4 again
    assert (damaged / rundir.CHECKPOINT).read_bytes() == (whole / rundir.CHECKPOINT).read_bytes()


@pytest.mark.parametrize("code", [errno.ENOSPC, pytest.param(errno.EROFS, marks=pytest.mark.slow)])  # one path
def test_a_full_disk_or_read_only_run_dir_is_one_line_and_loses_nothing(tmp_path, monkeypatch, code, cli, tiny_flags):
    run = tmp_path / "run"
    assert cli("train", "--run-dir", run, "--train-steps", 2, "--log-steps", 2, *tiny_flags).returncode == 0
    before = files(run)

    def failing_open(path, mode="r", *args, **kwargs):
        if "checkpoint" in Path(path).name and "w" in mode:
            with open(path, mode, *args, **kwargs) as f:
                f.write(b"the first bytes")  # as far as the disk went
            raise OSError(code, os.strerror(code), str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(rundir, "open", failing_open, raising=False)
    result = cli("train", "--run-dir", run, "--train-steps", 4, "--log-steps", 2, *tiny_flags)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert os.strerror(code) in result.stderr and "files written before are kept" in result.stderr
    after = files(run)
    del after[rundir.CONFIG], before[rundir.CONFIG]  # now asking for 4 steps
    assert after.pop(rundir.METRICS).startswith(before.pop(rundir.METRICS))  # + the line of step 4
    assert after.pop("checkpoint.prev.msgpack") == before[rundir.CHECKPOINT]  # kept before the write
    assert after == before  # the checkpoint of step 2, no part of another
    monkeypatch.undo()
    assert (
        cli("train", "--run-dir", run, "--train-steps", 4, "--log-steps", 2, *tiny_flags).returncode == 0
    )  # and it goes on once there is room
    assert [r["step"] for r in rundir.read_metrics(run)] == [2, 4]


def test_stacked_checkpoints_restore_what_each_process_wrote(tmp_path):
    state = {"w": np.arange(10.0).reshape(5, 2)}
    for step in (10, 20):
        stacked.save_part(tmp_path, step, 0, {"w": state["w"][:3] * step}, np.array([0, 0, 7]))
        stacked.save_part(tmp_path, step, 3, {"w": state["w"][3:] * step}, np.array([0, 0]))
        stacked.commit(tmp_path, step, [(0, 3), (3, 5)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latest.json",
        "step000000020.runs0-3.msgpack",
        "step000000020.runs3-5.msgpack",
    ]
    step, restored, diverged_at = stacked.restore(tmp_path, jax.eval_shape(lambda: state))
    assert step == 20 and diverged_at.tolist() == [0, 0, 7, 0, 0]
    chex.assert_trees_all_equal(restored, {"w": state["w"] * 20})
    with pytest.raises(rundir.RunDirError, match="holds 5 runs, not this group's 4"):
        stacked.restore(tmp_path, {"w": np.zeros((4, 2))})
    (tmp_path / "step000000020.runs3-5.msgpack").unlink()
    with pytest.raises(rundir.RunDirError, match="not a readable checkpoint of this group"):
        stacked.restore(tmp_path, state)


def test_a_resumed_run_drops_metrics_lines_past_its_checkpoint(tmp_path):
    lines = [json.dumps({"step": s, "loss": -1.5}) for s in (2, 4, 6)]
    (tmp_path / rundir.METRICS).write_text("\n".join(lines) + '\n{"step": 8, "lo')  # the last one cut short
    assert [r["step"] for r in rundir.read_metrics(tmp_path)] == [2, 4, 6]
    rundir.drop_metrics_after(tmp_path, 4)  # the checkpoint's step
    assert (tmp_path / rundir.METRICS).read_text() == "\n".join(lines[:2]) + "\n"
    (tmp_path / rundir.METRICS).write_text('{"step": 2}\nnot json\n{"step": 4}\n')
    with pytest.raises(rundir.RunDirError, match="line 2 is not JSON"):
        rundir.read_metrics(tmp_path)
