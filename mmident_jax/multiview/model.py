"""The multi-view model as pure functions: latents, mixers, encoders, objective, training.

One latent vector z (d dims) is drawn per sample; view k sees z[S_k] (the perturbed
latents, for k >= 1, through its own perturbed copy) and observes x_k = f_k(z[S_k])
through its own invertible mixer; its encoder g_k maps x_k to a code. The objective
sums, over the contrasted groups V, an InfoNCE between the views of V on the code
coordinates that stand for their shared content C_V.

Keys follow the streams every experiment shares (`core.stream`) in the two-view
code's order, so that a `from_two_view` config draws the same numbers as
`train.make_init`, `train.data` and `train.contrastive_loss` for the same key.

Example, three seeds of a three-view model in one program:
    >>> import jax
    >>> from mmident_jax.multiview.structure import MultiviewConfig, Views
    >>> views = Views(3, ((0, 1), (1, 2), (2, 0)))   # each pair of views shares one latent
    >>> cfg = MultiviewConfig(views, encoder_widths=(16,), batch_size=32, train_steps=5, cond_pool=1000)
    >>> state, losses = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.PRNGKey(0), 3))
    >>> losses.shape  # seeds x steps x groups
    (3, 5, 3)
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mmident_jax import core, encoders, latents, losses, mixing, optim
from mmident_jax.config import Hyper, hyper
from mmident_jax.core import TrainState
from mmident_jax.multiview.structure import MultiviewConfig, Views


class LatentParams(NamedTuple):
    """Per-seed parameters: one covariance factor per sampling block (`Views.blocks`), B and a."""

    factors: tuple[jax.Array, ...]  # shared, perturbed, perturbation, private latents of each view
    B: jax.Array  # (|perturbed|, |causal_parents|)
    a: jax.Array  # (|perturbed|,)


class Sample(NamedTuple):
    """A batch of latents: z (n, d) and the perturbed latents as views 1..K-1 see them."""

    z: jax.Array
    tilde: jax.Array  # (n, K - 1, |perturbed|)


class Truth(NamedTuple):
    """The fixed generative model of one seed: latent parameters and one mixer per view."""

    latents: LatentParams
    mixers: tuple[mixing.Mixer, ...]


def _runs(columns) -> list[tuple[int, int, int]]:
    """(source, start, stop) runs of consecutive (source, column) pairs."""
    runs = []
    for src, col in columns:
        if runs and runs[-1][0] == src and runs[-1][2] == col:
            runs[-1] = (src, runs[-1][1], col + 1)
        else:
            runs.append((src, col, col + 1))
    return runs


def _gather(sources, columns) -> jax.Array:
    """Columns (source index, column) of `sources` (arrays of equal rows), as slices and one
    concatenation: exact copies, and (unlike a gather) the layout XLA's CPU matmuls take as is."""
    pieces = [
        sources[src][..., start:stop] if (start, stop) != (0, sources[src].shape[-1]) else sources[src]
        for src, start, stop in _runs(columns)
    ]
    if not pieces:
        return sources[0][..., :0]
    return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=-1)


def _take(x: jax.Array, idx) -> jax.Array:
    """Columns `idx` of x (see `_gather`)."""
    return _gather([x], [(0, int(i)) for i in idx])


def init_latents(key: jax.Array, cfg: MultiviewConfig) -> LatentParams:
    """Covariance factors (identity, or a Wishart factor on the dependent latents of each
    block: key fold_in(key, 100 + block), or fold_in(key, size) with `wishart="shared"`), and
    B, a ~ N(0, 1) from fold_in(key, 200) when there are causal parents."""
    views = cfg.views
    factors = []
    for i, dims in enumerate(views.blocks):
        dep = [j for j, latent in enumerate(dims) if latent in views.dependent]
        if not dep:
            factors.append(jnp.eye(len(dims)))
            continue
        draw = latents.wishart_factor(
            jax.random.fold_in(key, len(dep) if cfg.wishart == "shared" else 100 + i), len(dep)
        )
        factors.append(draw if len(dep) == len(dims) else jnp.eye(len(dims)).at[np.ix_(dep, dep)].set(draw))
    n_p, n_par = len(views.perturbed), len(views.causal_parents)
    if n_par:
        kb, ka = jax.random.split(jax.random.fold_in(key, 200))
        B, a = jax.random.normal(kb, (n_p, n_par)), jax.random.normal(ka, (n_p,))
    else:
        B, a = jnp.zeros((n_p, 0)), jnp.zeros((n_p,))
    return LatentParams(tuple(factors), B, a)


