import functools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmident_jax import core, engine, losses, sweep
from mmident_jax.config import ConfigError, replace
from mmident_jax.imgtxt import dataset, scenes
from mmident_jax.imgtxt import experiment as imgtxt
from mmident_jax.imgtxt.config import ImgTxtConfig, ImgTxtSweep

TINY = ImgTxtConfig(image_encoder="cnn", image_size=16, batch_size=8, lr=1e-3, train_steps=4, log_steps=2, eval_size=64)


@pytest.mark.slow
def test_training_is_a_pure_function_of_the_key():
    train = jax.jit(core.make_train(imgtxt.experiment(TINY)))
    run = lambda key: train(key, ())
    (a, losses_a), (b, losses_b) = run(jax.random.PRNGKey(0)), run(jax.random.PRNGKey(0))
    chex.assert_trees_all_equal((a, losses_a), (b, losses_b))
    chex.assert_tree_all_finite(losses_a)
    assert float(losses_a[0]) != float(run(jax.random.PRNGKey(1))[1][0])

    # step 0's loss is the objective of the initial encoders on the first batch of the data stream
    @jax.jit
    def first_loss(key):
        start = imgtxt.make_init(TINY)(key, ())
        _, images, tokens = imgtxt.pairs(jax.random.fold_in(core.stream(key, "data"), 0), TINY, TINY.batch_size)
        return losses.nt_xent(*imgtxt.codes(start.params, TINY, images, tokens), TINY.temperature)

    assert float(losses_a[0]) == pytest.approx(float(first_loss(jax.random.PRNGKey(0))), rel=1e-5)


@pytest.mark.slow
def test_fit_resumes_to_the_uninterrupted_run(tmp_path):
    whole = imgtxt.fit(TINY, tmp_path / "whole", progress=False)
    imgtxt.fit(replace(TINY, train_steps=2), tmp_path / "parts", progress=False)
    resumed = imgtxt.fit(TINY, tmp_path / "parts", progress=False)
    chex.assert_trees_all_equal(whole, resumed)
    scanned, _ = jax.jit(core.make_train(imgtxt.experiment(TINY)))(jax.random.PRNGKey(TINY.seed), ())
    chex.assert_trees_all_close(whole.params, scanned.params, rtol=1e-3, atol=5e-5)  # host-stepped = scanned


def test_a_sweeps_table_says_what_differs_from_its_preset():
    from mmident_jax import presets

    preset = presets.get("imgtxt sweep", "imgtxt-quick")
    assert imgtxt.about("imgtxt-quick", preset, 2, 500) == (
        "Settings: seeds 2 (**the preset: 1**); steps 500 (**the preset: 3,000**); batch 128; encoding sizes 4, 8; "
        "images cnn on 32×32; evaluation 2048 + 2048 pairs."
    )


def test_config_is_validated():
    with pytest.raises(ConfigError, match="image_encoder must be one of"):
        replace(TINY, image_encoder="vit")
    with pytest.raises(ConfigError, match="batch_size must be >= 2"):
        replace(TINY, batch_size=1)


@pytest.fixture
def imgtxt_cli(cli):
    """`imgtxt_cli(...)`: `mmident-jax imgtxt ...` in this process."""
    return lambda *args: cli("imgtxt", *args)


