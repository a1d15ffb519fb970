"""`score`: every column against a direct computation; the `score` command on files from plain NumPy."""

import argparse
import csv
import math
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr
from sklearn.linear_model import LinearRegression

from mmident_jax import identifiability as I
from mmident_jax import probes
from mmident_jax.score import COLUMNS, METRICS, ScoreError, add_parser, format_table, run, score, split_indices

N = 300  # every test uses 300 samples, split 150/150, so the compiled programs are shared


def make_data(n=N, seed=0):
    """Content c (3), style s depending on c (2), modality m (2); codes: a warped, permuted content."""
    rng = np.random.default_rng(seed)
    c, m = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    s = 0.8 * c[:, :2] + 0.6 * rng.normal(size=(n, 2))
    h = np.column_stack([np.tanh(c[:, 2]), 3 * c[:, 0], -c[:, 1] + 0.1 * rng.normal(size=n)])
    return {"c": c, "s": s, "m": m}, h


def oracle_mcc_out(x, y, x_test, y_test):
    d = x.shape[1]
    rows, cols = linear_sum_assignment(-np.abs(np.corrcoef(x, y, rowvar=False)[:d, d:]))
    return np.abs(np.corrcoef(x_test, y_test, rowvar=False)[:d, d:])[rows, cols].mean()


def oracle_mcc_spearman(x, y):
    d = x.shape[1]
    cc = np.abs(spearmanr(x, y)[0][:d, d:])
    return cc[linear_sum_assignment(-cc)].mean()


def test_rows_equal_direct_computations():
    z, h = make_data()
    rows = score(z, h, metrics=("linear", "mcc", "dci", "ceiling"), seed=3)
    assert [r["block"] for r in rows] == ["c", "s", "m", "all"]
    assert [r["dims"] for r in rows] == [3, 2, 2, 7]
    by = {r["block"]: r for r in rows}
    val, test = split_indices(N, 0.5, 3)
    with jax.enable_x64(True):
        mean, std = probes.standardize_fit(h[val])
        h_val, h_test = (np.asarray(probes.standardize_apply(h[i], mean, std)) for i in (val, test))
        z_all = np.concatenate([z["c"], z["s"], z["m"]], axis=1)
        for name, block in [*z.items(), ("all", z_all)]:
            assert by[name]["r2_linear"] == pytest.approx(
                LinearRegression().fit(h[val], block[val]).score(h[test], block[test]), abs=1e-10
            )
            assert by[name]["mcc_pearson_out"] == pytest.approx(
                oracle_mcc_out(block[val], h[val], block[test], h[test]), abs=1e-10
            )
            assert by[name]["mcc_spearman_in"] == pytest.approx(oracle_mcc_spearman(block[test], h[test]), abs=1e-10)
        d = I.dci(h_val, z_all[val], h_test, z_all[test])
    assert by["all"]["dci_d"] == pytest.approx(d.disentanglement, abs=1e-12)
    assert by["all"]["dci_c"] == pytest.approx(d.completeness, abs=1e-12)
    assert by["all"]["dci_i"] == pytest.approx(d.informativeness, abs=1e-12)
    assert by["s"]["dci_i"] == pytest.approx(np.mean(d.factor_informativeness[3:5]), abs=1e-12)
    assert "dci_d" not in by["c"]  # disentanglement is global: only in the "all" row
    # content recovered, style only through its dependence on content, modality not at all
    assert by["c"]["r2_linear"] > 0.9 and by["c"]["mcc_spearman_in"] > 0.95
    assert by["m"]["r2_linear"] < 0.05 and by["m"]["ceiling_linear"] < 0.05
    ceiling = LinearRegression().fit(z["c"][val], z["s"][val]).score(z["c"][test], z["s"][test])
    assert by["s"]["ceiling_linear"] == pytest.approx(ceiling, abs=1e-10)
    assert 0.4 < by["s"]["ceiling_linear"] < 0.8 and by["s"]["r2_linear"] > 0.3
    assert by["s"]["norm_linear"] == pytest.approx(I.normalized_score(by["s"]["r2_linear"], ceiling), abs=1e-12)
    assert by["s"]["norm_linear"] < 0.1  # nothing beyond what content explains
    assert by["c"]["ceiling_linear"] == pytest.approx(1.0) and "norm_linear" not in by["c"]
    assert "ceiling_linear" not in by["all"]


