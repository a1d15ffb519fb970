"""The misalignment model as pure functions: latents, both modalities, encoders, objective, training.

Per sample: s ~ N(0, Σ_s), m_x, m_t ~ N(0, Σ_m) (identity times m_param², or Wishart draws
when `dependent`); s̃ = s + mask ⊙ B ⊙ ε on the perturbed factors I_ρ ∩ I_θ, B ~
Bernoulli(p_chg) per sample and factor, ε ~ N(0, c_param² I) (or N(0, Σ_ε), a Wishart
draw); the image is x = g_x(s, m_x), the text t = g_t(s̃[I_θ], m_t), each mixer an
invertible MLP of its own. Each modality has its own encoder; the objective is the
two-view paper's symmetrised InfoNCE (`losses.infonce`) with an independent negative
batch. Keys follow the streams every experiment shares (`core.stream`).

Example, three seeds of a run whose text sees factors 0..3 of six, factor 1 perturbed:
    >>> import jax
    >>> from mmident_jax.misalign.config import MisalignConfig
    >>> cfg = MisalignConfig(semantic_n=6, modality_n=2, selected=(0, 1, 2, 3), perturbed=(1,),
    ...                      encoder_widths=(16,), batch_size=32, train_steps=5, cond_pool=1000)
    >>> state, losses = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.PRNGKey(0), 3))
    >>> losses.shape, [p["params"]["Dense_1"]["kernel"].shape for p in state.params]  # 3 invariant factors
    ((3, 5), [(3, 16, 3), (3, 16, 3)])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mmident_jax import core, encoders, latents, losses, mixing, optim
from mmident_jax.config import Hyper, hyper
from mmident_jax.core import TrainState
from mmident_jax.misalign.config import MisalignConfig

ENCODINGS = ("hz_x", "hz_t")  # the image's and the text's codes


class LatentParams(NamedTuple):
    """Per-seed covariance factors A (covariance A Aᵀ): identities, or Wishart draws when dependent."""

    s_factor: jax.Array  # (n_s, n_s)
    change_factor: jax.Array  # (n_s, n_s), of the perturbation ε
    mx_factor: jax.Array  # (n_m, n_m)
    mt_factor: jax.Array  # (n_m, n_m)


class Sample(NamedTuple):
    """A batch of latents, each (n, dim): s, its text-side copy s̃ (equal to s off the perturbed
    factors; every factor kept, only the selected reach the text), m_x and m_t."""

    s: jax.Array
    s_tilde: jax.Array
    m_x: jax.Array
    m_t: jax.Array


class Truth(NamedTuple):
    """The fixed generative model of one seed: latent parameters and the mixers g_x, g_t."""

    latents: LatentParams
    mixers: tuple[mixing.Mixer, mixing.Mixer]


def init_latents(key: jax.Array, cfg: MisalignConfig) -> LatentParams:
    """Identities, or when `cfg.dependent` Wishart(df=dim, I) factors: one per block from
    fold_in(key, 100 + block) (s, ε, m_x, m_t), or with `wishart="shared"` from fold_in(key, dim),
    the authors' code (one draw per size: Σ_ε = Σ_s, Σ_mt = Σ_mx)."""
    ns, nm = cfg.semantic_n, cfg.modality_n
    dims = (ns, ns, nm, nm)
    if not cfg.dependent:
        return LatentParams(*(jnp.eye(d) for d in dims))
    return LatentParams(
        *(
            latents.wishart_factor(jax.random.fold_in(key, d if cfg.wishart == "shared" else 100 + i), d)
            for i, d in enumerate(dims)
        )
    )


def sample(key: jax.Array, params: LatentParams, cfg: MisalignConfig, hp: Hyper, n: int) -> Sample:
    """Draw n samples; keys split(key, 5) = s, m_x, m_t, the change mask B, ε.

    s, m ~ N(0, m_param² I) and ε ~ N(0, c_param² I), or when dependent N(0, A Aᵀ) (the scales
    ignored, as the authors' code). s̃ = where(B on a perturbed factor, s + ε, s): the
    unperturbed factors are exact copies.
    """
    ns, nm = cfg.semantic_n, cfg.modality_n
    k_s, k_mx, k_mt, k_mask, k_eps = jax.random.split(key, 5)
    scale, change = (1.0, 1.0) if cfg.dependent else (hp.m_param, hp.c_param)

    def draw(k, dim, factor, value):
        x = jax.random.normal(k, (n, dim))
        return x @ factor.T if cfg.dependent else value * x

    s = draw(k_s, ns, params.s_factor, scale)
    moved = cfg.roles.perturbed
    if moved:
        mask = jnp.asarray(np.isin(np.arange(ns), moved))
        flips = jax.random.bernoulli(k_mask, hp.style_change_prob, (n, ns)) & mask
        s_tilde = jnp.where(flips, s + draw(k_eps, ns, params.change_factor, change), s)
    else:
        s_tilde = s
    return Sample(s, s_tilde, draw(k_mx, nm, params.mx_factor, scale), draw(k_mt, nm, params.mt_factor, scale))


