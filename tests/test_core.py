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
from mmident_jax.config import hyper, replace


def test_vmapped_train_equals_a_loop_over_seeds_and_learning_rates(tiny):
    """Three runs in one vmapped program, each its own seed and learning rate, against each run
    alone (`make_train` of its own config: the learning rate is a per-run number, one program)."""
    keys, lrs = jax.random.split(jax.random.PRNGKey(0), 3), jnp.array([1e-3, 3e-3, 1e-2])
    hp = jax.vmap(lambda lr: hyper(tiny)._replace(lr=lr))(lrs)
    batched, batched_losses = jax.jit(jax.vmap(train.make_train(tiny)))(keys, hp)
    for i in range(3):
        state, losses = jax.jit(train.make_train(replace(tiny, lr=float(lrs[i]))))(keys[i])
        chex.assert_trees_all_close(batched_losses[i], losses, rtol=2e-5, atol=2e-5)  # vmap's matmuls round
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], batched.params), state.params, rtol=2e-4, atol=2e-5)
    assert not np.allclose(batched_losses[0], batched_losses[1])  # the runs differ


def test_the_engines_runs_are_each_bitwise_the_run_alone(tiny):
    experiment, seeds = train.experiment(tiny), [0, 1, 2]
    keys = np.stack([driver.key(replace(tiny, seed=s)) for s in seeds])
    hp = jax.tree.map(lambda x: np.full((len(seeds),), x), hyper(tiny))
    together = engine.train_runs(experiment, keys, hp)
    for i in seeds:
        alone = engine.train_runs(experiment, keys[i : i + 1], jax.tree.map(lambda x: x[i : i + 1], hp))
        chex.assert_trees_all_equal(
            jax.tree.map(lambda x: x[i], together.state), jax.tree.map(lambda x: x[0], alone.state)
        )


def test_fit_equals_the_pure_train_function(tiny, tmp_path):
    fitted = train.fit(tiny, tmp_path / "run", progress=False)
    pure, _ = jax.jit(train.make_train(tiny))(jax.random.PRNGKey(tiny.seed))
    chex.assert_trees_all_close(fitted.params, pure.params, rtol=1e-5, atol=1e-6)  # scan vs chunks: round-off
    assert int(fitted.step) == tiny.train_steps


@pytest.mark.parametrize("schedule", ["constant", "warmup_cosine"])
def test_a_resumed_run_is_bitwise_the_uninterrupted_one(tiny, tmp_path, schedule):
    cfg = replace(tiny, lr_schedule=schedule, warmup_steps=5 if schedule == "warmup_cosine" else 0)
    full = train.fit(cfg, tmp_path / "full", progress=False)

    def interrupt_at_10(state):  # after step 10's checkpoint is written
        if int(state.step) == 10:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train.fit(cfg, tmp_path / "split", monitor=interrupt_at_10, progress=False)
    resumed = train.fit(cfg, tmp_path / "split", progress=False)
    chex.assert_trees_all_equal(full, resumed)
    assert [m["step"] for m in rundir.read_metrics(tmp_path / "split")] == [10, 20]
    if schedule == "warmup_cosine":  # the schedule ends at train_steps: another horizon is another run
        with pytest.raises(rundir.RunDirError, match="warmup_cosine schedule, which ends at train_steps=20"):
            train.fit(replace(cfg, train_steps=40), tmp_path / "split", progress=False)
    else:  # a constant rate may train on
        assert int(train.fit(replace(cfg, train_steps=30), tmp_path / "split", progress=False).step) == 30
