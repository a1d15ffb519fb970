"""The command line, called in-process (`cli.main`); one test runs it as a user does, in a subprocess."""

import json
import os
import subprocess
import sys

import pytest

from mmident_jax import rundir


@pytest.mark.slow
def test_the_installed_command_runs_as_a_subprocess(tmp_path, tiny_flags):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmident_jax",
            "train",
            "--run-dir",
            tmp_path / "run",
            "--train-steps",
            "10",
            "--log-steps",
            "10",
            *tiny_flags,
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert result.returncode == 0, result.stderr
    assert "trained to step 10" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "mmident_jax", "train", "--run-dir", tmp_path / "x", "--preset", "paper", "--lr", "0"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "lr must be > 0" in bad.stderr


def assert_usage_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.slow
def test_train_writes_run_dir_and_resumes(tmp_path, cli, tiny_flags):
    run = tmp_path / "run"
    first = cli("train", "--run-dir", run, *tiny_flags, "--preset", "quick", "--train-steps", 200, "--log-steps", 100)
    assert first.returncode == 0, first.stderr
    assert {rundir.CONFIG, rundir.CHECKPOINT, rundir.METRICS} <= set(os.listdir(run))
    assert json.loads((run / rundir.CONFIG).read_text())["train_steps"] == 200
    before = {p: (run / p).read_bytes() for p in os.listdir(run)}
    # quick decays its learning rate to 0 at step 200: training on would not be the 400-step run
    assert_usage_error(cli("train", "--run-dir", run, "--train-steps", 400), "warmup_cosine", "train_steps=200")
    assert {p: (run / p).read_bytes() for p in os.listdir(run)} == before
    constant = tmp_path / "constant"
    assert cli("train", "--run-dir", constant, "--train-steps", 200, "--log-steps", 100, *tiny_flags).returncode == 0
    second = cli("train", "--run-dir", constant, "--train-steps", 400)  # resumes with the stored settings
    assert second.returncode == 0, second.stderr
    assert "trained to step 400" in second.stdout
    assert [m["step"] for m in rundir.read_metrics(constant)] == [100, 200, 300, 400]


@pytest.mark.slow
def test_evaluate_writes_results_csv_in_the_original_layout(tmp_path, cli, tiny_flags):
    run = tmp_path / "run"
    assert (
        cli(
            "train", "--run-dir", run, "--train-steps", 20, "--log-steps", 20, "--modality-n", 0, *tiny_flags
        ).returncode
        == 0
    )
    result = cli(
        "evaluate",
        "--run-dir",
        run,
        "--probes",
        "linear",
        "--num-eval-batches",
        1,
        "--permuted-content",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    lines = (run / rundir.RESULTS).read_text().splitlines()
    assert lines[0] == ",encoding,predicted_factors,r2_linear,r2_nonlinear"
    assert [line.split(",")[1:3] for line in lines[1:]] == [
        [h, f] for h in ("hz1", "hz2") for f in ("c", "s", "s~", "c'")
    ]
    assert "predicted_factors" in result.stdout


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--style-change-prob", 1.5], ["style_change_prob", "[0, 1]"]),
        (["--content-n", 0], ["content_n", ">= 1"]),
        (["--batch-size", 1], ["batch_size", ">= 2"]),
        (["--preset", "nope"], ["invalid choice: 'nope'", "paper"]),
        (["--lr", "fast"], ["--lr", "invalid float"]),
        (["--not-a-flag"], ["unrecognized", "--not-a-flag"]),
        (["--similarity", "cosine"], ["similarity 'cosine' applies to the clip loss"]),
        (["--warmup-steps", 10], ["warmup_steps 10 applies to the warmup_cosine schedule"]),
    ],
)
def test_bad_train_input_exits_2_with_one_line_and_writes_nothing(tmp_path, flags, words, cli):
    run = tmp_path / "run"
    assert_usage_error(cli("train", "--run-dir", run, "--preset", "paper", *flags), *words)
    assert not run.exists()


