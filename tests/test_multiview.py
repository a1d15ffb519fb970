"""The multi-view model: the two-view special case, the bookkeeping, the loss, seeds, command line."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmident_jax import engine, latents, presets, stacked, sweep, train
from mmident_jax.config import Config, hyper, replace
from mmident_jax.evaluation import evaluate as evaluate_two_view
from mmident_jax.multiview import (
    MultiviewConfig,
    MultiviewError,
    Preset,
    Views,
    command,
    evaluate,
    experiment,
    from_two_view,
)
from mmident_jax.multiview import model as M


@pytest.fixture
def main(cli):
    """`main(argv)`: `mmident-jax multiview ARGV` in this process, its exit status (output to the real
    stdout/stderr)."""

    def run(argv):
        result = cli("multiview", *argv)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.returncode

    return run


TINY = Config(encoder_widths=(16, 16), batch_size=32, cond_pool=1000, lr=1e-3, train_steps=3, log_steps=10)
TRIANGLE = Views(3, ((0, 1, 2), (0, 1), (0, 2)))  # groups {0,1}: z0 z1, {0,2}: z0 z2, {1,2}: z0, {0,1,2}: z0


def tiny_multiview(views=TRIANGLE, **kw) -> MultiviewConfig:
    settings = dict(
        encoder_widths=(16,), batch_size=32, cond_pool=1000, lr=1e-3, grad_clip=2.0, train_steps=4, log_steps=2
    )
    return MultiviewConfig(views, **{**settings, **kw})


# ------------------------------------------------------------------ the two-view special case


@pytest.mark.parametrize(
    "cfg, whole_path",
    [
        # Wishart blocks drawn as the original does (one draw per block size), a learning-rate schedule
        (
            replace(TINY, statistical_dependence=True, wishart="shared", lr_schedule="warmup_cosine", warmup_steps=2),
            True,
        ),
        # dependent latents, causal style, partial change, a code wider than content, batch over the
        # encoders' CPU block of 1024 rows, no modality-specific latents, Flax init
        (
            replace(
                TINY,
                statistical_dependence=True,
                wishart="independent",
                content_dependent_style=True,
                style_change_prob=0.75,
                encoding_size=7,
                batch_size=600,
                modality_n=0,
                encoder_init="lecun",
            ),
            False,
        ),
    ],
    ids=["paper-latents", "dependent-causal"],
)
@pytest.mark.slow
def test_two_view_special_case_equals_todays_path_bitwise(cfg, whole_path):
    mv, hp, key = from_two_view(cfg), hyper(cfg), jax.random.PRNGKey(11)
    chex.assert_trees_all_equal(hyper(mv), hp)
    today = jax.jit(train.make_init(cfg))(key, hp)._replace(step=jnp.int32(7))
    mine = jax.jit(M.make_init(mv))(key, hp)._replace(step=jnp.int32(7))
    chex.assert_trees_all_equal(mine.params, (today.params["g1"], today.params["g2"]))
    chex.assert_trees_all_equal(mine.truth.mixers, (today.truth.f1, today.truth.f2))
    t = today.truth.latents
    chex.assert_trees_all_equal(
        mine.truth.latents.factors, (t.content_factor, t.style_factor, t.change_factor, t.m1_factor, t.m2_factor)
    )

    batches_today = jax.jit(train.data, static_argnums=1)(today, cfg, hp)
    batches_mine = jax.jit(M.data, static_argnums=1)(mine, mv, hp)
    for blocks, batch in zip(batches_today, batches_mine):
        z1, z2 = latents.views(blocks)
        chex.assert_trees_all_equal((M.view_latents(mv.views, batch, 0), M.view_latents(mv.views, batch, 1)), (z1, z2))
    assert float(jnp.std(batches_mine[0].z)) > 0.5  # real draws, not zeros

    loss_today, grads_today = jax.jit(jax.value_and_grad(train.contrastive_loss), static_argnums=1)(
        today.params, cfg, hp, today.truth, *batches_today
    )
    (loss_mine, terms), grads_mine = jax.jit(jax.value_and_grad(M.contrastive_loss, has_aux=True), static_argnums=1)(
        mine.params, mv, hp, mine.truth, *batches_mine, jax.random.PRNGKey(0)
    )
    chex.assert_trees_all_equal(loss_mine, loss_today)
    chex.assert_trees_all_equal(terms, loss_today[None])
    chex.assert_trees_all_equal(grads_mine, (grads_today["g1"], grads_today["g2"]))
    assert float(jnp.abs(grads_mine[0]["params"]["Dense_0"]["kernel"]).max()) > 0
    if not whole_path:
        return
    both = [jax.tree.map(lambda p, n: jnp.concatenate([p, n]), *b) for b in (batches_today, batches_mine)]
    chex.assert_trees_all_equal(
        jax.jit(M.observations, static_argnums=0)(mv, mine.truth, both[1]),
        jax.jit(train.observations, static_argnums=0)(cfg, today.truth, both[0]),
    )
    chex.assert_trees_all_equal(
        jax.jit(M.codes, static_argnums=1)(mine.params, mv, mine.truth, both[1]),
        jax.jit(train.codes, static_argnums=1)(today.params, cfg, today.truth, both[0]),
    )
    state_today, losses_today = jax.jit(train.make_train(cfg))(key)  # three steps, Adam with the schedule
    state_mine, losses_mine = jax.jit(M.make_train(mv))(key)
    chex.assert_trees_all_equal(losses_mine[:, 0], losses_today)
    chex.assert_trees_all_equal(state_mine.params, (state_today.params["g1"], state_today.params["g2"]))


@pytest.mark.slow
def test_two_view_evaluation_matches_todays_block_scores():
    """Same evaluation stream: the mean of the per-latent linear R² over a block is today's block R²."""
    mv, key = from_two_view(TINY), jax.random.PRNGKey(0)  # untrained encoders: the numbers still differ per block
    state_today = jax.jit(train.make_init(TINY))(key, hyper(TINY))
    state = jax.jit(M.make_init(mv))(key, hyper(mv))
    rows = evaluate(state, mv, probes=("linear",), batch_size=256)
    want = {
        (r["encoding"], r["predicted_factors"]): r["r2_linear"]
        for r in evaluate_two_view(state_today, TINY, probes=("linear",), batch_size=256)
    }
    blocks = {"c": range(0, 5), "s": range(5, 10), "m1": range(10, 15), "m2": range(15, 20)}
    names = {**{b: [f"z{i}" for i in r] for b, r in blocks.items()}, "s~": [f"z{i}~1" for i in range(5, 10)]}
    for view, encoding in ((0, "hz1"), (1, "hz2")):
        mine = {r["latent"]: r["r2_linear"] for r in rows if r["view"] == view}
        for block, latent_names in names.items():
            np.testing.assert_allclose(np.mean([mine[z] for z in latent_names]), want[encoding, block], atol=1e-6)
    assert want["hz1", "m1"] - want["hz1", "m2"] > 0.05 and want["hz2", "m2"] - want["hz2", "m1"] > 0.05
    assert {r["content"] for r in rows if r["latent"] in names["c"]} == {True}
    assert not any(r["content"] for r in rows if r["latent"] not in names["c"])


