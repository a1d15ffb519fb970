"""Evaluation: how well each view's content coordinates recover every latent, per group.

For every contrasted group V and view k in V, the inputs are the coordinates of k's
code that stand for C_V (its content block), and the targets are every latent z_i (and
every perturbed copy zi~k), one R² each. Batches come from the run's evaluation stream,
drawn with the run's own latent model and mixers. Two protocols (docs/multiview.md):

- "heldout": a validation set (split 0) and a test set (split 1) of `num_batches` batches
  each; codes standardised with validation statistics; each probe fit on validation,
  scored on test. Kernel ridge factorises once per distinct (view, coordinates) input.
- "yao": Yao et al.'s `evaluate`: `num_batches` batches (split 0), codes standardised
  over all of them, each batch split 75/25 at random (fit / score), R² mean and std over
  the batches. Unlike their code, each view's rows average that view's batches only.

Example:
    >>> import jax
    >>> from mmident_jax.multiview.model import make_init
    >>> from mmident_jax.multiview.structure import MultiviewConfig, Views
    >>> cfg = MultiviewConfig(Views(3, ((0, 1), (1, 2), (2, 0))), encoder_widths=(16,), cond_pool=1000)
    >>> state = make_init(cfg)(jax.random.PRNGKey(0), hyper(cfg))  # untrained encoders
    >>> rows = evaluate(state, cfg, probes=("linear",), batch_size=256)
    >>> len(rows), {k: rows[0][k] for k in ("subset", "view", "latent", "content", "coords")}
    (18, {'subset': '0,1', 'view': 0, 'latent': 'z0', 'content': False, 'coords': '1'})
"""

from __future__ import annotations

import collections
import math

import jax
import jax.numpy as jnp
import numpy as np

from mmident_jax import core
from mmident_jax import probes as P
from mmident_jax.config import Hyper, hyper
from mmident_jax.multiview.model import Sample, TrainState, codes, content_parts, contrastive_loss, sample
from mmident_jax.multiview.structure import MultiviewConfig

PROTOCOLS = ("heldout", "yao")
PROBES = ("linear", "kernel", "mlp")  # "mlp": scikit-learn's MLPRegressor(max_iter=5000), Yao et al.'s probe
MLP_MAX_ITER = 5000
TEST_FRACTION = 0.25  # the "yao" protocol's split, scikit-learn's train_test_split default


def targets(batch: Sample) -> jax.Array:
    """Every evaluated latent as a column, in `Views.latent_names` order: z, then the copies."""
    return jnp.concatenate([batch.z, batch.tilde.reshape(batch.tilde.shape[0], -1)], axis=1)


def eval_data(state: TrainState, cfg: MultiviewConfig, hp: Hyper, split: int, num_batches: int, batch_size: int):
    """Per batch of `num_batches` fresh ones: codes (one array per view), latents (`targets`),
    per-group loss and content coordinates (per group, per view), each with a leading batch axis.

    Batch i of split s draws from fold_in(fold_in(evaluation stream, s), i), split in three:
    positives, negatives, and the key of the content selection (`model.content_parts`).
    """
    key = jax.random.fold_in(core.stream(state.key, "evaluation"), split)

    def batch(i):
        k_pos, k_neg, k_select = jax.random.split(jax.random.fold_in(key, i), 3)
        draw = lambda k: sample(k, state.truth.latents, cfg, hp, batch_size)
        positives = draw(k_pos)
        _, terms = contrastive_loss(state.params, cfg, hp, state.truth, positives, draw(k_neg), k_select)
        hs = codes(state.params, cfg, state.truth, positives)
        coords = [
            [jnp.asarray(c, jnp.int32) for c in content_parts(cfg, g, hs, batch_size, k_select)[1]]
            for g in range(len(cfg.views.plan))
        ]
        return hs, targets(positives), terms, coords

    return jax.lax.map(batch, jnp.arange(num_batches))


_eval_data = jax.jit(eval_data, static_argnums=(1, 4, 5))  # one program per config, for every seed and split


def _described(selections: list[tuple[int, ...]]) -> str:
    """The coordinates a view's rows were probed on: "0,1,2" or, when the batches differ,
    each selection with its share ("0,1 (7/10); 0,2 (3/10)")."""
    counts = collections.Counter(selections).most_common()
    if len(counts) == 1:
        return ",".join(map(str, counts[0][0]))
    return "; ".join(f"{','.join(map(str, c))} ({n}/{len(selections)})" for c, n in counts)


def _probe(probes, x_fit, y_fit, x_score, y_score, key) -> dict[str, list[float]]:
    """R² per target column of each asked-for probe, fit on (x_fit, y_fit), scored on the rest;
    stacked problems (a leading batch axis) give one list per problem."""
    stacked, n = x_fit.ndim == 3, y_fit.shape[-1]
    nan = [[math.nan] * n for _ in range(len(x_fit))] if stacked else [math.nan] * n
    got = {"r2_linear": nan, "r2_nonlinear": nan}
    each = (
        (lambda f: [f(*a) for a in zip(x_fit, y_fit, x_score, y_score)])
        if stacked
        else (lambda f: f(x_fit, y_fit, x_score, y_score))
    )
    columns = lambda y: [y[:, i : i + 1] for i in range(n)]
    if "linear" in probes:
        got["r2_linear"] = each(lambda a, b, c, d: P.linear_r2_blocks(a, columns(b), c, columns(d)))
    if "kernel" in probes:
        got["r2_nonlinear"] = each(
            lambda a, b, c, d: [r for r, _ in P.kernel_ridge_r2_blocks(a, columns(b), c, columns(d))]
        )
    if "mlp" in probes:
        got["r2_nonlinear"] = P.mlp_regressor_r2_columns(x_fit, y_fit, x_score, y_score, key=key, max_iter=MLP_MAX_ITER)
    return got


