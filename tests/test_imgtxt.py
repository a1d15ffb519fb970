import json
import sys
from pathlib import Path

import chex
import jax
import pytest

from mmident_jax import losses, train
from mmident_jax.config import ConfigError, replace
from mmident_jax.imgtxt import dataset, experiment as imgtxt
from mmident_jax.imgtxt.config import ImgTxtConfig, ImgTxtSweep

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import cli as run_cli  # noqa: E402

TINY = ImgTxtConfig(image_encoder="cnn", image_size=16, batch_size=8, lr=1e-3, train_steps=4, log_steps=2,
                    eval_size=64)


@pytest.mark.slow
def test_training_is_a_pure_function_of_the_key():
    run = jax.jit(imgtxt.make_train(TINY))
    (a, losses_a), (b, losses_b) = run(jax.random.PRNGKey(0)), run(jax.random.PRNGKey(0))
    chex.assert_trees_all_equal((a, losses_a), (b, losses_b))
    chex.assert_tree_all_finite(losses_a)
    assert float(losses_a[0]) != float(run(jax.random.PRNGKey(1))[1][0])
    # step 0's loss is the objective of the initial encoders on the first batch of the data stream
    @jax.jit
    def first_loss(key):
        start = imgtxt.init(key, TINY)
        _, images, tokens = imgtxt.pairs(jax.random.fold_in(train.stream(key, "data"), 0), TINY, TINY.batch_size)
        return losses.nt_xent(*imgtxt.codes(start.params, TINY, images, tokens), TINY.temperature)

    assert float(losses_a[0]) == pytest.approx(float(first_loss(jax.random.PRNGKey(0))), rel=1e-5)


@pytest.mark.slow
def test_fit_resumes_to_the_uninterrupted_run(tmp_path):
    whole = imgtxt.fit(TINY, tmp_path / "whole", progress=False)
    imgtxt.fit(replace(TINY, train_steps=2), tmp_path / "parts", progress=False)
    resumed = imgtxt.fit(TINY, tmp_path / "parts", progress=False)
    chex.assert_trees_all_equal(whole, resumed)
    scanned, _ = jax.jit(imgtxt.make_train(TINY))(jax.random.PRNGKey(TINY.seed))
    chex.assert_trees_all_close(whole.params, scanned.params, rtol=1e-3, atol=5e-5)  # host-stepped = scanned


def test_config_is_validated():
    with pytest.raises(ConfigError, match="image_encoder must be one of"):
        replace(TINY, image_encoder="vit")
    with pytest.raises(ConfigError, match="batch_size must be >= 2"):
        replace(TINY, batch_size=1)


def cli(*args):
    return run_cli("imgtxt", *args)


def test_cli_exports_a_loadable_data_set_and_refuses_bad_input(tmp_path):
    result = cli("export", "--out", tmp_path / "data", "--n", 5, "--image-size", 16)
    assert result.returncode == 0, result.stderr
    images, texts, latents = dataset.load(tmp_path / "data")
    assert images.shape == (5, 16, 16, 3) and len(texts) == 5 and len(latents["object_shape"]) == 5
    again = cli("export", "--out", tmp_path / "data", "--n", 5)  # never overwrites
    assert again.returncode == 2 and "not an empty directory" in again.stderr
    for args, words in ((["sweep", "--out", tmp_path / "s", "--preset", "nope"], "invalid choice: 'nope'"),
                        (["train", "--run-dir", tmp_path / "r", "--image-encoder", "vit"], "image_encoder"),
                        (["evaluate", "--run-dir", tmp_path / "missing"], "not a run directory")):
        result = cli(*args)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert words in result.stderr
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_sweep_writes_tables_figures_and_resumes(tmp_path, monkeypatch):
    tiny = ImgTxtSweep(TINY, (3,), 1)
    rows = imgtxt.sweep(tiny, tmp_path, progress=False)
    assert [(r["encoding_size"], r["encoder"], r["factor"]) for r in rows] == [
        (3, e, f) for e in ("image", "text") for f in imgtxt.FACTORS]
    for r in rows:
        classes = imgtxt.FACTORS[r["factor"]][1]
        assert r["chance"] == pytest.approx(1 / classes if classes else 0.0)
        assert r["score"] == (r["acc_nonlinear"] if classes else r["r2_nonlinear"])
    assert imgtxt.read_csv(tmp_path / "size3-seed0" / "results.csv") == rows
    assert imgtxt.write_results(tmp_path, "tiny", rows, tiny, 1) == []
    md = (tmp_path / "results.md").read_text()
    assert "## Encoding size 3" in md and "| shape | content | accuracy | 0.14 |" in md
    assert (tmp_path / "samples.png").stat().st_size > 0 and (tmp_path / "results.png").stat().st_size > 0
    monkeypatch.setattr(imgtxt, "fit", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert json.dumps(imgtxt.sweep(tiny, tmp_path, progress=False)) == json.dumps(rows)