def test_from_two_view_refuses_what_it_does_not_model():
    for bad, words in (
        (replace(TINY, shared_encoder=True), "shared encoder"),
        (replace(TINY, loss="clip"), "clip"),
        (replace(TINY, discrete_block="c"), "discrete"),
    ):
        with pytest.raises(MultiviewError, match=words):
            from_two_view(bad)


# ------------------------------------------------------------------ bookkeeping


def test_yao_structure_groups_content_and_coordinates():
    v = presets.get("multiview", "multiview").cfg.views
    plan = {g.views: g for g in v.plan}
    assert len(plan) == 11 and list(plan)[:7] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (0, 1, 2)]
    assert plan[0, 1].content == (0, 1, 2, 4) and plan[0, 1].coords == ((0, 1, 2, 4), (0, 1, 2, 3))
    assert plan[1, 3].content == (0, 1, 4, 5) and plan[1, 3].coords == ((0, 1, 3, 4), (0, 1, 3, 4))
    assert plan[0, 2, 3].content == (0, 1, 3) and plan[0, 2, 3].coords == ((0, 1, 3), (0, 1, 3), (0, 1, 2))
    assert plan[0, 1, 2, 3].content == (0, 1)
    assert v.shared == tuple(range(6)) and all(v.private(k) == () for k in range(4))
    assert v.latent_names == ("z0", "z1", "z2", "z3", "z4", "z5")
    assert presets.get("multiview", "multiview").cfg.widths(2) == (50, 250, 250, 250, 250, 50)
    concat = replace(v, selection="concat", code_sizes=(20,) * 4)  # Yao et al.'s concat: array_split of 20 over 11
    assert [len(g.coords[0]) for g in concat.plan] == [2] * 9 + [1] * 2
    assert concat.plan[1].coords == ((2, 3), (2, 3)) and concat.plan[-1].coords == ((19,),) * 4