def test_cli_exports_a_loadable_data_set_and_refuses_bad_input(tmp_path, imgtxt_cli):
    result = imgtxt_cli("export", "--out", tmp_path / "data", "--n", 5, "--image-size", 16)
    assert result.returncode == 0, result.stderr
    images, texts, latents = dataset.load(tmp_path / "data")
    assert images.shape == (5, 16, 16, 3) and len(texts) == 5 and len(latents["object_shape"]) == 5
    again = imgtxt_cli("export", "--out", tmp_path / "data", "--n", 5)  # never overwrites
    assert again.returncode == 2 and "not an empty directory" in again.stderr
    for args, words in (
        (["sweep", "--out", tmp_path / "s", "--preset", "nope"], "invalid choice: 'nope'"),
        (["train", "--run-dir", tmp_path / "r", "--preset", "imgtxt-quick", "--image-encoder", "vit"], "image_encoder"),
        (["train", "--run-dir", tmp_path / "r"], "a new run needs --preset, one of imgtxt ("),
        (["evaluate", "--run-dir", tmp_path / "missing"], "not a run directory"),
    ):
        result = imgtxt_cli(*args)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert words in result.stderr
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_sweep_vmaps_its_seeds_through_the_engine_and_resumes(tmp_path, monkeypatch):
    tiny = ImgTxtSweep(TINY, (3,), 2)
    study = imgtxt.study(tiny)
    ((cfg, runs),) = sweep.group_runs(study)  # one program for the size, both seeds
    assert [r.seed for r in runs] == [0, 1] and study.batching == "vmap"
    rows = sweep.sweep(study, tmp_path, progress=False)
    assert [(r["encoding_size"], r["seed"], r["encoder"], r["factor"]) for r in rows] == [
        (3, s, e, f) for s in (0, 1) for e in ("image", "text") for f in imgtxt.FACTORS
    ]
    for r in rows:
        classes = imgtxt.FACTORS[r["factor"]][1]
        assert r["chance"] == pytest.approx(1 / classes if classes else 0.0)
        assert r["score"] == (r["acc_nonlinear"] if classes else r["r2_nonlinear"])
    single = imgtxt.fit(replace(TINY, encoding_size=3, seed=1), tmp_path / "single", progress=False)
    trained = sweep.train_group(study, cfg, runs, None)
    chex.assert_trees_all_close(
        jax.tree.map(lambda x: x[1], trained.state.params), single.params, rtol=1e-4, atol=1e-5
    )  # seed 1 of the vmapped pair = seed 1 alone
    assert imgtxt.write_results(tmp_path, "tiny", rows, tiny, 2) == []
    md = (tmp_path / "results.md").read_text()
    assert "## Encoding size 3" in md and "| shape | content | accuracy | 0.14 |" in md
    assert (tmp_path / "samples.png").stat().st_size > 0 and (tmp_path / "results.png").stat().st_size > 0
    monkeypatch.setattr(engine, "chunk_program", lambda *a: pytest.fail("a finished run was trained again"))
    assert json.dumps(sweep.sweep(study, tmp_path, progress=False)) == json.dumps(rows)


# ------------------------------------------------------------------ evaluation on oracle codes
# `evaluate` probes the codes of held-out pairs for every factor. Here the encoders are known functions
# of the scene factors (`pairs` hands the factors on in place of the images and sentences, `codes` maps
# them), so what each probe must report follows from which factors a code carries.

ORACLE = replace(TINY, eval_size=512)  # 512 pairs to fit the probes, 512 to score: ~8 per content cell
CODE_SIZE = 18  # every oracle code has this size, so the probes compile once per class count
CONTENT = [f for f, (role, _) in imgtxt.FACTORS.items() if role == "content"]


def _features(factors, names):
    """One-hot columns for the discrete factors among `names`, the value itself for the continuous ones."""
    return jnp.concatenate(
        [
            jax.nn.one_hot(getattr(factors, f), imgtxt.FACTORS[f][1])
            if imgtxt.FACTORS[f][1]
            else getattr(factors, f)[:, None]
            for f in names
        ],
        axis=1,
    )


def affine(*names, seed=0):
    """Code = features(names) @ A, A Gaussian (features x CODE_SIZE, full row rank): injective, hence an
    invertible (affine) function of the factors `names`, and of nothing else."""

    def code(factors):
        x = _features(factors, names)
        return x @ jnp.asarray(np.random.default_rng(seed).normal(size=(x.shape[1], CODE_SIZE)), jnp.float32)

    return code


def warped(*names, seed=1):
    """An affine code of `names` through the strictly increasing t + tanh(t): invertible, not affine."""
    return lambda factors: (lambda t: t + jnp.tanh(t))(affine(*names, seed=seed)(factors))