def _heldout(state, cfg, hp, probes, num_batches, batch_size, progress):
    """{(group, view): (R² lists, coordinates)} and the per-group validation loss, "heldout"."""
    flat = lambda x: np.asarray(x).reshape(-1, x.shape[-1])
    (h_val, y_val, val_loss, coords), (h_test, y_test, _, _) = (
        _eval_data(state, cfg, hp, s, num_batches, batch_size) for s in (0, 1)
    )
    y_val, y_test = flat(y_val), flat(y_test)
    cache, out = {}, {}
    for g, group in enumerate(cfg.views.plan):
        for v, k in enumerate(group.views):
            picked = tuple(int(c) for c in np.asarray(coords[g][v])[0])  # one selection: the first batch's
            if (k, picked) not in cache:
                if progress:
                    progress(f"view {k}, coordinates {list(picked)}: {', '.join(probes)} probes")
                mean, std = P.standardize_fit(flat(h_val[k]))
                x_val, x_test = (
                    np.asarray(P.standardize_apply(flat(h[k]), mean, std))[:, list(picked)] for h in (h_val, h_test)
                )
                key = jax.random.fold_in(core.stream(state.key, "probes"), len(cache))
                cache[k, picked] = _probe(probes, x_val, y_val, x_test, y_test, key)
            got = cache[k, picked]
            out[g, k] = ({name: (r, None) for name, r in got.items()}, _described([picked]))
    return out, np.asarray(val_loss).mean(axis=0)


def _yao(state, cfg, hp, probes, num_batches, batch_size, progress):
    """{(group, view): (R² means and stds over batches, coordinates)} and the mean loss, "yao"."""
    hs, ys, terms, coords = _eval_data(state, cfg, hp, 0, num_batches, batch_size)
    ys = np.asarray(ys)
    n_test = math.ceil(TEST_FRACTION * batch_size)
    split_key = jax.random.fold_in(core.stream(state.key, "probes"), 0)
    orders = [
        np.asarray(jax.random.permutation(jax.random.fold_in(split_key, i), batch_size)) for i in range(num_batches)
    ]
    fit, score = (np.stack(o) for o in zip(*((o[n_test:], o[:n_test]) for o in orders)))
    rows = lambda a, idx: np.take_along_axis(a, idx[..., None], axis=1)

    def standardized(h):  # over every batch, as their StandardScaler on the concatenation
        flat = np.asarray(h).reshape(-1, h.shape[-1])
        return np.asarray(P.standardize_apply(flat, *P.standardize_fit(flat))).reshape(h.shape)

    hs = [standardized(h) for h in hs]
    out = {}
    for g, group in enumerate(cfg.views.plan):
        for v, k in enumerate(group.views):
            if progress:
                progress(f"group {{{','.join(map(str, group.views))}}}, view {k}: {', '.join(probes)} probes")
            picked = np.asarray(coords[g][v])
            x = np.take_along_axis(hs[k], picked[:, None, :], axis=2)
            key = jax.random.fold_in(core.stream(state.key, "probes"), 1 + len(out))
            got = _probe(probes, rows(x, fit), rows(ys, fit), rows(x, score), rows(ys, score), key)
            stats = {name: (np.mean(r, axis=0).tolist(), np.std(r, axis=0).tolist()) for name, r in got.items()}
            out[g, k] = (stats, _described([tuple(int(c) for c in p) for p in picked]))
    return out, np.asarray(terms).mean(axis=0)


def evaluate(
    state: TrainState,
    cfg: MultiviewConfig,
    *,
    protocol: str = "heldout",
    probes=("linear", "kernel"),
    num_batches: int = 1,
    batch_size: int = 4096,
    progress=None,
) -> list[dict]:
    """One row per group x view x latent: subset ("0,1"), view, latent, content (latent in C_V),
    coords (the code coordinates probed), r2_linear, r2_nonlinear (kernel ridge or the MLP; NaN
    when not asked for), under "yao" their std over the batches (r2_linear_std, r2_nonlinear_std),
    and the group's loss on the evaluation batches.

    `progress(message)` is called before each input is probed.
    """
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe {unknown[0]!r}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    if {"kernel", "mlp"} <= set(probes):
        raise ValueError("choose one nonlinear probe: kernel or mlp")
    views, hp = cfg.views, hyper(cfg)
    scores, loss = (_yao if protocol == "yao" else _heldout)(state, cfg, hp, probes, num_batches, batch_size, progress)
    rows = []
    for g, group in enumerate(views.plan):
        for k in group.views:
            got, described = scores[g, k]
            rows.extend(
                {
                    "subset": ",".join(map(str, group.views)),
                    "view": k,
                    "latent": name,
                    "content": i in group.content if i < views.n_latent else False,
                    "coords": described,
                    **{m: float(got[m][0][i]) for m in ("r2_linear", "r2_nonlinear")},
                    **{f"{m}_std": float(got[m][1][i]) for m in ("r2_linear", "r2_nonlinear") if got[m][1] is not None},
                    "val_loss": float(loss[g]),
                }
                for i, name in enumerate(views.latent_names)
            )
    return rows
