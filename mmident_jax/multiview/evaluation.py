"""Evaluation: how well each view's content coordinates recover every latent, per group.

Validation and test sets come from the run's evaluation stream (split 0 and 1, as
`mmident_jax.evaluate`), drawn with the run's own latent model and mixers. Codes are
standardised with validation statistics; each probe is fit on validation and scored
on test. For every contrasted group V and view k in V, the inputs are the coordinates
of k's code that stand for C_V (its content block), and the targets are every latent
z_i (and every perturbed copy zi~k), one R² each. Kernel ridge factorises once per
distinct (view, coordinates) input for all latents together.

Example:
    >>> import jax
    >>> from mmident_jax.multiview.model import make_init
    >>> from mmident_jax.multiview.structure import MultiviewConfig, Views
    >>> cfg = MultiviewConfig(Views(3, ((0, 1), (1, 2), (2, 0))), encoder_widths=(16,), cond_pool=1000)
    >>> state = make_init(cfg)(jax.random.PRNGKey(0), hyper(cfg))  # untrained encoders
    >>> rows = evaluate(state, cfg, probes=("linear",), batch_size=256)
    >>> len(rows), {k: rows[0][k] for k in ("subset", "view", "latent", "content")}
    (18, {'subset': '0,1', 'view': 0, 'latent': 'z0', 'content': False})
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from mmident_jax import core, probes as P
from mmident_jax.config import Hyper, hyper
from mmident_jax.multiview.model import Sample, TrainState, codes, contrastive_loss, sample
from mmident_jax.multiview.structure import MultiviewConfig

PROBES = ("linear", "kernel")
COLUMNS = ("subset", "view", "latent", "content", "r2_linear", "r2_nonlinear", "val_loss")


def targets(batch: Sample) -> jax.Array:
    """Every evaluated latent as a column, in `Views.latent_names` order: z, then the copies."""
    return jnp.concatenate([batch.z, batch.tilde.reshape(batch.tilde.shape[0], -1)], axis=1)


def eval_data(state: TrainState, cfg: MultiviewConfig, hp: Hyper, split: int, num_batches: int,
              batch_size: int):
    """Codes (one array per view), latents (`targets`) and per-group loss of `num_batches` fresh batches.

    Batch i of split s draws from fold_in(fold_in(evaluation stream, s), i), split in three
    (positives, negatives, unused), as `mmident_jax.evaluate.eval_data`.
    """
    key = jax.random.fold_in(core.stream(state.key, "evaluation"), split)

    def batch(i):
        k_pos, k_neg, _ = jax.random.split(jax.random.fold_in(key, i), 3)
        draw = lambda k: sample(k, state.truth.latents, cfg, hp, batch_size)
        positives = draw(k_pos)
        _, terms = contrastive_loss(state.params, cfg, hp, state.truth, positives, draw(k_neg))
        return codes(state.params, cfg, state.truth, positives), targets(positives), terms

    hs, ys, terms = jax.lax.map(batch, jnp.arange(num_batches))
    flat = lambda x: x.reshape(num_batches * batch_size, x.shape[-1])
    return jax.tree.map(flat, hs), flat(ys), terms.mean(axis=0)


_eval_data = jax.jit(eval_data, static_argnums=(1, 4, 5))  # one program per config, for every seed and split


def evaluate(state: TrainState, cfg: MultiviewConfig, *, probes=("linear", "kernel"), num_batches: int = 1,
             batch_size: int = 4096, progress=None) -> list[dict]:
    """One row per group x view x latent: subset ("0,1"), view, latent, content (latent in C_V),
    r2_linear, r2_nonlinear (kernel ridge; NaN when not asked for) and the group's validation loss.

    `progress(message)` is called before each (view, coordinates) input is probed.
    """
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe {unknown[0]!r}")
    views, hp = cfg.views, hyper(cfg)
    (h_val, y_val, val_loss), (h_test, y_test, _) = (_eval_data(state, cfg, hp, s, num_batches, batch_size)
                                                     for s in (0, 1))
    y_val, y_test = np.asarray(y_val), np.asarray(y_test)
    columns = lambda y: [y[:, i:i + 1] for i in range(y.shape[1])]
    names, scores, rows = views.latent_names, {}, []
    for g, group in enumerate(views.plan):
        for k, coords in zip(group.views, group.coords):
            if (k, coords) not in scores:
                if progress:
                    progress(f"view {k}, coordinates {list(coords)}: {', '.join(probes)} probes")
                mean, std = P.standardize_fit(h_val[k])
                x_val, x_test = (np.asarray(P.standardize_apply(h[k], mean, std))[:, list(coords)]
                                 for h in (h_val, h_test))
                got = {"r2_linear": [math.nan] * len(names), "r2_nonlinear": [math.nan] * len(names)}
                if "linear" in probes:
                    got["r2_linear"] = P.linear_r2_blocks(x_val, columns(y_val), x_test, columns(y_test))
                if "kernel" in probes:
                    got["r2_nonlinear"] = [r for r, _ in P.kernel_ridge_r2_blocks(x_val, columns(y_val), x_test,
                                                                                  columns(y_test))]
                scores[k, coords] = got
            got = scores[k, coords]
            rows.extend({"subset": ",".join(map(str, group.views)), "view": k, "latent": name,
                         "content": i in group.content if i < views.n_latent else False,
                         "r2_linear": float(got["r2_linear"][i]), "r2_nonlinear": float(got["r2_nonlinear"][i]),
                         "val_loss": float(val_loss[g])} for i, name in enumerate(names))
    return rows
