"""The misalignment experiment (Cai et al.): roles, the latent process, shapes, the study, the command."""

import argparse
import dataclasses
import json
import math

import chex
import jax
import numpy as np
import pytest

from mmident_jax import core, engine, losses, mixing, presets, sweep
from mmident_jax.config import ConfigError, help_of, hyper, replace
from mmident_jax.misalign import command, experiment
from mmident_jax.misalign import model as M
from mmident_jax.misalign.config import MisalignConfig, MisalignError, Preset, Roles, role_of, roles, sweep_settings
from mmident_jax.misalign.evaluation import evaluate

# ------------------------------------------------------------------ roles and settings


def test_roles_of_a_hand_made_selection_and_perturbation():
    assert roles(6, (0, 1, 2, 5), (1, 4)) == Roles(
        selected=(0, 1, 2, 5), perturbed=(1,), invariant=(0, 2, 5), omitted=(3, 4)
    )  # factor 4 is perturbed but never reaches the text: omitted
    assert roles(3) == Roles((0, 1, 2), (), (0, 1, 2), ())
    cfg = MisalignConfig(semantic_n=6, modality_n=2, selected=(5, 0, 2, 1), perturbed=(4, 1))
    assert (cfg.selected, cfg.perturbed, cfg.code_size, cfg.input_sizes) == ((0, 1, 2, 5), (1, 4), 3, (8, 6))
    assert cfg.widths(1) == (60, 300, 300, 300, 300, 60)  # the paper's 10d, 50d x 4, 10d for d = 6
    assert MisalignConfig(semantic_n=3, selected=(2, 0, 1)).selected == ()  # every factor listed: all
    assert replace(cfg, encoding_size=7).code_size == 7


def test_the_presets_are_the_authors_two_series():
    paper = presets.get("misalign", "misalign")
    counts = [(dict(labels)["selected"], dict(labels)["perturbed"]) for _, labels in paper.settings]
    assert counts == [(k, 0) for k in range(10, 0, -1)] + [(10, k) for k in range(1, 10)]  # (10, 0) once
    first_three = paper.settings[8][0]
    assert (first_three.selected, first_three.perturbed, first_three.code_size) == ((0, 1), (), 2)
    assert paper.settings[-1][0].perturbed == tuple(range(9)) and paper.settings[-1][0].code_size == 1
    cfg = paper.settings[0][0]
    assert (cfg.batch_size, cfg.lr, cfg.grad_clip, cfg.train_steps, cfg.style_change_prob) == (
        6144,
        1e-4,
        2.0,
        100_001,
        0.75,
    )
    assert all(c.dependent for c, _ in presets.get("misalign", "misalign-dependent").settings)
    quick = presets.get("misalign", "misalign-quick")
    assert len(quick.settings) == 14 and quick.seeds == 3 and quick.eval_batches * quick.eval_batch_size == 4096
    assert {dict(lab)["latents"] for _, lab in quick.settings} == {"independent", "dependent"}


def test_every_setting_is_documented_and_per_run_numbers_share_a_program():
    assert all(help_of(MisalignConfig, f.name) for f in dataclasses.fields(MisalignConfig))
    cfg = MisalignConfig(selected=(0, 1))
    assert experiment.program_key(replace(cfg, lr=3e-3, style_change_prob=0.5, seed=4)) == experiment.program_key(cfg)
    assert experiment.program_key(replace(cfg, perturbed=(0,))) != experiment.program_key(cfg)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: MisalignConfig(selected=(3, 10)), ["selected", "factor 10 outside 0..9"]),
        (lambda: MisalignConfig(perturbed=(2, 2)), ["perturbed", "factor 2 twice"]),
        (lambda: MisalignConfig(selected=(0, 1), perturbed=(1, 0, 5)), ["no invariant factor left"]),
        (lambda: MisalignConfig(encoding_size=-1), ["encoding_size must be >= 0"]),
        (lambda: MisalignConfig(dependent=True, m_param=2.0), ["m_param", "dependent"]),
        (lambda: MisalignConfig(batch_size=1), ["batch_size must be >= 2"]),
        (lambda: Preset(sweep_settings(MisalignConfig(), (3,), ())[:1] * 2), ["same labels"]),
        (lambda: Preset(sweep_settings(MisalignConfig(), (3,), ()), probes=("kernel",)), ["unknown probe 'kernel'"]),
    ],
)
def test_bad_settings_are_refused_in_one_line(make, words):
    with pytest.raises(MisalignError) as e:
        make()
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