def test_hand_made_structure_perturbed_and_private_latents():
    v = Views(4, ((0, 1, 3), (1, 0, 2), (2, 1)), perturbed=(2,))
    assert [(g.views, g.content, g.coords) for g in v.plan] == [
        ((0, 1), (0, 1), ((0, 1), (1, 0))),
        ((0, 2), (1,), ((1,), (1,))),
        ((1, 2), (1,), ((0,), (1,))),
        ((0, 1, 2), (1,), ((1,), (0,), (1,))),
    ]
    assert v.blocks == ((0, 1), (2,), (2,), (3,), (), ())
    assert v.latent_names == ("z0", "z1", "z2", "z3", "z2~1", "z2~2")
    assert replace(v, groups=[(1, 0)]).plan == (v.plan[0],)

    cfg = tiny_multiview(v, style_change_prob=0.5, c_param=3.0)
    params = M.init_latents(jax.random.PRNGKey(0), cfg)
    key, n = jax.random.PRNGKey(5), 4000
    batch = M.sample(key, params, cfg, hyper(cfg), n)
    keys = jax.random.split(key, 3 + 4)  # shared, perturbed, private of views 0, 1, 2, kappa, eps
    np.testing.assert_allclose(batch.z[:, :2], jax.random.normal(keys[0], (n, 2)), rtol=1e-6)
    np.testing.assert_allclose(batch.z[:, 3:], jax.random.normal(keys[2], (n, 1)), rtol=1e-6)
    np.testing.assert_allclose(batch.z[:, 2:3], jax.random.normal(keys[1], (n, 1)), rtol=1e-6)
    change = np.asarray(batch.tilde[:, :, 0] - batch.z[:, 2:3])  # views 1 and 2, independently perturbed
    assert abs((change != 0).mean() - 0.5) < 0.03 and abs(change[change != 0].std() - 3.0) < 0.15
    assert abs(np.corrcoef(change[:, 0], change[:, 1])[0, 1]) < 0.05
    np.testing.assert_array_equal(M.view_latents(v, batch, 2), np.stack([batch.tilde[:, 1, 0], batch.z[:, 1]], 1))
    np.testing.assert_array_equal(
        M.view_latents(v, batch, 1), np.stack([batch.z[:, 1], batch.z[:, 0], batch.tilde[:, 0, 0]], 1)
    )
    np.testing.assert_array_equal(M.view_latents(v, batch, 0), batch.z[:, [0, 1, 3]])


