"""Any grid of config fields as a sweep: `--grid FIELD=V1,V2` and `--grid-file`, typed, crossed, grouped, reported."""

import json

import pytest

from mmident_jax import cli as command
from mmident_jax import grid, report, sweep, twoview
from mmident_jax.config import Config, ConfigError

# A tiny run in a sweep file: `sweep` has no per-field flags, so the sizes are the grid's one-value fields.
TINY_TOML = """\
encoder_widths = [[16]]
batch_size = [32]
cond_pool = [1000]
train_steps = [20]
log_steps = [10]
"""
TINY_FLAGS = ("--preset", "paper", "--seeds", 1, "--eval-size", 64, "--num-eval-batches", 1, "--no-progress")


def one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_values_are_typed_by_their_field():
    texts = [
        "statistical_dependence=true,no",
        "shared_mixing=1,0",
        "content_n=3,5",
        "style_change_prob=0.5,1",
        "loss=infonce,clip",
        "encoder_widths=64:64,128:128:128,32",
    ]
    assert grid.parse(texts)["encoder_widths"] == ["64:64", "128:128:128", "32"]
    typed = grid.typed(Config, grid.parse(texts))
    assert typed == {
        "statistical_dependence": [True, False],
        "shared_mixing": [True, False],
        "content_n": [3, 5],
        "style_change_prob": [0.5, 1.0],
        "loss": ["infonce", "clip"],
        "encoder_widths": [(64, 64), (128, 128, 128), (32,)],
    }
    assert [type(v) for v in typed["content_n"] + typed["style_change_prob"]] == [int, int, float, float]


def test_toml_and_json_sweep_files_give_the_command_lines_grid(tmp_path):
    (tmp_path / "g.toml").write_text(
        'style_change_prob = [0.5, 0.75]\nencoder_widths = [[64, 64], [32]]\nloss = ["clip"]\n'
    )
    (tmp_path / "g.json").write_text(
        '{"style_change_prob": [0.5, 0.75], "encoder_widths": [[64, 64], [32]], "loss": ["clip"]}'
    )
    from_toml, from_json = (grid.typed(Config, grid.read_file(tmp_path / f"g.{x}")) for x in ("toml", "json"))
    texts = ["style_change_prob=0.5,0.75", "encoder_widths=64:64,32", "loss=clip"]
    assert from_toml == from_json == grid.typed(Config, grid.parse(texts))
    assert list(from_toml) == ["style_change_prob", "encoder_widths", "loss"]  # the file's order


@pytest.mark.parametrize(
    "texts, words",
    [
        (["style_change_prb=0.5"], ["unknown grid field 'style_change_prb'", "did you mean style_change_prob"]),
        (["content_n=3,five"], ["content_n", "bad value 'five'", "integer"]),
        (["content_n=2.5"], ["content_n", "bad value '2.5'"]),
        (["shared_mixing=maybe"], ["shared_mixing", "true/false"]),
        (["encoder_widths=64:x"], ["encoder_widths", "':'"]),
        (["seed=0,1"], ["seed cannot be a grid field", "--seeds"]),
        (["content_n=3,3"], ["content_n", "value 3 is given 2 times"]),
        (["content_n"], ["FIELD=V1,V2"]),
        (["content_n=3", "content_n=5"], ["content_n is given twice"]),
    ],
)
def test_a_bad_grid_is_one_line_naming_the_field(texts, words):
    with pytest.raises(ConfigError) as error:
        grid.typed(Config, grid.parse(texts))
    assert "\n" not in str(error.value) and all(w in str(error.value) for w in words), str(error.value)


def test_a_grid_crosses_every_setting_in_order_and_refuses_an_invalid_combination():
    base = [(Config(), (("mechanism", "a"),)), (Config(modality_n=0), (("mechanism", "b"),))]
    values = grid.typed(Config, grid.parse(["content_n=3,5", "style_change_prob=0.5,1", "lr=0.01"]))
    expanded = grid.expand(base, values)
    assert [labels for _, labels in expanded][:3] == [
        (("mechanism", "a"), ("content_n", 3), ("style_change_prob", 0.5)),
        (("mechanism", "a"), ("content_n", 3), ("style_change_prob", 1.0)),
        (("mechanism", "a"), ("content_n", 5), ("style_change_prob", 0.5)),
    ]  # lr has one value: set everywhere, no column
    assert len(expanded) == 8 and all(cfg.lr == 0.01 for cfg, _ in expanded)
    assert [(cfg.modality_n, cfg.content_n) for cfg, _ in expanded[4:6]] == [(0, 3), (0, 3)]
    with pytest.raises(ConfigError, match=r"^grid setting mechanism=b discrete_block=m: .*has no dimensions$"):
        grid.expand(base, {"discrete_block": ["m"]})
    varies = "varies across the preset's settings already; grid it on one setting"
    with pytest.raises(ConfigError, match=f"^grid field encoding_size {varies}$"):
        grid.expand([(Config(), (("encoding_size", 5),))], {"encoding_size": [3, 7]})
    with pytest.raises(ConfigError, match=f"^grid field modality_n {varies}$"):  # a and b differ in it
        grid.expand(base, {"modality_n": [1, 2]})


