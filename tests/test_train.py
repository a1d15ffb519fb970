import chex
import jax
import numpy as np
import pytest

from mmident_jax import core, engine, rundir, train
from mmident_jax.config import hyper, replace


def test_same_seed_gives_bitwise_identical_parameters(tiny):
    run = jax.jit(train.make_train(tiny))
    (s1, l1), (s2, l2) = run(jax.random.PRNGKey(7)), run(jax.random.PRNGKey(7))
    chex.assert_trees_all_equal((s1, l1), (s2, l2))
    s3, _ = run(jax.random.PRNGKey(8))
    assert not np.allclose(
        s1.params["g1"]["params"]["Dense_0"]["kernel"], s3.params["g1"]["params"]["Dense_0"]["kernel"]
    )


@pytest.mark.slow
def test_training_lowers_the_loss_and_trains_both_encoders(tiny):
    cfg = replace(tiny, train_steps=200)
    state, losses = jax.jit(train.make_train(cfg))(jax.random.PRNGKey(0))
    assert float(losses[-20:].mean()) < float(losses[:20].mean()) - 0.3
    assert set(state.params) == {"g1", "g2"}
    shared, _ = jax.jit(train.make_train(replace(cfg, shared_encoder=True, shared_mixing=True)))(jax.random.PRNGKey(0))
    assert set(shared.params) == {"g"}
    chex.assert_trees_all_equal(shared.truth.f1, shared.truth.f2)


def test_fit_compiles_one_program_per_chunk_length(tiny, tmp_path, monkeypatch):
    """25 steps in chunks of 10: lengths 10, 10, 5 need two chunk programs, not three."""
    chunk_program, lengths = engine.chunk_program, []
    monkeypatch.setattr(
        engine, "chunk_program", lambda exp, n, *args: lengths.append(n) or chunk_program(exp, n, *args)
    )
    state = train.fit(replace(tiny, train_steps=25, log_steps=10), tmp_path, progress=False)
    assert int(state.step) == 25 and lengths == [10, 5]


def test_divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny, tmp_path):
    cfg = replace(tiny, lr=1e30, grad_clip=1e30, train_steps=10, log_steps=1)
    with pytest.raises(core.TrainingDiverged, match=r"at step \d+; kept the checkpoint of step \d+"):
        train.fit(cfg, tmp_path, progress=False)
    kept = rundir.restore_checkpoint(tmp_path, jax.eval_shape(train.make_init(cfg), jax.random.PRNGKey(0), hyper(cfg)))
    assert 1 <= int(kept.step) < 10
    chex.assert_tree_all_finite(kept.params)


def test_fit_refuses_a_run_dir_with_other_settings(tiny, tmp_path):
    train.fit(tiny, tmp_path, progress=False)
    before = (tmp_path / rundir.CONFIG).read_text()
    with pytest.raises(rundir.RunDirError, match="batch_size=32"):
        train.fit(replace(tiny, batch_size=64), tmp_path, progress=False)
    assert (tmp_path / rundir.CONFIG).read_text() == before


def test_random_streams_are_distinct_and_each_seed_probes_with_its_own_keys():
    from mmident_jax.evaluation import PROBE_KINDS, probe_key

    key = jax.random.PRNGKey(0)
    streams = [core.stream(key, name) for name in core.STREAMS]
    probes = [probe_key(key, kind, block, e) for kind in PROBE_KINDS for block in range(6) for e in range(2)]
    keys = {tuple(np.asarray(k).tolist()) for k in [key, *streams, *probes]}
    assert len(keys) == 1 + len(streams) + len(probes)
    other_seed = probe_key(jax.random.PRNGKey(1), "mlp", 0, 0)
    assert not np.array_equal(other_seed, probe_key(key, "mlp", 0, 0))