def test_dependence_and_causal_parents():
    v = Views(4, ((0, 1, 2, 3), (0, 1, 2)), perturbed=(2,), dependent=(0, 1), causal_parents=(0, 3))
    cfg = tiny_multiview(v, style_change_prob=0.0)
    params = M.init_latents(jax.random.PRNGKey(1), cfg)
    f_shared = np.asarray(params.factors[0])
    assert f_shared.shape == (2, 2) and abs(f_shared[0, 1]) + abs(f_shared[1, 0]) > 0  # Wishart on z0, z1
    np.testing.assert_array_equal(params.factors[3], np.eye(1))  # z3, private to view 0: independent
    batch = M.sample(jax.random.PRNGKey(2), params, cfg, hyper(cfg), 20000)
    z = np.asarray(batch.z)
    np.testing.assert_allclose(np.cov(z[:, :2].T), f_shared @ f_shared.T, rtol=0.1, atol=0.1)
    resid = z[:, 2] - z[:, [0, 3]] @ np.asarray(params.B)[0] - float(params.a[0])
    assert abs(resid.std() - 1.0) < 0.03 and abs(np.corrcoef(resid, z[:, 0])[0, 1]) < 0.03
    np.testing.assert_array_equal(batch.tilde[:, 0, 0], z[:, 2])  # p_chg = 0: view 1 sees z2 itself


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Views(3, ((0, 1),)), "at least 2 views"),
        (lambda: Views(3, ((0, 1), (0, 1))), "latent 2 is seen by no view"),
        (lambda: Views(2, ((0, 2), (0, 1))), "outside 0..1"),
        (lambda: Views(2, ((0, 0), (0, 1))), "twice"),
        (lambda: Views(3, ((0, 1), (0, 2)), perturbed=(2,)), "perturbed latent 2 is seen by fewer than 2 views"),
        (lambda: Views(2, ((0, 1), (0, 1)), perturbed=(0, 1)), "no subset of views"),
        (lambda: Views(3, ((0, 1), (1, 2), (2, 0)), groups=((0, 1, 2),)), "views [0, 1, 2] share no unperturbed"),
        (lambda: Views(2, ((0, 1), (1, 0)), code_sizes=(2, 1)), "view 1's code has 1 coordinates"),
        (lambda: Views(2, ((0, 1), (0, 1)), selection="concat", code_sizes=(3, 2)), "equal code sizes"),
        (lambda: Views(2, ((0, 1), (0, 1)), causal_parents=(0,)), "need perturbed latents"),
        (lambda: tiny_multiview(objective="triplet"), "objective must be one of pairs, joint"),
        (lambda: tiny_multiview(batch_size=1), "batch_size must be >= 2"),
    ],
)
def test_bad_structures_are_refused_in_one_line(make, words):
    with pytest.raises(MultiviewError) as info:
        make()
    assert words in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------ the objective


def np_infonce_direction(a, b, a_neg, tau):
    pos = ((a - b) ** 2).sum(-1) / tau
    neg = ((a[:, None] - a_neg[None]) ** 2).sum(-1) / tau
    logits = np.concatenate([-neg, -pos[:, None]], axis=1)
    return np.mean(pos + np.log(np.exp(logits).sum(1) / logits.shape[1]))


def np_joint(parts, parts_neg, tau):
    pos = sum(((x - y) ** 2).sum(-1) for x, y in zip(parts, parts[1:])) / tau
    neg = sum(((x[:, None] - y[None]) ** 2).sum(-1) for x, y in zip(parts, parts_neg)) / tau
    logits = np.concatenate([-neg, -pos[:, None]], axis=1)
    return np.mean(pos + np.log(np.exp(logits).mean(1)))


