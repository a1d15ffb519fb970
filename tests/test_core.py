"""The headline invariants of the one training core, in every test run, on tiny runs: a run's
numbers are a function of its config and seed. vmapped equals a loop over seeds; the engine's
runs are each bitwise the run alone; `fit` equals the pure `train`; a resumed run is bitwise
the uninterrupted one (also under a decaying schedule, whose horizon a resume keeps)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmident_jax import driver, engine, rundir, train
from mmident_jax.config import Config, hyper, replace

TINY = Config(
    content_n=2,
    style_n=2,
    modality_n=2,
    encoding_size=2,
    encoder_widths=(8,),
    batch_size=16,
    cond_pool=200,
    lr=1e-2,
    encoder_init="lecun",
    train_steps=6,
    log_steps=3,
)


def test_vmapped_train_equals_a_loop_over_seeds():
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    train_fn = train.make_train(TINY)
    batched, batched_losses = jax.jit(jax.vmap(train_fn))(keys)
    single = jax.jit(train_fn)
    for i, key in enumerate(keys):
        state, losses = single(key)
        chex.assert_trees_all_close(batched_losses[i], losses, rtol=2e-5, atol=2e-5)  # vmap's matmuls round
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], batched.params), state.params, rtol=2e-4, atol=2e-5)
    assert not np.allclose(batched_losses[0], batched_losses[1])  # the seeds differ


def test_vmapping_over_learning_rates_equals_separate_configs():
    hp = jax.vmap(lambda lr: hyper(TINY)._replace(lr=lr))(jnp.array([1e-2, 3e-2]))
    batched, _ = jax.jit(jax.vmap(train.make_train(TINY), in_axes=(None, 0)))(jax.random.PRNGKey(0), hp)
    single, _ = jax.jit(train.make_train(replace(TINY, lr=3e-2)))(jax.random.PRNGKey(0))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], batched.params), single.params, rtol=2e-4, atol=2e-5)


def test_the_engines_runs_are_each_bitwise_the_run_alone():
    experiment, seeds = train.experiment(TINY), [0, 1, 2]
    keys = np.stack([driver.key(replace(TINY, seed=s)) for s in seeds])
    hp = jax.tree.map(lambda x: np.full((len(seeds),), x), hyper(TINY))
    together = engine.train_runs(experiment, keys, hp)
    for i in seeds:
        alone = engine.train_runs(experiment, keys[i : i + 1], jax.tree.map(lambda x: x[i : i + 1], hp))
        chex.assert_trees_all_equal(
            jax.tree.map(lambda x: x[i], together.state), jax.tree.map(lambda x: x[0], alone.state)
        )


def test_fit_equals_the_pure_train_function(tmp_path):
    fitted = train.fit(TINY, tmp_path / "run", progress=False)
    pure, _ = jax.jit(train.make_train(TINY))(jax.random.PRNGKey(TINY.seed))
    chex.assert_trees_all_close(fitted.params, pure.params, rtol=1e-5, atol=1e-6)  # scan vs chunks: round-off
    assert int(fitted.step) == TINY.train_steps


@pytest.mark.parametrize("schedule", ["constant", "warmup_cosine"])
def test_a_resumed_run_is_bitwise_the_uninterrupted_one(tmp_path, schedule):
    cfg = replace(TINY, lr_schedule=schedule, warmup_steps=2 if schedule == "warmup_cosine" else 0)
    full = train.fit(cfg, tmp_path / "full", progress=False)

    def interrupt_at_3(state):  # after step 3's checkpoint is written
        if int(state.step) == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train.fit(cfg, tmp_path / "split", monitor=interrupt_at_3, progress=False)
    resumed = train.fit(cfg, tmp_path / "split", progress=False)
    chex.assert_trees_all_equal(full, resumed)
    assert [m["step"] for m in rundir.read_metrics(tmp_path / "split")] == [3, 6]
    if schedule == "warmup_cosine":  # the schedule ends at train_steps: another horizon is another run
        with pytest.raises(rundir.RunDirError, match="warmup_cosine schedule, which ends at train_steps=6"):
            train.fit(replace(cfg, train_steps=12), tmp_path / "split", progress=False)
    else:  # a constant rate may train on
        assert int(train.fit(replace(cfg, train_steps=9), tmp_path / "split", progress=False).step) == 9