def sample(key: jax.Array, params: LatentParams, cfg: MultiviewConfig, hp: Hyper, n: int) -> Sample:
    """Draw n samples: each block ~ N(0, m_param² A Aᵀ) from its own key; perturbed latents
    + B z[parents] + a; view k >= 1 sees z_P + kappa_k * eps_k, kappa_k ~ Bernoulli(p_chg),
    eps_k ~ N(0, c_param² A_chg A_chgᵀ) (keys: split(key, K + 4) = shared, perturbed,
    private of each view, kappa, eps; the two-view `latents.sample_blocks` order). As in the
    original codes, m_param and c_param do not scale the dependent latents (their N(0, Σ))."""
    views = cfg.views
    K, n_p = views.k, len(views.perturbed)
    keys = jax.random.split(key, K + 4)
    k_shared, k_perturbed, k_private, k_mask, k_eps = keys[0], keys[1], keys[2 : 2 + K], keys[K + 2], keys[K + 3]
    f_shared, f_perturbed, f_change, *f_private = params.factors

    def scale(latents, value):
        dependent = np.isin(np.asarray(latents, int), views.dependent)
        return jnp.where(dependent, 1.0, value) if dependent.any() else value

    def draw(k, latents, factor, value):
        return scale(latents, value) * jax.random.normal(k, (n, len(latents))) @ factor.T

    shared = draw(k_shared, views.shared, f_shared, hp.m_param)
    private = [draw(k, views.private(j), f, hp.m_param) for j, (k, f) in enumerate(zip(k_private, f_private))]
    unperturbed = jnp.concatenate([shared, *private], axis=1)
    order = views.shared + sum((views.private(j) for j in range(K)), ())
    parents = _take(unperturbed, [order.index(i) for i in views.causal_parents])
    perturbed = draw(k_perturbed, views.perturbed, f_perturbed, hp.m_param) + parents @ params.B.T + params.a
    kappa = jax.random.bernoulli(k_mask, hp.style_change_prob, (K - 1, n, n_p))
    eps = scale(views.perturbed, hp.c_param) * jax.random.normal(k_eps, (K - 1, n, n_p))
    tilde = jnp.stack([perturbed + kappa[j] * (eps[j] @ f_change.T) for j in range(K - 1)], axis=1)
    blocks = jnp.concatenate([shared, perturbed, *private], axis=1)
    layout = views.shared + views.perturbed + sum((views.private(j) for j in range(K)), ())
    return Sample(_take(blocks, [layout.index(i) for i in range(views.n_latent)]), tilde)


def view_latents(views: Views, batch: Sample, k: int) -> jax.Array:
    """z[S_k] as view k sees it (its perturbed copy of the perturbed latents for k >= 1)."""
    perturbed = set(views.perturbed) if k >= 1 else set()
    return _gather(
        [batch.z, batch.tilde[:, k - 1] if perturbed else batch.z],
        [(1, views.perturbed.index(i)) if i in perturbed else (0, i) for i in views.subsets[k]],
    )


def init_truth(key: jax.Array, cfg: MultiviewConfig) -> Truth:
    """The ground truth of the run with root key `key`: latent parameters and K mixers."""
    k_latents, *k_mixers = jax.random.split(core.stream(key, "truth"), cfg.views.k + 1)
    mixers = tuple(
        mixing.init(
            k, len(s), cfg.n_mixing_layer, method=cfg.mixing_init, pool=cfg.cond_pool, ratio=cfg.cond_thresh_ratio
        )
        for k, s in zip(k_mixers, cfg.views.subsets)
    )
    return Truth(init_latents(k_latents, cfg), mixers)


