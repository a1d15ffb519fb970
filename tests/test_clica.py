"""cl-ica's and AnInfoNCE's experiment: samplers' analytic moments and support, the losses by hand,
AnInfoNCE at Λ = I, the learned Λ's own learning rate, and runs through the engine equal to runs alone."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from mmident_jax import losses, sweep
from mmident_jax.clica import evaluation, objectives, spaces
from mmident_jax.clica.config import IcaConfig, IcaError, hyper, precision, replace
from mmident_jax.clica.experiment import study
from mmident_jax.clica.model import init_params, make_init, make_step, make_train
from mmident_jax.clica.settings import Preset, assumptions_met, setting

N = 200_000


def tiny(**kw) -> IcaConfig:
    base = dict(encoder_widths=(16,), batch_size=32, train_steps=6, log_steps=3, cond_pool=100, lr=1e-3)
    return IcaConfig(**{**base, **kw})


# ------------------------------------------------------------------ samplers


@pytest.mark.parametrize("n, kappa", [(10, 1.0), (10, 10.0), (3, 5.0)])
def test_von_mises_fisher_has_the_mean_resultant_length_of_its_kappa(n, kappa):
    mu = spaces.uniform_sphere(jax.random.PRNGKey(0), 1, n).repeat(N, 0)
    x = np.asarray(spaces.von_mises_fisher(jax.random.PRNGKey(1), mu, kappa), np.float64)
    cosine = x @ np.asarray(mu[0], np.float64)
    expected = special.iv(n / 2, kappa) / special.iv(n / 2 - 1, kappa)  # A_n(κ) = I_{n/2}(κ) / I_{n/2-1}(κ)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert abs(cosine.mean() - expected) < 4 * cosine.std() / math.sqrt(N)
    tangent = x - cosine[:, None] * np.asarray(mu[0])  # uniform around μ: no mean direction
    assert np.abs(tangent.mean(axis=0)).max() < 0.01


@pytest.mark.parametrize(
    "kind, p, variance",
    [
        ("laplace", 3.0, 2 * 0.3**2),
        ("normal", 3.0, 0.3**2),
        ("generalized", 1.0, 2 * 0.3**2),  # p = 1 is Laplace
        ("generalized", 3.0, 0.3**2 * special.gamma(3 / 3) / special.gamma(1 / 3)),
        ("generalized", 2.0, 0.3**2 / 2),  # p = 2 is a normal of std λ/√2
    ],
)
def test_noise_has_its_analytic_variance(kind, p, variance):
    x = np.asarray(spaces.noise(jax.random.PRNGKey(0), kind, (N,), 0.3, p), np.float64)
    assert abs(x.mean()) < 4 * math.sqrt(variance / N)
    assert abs(x.var() / variance - 1) < 0.02


def test_box_marginal_and_truncated_conditional_stay_in_the_box():
    z = spaces.marginal(jax.random.PRNGKey(0), "box", "uniform", N, 4, 1.0)
    assert float(z.min()) >= 0.0 and float(z.max()) <= 1.0
    assert abs(float(z.mean()) - 0.5) < 0.005 and abs(float(z.var()) - 1 / 12) < 0.002
    edge = jnp.zeros((N, 2)).at[:, 1].set(0.5)  # coordinate 0 on the edge, 1 in the middle
    tilde = np.asarray(spaces.truncated(jax.random.PRNGKey(1), edge, "laplace", 0.05))
    assert tilde.min() >= 0.0 and tilde.max() <= 1.0
    # on the edge: the half-Laplace |ε| (mean λ); in the middle: untouched Laplace(0.5, λ)
    assert abs(tilde[:, 0].mean() - 0.05) < 0.001
    assert abs(tilde[:, 1].mean() - 0.5) < 0.001 and abs(tilde[:, 1].var() / (2 * 0.05**2) - 1) < 0.03


def test_sphere_conditionals_are_projected_onto_the_sphere():
    z = spaces.uniform_sphere(jax.random.PRNGKey(0), 1000, 5)
    for kind in ("normal", "laplace", "generalized"):
        tilde = spaces.conditional(jax.random.PRNGKey(1), z, "sphere", kind, 0.05, 3.0, None, None)
        assert np.allclose(np.linalg.norm(tilde, axis=1), 1.0, atol=1e-5)
    marginal = spaces.marginal(jax.random.PRNGKey(2), "sphere", "normal", 1000, 5, 1.0)  # around e_1
    assert (
        np.allclose(np.linalg.norm(marginal, axis=1), 1.0, atol=1e-5) and float(marginal[:, 0].mean()) > 0.3
    )  # uniform: 0


def test_anisotropic_conditional_moves_least_along_the_highest_precision():
    cfg = tiny(space="sphere", conditional="anisotropic", anisotropy="linear", model_space="sphere")
    lam = precision(cfg)
    z = spaces.uniform_sphere(jax.random.PRNGKey(0), 50_000, cfg.n)
    tilde = spaces.anisotropic(jax.random.PRNGKey(1), z, jnp.asarray(lam), cfg.shell)
    spread = np.asarray(((tilde - z) ** 2).mean(axis=0))
    assert np.allclose(np.linalg.norm(tilde, axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(spread) < 0)  # λ increases along the axes: the spread decreases
    assert np.all(spread < 1 / lam)  # the shell and the projection only shrink it
    assert lam.tolist() == pytest.approx(np.linspace(5, 25, 10).tolist())


def test_first_accepted_takes_the_first_accepted_proposal_or_the_last_one():
    proposals = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    kept, found = spaces.first_accepted(proposals, jnp.array([[False, True, False], [True, True, False]]))
    assert kept.tolist() == [4.0, 2.0, 6.0] and found.tolist() == [True, True, False]


# ------------------------------------------------------------------ losses


def _by_hand(a, b, similarity):
    """cl-ica's loss, one anchor at a time: -log e^{s(a_i,b_i)} / (e^{s(a_i,b_i)} + Σ_j e^{s(a_i,a_j)})."""
    total = 0.0
    for i in range(len(a)):
        pos = similarity(a[i], b[i])
        total += -pos + math.log(math.exp(pos) + sum(math.exp(similarity(a[i], a[j])) for j in range(len(a))))
    return total / len(a)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_lp_infonce_by_hand(p):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 4, 3))
    expected = _by_hand(a, b, lambda u, v: -np.sum(np.abs(u - v) ** p) / 0.5)
    assert float(objectives.lp_infonce(jnp.array(a), jnp.array(b), p, 0.5)) == pytest.approx(expected, rel=1e-5)