@pytest.fixture
def oracle(request, monkeypatch):
    """`oracle(image_code, text_code, cfg)`: `evaluate`'s rows by (encoder, factor) when the image and text
    encoders are the given functions of the factors. The MLP classifier is (64, 64) units for 1000 steps
    (the probe of tests/test_probes.py) unless the test is parametrised with "paper" (the evaluation as
    it runs: (256, 256) units for up to 3000 steps)."""
    pairs = imgtxt.pairs
    monkeypatch.setattr(imgtxt, "pairs", lambda key, cfg, n: (pairs(key, cfg, n)[0],) * 3)
    if getattr(request, "param", "quick") == "quick":
        monkeypatch.setattr(
            imgtxt.P, "mlp_accuracy", functools.partial(imgtxt.P.mlp_accuracy, hidden=(64, 64), steps=1000)
        )

    def evaluate(image_code, text_code, cfg=ORACLE):
        monkeypatch.setattr(imgtxt, "codes", lambda params, _, images, tokens: (image_code(images), text_code(tokens)))
        state = imgtxt.State(jnp.zeros((), jnp.int32), None, None, jax.random.PRNGKey(cfg.seed))
        rows = imgtxt.evaluate(state, cfg)
        assert [(r["encoder"], r["factor"], r["role"]) for r in rows] == [
            (e, f, role) for e in imgtxt.ENCODERS for f, (role, _) in imgtxt.FACTORS.items()
        ]
        return {(r["encoder"], r["factor"]): r for r in rows}

    return evaluate


@functools.cache
def chance_band(factor: str, n: int = ORACLE.eval_size) -> tuple[float, float]:
    """Where the accuracy of a classifier of a code independent of `factor` lies on n test pairs.

    Its expectation, sum_k q_k p_k (q: its predictions' frequencies, p: the classes'), lies between the
    rarest and the commonest class frequency; 4 binomial standard deviations either side. Uniform
    factors: 1/classes ± 0.07 at n = 512. `color_name` is not uniform: palette 0 names only red, green
    and blue, so green and blue have frequency 7/36 while the names of the twelve-name palette alone
    have 1/36; an uninformative probe scores up to ~0.19, not the row's chance 1/12.
    """
    values = imgtxt.factor_values(scenes.sample_factors(jax.random.PRNGKey(1), 200_000))[factor]
    p = np.bincount(values, minlength=imgtxt.FACTORS[factor][1]) / len(values)
    sd = np.sqrt(p.max() * (1 - p.max()) / n)
    return p.min() - 4 * sd, p.max() + 4 * sd


def assert_at_chance(row):
    """Independent of the code: accuracy in `chance_band`, R² <= 0.05 (its expectation is <= 0)."""
    if imgtxt.FACTORS[row["factor"]][1]:
        low, high = chance_band(row["factor"])
        assert low <= row["acc_linear"] <= high and low <= row["acc_nonlinear"] <= high, row
    else:
        assert row["r2_linear"] <= 0.05 and row["r2_nonlinear"] <= 0.05, row


@pytest.mark.slow  # the next test checks the content too; this one adds the paper-size classifier
@pytest.mark.parametrize("oracle", ["quick", "paper"], indirect=True)
def test_content_codes_score_content_perfectly_and_everything_else_at_chance(oracle):
    """Both codes are invertible functions of shape, x and y (the image's affine, the text's warped): every
    content label is a function of the code (63 distinct codes, ~8 fitting pairs each), so the probes
    must read them all; a (shape, x, y) cell read wrong costs ~1/63 of the test pairs, more than the 1%
    the 0.99 threshold allows. Style, image- and text-specific factors are independent of content."""
    rows = oracle(affine(*CONTENT), warped(*CONTENT))
    for encoder in imgtxt.ENCODERS:
        for f in CONTENT:
            assert rows[encoder, f]["score"] == rows[encoder, f]["acc_nonlinear"]
            assert rows[encoder, f]["acc_nonlinear"] >= 0.99, rows[encoder, f]
        for f in imgtxt.FACTORS.keys() - CONTENT:
            assert_at_chance(rows[encoder, f])
    for f in CONTENT:  # one-hot features mixed linearly: the logistic regression suffices
        assert rows["image", f]["acc_linear"] >= 0.99, rows["image", f]