def init_params(key: jax.Array, cfg: MultiviewConfig) -> tuple:
    """Encoder parameters, one tree per view; view k's from fold_in(encoder stream, k)."""
    key = core.stream(key, "encoder")
    return tuple(
        encoders.module(cfg.encoder_config(k)).init(jax.random.fold_in(key, k), jnp.zeros((1, len(s))))
        for k, s in enumerate(cfg.views.subsets)
    )


def observations(cfg: MultiviewConfig, truth: Truth, batch: Sample) -> tuple[jax.Array, ...]:
    """Every view's observations x_k = f_k(z[S_k])."""
    with jax.named_scope("mix"):
        return tuple(mixing.apply(f, view_latents(cfg.views, batch, k)) for k, f in enumerate(truth.mixers))


def codes(params, cfg: MultiviewConfig, truth: Truth, batch: Sample) -> tuple[jax.Array, ...]:
    """Every view's code g_k(x_k), shape (n, code size of view k)."""
    return tuple(
        encoders.encode({"g1": p}, cfg.encoder_config(k), 1, x)
        for k, (p, x) in enumerate(zip(params, observations(cfg, truth, batch)))
    )


def joint_infonce(parts: list[jax.Array], parts_neg: list[jax.Array], temperature) -> jax.Array:
    """Yao et al.'s numerical loss for one group: mean_i [P_i/τ + log((Σ_j e^{-N_ij/τ} + e^{-P_i/τ})/(n+1))],
    P_i = Σ_t ‖h_t,i − h_t+1,i‖² along consecutive views, N_ij = Σ_t ‖h_t,i − h'_t,j‖²."""
    pos = functools.reduce(operator.add, [jnp.sum((a - b) ** 2, axis=-1) for a, b in zip(parts, parts[1:])])
    positive = -pos / temperature
    a, a_neg = jnp.concatenate(parts, axis=1), jnp.concatenate(parts_neg, axis=1)
    lse = losses.logsumexp_negatives(a, a_neg, positive, temperature) - jnp.log(a_neg.shape[0] + 1)
    return jnp.mean(lse - positive)


def topk_gumbel(key: jax.Array, logits: jax.Array, k: int, temperature: float = 1.0) -> jax.Array:
    """Yao et al.'s hard top-k Gumbel-softmax: the k selected indices of `logits` (d,), ascending.

    Gumbel noise is added once; k rounds of softmax, each masking what the previous rounds
    took (log max(1 − p, tiny)), sum to a relaxed k-hot vector whose k largest entries are
    the selection.

    >>> topk_gumbel(jax.random.PRNGKey(0), jnp.array([9.0, -9.0, 9.0, 9.0, -9.0]), 3)
    Array([0, 2, 3], dtype=int32)
    """
    logits = logits + jax.random.gumbel(key, logits.shape, logits.dtype)
    khot = onehot = jnp.zeros_like(logits)
    for _ in range(k):
        logits = logits + jnp.log(jnp.maximum(1.0 - onehot, jnp.finfo(logits.dtype).tiny))
        onehot = jax.nn.softmax(logits / temperature)
        khot = khot + onehot
    return jnp.sort(jax.lax.top_k(khot, k)[1])


def content_parts(
    cfg: MultiviewConfig, group_index: int, hs, n_positive: int, key: jax.Array
) -> tuple[list[jax.Array], list]:
    """Each view's content block for group `cfg.views.plan[group_index]` (all rows of `hs`), and
    its coordinates: the plan's, or under "gumbel_softmax" Yao et al.'s `topk_gumbel` of the
    view's mean code over the first `n_positive` rows, with key fold_in(fold_in(key, group),
    view). The indices are integers, so no gradient reaches the selection (as in their code)."""
    group = cfg.views.plan[group_index]
    if group.coords is not None:
        return [_take(hs[k], c) for k, c in zip(group.views, group.coords)], list(group.coords)
    key = jax.random.fold_in(key, group_index)
    coords = [
        topk_gumbel(jax.random.fold_in(key, k), hs[k][:n_positive].mean(axis=0), len(group.content))
        for k in group.views
    ]
    return [jnp.take(hs[k], c, axis=-1) for k, c in zip(group.views, coords)], coords