def test_settings_that_differ_in_per_run_numbers_share_a_program():
    values = grid.typed(Config, grid.parse(["style_change_prob=0.5,0.75", "content_n=3,5"]))
    preset = command._grid_preset("quick", values)
    assert len(preset.settings) == 4 and preset.labels == ("style_change_prob", "content_n")
    groups = sweep.group_runs(twoview.study(preset))
    assert sweep.plan(twoview.study(preset), 4, 3) == "4 settings × 3 seeds in 2 compiled programs"
    assert [sorted({run.labels for run in runs}) for _, runs in groups] == [
        [(("style_change_prob", p), ("content_n", n)) for p in (0.5, 0.75)] for n in (3, 5)
    ]
    # a sweep preset: every setting crossed, its labels first; content_n doubles its programs
    table = command._grid_preset("table1-quick", {"content_n": [3, 5]})
    base = command._grid_preset("table1-quick", {})
    assert len(table.settings) == 2 * len(base.settings) and table.report == "grid"
    assert table.labels == (*base.labels, "content_n") and table.settings[1].label == (
        *base.settings[0].label,
        ("content_n", 5),
    )
    programs = lambda p: len(sweep.group_runs(twoview.study(p)))
    assert programs(table) == 2 * programs(base)


def test_the_grid_table_has_a_row_per_setting_with_its_labels():
    rows = [
        {"p_chg": p, "statistical": False, "content_n": n, "seed": s, "encoding": e, "predicted_factors": b,
         "r2_nonlinear": 0.5 + 0.1 * s, "r2_linear": 0.2}
        for p in (0.5, 1.0) for n in (3, 5) for s in (0, 1) for e in ("hz1", "hz2") for b in ("c", "s", "s~", "m1")
    ]  # fmt: skip
    text = report.grid_markdown("demo", rows, 2, ("p_chg", "statistical", "content_n"))
    lines = text.splitlines()
    assert lines[:2] == ["# demo", ""]
    assert "## Nonlinear R² (kernel ridge), mean ± std over 2 seeds" in lines
    assert "## Linear R², mean ± std over 2 seeds" in lines
    head = lines.index("| p_chg | statistical | content_n | hz1: c | hz1: s | hz1: m1 | hz2: c | hz2: s~ |")
    assert lines[head + 2 : head + 6] == [
        f"| {p} | no | {n} | " + " | ".join(["0.55±0.05"] * 3 + ["0.55±0.05", "0.55±0.05"]) + " |"
        for p in ("0.5", "1")
        for n in (3, 5)
    ]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--preset", "quick", "--grid", "stlye_change_prob=0.5"], ["unknown grid field", "style_change_prob"]),
        (["--preset", "quick", "--grid", "content_n=3,x"], ["content_n", "bad value 'x'"]),
        (["--preset", "quick", "--grid", "seed=1,2"], ["seed cannot be a grid field", "--seeds"]),
        (["--preset", "quick", "--grid", "content_n=0,3"], ["grid setting content_n=0", "content_n must be >= 1"]),
        (["--preset", "quick", "--grid", "train_steps=10", "--grid-file", "FILE"], ["train_steps is given twice"]),
        (["--preset", "quick", "--grid-file", "FILE", "--train-steps", 5], ["train_steps is a field of the grid"]),
        (["--preset", "quick", "--grid-file", "missing.toml"], ["cannot read grid file", "missing.toml"]),
        (["--preset", "quick"], ["quick is a run preset of mmident-jax train", "--grid"]),
        (["--preset", "nope", "--grid", "content_n=3"], ["invalid choice: 'nope'"]),
    ],
)
def test_bad_grid_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, words, cli):
    (tmp_path / "g.toml").write_text("train_steps = [10, 20]\n")
    args = [tmp_path / "g.toml" if a == "FILE" else tmp_path / a if str(a).endswith(".toml") else a for a in args]
    one_line_error(cli("sweep", "--out", tmp_path / "out", *args), *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_grid_sweep_runs_resumes_and_reports_from_its_rows(tmp_path, monkeypatch, cli):
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    out = tmp_path / "out"
    flags = ["--grid", "style_change_prob=0.5,0.75", "--grid-file", tmp_path / "tiny.toml", *TINY_FLAGS]
    first = cli("sweep", "--out", out, *flags)
    assert first.returncode == 0, first.stderr
    assert "2 settings × 1 seed in 1 compiled program" in first.stderr.splitlines()
    table = (out / "results.md").read_text()
    assert table.startswith("# paper\n\nSettings: seeds 1; steps 20; batch 32; precision float32; evaluation 1 × 64")
    for metric in ("Nonlinear R²", "Linear R²"):
        section = table.split(f"## {metric}")[1].split("\n\n")[1].splitlines()
        assert section[0] == "| style_change_prob | hz1: c | hz1: s | hz1: m1 | hz2: c | hz2: s~ | hz2: m2 |"
        assert [line.split(" | ")[0] for line in section[2:]] == ["| 0.5", "| 0.75"]  # one row per setting
    assert (out / "results.csv").read_text().splitlines()[0].startswith("style_change_prob,seed,encoding,")
    recorded = json.loads((out / "sweep.json").read_text())["grid"]
    assert recorded == {"style_change_prob": [0.5, 0.75], "encoder_widths": [[16]], "batch_size": [32],
                        "cond_pool": [1000], "train_steps": [20], "log_steps": [10]}  # fmt: skip

    def no_training(*args, **kwargs):
        raise AssertionError("a finished sweep trained again")

    monkeypatch.setattr(sweep, "train_group", no_training)
    again = cli("sweep", "--out", out, *flags)  # the same command: every group's rows are kept
    assert again.returncode == 0, again.stderr
    assert (out / "results.md").read_text() == table
    (out / "results.md").unlink()
    reported = cli("report", "--out", out)
    assert reported.returncode == 0, reported.stderr
    assert (out / "results.md").read_text() == table
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    other = ["--grid", "style_change_prob=0.5,1", *flags[2:]]  # another grid, the same --out
    one_line_error(cli("sweep", "--out", out, *other), "holds another sweep", "grid=")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
