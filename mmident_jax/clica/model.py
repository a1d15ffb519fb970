"""The single-mixer contrastive model as pure functions: truth, codes, objective, the core's experiment.

Each step draws a batch of latents z from the marginal and a positive partner z̃ of each
from the conditional (`spaces`), mixes both with the run's one invertible mixer g and
encodes them with the one encoder h; the codes are unbounded, unit-norm (sphere model) or
in a learned box (sigmoid times learned bounds). The objective compares h(g(z)) with
h(g(z̃)) against the batch (`objectives`); AnInfoNCE's Λ = softplus(θ) is trained beside
h at its own learning rate. Keys come from the streams every experiment shares
(`core.stream`): the mixer from "truth", h and θ from "encoder", step t's batch from
fold_in(data stream, t).

Example, three seeds of AnInfoNCE's model in one program:
    >>> import jax
    >>> from mmident_jax.clica.config import IcaConfig
    >>> cfg = IcaConfig(space="sphere", conditional="anisotropic", model_space="sphere", loss="aninfonce",
    ...                 encoder_widths=(16,), batch_size=32, train_steps=5, cond_pool=100)
    >>> state, losses = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.PRNGKey(0), 3))
    >>> losses.shape, state.params["lambda"].shape
    ((3, 5), (3, 10))
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from mmident_jax import core, encoders, mixing, optim
from mmident_jax.clica import objectives, spaces
from mmident_jax.clica.config import Hyper, IcaConfig, hyper, precision
from mmident_jax.core import TrainState, stream


def init_truth(key: jax.Array, cfg: IcaConfig) -> mixing.Mixer:
    """The run's mixer g (its "truth" stream)."""
    return mixing.init(
        stream(key, "truth"),
        cfg.n,
        cfg.n_mixing_layer,
        method=cfg.mixing_init,
        pool=cfg.cond_pool,
        ratio=cfg.cond_thresh_ratio,
    )


def init_params(key: jax.Array, cfg: IcaConfig) -> dict:
    """The trainable parameters: the encoder "h", the box model's "bounds" (ones) and
    AnInfoNCE's "lambda" θ ~ N(0, 0.1²) (Λ = softplus(θ), as Rusak et al.)."""
    key = stream(key, "encoder")
    params = {"h": encoders.module(cfg.encoder_config()).init(jax.random.fold_in(key, 0), jnp.zeros((1, cfg.n)))}
    if cfg.model_space == "box":
        params["bounds"] = jnp.ones(cfg.n)
    if cfg.loss == "aninfonce":
        params["lambda"] = 0.1 * jax.random.normal(jax.random.fold_in(key, 1), (cfg.n,))
    return params


def learned_precision(params: dict) -> jax.Array:
    """AnInfoNCE's learned diagonal Λ = softplus(θ)."""
    return jax.nn.softplus(params["lambda"])


def codes(params: dict, cfg: IcaConfig, truth: mixing.Mixer, z: jax.Array) -> jax.Array:
    """h(g(z)) in the model's space."""
    with jax.named_scope("mix"):
        x = mixing.apply(truth, z)
    h = encoders.encode({"g1": params["h"]}, cfg.encoder_config(), 1, x)
    if cfg.model_space == "sphere":
        return spaces.project(h)
    if cfg.model_space == "box":
        return jax.nn.sigmoid(h) * params["bounds"]
    return h


def sample_pairs(key: jax.Array, cfg: IcaConfig, hp: Hyper, size: int) -> tuple[jax.Array, jax.Array]:
    """`size` latents z from the marginal and their positive partners z̃."""
    k_marginal, k_conditional = jax.random.split(key)
    z = spaces.marginal(k_marginal, cfg.space, cfg.marginal, size, cfg.n, hp.marginal_scale)
    tilde = spaces.conditional(
        k_conditional,
        z,
        cfg.space,
        cfg.conditional,
        hp.conditional_scale,
        cfg.conditional_p,
        jnp.asarray(precision(cfg)),
        cfg.shell,
    )
    return z, tilde


def objective(params: dict, cfg: IcaConfig, hp: Hyper, a: jax.Array, b: jax.Array) -> jax.Array:
    """The configured loss of anchors' codes a and their positives' codes b."""
    with jax.named_scope("loss"):
        if cfg.loss == "aninfonce":
            return objectives.aninfonce(a, b, learned_precision(params))
        if cfg.similarity == "cosine":
            return objectives.cosine_infonce(a, b, hp.temperature)
        return objectives.lp_infonce(a, b, cfg.loss_p, hp.temperature)


def optimizer(cfg: IcaConfig, lr) -> optax.GradientTransformation:
    """The shared optimiser (`optim.optimizer`) for h and the bounds; Adam at `lambda_lr` for θ."""
    if cfg.loss != "aninfonce":
        return optim.optimizer(cfg, lr)
    labels = lambda params: {name: "lambda" if name == "lambda" else "model" for name in params}
    return optax.multi_transform({"model": optim.optimizer(cfg, lr), "lambda": optax.adam(cfg.lambda_lr)}, labels)


def make_init(cfg: IcaConfig) -> Callable[[jax.Array, Hyper], TrainState]:
    """`init(key, hp)`: the state before the first step."""

    def init(key, hp):
        params = init_params(key, cfg)
        return TrainState(
            jnp.zeros((), jnp.int32), params, optimizer(cfg, hp.lr).init(params), init_truth(key, cfg), key
        )

    return init


def make_step(cfg: IcaConfig) -> Callable[[TrainState, Hyper], tuple[TrainState, jax.Array]]:
    """`step(state, hp) -> (state, loss)`: one optimisation step on a fresh batch."""

    def data(state, hp):
        with jax.named_scope("sample"):
            return sample_pairs(jax.random.fold_in(stream(state.key, "data"), state.step), cfg, hp, cfg.batch_size)

    def loss(params, state, hp, batch):
        z, tilde = batch
        both = codes(params, cfg, state.truth, jnp.concatenate([z, tilde]))  # one encoder pass
        value = objective(params, cfg, hp, both[: cfg.batch_size], both[cfg.batch_size :])
        return value, value

    return core.make_step(data, loss, lambda hp: optimizer(cfg, hp.lr))


def experiment(cfg: IcaConfig) -> core.Experiment:
    """The run `cfg` as the core's experiment (init, step, length)."""
    return core.Experiment(make_init(cfg), make_step(cfg), cfg.train_steps, cfg.log_steps)


def make_train(cfg: IcaConfig) -> Callable[..., tuple[TrainState, jax.Array]]:
    """`train(key, hp=None) -> (final state, per-step losses)`, pure and vmappable."""
    train = core.make_train(experiment(cfg))
    return lambda key, hp=None: train(key, hyper(cfg) if hp is None else hp)