@pytest.mark.parametrize("objective", ["pairs", "joint"])
def test_loss_summed_over_groups_equals_a_hand_computation(objective):
    cfg, tau, b = tiny_multiview(objective=objective, temperature=0.5), 0.5, 3
    rng = np.random.default_rng(0)
    hs = [
        rng.normal(size=(2 * b, 3)).astype(np.float32),
        rng.normal(size=(2 * b, 2)).astype(np.float32),
        rng.normal(size=(2 * b, 2)).astype(np.float32),
    ]
    pick = {  # group -> per view, the code columns of its content (TRIANGLE: S0 = z0 z1 z2, S1 = z0 z1, S2 = z0 z2)
        (0, 1): [[0, 1], [0, 1]],
        (0, 2): [[0, 2], [0, 1]],
        (1, 2): [[0], [0]],
        (0, 1, 2): [[0], [0], [0]],
    }
    want = []
    for group, cols in pick.items():
        parts = [hs[k][:, c].astype(np.float64) for k, c in zip(group, cols)]
        if objective == "joint":
            want.append(np_joint([p[:b] for p in parts], [p[b:] for p in parts], tau))
        else:
            want.append(
                sum(
                    0.5
                    * (
                        np_infonce_direction(parts[i][:b], parts[j][:b], parts[i][b:], tau)
                        + np_infonce_direction(parts[j][:b], parts[i][:b], parts[j][b:], tau)
                    )
                    for i in range(len(group))
                    for j in range(i + 1, len(group))
                )
            )
    got = M.group_losses(cfg, hyper(cfg), [jnp.asarray(h) for h in hs], b, jax.random.PRNGKey(0))
    assert [g.views for g in cfg.views.plan] == list(pick)
    np.testing.assert_allclose(np.array(got), want, rtol=2e-5)
    assert np.ptp(want) > 0.1  # groups differ: a wrong column or pair would show


def test_the_multiview_preset_is_yao_et_als_joint_loss_on_fixed_codes():
    """`multiview`: one InfoNCE per subset, positives summed along consecutive views, negatives
    over the subset's views (their `LpSimCLRLoss` inside `UnifiedCLLoss`), by hand."""
    preset = presets.get("multiview", "multiview")
    cfg, b = replace(preset.cfg, encoder_widths=(8,), cond_pool=1000), 4
    assert cfg.objective == "joint" and preset.protocol == "yao"
    rng = np.random.default_rng(1)
    hs = [rng.normal(size=(2 * b, 5)).astype(np.float32) for _ in range(4)]
    want = []
    for group in cfg.views.plan:  # ground-truth selection: view k's coordinate j is S_k[j]
        parts = [
            hs[k][:, [cfg.views.subsets[k].index(i) for i in group.content]].astype(np.float64) for k in group.views
        ]
        want.append(np_joint([p[:b] for p in parts], [p[b:] for p in parts], 1.0))
    got = M.group_losses(cfg, hyper(cfg), [jnp.asarray(h) for h in hs], b, jax.random.PRNGKey(0))
    assert len(want) == 11
    np.testing.assert_allclose(np.array(got), want, rtol=2e-5)


def test_results_say_what_differs_from_their_preset():
    preset = presets.get("multiview", "multiview-yao-quick")
    assert experiment.about("multiview-yao-quick", preset) == (
        "Settings: seeds 3; steps 5,000; batch 256; objective joint; selection ground_truth; evaluation yao "
        "(10 batches of 4096, each split 75/25); probes linear, mlp."
    )
    short = experiment.about("multiview-yao-quick", preset.with_overrides(train_steps=400, protocol="heldout"))
    assert "steps 400 (**the preset: 5,000**)" in short
    assert "evaluation heldout (4096 validation and as many test samples) (**the preset: yao (10 batches" in short


def test_topk_gumbel_draws_k_coordinates_as_yao_et_al():
    """Separated logits: always the top k; equal logits: each coordinate with probability k/d."""
    logits = jnp.array([3.0, -30.0, 40.0, 30.0, -30.0, 35.0])
    picks = jax.vmap(lambda k: M.topk_gumbel(k, logits, 3))(jax.random.split(jax.random.PRNGKey(0), 500))
    assert (np.asarray(picks) == [2, 3, 5]).all()
    picks = jax.vmap(lambda k: M.topk_gumbel(k, jnp.zeros(5), 2))(jax.random.split(jax.random.PRNGKey(1), 20_000))
    picks = np.asarray(picks)
    assert (picks[:, 0] < picks[:, 1]).all()  # two distinct coordinates, ascending
    np.testing.assert_allclose(np.bincount(picks.ravel(), minlength=5) / len(picks), 0.4, atol=0.015)