def modality_latents(cfg: MisalignConfig, batch: Sample) -> tuple[jax.Array, jax.Array]:
    """The latents each mixer takes: z_x = (s, m_x), z_t = (s̃[I_θ], m_t)."""
    selected = cfg.roles.selected
    s_t = batch.s_tilde if len(selected) == cfg.semantic_n else batch.s_tilde[:, np.asarray(selected)]
    return jnp.concatenate([batch.s, batch.m_x], axis=1), jnp.concatenate([s_t, batch.m_t], axis=1)


def init_truth(key: jax.Array, cfg: MisalignConfig) -> Truth:
    """The ground truth of the run with root key `key`: latent parameters, g_x and g_t."""
    k_latents, k_x, k_t = jax.random.split(core.stream(key, "truth"), 3)
    mixers = tuple(
        mixing.init(k, d, cfg.n_mixing_layer, method=cfg.mixing_init, pool=cfg.cond_pool, ratio=cfg.cond_thresh_ratio)
        for k, d in zip((k_x, k_t), cfg.input_sizes)
    )
    return Truth(init_latents(k_latents, cfg), mixers)


def init_params(key: jax.Array, cfg: MisalignConfig) -> tuple:
    """Encoder parameters (image, text); encoder k's from fold_in(encoder stream, k)."""
    key = core.stream(key, "encoder")
    return tuple(
        encoders.module(cfg.encoder_config(k)).init(jax.random.fold_in(key, k), jnp.zeros((1, d)))
        for k, d in enumerate(cfg.input_sizes)
    )


def observations(cfg: MisalignConfig, truth: Truth, batch: Sample) -> tuple[jax.Array, jax.Array]:
    """x = g_x(z_x) and t = g_t(z_t)."""
    with jax.named_scope("mix"):
        return tuple(mixing.apply(g, z) for g, z in zip(truth.mixers, modality_latents(cfg, batch)))


def codes(params, cfg: MisalignConfig, truth: Truth, batch: Sample) -> tuple[jax.Array, jax.Array]:
    """The codes (hz_x, hz_t) = (f_x(x), f_t(t)), each (n, code size)."""
    return tuple(
        encoders.encode({"g1": p}, cfg.encoder_config(k), 1, x)
        for k, (p, x) in enumerate(zip(params, observations(cfg, truth, batch)))
    )


def contrastive_loss(params, cfg: MisalignConfig, hp: Hyper, truth: Truth, positives: Sample, negatives: Sample):
    """The symmetrised InfoNCE of the positive pairs, each modality's negatives from the negative batch."""
    b = positives.s.shape[0]
    both = jax.tree.map(lambda p, n: jnp.concatenate([p, n]), positives, negatives)
    hx, ht = codes(params, cfg, truth, both)  # one encoder pass over both batches
    with jax.named_scope("loss"):
        return losses.infonce(hx[:b], ht[:b], hx[b:], ht[b:], hp.temperature)


def data(state: TrainState, cfg: MisalignConfig, hp: Hyper) -> tuple[Sample, Sample]:
    """The positive and the negative batch of step `state.step`: fold_in(data stream, step), split in two."""
    k_pos, k_neg = jax.random.split(jax.random.fold_in(core.stream(state.key, "data"), state.step))
    with jax.named_scope("sample"):
        return tuple(sample(k, state.truth.latents, cfg, hp, cfg.batch_size) for k in (k_pos, k_neg))


def make_init(cfg: MisalignConfig) -> Callable[[jax.Array, Hyper], TrainState]:
    """`init(key, hp)`: the state before the first step."""

    def init(key, hp):
        params = init_params(key, cfg)
        return TrainState(
            jnp.zeros((), jnp.int32), params, optim.optimizer(cfg, hp.lr).init(params), init_truth(key, cfg), key
        )

    return init


def make_step(cfg: MisalignConfig) -> Callable[[TrainState, Hyper], tuple[TrainState, jax.Array]]:
    """`step(state, hp) -> (state, loss)`: one optimisation step on fresh data."""

    def loss(params, state, hp, batch):
        value = contrastive_loss(params, cfg, hp, state.truth, *batch)
        return value, value

    return core.make_step(lambda state, hp: data(state, cfg, hp), loss, lambda hp: optim.optimizer(cfg, hp.lr))


def experiment(cfg: MisalignConfig) -> core.Experiment:
    """The run `cfg` as the core's experiment (init, step, length)."""
    return core.Experiment(make_init(cfg), make_step(cfg), cfg.train_steps, cfg.log_steps)


def make_train(cfg: MisalignConfig) -> Callable[..., tuple[TrainState, jax.Array]]:
    """`train(key, hp=None) -> (final state, per-step losses)`, pure and vmappable; `hp` defaults to `hyper(cfg)`."""
    train = core.make_train(experiment(cfg))
    return lambda key, hp=None: train(key, hyper(cfg) if hp is None else hp)
