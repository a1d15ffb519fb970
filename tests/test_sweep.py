import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

from mmident_jax import engine, provenance, report, rundir, stacked, sweep, train, twoview
from mmident_jax.config import replace
from mmident_jax.evaluation import evaluate
from mmident_jax.presets import sweep_preset

sys.path.insert(0, str(Path(__file__).parent))
from sweep_worker import PRESET  # noqa: E402

WORKER = str(Path(__file__).parent / "sweep_worker.py")


def run_worker(*args, devices=1):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.Popen(
        [sys.executable, WORKER, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def worker_result(proc, status=0):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == status, err
    reports = [line for line in out.splitlines() if line.startswith("{")]  # gloo logs to stdout too
    return json.loads(reports[-1]) if reports else None


def assert_same_params(got, want):
    """`got`'s first parameter leaf for runs first.. equals those runs' in `want` (all runs)."""
    np.testing.assert_allclose(
        got["params"], want["params"][got["first"] : got["first"] + len(got["params"])], rtol=2e-4, atol=2e-5
    )


@pytest.fixture(scope="module")
def one_device():
    return worker_result(run_worker())


def assert_same_rows(got, want, atol):
    assert [(r["mechanism"], r["p_chg"], r["seed"], r["encoding"], r["predicted_factors"]) for r in got] == [
        (r["mechanism"], r["p_chg"], r["seed"], r["encoding"], r["predicted_factors"]) for r in want
    ]
    np.testing.assert_allclose([r["r2_linear"] for r in got], [r["r2_linear"] for r in want], atol=atol)


STUDY = twoview.study(PRESET)


def test_programs_group_settings_that_differ_only_in_numbers():
    groups = sweep.group_runs(twoview.study(sweep_preset("table1-quick")))
    # p_chg 1.0 and 0.75 share a program; statistical/causal and the mechanism do not
    assert [len(runs) for _, runs in groups] == [6, 3, 3, 3, 6, 3, 3, 3]
    assert sum(len(runs) for _, runs in groups) == 30


@pytest.mark.slow
def test_vmapped_sweep_equals_separate_single_seed_runs():
    ((cfg, runs),) = sweep.group_runs(STUDY)[:1]
    trained = sweep.train_group(STUDY, cfg, runs)
    rows = sweep.evaluate_group(STUDY, trained, runs)
    assert len(runs) == 6  # two settings (p_chg 1.0, 0.75) x three seeds in one program
    for i, run in enumerate(runs):
        single, _ = jax.jit(train.make_train(run.cfg))(jax.random.PRNGKey(run.seed))
        for a, b in zip(jax.tree.leaves(trained.state.params), jax.tree.leaves(single.params)):
            np.testing.assert_allclose(np.asarray(a)[i], b, rtol=2e-4, atol=2e-5)
        single_rows = evaluate(single, run.cfg, probes=("linear",), num_batches=1, batch_size=512)
        mine = [r for r in rows if r["seed"] == run.seed and r["p_chg"] == run.cfg.style_change_prob]
        np.testing.assert_allclose([r["r2_linear"] for r in mine], [r["r2_linear"] for r in single_rows], atol=1e-4)


@pytest.mark.slow
def test_eight_fake_devices_give_the_same_numbers(one_device):
    eight = worker_result(run_worker(devices=8))
    assert (one_device["devices"], eight["devices"]) == (1, 8)
    assert_same_rows(eight["rows"], one_device["rows"], atol=1e-4)
    assert_same_params(eight, one_device)


@pytest.mark.slow
@pytest.mark.parametrize("before, after", [(8, 1), (1, 8)])
def test_a_sweep_resumes_on_another_number_of_devices(one_device, tmp_path, before, after):
    worker_result(run_worker("--out", tmp_path, "--stop-at", 10, devices=before), status=3)
    latest = json.loads((tmp_path / "group0.ckpt" / "latest.json").read_text())
    assert latest == {"step": 10, "runs": 6, "parts": [[0, 6]]}  # the six runs, no padding
    resumed = worker_result(run_worker("--out", tmp_path, devices=after))
    assert resumed["devices"] == after
    assert_same_rows(resumed["rows"], one_device["rows"], atol=1e-4)
    assert_same_params(resumed, one_device)


@pytest.mark.slow
def test_two_processes_give_the_same_numbers(one_device):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [run_worker(f"127.0.0.1:{port}", 2, i) for i in range(2)]
    results = [worker_result(p) for p in procs]
    assert [r["process"] for r in results] == [0, 1] and results[0]["devices"] == 2
    assert "rows" not in results[1]  # process 0 gathers the rows
    # each probes its share: group 0's six runs 3 + 3, group 1's three runs 2 + 1 (one is padding)
    assert [r["probed"] for r in results] == [5, 4]
    assert_same_rows(results[0]["rows"], one_device["rows"], atol=1e-4)
    for result in results:
        assert_same_params(result, one_device)


@pytest.mark.slow
def test_sweep_resumes_from_its_out_dir(tmp_path, monkeypatch):
    first = sweep.sweep(STUDY, tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.glob("group*.json")) == [
        "group0.curve.json",
        "group0.json",
        "group1.curve.json",
        "group1.json",
    ]
    stored = json.loads((tmp_path / "group0.json").read_text())
    assert stored["evaluation"] == twoview.evaluation_settings(PRESET) and stored["made_by"]["backend"] == "cpu"
    curves = report.loss_curves(tmp_path)
    assert [(run["p_chg"], run["seed"]) for run, _, _ in curves] == [
        (p, s) for p in (1.0, 0.75, 0.75) for s in range(3)
    ]
    assert all(steps == [10, 20] and np.all(np.isfinite(losses)) for _, steps, losses in curves)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished group was trained again")

    monkeypatch.setattr(sweep, "train_group", no_training)
    again = sweep.sweep(STUDY, tmp_path, progress=False)
    assert json.dumps(again) == json.dumps(first)  # NaN-safe: r2_nonlinear is NaN (not probed)


@pytest.mark.slow
def test_a_finished_sweep_is_evaluated_again_without_training(tmp_path, monkeypatch):
    first = sweep.sweep(STUDY, tmp_path, progress=False)
    monkeypatch.setattr(engine, "chunk_program", lambda *args: pytest.fail("a finished group was trained again"))
    said = []
    more = sweep.sweep(twoview.study(replace(PRESET, num_eval_batches=2)), tmp_path, progress=False, say=said.append)
    assert said == [
        "group0.json: evaluated with other settings; evaluating again",
        "group1.json: evaluated with other settings; evaluating again",
    ]
    assert [r["r2_linear"] for r in more] != [r["r2_linear"] for r in first]  # twice the probes' data
    assert json.loads((tmp_path / "group1.json").read_text())["evaluation"]["num_eval_batches"] == 2
    # rows made by another JAX are not mixed with today's: evaluated again, here to the same numbers
    stored = json.loads((tmp_path / "group0.json").read_text())
    rundir.write_atomic(
        tmp_path / "group0.json", json.dumps({**stored, "made_by": {**stored["made_by"], "jax": "0.4.1"}}).encode()
    )
    said.clear()
    again = sweep.sweep(twoview.study(replace(PRESET, num_eval_batches=2)), tmp_path, progress=False, say=said.append)
    assert len(said) == 1 and said[0].startswith("group0.json: evaluated by mmident-jax ") and "JAX 0.4.1" in said[0]
    assert json.dumps(again) == json.dumps(more)


@pytest.mark.slow
def test_an_interrupted_program_resumes_from_its_checkpoint(tmp_path):
    ((cfg, runs),) = sweep.group_runs(STUDY)[:1]
    uninterrupted = sweep.train_group(STUDY, cfg, runs)
    store = stacked.Stacked(tmp_path / "g.ckpt")

    def interrupt(chunk):
        if chunk.step > 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # stopped after the first chunk was checkpointed
        sweep.train_group(STUDY, cfg, runs, store, on_chunk=interrupt)
    chunks = []
    resumed = sweep.train_group(STUDY, cfg, runs, store, on_chunk=lambda chunk: chunks.append(chunk.step))
    assert chunks == [cfg.train_steps]  # only the remaining chunk was trained
    chex.assert_trees_all_equal(uninterrupted, resumed)


@pytest.mark.slow
def test_a_diverging_run_is_marked_and_the_others_finish(tmp_path):
    ((cfg, runs),) = sweep.group_runs(STUDY)[:1]
    blowing_up = [run._replace(cfg=replace(run.cfg, lr=1e30)) if i == 1 else run for i, run in enumerate(runs)]
    trained = sweep.train_group(STUDY, cfg, blowing_up, stacked.Stacked(tmp_path / "g.ckpt"))
    healthy = sweep.train_group(STUDY, cfg, runs)
    assert trained.diverged_at.tolist() == [0, 2, 0, 0, 0, 0]  # the loss of step 2 is not finite
    initial = jax.vmap(train.make_init(cfg))(*sweep.stack_runs(STUDY, runs))
    for got, want, first in zip(
        jax.tree.leaves(trained.state.params), jax.tree.leaves(healthy.state.params), jax.tree.leaves(initial.params)
    ):
        np.testing.assert_array_equal(np.delete(got, 1, 0), np.delete(want, 1, 0))  # the others finished
        np.testing.assert_array_equal(got[1], first[1])  # its last good chunk's parameters: the initial ones
    assert json.loads((tmp_path / "g.ckpt" / "latest.json").read_text())["step"] == cfg.train_steps
    rows = sweep.evaluate_group(STUDY, trained, blowing_up)
    assert {r["seed"]: r.get("diverged_at") for r in rows if r["p_chg"] == 1.0} == {0: None, 1: 2, 2: None}
    assert np.all(np.isfinite([r["r2_linear"] for r in rows]))


def test_diverged_runs_are_listed_and_left_out_of_the_tables(tmp_path):
    rows = [
        {
            "mechanism": "multimodal",
            "p_chg": 1.0,
            "statistical": False,
            "causal": False,
            "seed": seed,
            "encoding": "hz1",
            "predicted_factors": "c",
            "r2_linear": 0.9,
            "r2_nonlinear": r2,
            **({"diverged_at": 7} if seed == 2 else {}),
        }
        for seed, r2 in enumerate((0.9, 0.7, -5.0))
    ]
    twoview.write_results(tmp_path, "demo", rows, PRESET)
    md = (tmp_path / "results.md").read_text()
    assert "| 1 | no | no | 0.80±0.10 |" in md  # seeds 0 and 1 only
    assert md.endswith(
        "Left out of the tables, diverged: mechanism=multimodal p_chg=1.0 statistical=False "
        "causal=False seed=2 at step 7.\n"
    )
    assert (tmp_path / "results.csv").read_text().splitlines()[-1].endswith(",-5.0,7")


def test_tables_have_the_papers_layout(tmp_path):
    rows = [
        {
            "mechanism": m,
            "p_chg": 0.75,
            "statistical": False,
            "causal": True,
            "seed": seed,
            "encoding": e,
            "predicted_factors": f,
            "r2_linear": 0.5,
            "r2_nonlinear": 0.9 if f == "c" else 0.1 * seed,
        }
        for m in ("original", "multimodal")
        for seed in (0, 1)
        for e in ("hz1", "hz2")
        for f in (("c", "s", "s~") if m == "original" else ("c", "s", "s~", "m1", "m2"))
    ]
    md = report.tables_markdown("demo", rows, seeds=2)
    assert "| p_chg | stat. | caus. | hz1: c | hz1: s | hz2: c | hz2: s~ |" in md
    assert "| 0.75 | no | yes | 0.90±0.00 | 0.05±0.05 | 0.05±0.05 | 0.90±0.00 | 0.05±0.05 | 0.05±0.05 |" in md
    twoview.write_results(tmp_path, "demo", rows, PRESET)
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_lines[0] == "mechanism,p_chg,statistical,causal,seed,encoding,predicted_factors,r2_linear,r2_nonlinear"
    title, rest = report.tables_markdown("demo", rows, PRESET.seeds).split("\n", 1)
    assert (tmp_path / "results.md").read_text() == f"{title}\n\n{twoview.about('demo', PRESET)}\n{rest}"
    assert len(csv_lines) == len(rows) + 1


def test_a_short_sweeps_table_says_what_differs_from_its_preset(tmp_path):
    short = sweep_preset("table1-quick").with_overrides(train_steps=400, seeds=2, num_eval_batches=2)
    rows = [
        {
            "mechanism": "multimodal",
            "p_chg": 1.0,
            "statistical": False,
            "causal": False,
            "seed": seed,
            "encoding": "hz1",
            "predicted_factors": "c",
            "r2_linear": 0.9,
            "r2_nonlinear": 0.9,
        }
        for seed in (0, 1)
    ]
    twoview.write_results(tmp_path, "table1-quick", rows, short)
    head = (tmp_path / "results.md").read_text().splitlines()[:3]
    assert head == [
        "# table1-quick",
        "",
        "Settings: seeds 2 (**the preset: 3**); steps 400 (**the preset: 20,000**); "
        "batch 256; precision float32; evaluation 2 × 4096 samples (**the preset: 1 × 4096 samples**); "
        "probes linear, kernel.",
    ]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--preset", "table9"], ["invalid choice: 'table9'", "table1-quick"]),
        (["--preset", "table1-quick", "--seeds", 0], ["--seeds", ">= 1"]),
    ],
)
def test_bad_sweep_input_exits_2_with_one_line(tmp_path, args, words, cli):
    result = cli("sweep", "--out", tmp_path / "out", *args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert all(w in result.stderr for w in words)
    assert not (tmp_path / "out").exists()


def test_a_sweeps_identity_holds_every_resolved_config_and_names_what_differs(tmp_path):
    wanted = sweep.identity("table1-quick", twoview.study(sweep_preset("table1-quick")), 3, train_steps=None)
    assert len(wanted["settings"]) == 10 and wanted["batching"] == "map"
    assert wanted["settings"][2]["labels"] == {
        "mechanism": "original",
        "p_chg": 0.75,
        "statistical": True,
        "causal": False,
    }
    assert (
        wanted["settings"][2]["config"]["statistical_dependence"]
        and wanted["settings"][2]["config"]["wishart"] == "shared"
    )
    rundir.prepare_out(tmp_path, wanted)
    stored = json.loads((tmp_path / "sweep.json").read_text())
    assert stored == {**wanted, "made_by": provenance.provenance()}
    assert set(stored["made_by"]) == {"mmident_jax", "git", "jax", "backend", "devices"}
    rundir.prepare_out(tmp_path, wanted)  # the same sweep: accepted
    independent = sweep.identity(
        "table1-quick", twoview.study(sweep_preset("table1-independent-quick")), 3, train_steps=None
    )
    with pytest.raises(
        rundir.RunDirError,
        match=r"holds another sweep \(wishart='shared' where this sweep has "
        r"'independent'\)",
    ):
        rundir.prepare_out(tmp_path, independent)
    with pytest.raises(rundir.RunDirError, match=r"holds another sweep \(seeds=3 where this sweep has 4\)"):
        rundir.prepare_out(tmp_path, {**wanted, "seeds": 4})
    short = sweep.identity(
        "table1-quick",
        twoview.study(sweep_preset("table1-quick").with_overrides(train_steps=400, seeds=2)),
        2,
        train_steps=400,
    )
    with pytest.raises(
        rundir.RunDirError,
        match=r"\(seeds=3 where this sweep has 2; train_steps=None where this "
        r"sweep has 400; train_steps=20000 where this sweep has 400\)",
    ):
        rundir.prepare_out(tmp_path, short)  # every differing field, each once


def test_out_dir_of_another_sweep_is_refused_untouched(tmp_path, cli):
    rundir.prepare_out(
        tmp_path,
        sweep.identity(
            "table4-quick", twoview.study(sweep_preset("table4-quick")), 3, experiment="twoview", train_steps=None
        ),
    )
    (tmp_path / "results.md").write_text("earlier table")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = cli("sweep", "--out", tmp_path, "--preset", "table1-quick")
    assert result.returncode == 2 and "holds another sweep" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_stored_rows_are_reused_only_when_made_as_today(tmp_path):
    evaluation, made_by, rows = twoview.evaluation_settings(PRESET), provenance.provenance(), [{"seed": 0}]
    path, said = tmp_path / "group0.json", []

    def reused(stored) -> bool:
        path.write_text(stored if isinstance(stored, str) else json.dumps(stored))
        return sweep._reusable(path, evaluation, said.append) == rows

    assert reused({"evaluation": evaluation, "made_by": made_by, "rows": rows})
    assert not reused({"evaluation": {**evaluation, "num_eval_batches": 2}, "made_by": made_by, "rows": rows})
    assert not reused({"evaluation": evaluation, "made_by": {**made_by, "backend": "gpu"}, "rows": rows})
    assert reused({"evaluation": evaluation, "made_by": {**made_by, "devices": 8}, "rows": rows})  # recorded only
    assert not reused('{"evaluation": ')
    assert not reused(rows)  # a list: not a group file
    assert len(said) == 4 and all(
        line.startswith("group0.json: ") and line.endswith("evaluating again") for line in said
    )
    for line, words in zip(
        said, ["with other settings", "on gpu, which computes differently from", "not readable", "not readable"]
    ):
        assert words in line, line