# ------------------------------------------------------------------ the latent process


def draw(cfg, n, seed=1):
    params = M.init_latents(jax.random.PRNGKey(0), cfg)
    return params, jax.jit(M.sample, static_argnums=(2, 4))(jax.random.PRNGKey(seed), params, cfg, hyper(cfg), n)


def test_the_text_sees_unperturbed_factors_exactly_and_perturbed_ones_with_noise():
    n, p = 40_000, 0.75
    cfg = MisalignConfig(semantic_n=6, modality_n=2, selected=(0, 1, 2, 5), perturbed=(1, 4), c_param=0.5)
    _, batch = draw(cfg, n)
    s, s_tilde = np.asarray(batch.s), np.asarray(batch.s_tilde)
    np.testing.assert_array_equal(s_tilde[:, [0, 2, 3, 4, 5]], s[:, [0, 2, 3, 4, 5]])  # 4: not selected, not moved
    changed = s_tilde[:, 1] != s[:, 1]
    assert abs(changed.mean() - p) < 4 * math.sqrt(p * (1 - p) / n)  # Bernoulli(p_chg) per sample
    eps = (s_tilde[:, 1] - s[:, 1])[changed]
    assert abs(eps.mean()) < 4 * 0.5 / math.sqrt(changed.sum())
    assert abs(eps.var() / 0.25 - 1) < 0.04  # ε ~ N(0, c_param²): relative std of a variance ~ sqrt(2 / 30,000)
    assert abs(s.var(axis=0) - 1).max() < 0.04 and abs(np.asarray(batch.m_t).var(axis=0) - 1).max() < 0.04
    z_x, z_t = M.modality_latents(cfg, batch)
    np.testing.assert_array_equal(z_x, np.concatenate([s, batch.m_x], axis=1))
    np.testing.assert_array_equal(z_t, np.concatenate([s_tilde[:, [0, 1, 2, 5]], batch.m_t], axis=1))
    # independent blocks: s, m_x and m_t uncorrelated
    corr = np.corrcoef(np.concatenate([s, batch.m_x, batch.m_t], axis=1), rowvar=False)
    assert abs(corr - np.eye(10)).max() < 0.03


@pytest.mark.parametrize("wishart", ["independent", "shared"])
def test_dependent_latents_have_their_wishart_covariances(wishart):
    n = 200_000
    cfg = MisalignConfig(
        semantic_n=4, modality_n=3, perturbed=(0, 1), dependent=True, wishart=wishart, style_change_prob=1.0
    )
    params, batch = draw(cfg, n)
    cov = lambda a, b=None: np.cov(np.asarray(a), None if b is None else np.asarray(b), rowvar=False)
    close = lambda sample, factor: np.testing.assert_allclose(
        sample, factor @ factor.T, atol=0.03 * np.abs(factor @ factor.T).max()
    )
    close(cov(batch.s), np.asarray(params.s_factor))
    close(cov(batch.m_x), np.asarray(params.mx_factor))
    close(cov(batch.m_t), np.asarray(params.mt_factor))
    diff = np.asarray(batch.s_tilde - batch.s)
    close(cov(diff[:, :2]), np.asarray(params.change_factor)[:2])  # ε ~ N(0, Σ_ε), on the perturbed factors
    np.testing.assert_array_equal(diff[:, 2:], 0.0)
    corr = np.corrcoef(np.concatenate([batch.s, batch.m_x, batch.m_t], axis=1), rowvar=False)
    assert abs(corr[:4, 4:]).max() < 0.02 and abs(corr[4:7, 7:]).max() < 0.02  # the blocks are independent
    same = lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b)))
    # the authors' code: one draw per size (Σ_ε = Σ_s, Σ_mt = Σ_mx); the paper's text: independent draws
    assert (
        same(params.s_factor, params.change_factor) == same(params.mx_factor, params.mt_factor) == (wishart == "shared")
    )
    sigma = np.asarray(params.s_factor @ params.s_factor.T)
    assert abs(sigma - np.diag(np.diag(sigma))).max() > 0.5  # the factors are correlated