def test_off_a_terminal_train_and_evaluate_print_plain_progress_lines(tmp_path, cli, tiny_flags):
    """Output to a file (here a StringIO): one line per chunk with the projected time, never nothing."""
    run = tmp_path / "run"
    flags = [f for f in tiny_flags if f != "--no-progress"]
    result = cli("train", "--run-dir", run, "--train-steps", 20, "--log-steps", 10, *flags)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("train: projected ") and "to finish (10/20 in " in lines[0]
    assert lines[1].startswith("train: 10/20 (50%) ") and lines[-1].startswith("train: 20/20 (100%) ")
    assert lines[-1].split("done  loss ")[1]  # the chunk's loss
    assert {"loss", "steps_per_s", "val_loss", "r2_linear/hz1/c", "r2_linear/hz2/m2"} <= set(
        rundir.read_metrics(run)[-1]
    )  # the monitor's figures
    probed = cli("evaluate", "--run-dir", run, "--probes", "linear", "--num-eval-batches", 1)
    assert probed.returncode == 0, probed.stderr
    assert "hz1: linear probes on 4096 samples (" in probed.stderr


def test_a_new_run_without_a_preset_is_refused_with_the_presets(tmp_path, cli):
    """No silent default: `paper` is days on a CPU. Resuming needs no preset (the stored config)."""
    run = tmp_path / "run"
    assert_usage_error(
        cli("train", "--run-dir", run),
        "a new run needs --preset",
        "paper (",
        "days on a CPU",
        "quick (",
        "minutes on a CPU",
    )
    assert not run.exists()
    assert "required for a new run directory" in cli("train", "--help").stdout


def test_run_dir_that_is_a_file_or_another_run_is_refused_untouched(tmp_path, cli, tiny_flags):
    target = tmp_path / "file.txt"
    target.write_text("precious")
    assert_usage_error(cli("train", "--run-dir", target, "--train-steps", 10, *tiny_flags), "not a directory")
    assert target.read_text() == "precious"
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "notes.txt").write_text("mine")
    assert_usage_error(cli("train", "--run-dir", tmp_path / "stranger", *tiny_flags), "holds no run")
    run = tmp_path / "run"
    assert cli("train", "--run-dir", run, "--train-steps", 10, "--log-steps", 10, *tiny_flags).returncode == 0
    before = {p: (run / p).read_bytes() for p in os.listdir(run)}
    assert_usage_error(cli("train", "--run-dir", run, "--batch-size", 64), "batch_size=32")
    assert {p: (run / p).read_bytes() for p in os.listdir(run)} == before