def test_input_forms_agree():
    z, h = make_data()
    metrics = ("linear", "mcc")
    reference = score(z, h, metrics=metrics)
    single = np.concatenate([z["c"], z["s"], z["m"]], axis=1)
    from_array = score(single, h, blocks={"c": (0, 3), "s": (3, 5), "m": (5, 7)}, metrics=metrics)
    with jax.enable_x64(True):  # float64 JAX arrays; float32 ones would be scored in float32
        from_jax = score({k: jnp.asarray(v) for k, v in z.items()}, jnp.asarray(h), metrics=metrics)
    from_split = score(z, h, metrics=metrics, split=split_indices(N, 0.5, 0))
    for rows in (from_array, from_jax, from_split):
        assert rows == reference
    from_float32 = score(
        {k: jnp.asarray(v, jnp.float32) for k, v in z.items()}, jnp.asarray(h, jnp.float32), metrics=metrics
    )
    for row, want in zip(from_float32, reference):
        assert row["mcc_spearman_out"] == pytest.approx(want["mcc_spearman_out"], abs=1e-6)
    assert score(z, h, metrics="linear,mcc") == reference
    other_seed = score(z, h, metrics=metrics, seed=1)
    assert other_seed != reference and [r["block"] for r in other_seed] == [r["block"] for r in reference]
    whole = score(single, h, metrics=("mcc",))  # one array without blocks: one block "z"
    assert [r["block"] for r in whole] == ["z", "all"]
    assert whole[0]["mcc_pearson_in"] == pytest.approx(reference[-1]["mcc_pearson_in"], abs=1e-12)


def test_explicit_split_is_used():
    z, h = make_data()
    val, test = np.arange(0, N, 2), np.arange(1, N, 2)
    rows = score(z, h, metrics=("mcc",), split=(val, test))
    c = z["c"]
    assert rows[0]["mcc_pearson_out"] == pytest.approx(oracle_mcc_out(c[val], h[val], c[test], h[test]), abs=1e-10)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda z, h: score(z, h[:-1]), ["300", "299"]),
        (lambda z, h: score(z, np.where(np.arange(N)[:, None] == 7, np.nan, h)), ["non-finite", "row 7"]),
        (lambda z, h: score(z, h[None]), ["2-D", "(1, 300, 3)"]),
        (lambda z, h: score(z, h, metrics=("mcc", "nope")), ["unknown metric", "nope"]),
        (lambda z, h: score(z, h, content="x"), ["content block 'x'", "ceiling"]),
        (lambda z, h: score(z, h, val_fraction=1.5), ["val_fraction", "1.5"]),
        (lambda z, h: score(z, h, val_fraction=0.005), ["at least 5"]),
        (lambda z, h: score(z, h, split=(np.arange(10), np.arange(5, 20))), ["overlap"]),
        (lambda z, h: score(z, h, split=(np.arange(10), np.array([0.5]))), ["integer"]),
        (lambda z, h: score(z["c"], h, blocks={"c": (0, 4)}), ["block 'c'", "outside"]),
        (lambda z, h: score({**z, "all": z["c"]}, h), ["reserved"]),
        (lambda z, h: score({**z, "m": z["m"][:10]}, h), ["different numbers of samples"]),
        (lambda z, h: score(z, h, kernel_approx="exact"), ["kernel_approx"]),
    ],
)
def test_bad_input_raises_one_line_score_error(call, words):
    z, h = make_data()
    with pytest.raises(ScoreError) as info:
        call(z, h)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, ValueError)
    for word in words:
        assert word in message, message