def test_observations_codes_and_loss_have_the_modalities_shapes():
    cfg = MisalignConfig(selected=(0, 1, 2, 3), perturbed=(3,), encoder_widths=(16,), cond_pool=1000, batch_size=8)

    @jax.jit
    def everything(key):
        state = M.make_init(cfg)(key, hyper(cfg))
        positives, negatives = (
            M.sample(jax.random.fold_in(key, k), state.truth.latents, cfg, hyper(cfg), 7) for k in (1, 2)
        )
        x, t = M.observations(cfg, state.truth, positives)
        (hx, ht), (nx, nt) = (M.codes(state.params, cfg, state.truth, b) for b in (positives, negatives))
        inverted = tuple(mixing.inverse(g, o) for g, o in zip(state.truth.mixers, (x, t)))
        loss = M.contrastive_loss(state.params, cfg, hyper(cfg), state.truth, positives, negatives)
        return x, t, M.modality_latents(cfg, positives), inverted, (hx, ht, nx, nt), loss

    x, t, (z_x, z_t), (back_x, back_t), (hx, ht, nx, nt), loss = everything(jax.random.PRNGKey(0))
    assert x.shape == (7, 15) and t.shape == (7, 9)  # (s, m_x) and (s̃[I_θ], m_t)
    np.testing.assert_allclose(back_x, z_x, atol=1e-4)  # x = g_x(s, m_x)
    np.testing.assert_allclose(back_t, z_t, atol=1e-4)  # t = g_t(s̃[I_θ], m_t)
    assert hx.shape == ht.shape == (7, 3)  # the invariant factors 0, 1, 2
    np.testing.assert_allclose(loss, losses.infonce(hx, ht, nx, nt, 1.0), rtol=1e-5)


# ------------------------------------------------------------------ the study, the sweep, the command

TINY = MisalignConfig(
    semantic_n=3, modality_n=2, encoder_widths=(16,), batch_size=32, cond_pool=1000, lr=1e-3, train_steps=4, log_steps=2
)
TINY_PRESET = Preset(sweep_settings(TINY, (2,), (1,)), seeds=2, eval_batches=5, eval_batch_size=64, probes=("linear",))