@pytest.mark.slow  # ~20 s compiling the evaluation's probes
def test_modality_specific_factors_are_read_from_their_own_code_only(oracle):
    """The image code also carries the rotation, the text code the phrasing: each is read (R² >= 0.99
    from the affine code; accuracy >= 0.99, as the content's, from the warped one) from its own code
    and is at chance from the other, while the content is read from both."""
    rows = oracle(affine(*CONTENT, "rotation"), warped(*CONTENT, "phrasing"))
    assert rows["image", "rotation"]["r2_linear"] >= 0.99 and rows["image", "rotation"]["score"] >= 0.99
    assert rows["text", "phrasing"]["score"] >= 0.99
    assert_at_chance(rows["text", "rotation"])
    assert_at_chance(rows["image", "phrasing"])
    for encoder in imgtxt.ENCODERS:
        for f in CONTENT:
            assert rows[encoder, f]["score"] >= 0.99, rows[encoder, f]
        for f in imgtxt.FACTORS.keys() - {*CONTENT, "rotation", "phrasing"}:
            assert_at_chance(rows[encoder, f])


@pytest.mark.slow
def test_content_codes_read_position_dependent_hue_up_to_the_share_content_explains(oracle):
    """With `position_dependent_color` the hue is (x + u) / 3, u ~ U[0, 1): E[hue | content] = (x + 1/2) / 3
    explains Var(x) / 9 / Var(hue) = (2/27) / (1/12) = 8/9 of its variance, and nothing in a code of the
    content explains more. The affine code's linear probe reaches it exactly in expectation (E[hue | x]
    is linear in the one-hot x; the test R² has a standard deviation of about 0.005 at n = 512); the
    kernel ridge fits up to 63 cell means from ~8 pairs each, which costs it a little more."""
    rows = oracle(affine(*CONTENT), warped(*CONTENT), replace(ORACLE, position_dependent_color=True))
    assert abs(rows["image", "hue"]["r2_linear"] - 8 / 9) <= 0.03, rows["image", "hue"]
    for encoder in imgtxt.ENCODERS:
        assert 8 / 9 - 0.06 <= rows[encoder, "hue"]["score"] <= 8 / 9 + 0.03, rows[encoder, "hue"]
        for f in CONTENT:
            assert rows[encoder, f]["score"] >= 0.99, rows[encoder, f]
        for f in imgtxt.FACTORS.keys() - {*CONTENT, "hue", "color_name"}:  # the colour name follows the hue
            assert_at_chance(rows[encoder, f])


def test_a_grid_crosses_the_encoding_sizes_and_titles_each_table(tmp_path):
    gridded = ImgTxtSweep(TINY, (3, 5), 2).with_grid({"lr": [1e-3, 3e-3], "batch_size": [16]})
    assert gridded.labels == ("lr",) and gridded.base.batch_size == 16  # one value: set, no column
    study = imgtxt.study(gridded)
    assert [dict(r.labels) for r in study.runs[:3]] == [
        {"encoding_size": 3, "lr": 1e-3},
        {"encoding_size": 3, "lr": 1e-3},
        {"encoding_size": 5, "lr": 1e-3},
    ]
    assert sweep.plan(study, 4, 2) == "4 settings × 2 seeds in 4 compiled programs"  # lr is not a per-run number
    with pytest.raises(ConfigError, match="^encoding_size cannot be a grid field"):
        ImgTxtSweep(TINY, (3,), 1).with_grid({"encoding_size": [3, 5]})
    rows = [
        {
            **dict(run.labels),
            "seed": run.seed,
            "encoder": e,
            "factor": f,
            "role": role,
            "score": 0.2 if run.cfg.lr == 1e-3 else 0.7,
        }
        for run in study.runs
        for e in imgtxt.ENCODERS
        for f, (role, _) in imgtxt.FACTORS.items()
    ]
    md = imgtxt.to_markdown("tiny", rows, 2, labels=gridded.labels)
    sections = md.split("## Encoding size ")[1:]
    assert [s.splitlines()[0] for s in sections] == ["3, lr=0.001", "5, lr=0.001", "3, lr=0.003", "5, lr=0.003"]
    assert all(("0.20±0.00 | 0.20±0.00 |" in s) == ("lr=0.001" in s) for s in sections)
    assert imgtxt.to_markdown("tiny", rows[:20], 2).count("## Encoding size") == 1  # no grid: the sizes alone
    assert imgtxt.save_figure(tmp_path / "results.png", "tiny", rows, gridded.labels)