# ---------------------------------------------------------------- the command


def parse(*argv):
    parser = argparse.ArgumentParser(prog="mmident-jax")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["score", *map(str, argv)])


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_command_on_numpy_files_prints_table_and_writes_csv(tmp_path, cli):
    z, h = make_data()
    np.savez(tmp_path / "Z.npz", **z)  # what a user's own NumPy script writes
    np.save(tmp_path / "H.npy", h)
    out = tmp_path / "scores"
    result = cli("score", "--latents", tmp_path / "Z.npz", "--codes", tmp_path / "H.npy", "--out", out)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    assert printed[0].split() == [c for c in COLUMNS if c != "codes"]  # every metric by default
    assert [line.split()[0] for line in printed[1:]] == ["c", "s", "m", "all"]
    table = read_csv(out / "scores.csv")
    assert list(table[0]) == list(COLUMNS)
    expected = score(z, h)  # the same defaults from Python
    assert {r["codes"] for r in table} == {"H"}  # an .npy's array is named by its file
    expected = [{"codes": "H", **r} for r in expected]
    for row, want in zip(table, expected):
        for column in COLUMNS:
            if column in want:
                value = want[column]
                assert row[column] == str(value), column
            else:
                assert row[column] == "", column
    by = {r["block"]: r for r in expected}
    assert by["c"]["r2_nonlinear"] > 0.9 and by["m"]["r2_nonlinear"] < 0.1
    assert 0.3 < by["s"]["ceiling_kernel"] < 0.8 and 0 <= by["s"]["norm_kernel"] < 0.15
    assert format_table([{k: v for k, v in r.items() if k != "codes"} for r in expected]).splitlines() == printed


def test_command_codes_in_npz_options_and_rewrite(tmp_path, capsys):
    z, h = make_data()
    np.savez(tmp_path / "Z.npz", **z)
    np.savez(tmp_path / "H.npz", codes=h)
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores.csv").write_text("old\n")
    args = parse(
        "--latents",
        tmp_path / "Z.npz",
        "--codes",
        tmp_path / "H.npz",
        "--out",
        out,
        "--metrics",
        "linear,ceiling",
        "--content",
        "s",
        "--val-fraction",
        0.25,
        "--seed",
        4,
    )
    run(args)
    table = read_csv(out / "scores.csv")
    assert list(table[0]) == ["codes", "block", "dims", "r2_linear", "ceiling_linear", "norm_linear"]
    want = score(z, h, metrics=("linear", "ceiling"), content="s", val_fraction=0.25, seed=4)
    assert [float(r["r2_linear"]) for r in table] == [r["r2_linear"] for r in want]
    assert want != score(z, h, metrics=("linear", "ceiling"), content="s", seed=4)  # the fraction mattered
    # s is the content now: no normalised score for it (nor for "all"), one for c and m
    assert [r["norm_linear"] for r in table] == [str(want[0]["norm_linear"]), "", str(want[2]["norm_linear"]), ""]
    assert float(table[1]["ceiling_linear"]) == pytest.approx(1.0)
    assert sorted(p.name for p in out.iterdir()) == ["scores.csv"]  # replaced atomically, no temporary left
    capsys.readouterr()
    run(parse("--latents", tmp_path / "Z.npz", "--codes", tmp_path / "H.npz", "--metrics", "mcc"))
    assert "mcc_pearson_in" in capsys.readouterr().out  # without --out: printed only