@pytest.mark.slow
def test_the_study_gives_every_setting_and_seed_and_a_run_is_the_run_alone():
    study = experiment.study(TINY_PRESET)
    assert [(dict(r.labels)["selected"], dict(r.labels)["perturbed"], r.seed) for r in study.runs] == [
        (2, 0, 0),
        (2, 0, 1),
        (3, 1, 0),
        (3, 1, 1),
    ]
    rows = sweep.sweep(study, progress=False)
    assert len(rows) == 2 * 2 * 2 * 5  # settings x seeds x codes x (3 factors, m_x, m_t)
    roles_of = {(r["selected"], r["factor"]): r["role"] for r in rows}
    assert [roles_of[2, f] for f in ("s1", "s2", "s3", "m_x")] == ["invariant", "invariant", "omitted", "modality"]
    assert [roles_of[3, f] for f in ("s1", "s2", "s3", "m_t")] == ["perturbed", "invariant", "invariant", "modality"]
    assert all(-1.0 < r["r2_linear"] <= 1.0 and math.isnan(r["r2_nonlinear"]) for r in rows)
    # seed 1 of the perturbation setting, trained with the others by the engine, is the run alone
    cfg = TINY_PRESET.settings[1][0]
    ((_, runs),) = [g for g in sweep.group_runs(study) if g[0] == experiment.program_key(cfg)]
    trained = sweep.train_group(study, cfg, runs)
    alone, alone_losses = jax.jit(core.make_train(M.experiment(cfg)))(jax.random.PRNGKey(1), hyper(cfg))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], trained.state), alone, rtol=1e-5, atol=1e-6)
    kernel = lambda params: params[0]["params"]["Dense_0"]["kernel"]
    assert not np.allclose(kernel(trained.state.params)[0], kernel(alone.params))  # seed 0 is another run
    mine = [r for r in rows if (r["selected"], r["perturbed"], r["seed"]) == (3, 1, 1)]
    again = evaluate(alone, cfg, probes=("linear",), num_batches=5, batch_size=64)
    np.testing.assert_allclose([r["r2_linear"] for r in mine], [r["r2_linear"] for r in again], atol=1e-4)
    assert np.isfinite(alone_losses).all() and alone_losses.shape == (4,)


def parse(*argv):
    parser = argparse.ArgumentParser(prog="mmident-jax")
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["misalign", *map(str, argv)])


@pytest.mark.parametrize(
    "flags, words", [(["--seeds", "0"], ["--seeds", ">= 1"]), (["--probes", "linear,kernel"], ["--probes", "'kernel'"])]
)
def test_bad_command_input_is_refused_in_one_line_before_anything_is_written(tmp_path, flags, words):
    with pytest.raises(ConfigError) as e:
        command.run(parse("sweep", "--out", tmp_path / "out", "--preset", "misalign-quick", *flags))
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_sweep_command_writes_tables_reports_and_probes_again_without_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(presets.REGISTRY, ("misalign", "tiny"), presets.Preset("misalign", TINY_PRESET, "a test"))
    out = tmp_path / "out"
    command.run(parse("sweep", "--out", out, "--preset", "tiny", "--no-progress"))
    assert {p.name for p in out.iterdir()} >= {"sweep.json", "group0.ckpt", "group1.json", "results.csv", "results.md"}
    identity = json.loads((out / "sweep.json").read_text())
    assert identity["experiment"] == "misalign"
    assert MisalignConfig.from_dict(identity["settings"][1]["config"]) == TINY_PRESET.settings[1][0]
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0] == "latents,selected,perturbed,seed,encoding,factor,role,r2_linear,r2_nonlinear,val_loss"
    assert len(lines) == 1 + 40
    md = (out / "results.md").read_text()
    assert "## independent latents, selection series (I_θ = [k], I_ρ = ∅): hz_x, linear R²" in md
    assert "| factor | [2] |" in md and "| factor | [1] |" in md
    assert "MLP R²" not in md and "Settings: seeds 2;" in md
    assert (out / "results.png").stat().st_size > 0
    (out / "results.md").unlink()
    assert command.report(out, identity) == [] and (out / "results.md").read_text() == md

    def no_training(*args, **kwargs):
        raise AssertionError("a trained run was trained again")

    monkeypatch.setattr(engine, "chunk_program", no_training)
    capsys.readouterr()
    command.run(parse("sweep", "--out", out, "--preset", "tiny", "--no-progress", "--probes", "linear,mlp"))
    assert "evaluated with other settings; evaluating again" in capsys.readouterr().err
    rows = [r for g in (0, 1) for r in json.loads((out / f"group{g}.json").read_text())["rows"]]
    assert len(rows) == 40 and all(-1.0 < r["r2_nonlinear"] <= 1.0 for r in rows)
    md = (out / "results.md").read_text()
    assert "hz_t, MLP R²" in md and "probes linear, mlp (**the preset: linear**)" in md
    assert command.report(out, identity) == [] and (out / "results.md").read_text() == md