def test_bad_evaluate_input_exits_2_and_keeps_results(tmp_path, cli, tiny_flags):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_usage_error(cli("evaluate", "--run-dir", empty), "not a run directory")
    run = tmp_path / "run"
    assert cli("train", "--run-dir", run, "--train-steps", 10, "--log-steps", 10, *tiny_flags).returncode == 0
    (run / rundir.RESULTS).write_text("earlier results\n")
    assert_usage_error(cli("evaluate", "--run-dir", run, "--probes", "linear,magic"), "magic")
    assert_usage_error(cli("evaluate", "--run-dir", run, "--num-eval-batches", 0), "num-eval-batches")
    checkpoint = (run / rundir.CHECKPOINT).read_bytes()
    (run / rundir.CHECKPOINT).write_bytes(checkpoint[: len(checkpoint) // 2])  # truncated
    assert_usage_error(cli("evaluate", "--run-dir", run), "not a readable checkpoint")
    assert_usage_error(cli("train", "--run-dir", run), "not a readable checkpoint")
    os.remove(run / rundir.CHECKPOINT)
    assert_usage_error(cli("evaluate", "--run-dir", run), "no checkpoint")
    config = (run / rundir.CONFIG).read_text()
    (run / rundir.CONFIG).write_text(config[: len(config) // 2])
    assert_usage_error(cli("evaluate", "--run-dir", run), "not a valid config")
    assert (run / rundir.RESULTS).read_text() == "earlier results\n"


def test_help_documents_every_flag_with_its_preset_defaults(cli):
    result = cli("train", "--help")
    assert result.returncode == 0
    for flag in (
        "--content-n",
        "--style-n",
        "--modality-n",
        "--encoding-size",
        "--style-change-prob",
        "--statistical-dependence",
        "--content-dependent-style",
        "--c-param",
        "--m-param",
        "--n-mixing-layer",
        "--shared-mixing",
        "--shared-encoder",
        "--seed",
        "--batch-size",
        "--lr",
        "--train-steps",
        "--log-steps",
    ):
        assert flag in result.stdout
    assert "(default paper: 6144, quick: 256)" in " ".join(result.stdout.split())


def test_help_and_argument_errors_do_not_load_jax():
    probe = (
        "import sys\nfrom mmident_jax import cli\n"
        "for argv in (['train', '--help'], ['sweep', '--out', 'x', '--preset', 'nope']):\n"
        "    try:\n        cli.main(argv)\n    except SystemExit as e:\n        assert e.code in (0, 2), e.code\n"
        "print('jax' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr


def test_an_evaluation_too_large_for_the_exact_probe_is_refused_before_any_work(tmp_path, cli):
    assert_usage_error(
        cli("evaluate", "--run-dir", tmp_path, "--num-eval-batches", 9), "36864 samples", "at most 8 batches", "nystrom"
    )
    assert_usage_error(
        cli("sweep", "--out", tmp_path / "s", "--preset", "table1-quick", "--num-eval-batches", 9), "at most 8 batches"
    )
    assert not (tmp_path / "s").exists()
    # the MLP probe has no size limit: the same request gets as far as the (missing) run
    assert_usage_error(
        cli("evaluate", "--run-dir", tmp_path, "--num-eval-batches", 9, "--nonlinear-probe", "mlp"),
        "not a run directory",
    )


@pytest.mark.slow
def test_evaluate_adds_identifiability_metrics_and_a_correlation_figure(tmp_path, cli, tiny_flags):
    run = tmp_path / "run"
    assert cli("train", "--run-dir", run, "--train-steps", 20, "--log-steps", 20, *tiny_flags).returncode == 0
    result = cli(
        "evaluate",
        "--run-dir",
        run,
        "--probes",
        "linear",
        "--num-eval-batches",
        1,
        "--metrics",
        "mcc,dci,ceiling",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    header = (run / rundir.RESULTS).read_text().splitlines()[0].split(",")
    for column in (
        "mcc_pearson_in",
        "mcc_spearman_out",
        "dci_d",
        "dci_c",
        "dci_i",
        "ceiling_linear",
        "ceiling_kernel",
        "norm_linear",
    ):
        assert column in header, column
    assert "mcc_pearson_out" in result.stdout
    assert (run / "correlations.png").stat().st_size > 0
    assert_usage_error(cli("evaluate", "--run-dir", run, "--metrics", "mcc,sap"), "unknown metric 'sap'")


def test_a_probe_that_cannot_be_fitted_is_one_line(tmp_path, monkeypatch, cli, tiny_flags):
    from mmident_jax import probes

    run = tmp_path / "run"
    assert cli("train", "--run-dir", run, "--train-steps", 2, "--log-steps", 2, *tiny_flags).returncode == 0
    monkeypatch.setattr(probes, "linear_r2_blocks", lambda *args: probes.kfold_splits(2, 3))  # 3 folds of 2
    assert_usage_error(
        cli("evaluate", "--run-dir", run, "--probes", "linear", "--no-progress"), "need 2 <= folds <= n samples"
    )


def test_a_missing_optional_dependency_is_named_with_its_extra(tmp_path, monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    assert_usage_error(
        cli("imgtxt", "export", "--out", tmp_path / "data", "--n", 2),
        "needs Pillow",
        "pip install 'mmident-jax[images]'",
    )