@pytest.mark.parametrize(
    "setup, flags, words",
    [
        (lambda d, z, h: np.save(d / "H.npy", h[:-5]), [], ["300", "295"]),
        (lambda d, z, h: np.save(d / "H.npy", np.where(h > 2.5, np.nan, h)), [], ["non-finite"]),
        (lambda d, z, h: np.save(d / "H.npy", h[None]), [], ["2-D"]),
        (lambda d, z, h: None, ["--metrics", "mcc,r2"], ["unknown metric", "'r2'"]),
        (lambda d, z, h: (d / "Z.npz").unlink(), [], ["latents file", "does not exist"]),
        (lambda d, z, h: (d / "H.npy").write_text("not an array"), [], ["not an array file numpy wrote", "numpy.save"]),
        (
            lambda d, z, h: np.save(d / "H.npy", np.array([{"h": 1}], dtype=object), allow_pickle=True),
            [],
            ["pickled objects", "not read", "numpy.save"],
        ),
        (lambda d, z, h: torch_like_file(d / "H.npy"), [], ["a PyTorch file", "tensor.cpu().numpy()", "numpy.save"]),
        (lambda d, z, h: torch_like_file(d / "Z.npz"), [], ["latents file", "a PyTorch file"]),
        (lambda d, z, h: np.savez(d / "Z.npz", **{**z, "m": np.ones((300, 2))}), [], ["'m' is constant", "[0, 1]"]),
        (lambda d, z, h: np.save(d / "H.npy", np.ones_like(h)), [], ["codes are constant"]),
        (lambda d, z, h: None, ["--content", "x"], ["content block 'x'", "--blocks c=0:5"]),
        (
            lambda d, z, h: np.save(open(d / "Z.npz", "wb"), np.random.default_rng(0).normal(size=(300, 3))),
            [],
            ["content block 'c'", "['z']", "--blocks"],
        ),
        (lambda d, z, h: None, ["--blocks", "c=0:2"], ["--blocks cuts one latents array", "holds 3"]),
        (lambda d, z, h: None, ["--val-codes", "v.npy"], ["either --latents and --codes", "not both"]),
        (lambda d, z, h: None, ["--val-fraction", "1.5"], ["val_fraction"]),
        (lambda d, z, h: (d / "out").write_text("a file"), [], ["not a directory"]),
    ],
)
def test_command_bad_input_exits_2_with_one_line(tmp_path, setup, flags, words, cli):
    """Among them, what other frameworks write: a PyTorch file, a pickle, one unnamed latents array."""
    z, h = make_data()
    np.savez(tmp_path / "Z.npz", **z)
    np.save(tmp_path / "H.npy", h)
    setup(tmp_path, z, h)
    codes = tmp_path / "H.npy"
    result = cli("score", "--latents", tmp_path / "Z.npz", "--codes", codes, "--out", tmp_path / "out", *flags)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmident-jax score: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert result.stdout == "" and "allow_pickle" not in result.stderr
    assert not (tmp_path / "out" / "scores.csv").exists()