def test_cosine_infonce_by_hand():
    rng = np.random.default_rng(1)
    a, b = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in rng.normal(size=(2, 5, 3)))
    expected = _by_hand(a, b, lambda u, v: u @ v / 0.2)
    assert float(objectives.cosine_infonce(jnp.array(a), jnp.array(b), 0.2)) == pytest.approx(expected, rel=1e-5)


def test_lp_distances_by_tiles_equal_the_direct_ones_and_their_gradients():
    a, b = jax.random.normal(jax.random.PRNGKey(0), (2, objectives.TILE_ROWS + 44, 3))

    def direct(a):
        return jnp.sum(jnp.sum(jnp.abs(a[:, None] - b[None]) ** 3, axis=-1) * jnp.arange(b.shape[0]))

    def tiled(a):
        return jnp.sum(objectives.lp_distances(a, b, 3.0) * jnp.arange(b.shape[0]))

    assert np.allclose(tiled(a), direct(a), rtol=1e-6)
    assert np.allclose(jax.grad(tiled)(a), jax.grad(direct)(a), rtol=1e-5)


def test_aninfonce_at_identity_is_the_isotropic_nt_xent():
    a, b = spaces.uniform_sphere(jax.random.PRNGKey(0), 16, 4), spaces.uniform_sphere(jax.random.PRNGKey(1), 16, 4)
    one = jnp.ones(4)
    # −½‖u − v‖² = uᵀv − 1 on the sphere: the constant cancels, cosine NT-Xent at τ = 1
    assert float(objectives.aninfonce(a, b, one)) == pytest.approx(float(losses.nt_xent(a, b, 1.0, "cosine")), rel=1e-6)
    # Λ = c I is the squared-L2 NT-Xent at τ = 2 / c, for any codes
    x, y = jax.random.normal(jax.random.PRNGKey(2), (2, 16, 4))
    assert float(objectives.aninfonce(x, y, 4 * one)) == pytest.approx(float(losses.nt_xent(x, y, 0.5, "l2")), rel=1e-6)


# ------------------------------------------------------------------ model, evaluation, engine


@pytest.mark.slow
def test_aninfonce_learns_its_lambda_at_its_own_rate():
    cfg = tiny(space="sphere", conditional="anisotropic", model_space="sphere", loss="aninfonce", lambda_lr=1e-2)
    hp = hyper(cfg)
    state = make_init(cfg)(jax.random.PRNGKey(0), hp)
    after, _ = jax.jit(make_step(cfg))(state, hp)
    # Adam's first update is lr · g / (|g| + ε): each entry moves by its learning rate
    assert np.allclose(np.abs(after.params["lambda"] - state.params["lambda"]), 1e-2, rtol=1e-3)
    kernel = np.abs(after.params["h"]["params"]["Dense_0"]["kernel"] - state.params["h"]["params"]["Dense_0"]["kernel"])
    assert np.allclose(kernel[kernel > 0], 1e-3, rtol=1e-2)
    assert init_params(jax.random.PRNGKey(0), cfg)["lambda"].std() < 0.3  # θ ~ N(0, 0.1²)