def factor_roles(cfg):
    return [role_of(cfg.roles, i) for i in range(cfg.semantic_n)]


def test_tables_put_the_common_setting_in_both_series_and_italicise_misaligned_factors(tmp_path):
    base = replace(TINY, train_steps=7)
    preset = Preset(sweep_settings(base, (3, 2), (0, 1), latents=(False, True)), seeds=2, probes=("linear", "mlp"))
    rows = [
        {
            **dict(labels),
            "seed": seed,
            "encoding": encoding,
            "factor": factor,
            "role": role,
            "r2_linear": 0.5 + 0.1 * seed,
            "r2_nonlinear": 1.2 if role == "invariant" else -0.5,
        }
        for cfg, labels in preset.settings
        for seed in (0, 1)
        for encoding in ("hz_x", "hz_t")
        for factor, role in zip(("s1", "s2", "s3", "m_x", "m_t"), [*factor_roles(cfg), "modality", "modality"])
    ]
    assert experiment.write_results(tmp_path, "misalign-quick", rows, preset) == []
    md = (tmp_path / "results.md").read_text()
    assert "## dependent latents, perturbation series (I_θ = all, I_ρ = [k]): hz_t, MLP R²" in md
    assert md.count("| factor | [3] | [2] |") == 8 and md.count("| factor | ∅ | [1] |") == 8  # 2 latents x 2 codes x 2
    assert "| s1 | 1.20±0.00 | 1.20±0.00 |" in md and "| s3 | 1.20±0.00 | *-0.50±0.00* |" in md
    assert "| s1 | 1.20±0.00 | *-0.50±0.00* |" in md and "| s1 | 0.55±0.05 | 0.55±0.05 |" in md
    assert "steps 7 (**the preset: 5,000**)" in md and "probes linear, mlp (**the preset: linear**)" in md
    assert (tmp_path / "results.png").stat().st_size > 0
    assert (tmp_path / "results.csv").read_text().count("\n") == 1 + len(rows)


@pytest.mark.slow
def test_a_grid_crosses_every_setting_shares_programs_and_titles_its_tables(tmp_path, monkeypatch):
    monkeypatch.setitem(presets.REGISTRY, ("misalign", "tiny"), presets.Preset("misalign", TINY_PRESET, "a test"))
    preset = command.preset_from_args(parse("sweep", "--out", "o", "--preset", "tiny", "--grid", "lr=1e-3,3e-3"))
    assert preset.labels == ("latents", "selected", "perturbed", "lr")
    assert [(dict(lab)["selected"], dict(lab)["lr"]) for _, lab in preset.settings] == [
        (2, 0.001),
        (2, 0.003),
        (3, 0.001),
        (3, 0.003),
    ]
    assert sweep.plan(experiment.study(preset), 4, 2) == "4 settings × 2 seeds in 2 compiled programs"  # lr is a number
    with pytest.raises(ConfigError, match="^grid field selected varies across the preset's settings already"):
        command.preset_from_args(parse("sweep", "--out", "o", "--preset", "tiny", "--grid", "selected=0:1"))
    out = tmp_path / "out"
    command.run(parse("sweep", "--out", out, "--preset", "tiny", "--grid", "lr=1e-3,3e-3", "--no-progress"))
    identity = json.loads((out / "sweep.json").read_text())
    assert identity["grid"] == {"lr": [0.001, 0.003]}
    assert (out / "results.csv").read_text().splitlines()[0].startswith("latents,selected,perturbed,lr,seed,")
    md = (out / "results.md").read_text()
    assert "## independent latents, lr=0.003, perturbation series (I_θ = all, I_ρ = [k]): hz_t, linear R²" in md
    assert md.count("| factor | [2] |") == 4  # 2 values of lr x 2 codes
    (out / "results.md").unlink()
    assert command.report(out, identity) == [] and (out / "results.md").read_text() == md