def group_losses(cfg: MultiviewConfig, hp: Hyper, hs, n_positive: int, key: jax.Array) -> list[jax.Array]:
    """The objective of each group on codes whose first `n_positive` rows are the positive
    samples and the rest the independent negatives: "pairs" sums `losses.infonce` over the
    pairs of views of the group, "joint" is `joint_infonce`. `key` draws a Gumbel selection
    (`content_parts`)."""
    b, out = n_positive, []
    for g in range(len(cfg.views.plan)):
        parts, _ = content_parts(cfg, g, hs, b, key)
        if cfg.objective == "joint":
            out.append(joint_infonce([p[:b] for p in parts], [p[b:] for p in parts], hp.temperature))
            continue
        pairs = [
            losses.infonce(parts[i][:b], parts[j][:b], parts[i][b:], parts[j][b:], hp.temperature)
            for i in range(len(parts))
            for j in range(i + 1, len(parts))
        ]
        out.append(functools.reduce(operator.add, pairs))
    return out


def loss_terms(cfg: MultiviewConfig) -> list[int]:
    """InfoNCE terms per group: one per pair of its views ("pairs"), or one ("joint")."""
    return [1 if cfg.objective == "joint" else len(g.views) * (len(g.views) - 1) // 2 for g in cfg.views.plan]


def loss_floor(cfg: MultiviewConfig) -> float:
    """The lowest value of one InfoNCE term, −log(n + 1) for n negatives: positives coincide and
    negatives are infinitely far. A group's floor is its `loss_terms` times this."""
    return -float(np.log(cfg.batch_size + 1))


def contrastive_loss(
    params, cfg: MultiviewConfig, hp: Hyper, truth: Truth, positives: Sample, negatives: Sample, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(sum over groups, per-group losses) on a positive and an independent negative batch;
    `key` draws the content selection under "gumbel_softmax" (unused otherwise)."""
    both = jax.tree.map(lambda p, n: jnp.concatenate([p, n]), positives, negatives)
    with jax.named_scope("loss"):
        terms = group_losses(cfg, hp, codes(params, cfg, truth, both), positives.z.shape[0], key)
        return functools.reduce(operator.add, terms), jnp.stack(terms)


def data(state: TrainState, cfg: MultiviewConfig, hp: Hyper) -> tuple[Sample, Sample]:
    """The positive and the negative batch of step `state.step`: fold_in(data stream, step), split in two."""
    k_pos, k_neg = jax.random.split(jax.random.fold_in(core.stream(state.key, "data"), state.step))
    with jax.named_scope("sample"):
        return tuple(sample(k, state.truth.latents, cfg, hp, cfg.batch_size) for k in (k_pos, k_neg))


def make_init(cfg: MultiviewConfig) -> Callable[[jax.Array, Hyper], TrainState]:
    """`init(key, hp)`: the state before the first step."""

    def init(key, hp):
        params = init_params(key, cfg)
        return TrainState(
            jnp.zeros((), jnp.int32), params, optim.optimizer(cfg, hp.lr).init(params), init_truth(key, cfg), key
        )

    return init


def make_step(cfg: MultiviewConfig) -> Callable[[TrainState, Hyper], tuple[TrainState, jax.Array]]:
    """`step(state, hp) -> (state, per-group losses)`: one optimisation step on fresh data."""

    def loss(params, state, hp, batch):
        key = jax.random.fold_in(core.stream(state.key, "selection"), state.step)
        return contrastive_loss(params, cfg, hp, state.truth, *batch, key)

    return core.make_step(lambda state, hp: data(state, cfg, hp), loss, lambda hp: optim.optimizer(cfg, hp.lr))


def experiment(cfg: MultiviewConfig) -> core.Experiment:
    """The run `cfg` as the core's experiment (init, step, length)."""
    return core.Experiment(make_init(cfg), make_step(cfg), cfg.train_steps, cfg.log_steps)


def make_train(cfg: MultiviewConfig) -> Callable[..., tuple[TrainState, jax.Array]]:
    """`train(key, hp=None) -> (final state, per-step per-group losses)`, pure and vmappable."""
    train = core.make_train(experiment(cfg))
    return lambda key, hp=None: train(key, hyper(cfg) if hp is None else hp)