def test_gumbel_selection_takes_the_coordinates_whose_mean_code_is_largest():
    """Codes whose content coordinates have the largest batch mean (known ground truth): the
    selection is exactly those coordinates, in every group and view, and the blocks are their columns."""
    cfg = tiny_multiview(replace(TRIANGLE, selection="gumbel_softmax"))
    rng = np.random.default_rng(2)
    content = {
        (0, 1): {0: [0, 1], 1: [0, 1]},
        (0, 2): {0: [0, 2], 2: [0, 1]},
        (1, 2): {1: [0], 2: [0]},
        (0, 1, 2): {0: [0], 1: [0], 2: [0]},
    }
    for g, group in enumerate(cfg.views.plan):
        hs = [rng.normal(size=(8, n)).astype(np.float32) for n in (3, 2, 2)]
        for k, cols in content[group.views].items():
            hs[k][:4, cols] += 50.0  # the positives' mean marks the content
        parts, coords = M.content_parts(cfg, g, [jnp.asarray(h) for h in hs], 4, jax.random.PRNGKey(g))
        assert [np.asarray(c).tolist() for c in coords] == list(content[group.views].values())
        for part, k, cols in zip(parts, group.views, content[group.views].values()):
            np.testing.assert_array_equal(part, hs[k][:, cols])


def test_dependent_multiview_latents_ignore_the_scale_as_the_original():
    cfg = tiny_multiview(replace(TRIANGLE, dependent=(0, 1)))
    params = M.init_latents(jax.random.PRNGKey(0), cfg)
    hp = hyper(cfg)._replace(m_param=jnp.float32(2.0))
    z = np.asarray(M.sample(jax.random.PRNGKey(1), params, cfg, hp, 200_000).z)
    factor = np.asarray(params.factors[0])  # one block: z0, z1 (dependent) and z2 (not)
    sigma = (factor @ factor.T)[:2, :2]
    assert not np.allclose(sigma, np.eye(2))
    np.testing.assert_allclose(np.cov(z[:, :2].T), sigma, atol=0.03 * np.abs(sigma).max() + 0.02)
    assert abs(np.var(z[:, 2]) - 4.0) < 0.08  # independent: scaled by m_param