def torch_like_file(path):
    """What `torch.save` writes: a zip archive with `<name>/data.pkl` (made here without PyTorch)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/version", "3\n")


def test_separate_split_files_equal_the_python_apis_given_split(tmp_path, cli):
    z, h = make_data()
    val, test = np.arange(0, 300, 3), np.setdiff1d(np.arange(300), np.arange(0, 300, 3))
    for where, rows in (("val", val), ("test", test)):
        np.savez(tmp_path / f"Z_{where}.npz", **{k: v[rows] for k, v in z.items()})
        np.save(tmp_path / f"H_{where}.npy", h[rows])
    out = tmp_path / "out"
    result = cli(
        "score",
        "--val-latents",
        tmp_path / "Z_val.npz",
        "--val-codes",
        tmp_path / "H_val.npy",
        "--test-latents",
        tmp_path / "Z_test.npz",
        "--test-codes",
        tmp_path / "H_test.npy",
        "--metrics",
        "linear,kernel,mcc",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    want = score(z, h, metrics=("linear", "kernel", "mcc"), split=(val, test))
    got = read_csv(out / "scores.csv")
    assert [float(r["r2_linear"]) for r in got] == [r["r2_linear"] for r in want]
    assert [float(r["mcc_pearson_out"]) for r in got] == [r["mcc_pearson_out"] for r in want]
    np.testing.assert_allclose([float(r["r2_nonlinear"]) for r in got], [r["r2_nonlinear"] for r in want], rtol=1e-12)
    assert want != score(z, h, metrics=("linear", "kernel", "mcc"))  # the split given mattered


def test_two_code_arrays_in_one_npz_give_one_table_each(tmp_path, cli):
    z, h = make_data()
    np.savez(tmp_path / "Z.npz", **z)
    np.savez(tmp_path / "H.npz", hz1=h, hz2=h[:, ::-1] * 2.0 + 1.0)
    out = tmp_path / "out"
    result = cli(
        "score", "--latents", tmp_path / "Z.npz", "--codes", tmp_path / "H.npz", "--metrics", "linear", "--out", out
    )
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("#")] == ["# hz1", "# hz2"]
    table = read_csv(out / "scores.csv")
    assert [(r["codes"], r["block"]) for r in table] == [(c, b) for c in ("hz1", "hz2") for b in ("c", "s", "m", "all")]
    want = score(z, h, metrics=("linear",))
    assert [float(r["r2_linear"]) for r in table[:4]] == [r["r2_linear"] for r in want]
    np.testing.assert_allclose(
        [float(r["r2_linear"]) for r in table[4:]], [r["r2_linear"] for r in want], atol=1e-9
    )  # an affine map of the same codes: the same linear R²


def test_one_latents_array_named_by_blocks(tmp_path, cli):
    z, h = make_data()
    names = list(z)
    np.save(tmp_path / "Z.npy", np.concatenate([z[k] for k in names], axis=1))
    np.save(tmp_path / "H.npy", h)
    widths = np.cumsum([0] + [z[k].shape[1] for k in names])
    blocks = ",".join(f"{k}={a}:{b}" for k, a, b in zip(names, widths, widths[1:]))
    out = tmp_path / "out"
    result = cli(
        "score",
        "--latents",
        tmp_path / "Z.npy",
        "--codes",
        tmp_path / "H.npy",
        "--blocks",
        blocks,
        "--metrics",
        "linear,ceiling",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert [float(r["r2_linear"]) for r in read_csv(out / "scores.csv")] == [
        r["r2_linear"] for r in score(z, h, metrics=("linear", "ceiling"))
    ]


def test_a_constant_code_column_is_scored_with_a_one_line_warning(tmp_path, cli):
    z, h = make_data()
    np.savez(tmp_path / "Z.npz", **z)
    np.save(tmp_path / "H.npy", np.concatenate([h, np.zeros((len(h), 1))], axis=1))
    result = cli("score", "--latents", tmp_path / "Z.npz", "--codes", tmp_path / "H.npy", "--metrics", "linear")
    assert result.returncode == 0
    assert result.stderr.strip().splitlines() == [
        f"warning: H: code column(s) [{h.shape[1]}] are constant and carry no information"
    ]


def test_metric_names_are_the_documented_ones():
    assert METRICS == ("linear", "kernel", "mcc", "dci", "ceiling")
    z, h = make_data()
    rows = score(z, h, metrics=("ceiling",))  # no probe asked: the linear ceiling alone
    assert set(rows[1]) == {"block", "dims", "ceiling_linear"}
    assert math.isfinite(rows[1]["ceiling_linear"])


def test_unconverged_dci_warns():
    z, h = make_data()
    h = h.copy()
    h[:, 1] = h[:, 0] + 1e-6 * np.random.default_rng(1).normal(size=N)  # a near-duplicate code
    with pytest.warns(UserWarning, match="DCI: some Lasso fits stopped"):
        rows = score(z, h, metrics=("dci",))
    assert math.isfinite(rows[-1]["dci_d"])


def test_the_parser_loads_no_jax():
    import subprocess

    code = (
        "import argparse, sys; from mmident_jax import score; p = argparse.ArgumentParser(); "
        "score.add_parser(p.add_subparsers()); print('jax' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