def test_the_codes_of_a_box_model_lie_in_its_learned_box():
    cfg = tiny(model_space="box", loss_p=1.0)
    state, _ = jax.jit(make_train(cfg))(jax.random.PRNGKey(0))
    from mmident_jax.clica.model import codes

    h = codes(state.params, cfg, state.truth, jnp.full((8, cfg.n), 0.5))
    assert np.all(h >= 0) and np.all(h <= state.params["bounds"])


def test_scores_of_the_true_latents_and_of_a_rotation():
    z = np.asarray(spaces.marginal(jax.random.PRNGKey(0), "box", "uniform", 4000, 2, 1.0))
    r2, matching = evaluation.scores(z, z[:, ::-1] * [2.0, -1.0] + 1.0)
    assert r2 == pytest.approx(1.0) and float(matching.mcc) == pytest.approx(1.0, abs=1e-6)
    r2, matching = evaluation.scores(z, z @ np.array([[1.0, 1.0], [-1.0, 1.0]]))
    assert r2 == pytest.approx(1.0) and float(matching.mcc) == pytest.approx(1 / math.sqrt(2), abs=0.03)


@pytest.mark.slow
def test_engine_runs_equal_each_run_alone_and_share_a_program_across_kappas():
    sphere = tiny(space="sphere", conditional="vmf", model_space="sphere")
    settings = (setting(replace(sphere, conditional_scale=1.0)), setting(replace(sphere, conditional_scale=10.0)))
    s = study(Preset(settings, seeds=2, eval_batches=1, eval_batch_size=128))
    groups = sweep.group_runs(s)
    assert len(groups) == 1  # κ is a per-run number
    cfg, runs = groups[0]
    trained = sweep.train_group(s, cfg, runs)
    for i, run in enumerate(runs):
        alone, _ = jax.jit(make_train(run.cfg))(jax.random.PRNGKey(run.seed))
        for got, want in zip(jax.tree.leaves(trained.state.params), jax.tree.leaves(alone.params)):
            np.testing.assert_array_equal(got[i], want)


@pytest.mark.slow
def test_a_sweep_gives_one_row_per_run_with_aninfonce_lambda_in_latent_order():
    cfg = tiny(space="sphere", conditional="anisotropic", model_space="sphere", loss="aninfonce")
    rows = sweep.sweep(study(Preset((setting(cfg),), seeds=2, eval_batches=2, eval_batch_size=256)), progress=False)
    assert [r["seed"] for r in rows] == [0, 1]
    assert rows[0]["lambda_true"] == [25.0] * 5 + [5.0] * 5 and len(rows[0]["lambda_learned"]) == 10
    assert rows[0]["assumptions_met"] and 0 < rows[0]["r2_linear"] <= 1


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(conditional="vmf"), "the vmf conditional lives on the sphere, not in the box space"),
        (dict(space="unbounded"), "the unbounded space has no uniform marginal: choose normal or laplace"),
        (dict(marginal="normal"), "the box takes the uniform marginal, got 'normal'"),
        (dict(loss="aninfonce"), "aninfonce compares unit-norm codes: it needs model_space 'sphere', got 'unbounded'"),
        (dict(loss_p=0.0), "loss_p must be > 0, got 0.0"),
        (dict(lambda_low=30.0), "need 0 < lambda_low <= lambda_high, got 30.0, 25.0"),
    ],
)
def test_inconsistent_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(IcaError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        tiny(**settings)


def test_assumptions_met_pairs_each_conditional_with_its_similarity():
    assert assumptions_met(tiny(conditional="laplace", model_space="box", loss_p=1.0))
    assert not assumptions_met(tiny(conditional="laplace", model_space="unbounded", loss_p=1.0))
    assert not assumptions_met(tiny(conditional="normal", model_space="box", loss_p=1.0))
    assert assumptions_met(tiny(space="sphere", conditional="vmf", model_space="sphere"))


def test_the_command_refuses_bad_input_in_one_line(cli, tmp_path):
    result = cli("clica", "sweep", "--out", tmp_path / "o", "--preset", "clica-quick", "--seeds", "0")
    assert result.returncode == 2 and result.stderr == "mmident-jax clica: error: --seeds must be >= 1, got 0\n"
    assert not (tmp_path / "o").exists()