def test_the_yao_protocol_probes_each_batch_on_its_own_75_25_split():
    """Codes standardised over every batch, each batch split 75/25 by the probes stream, linear
    R² fit on 75 % and scored on 25 %, then mean and std over the batches."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    from mmident_jax import core
    from mmident_jax.multiview.evaluation import eval_data

    cfg, batches, n = tiny_multiview(), 3, 64
    state = M.make_init(cfg)(jax.random.PRNGKey(0), hyper(cfg))
    rows = evaluate(state, cfg, protocol="yao", probes=("linear",), num_batches=batches, batch_size=n)
    hs, ys, _, _ = eval_data(state, cfg, hyper(cfg), 0, batches, n)
    h = np.asarray(hs[0], np.float64).reshape(-1, 3)
    h = ((h - h.mean(0)) / h.std(0)).reshape(batches, n, 3)
    key = jax.random.fold_in(core.stream(state.key, "probes"), 0)
    scores = []
    for i in range(batches):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, i), n))
        fit, score = order[16:], order[:16]  # ceil(0.25 * 64) = 16 scored
        x, y = h[i][:, [0, 1]], np.asarray(ys)[i, :, 2]  # group {0,1}, view 0: coordinates 0, 1; latent z2
        scores.append(r2_score(y[score], LinearRegression().fit(x[fit], y[fit]).predict(x[score])))
    row = next(r for r in rows if (r["subset"], r["view"], r["latent"]) == ("0,1", 0, "z2"))
    np.testing.assert_allclose(
        [row["r2_linear"], row["r2_linear_std"]], [np.mean(scores), np.std(scores)], rtol=1e-4, atol=1e-5
    )
    assert row["coords"] == "0,1" and math.isnan(row["r2_nonlinear"]) and np.std(scores) > 0


# ------------------------------------------------------------------ seeds, resuming, the command


def train_seeds(cfg, seeds, store=None, on_chunk=None):
    study = experiment.study(Preset(cfg, seeds=len(seeds)))._replace(runs=[sweep.Run(cfg, seed, ()) for seed in seeds])
    ((program, runs),) = sweep.group_runs(study)
    return sweep.train_group(study, program, runs, store, on_chunk)


@pytest.mark.slow
def test_a_diverging_seed_is_marked_and_the_others_finish(tmp_path):
    cfg = tiny_multiview(train_steps=6, log_steps=2)
    preset = Preset(cfg, seeds=3, eval_batch_size=64, probes=("linear",))
    study = experiment.study(preset)
    blowing_up = study._replace(hyper=lambda run: hyper(replace(run.cfg, lr=1e30) if run.seed == 1 else run.cfg))
    rows = sweep.sweep(blowing_up, tmp_path, progress=False)
    assert {r["seed"]: r.get("diverged_at") for r in rows} == {0: None, 1: 2, 2: None}
    healthy = train_seeds(cfg, [0, 2])
    trained = sweep.train_group(blowing_up, *sweep.group_runs(blowing_up)[0], stacked.Stacked(tmp_path / "group0.ckpt"))
    chex.assert_trees_all_equal(jax.tree.map(lambda x: x[::2], trained.state.params), healthy.state.params)
    experiment.write_results(tmp_path, "tiny", rows, preset)
    assert (tmp_path / "results.md").read_text().endswith("Left out of the tables, diverged: seed=1 at step 2.\n")


@pytest.mark.slow
def test_sweep_command_writes_tables_and_resumes(tmp_path, monkeypatch, capsys, main):
    preset = Preset(tiny_multiview(), seeds=2, eval_batch_size=128)
    monkeypatch.setitem(presets.REGISTRY, ("multiview", "tiny"), presets.Preset("multiview", preset, "a test"))
    out = tmp_path / "out"
    assert main(["sweep", "--out", str(out), "--preset", "tiny", "--no-progress"]) == 0
    assert {p.name for p in out.iterdir()} >= {
        "sweep.json",
        "group0.ckpt",
        "group0.curve.json",
        "group0.json",
        "results.csv",
        "results.md",
        "results.png",
        "loss.png",
    }
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0] == "seed,subset,view,latent,content,coords,r2_linear,r2_nonlinear,val_loss"
    assert len(lines) == 1 + 2 * (2 + 2 + 2 + 3) * 3  # seeds x (group, view) pairs x latents
    identity = json.loads((out / "sweep.json").read_text())
    assert identity["experiment"] == "multiview"
    assert MultiviewConfig.from_dict(identity["settings"][0]["config"]) == preset.cfg
    md = (out / "results.md").read_text()
    assert "| {0,1} | z0,z1 |" in md and "| subset V | view | z0 | z1 | z2 |" in md
    rows = json.loads((out / "group0.json").read_text())["rows"]
    assert all(-1.0 < r["r2_linear"] <= 1.0 and not math.isnan(r["r2_nonlinear"]) for r in rows)

    def no_work(*args, **kwargs):
        raise AssertionError("a finished experiment was trained or evaluated again")

    monkeypatch.setattr(engine, "train_runs", no_work)
    monkeypatch.setattr(experiment, "evaluate", no_work)
    capsys.readouterr()
    assert main(["sweep", "--out", str(out), "--preset", "tiny", "--no-progress"]) == 0
    assert "| {0,1,2} | z0 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--preset", "multiview-slow"], ["invalid choice: 'multiview-slow'"]),
        (["--preset", "multiview-quick", "--seeds", "0"], ["--seeds", ">= 1"]),
        (["--preset", "multiview-quick", "--train-steps", "0"], ["--train-steps", ">= 1"]),
    ],
)
def test_bad_command_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, words, main):
    assert main(["sweep", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmident-jax multiview") and all(w in err[0] for w in words)
    assert not (tmp_path / "out").exists()


def test_command_refuses_another_sweeps_out_and_bad_flags(tmp_path, capsys, main):
    (tmp_path / "sweep.json").write_text(json.dumps({"preset": "table1-quick"}))
    assert main(["train", "--out", str(tmp_path), "--preset", "multiview-quick"]) == 2
    assert "holds another sweep" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.json"]
    assert main(["train", "--out", str(tmp_path), "--preset", "multiview-quick", "--seeds", "many"]) == 2
    assert "invalid int value" in capsys.readouterr().err


# ------------------------------------------------------------------ devices

ENGINE_WORKER = str(Path(__file__).parent / "engine_worker.py")


def engine_worker(*args, devices=1, status=0):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    done = subprocess.run(
        [sys.executable, ENGINE_WORKER, *map(str, args)], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == status, done.stderr
    return json.loads(done.stdout.splitlines()[-1]) if status == 0 else None


@pytest.mark.slow
def test_a_run_is_bitwise_the_same_alone_in_a_group_and_spread_over_devices():
    """Seed 0 alone on one device, among three seeds on one device, among six on eight devices."""
    report = engine_worker("invariance", devices=8)
    assert report == {"devices": 8, "twoview": [True, True], "multiview": [True, True]}


@pytest.mark.slow
def test_the_multiview_sweep_resumes_on_another_number_of_devices(tmp_path):
    uninterrupted = engine_worker("multiview", "--out", tmp_path / "one")
    engine_worker("multiview", "--out", tmp_path / "moved", "--stop-at", 4, devices=8, status=3)
    latest = json.loads((tmp_path / "moved" / "group0.ckpt" / "latest.json").read_text())
    assert latest == {"step": 4, "runs": 3, "parts": [[0, 3]]}
    resumed = engine_worker("multiview", "--out", tmp_path / "moved")
    assert resumed["devices"] == 1
    # another device count rounds differently in XLA's CPU runtime (docs/random-streams.md): close, not bitwise
    np.testing.assert_allclose(resumed["params"], uninterrupted["params"], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(
        [r["r2_linear"] for r in resumed["rows"]], [r["r2_linear"] for r in uninterrupted["rows"]], atol=1e-4
    )


@pytest.mark.slow
def test_a_grid_shares_one_program_and_has_a_summary_row_per_setting_and_subset(tmp_path, monkeypatch, main):
    preset = Preset(tiny_multiview(), seeds=2, eval_batch_size=128, probes=("linear",))
    monkeypatch.setitem(presets.REGISTRY, ("multiview", "tiny"), presets.Preset("multiview", preset, "a test"))
    gridded = preset.with_grid({"lr": [1e-3, 3e-3], "batch_size": [16]})
    assert gridded.labels == ("lr",) and gridded.cfg.batch_size == 16  # one value: set, no column
    assert [(cfg.lr, labels) for cfg, labels in gridded.settings] == [(1e-3, (("lr", 1e-3),)), (3e-3, (("lr", 3e-3),))]
    assert sweep.plan(experiment.study(gridded), 2, 2) == "2 settings × 2 seeds in 1 compiled program"
    out = tmp_path / "out"
    assert main(["sweep", "--out", str(out), "--preset", "tiny", "--grid", "lr=1e-3,3e-3", "--no-progress"]) == 0
    identity = json.loads((out / "sweep.json").read_text())
    assert identity["grid"] == {"lr": [0.001, 0.003]} and len(identity["settings"]) == 2
    assert (out / "results.csv").read_text().splitlines()[0].startswith("lr,seed,subset,view,latent")
    md = (out / "results.md").read_text()
    assert "| lr | subset V | content C_V | content min | content mean | others max |" in md
    assert "| 0.003 | {0,1,2} | z0 |" in md and md.count("| 0.001 | {") == 4  # one row per subset
    (out / "results.md").unlink()
    assert command.report(out, identity) == [] and (out / "results.md").read_text() == md
