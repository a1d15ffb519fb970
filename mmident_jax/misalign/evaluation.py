"""Evaluation: how well each modality's code predicts every semantic factor and m_x, m_t.

A validation set (split 0) and a test set (split 1) of `num_batches` fresh batches each
are drawn from the run's evaluation stream with its own latent model and mixers. Each
code (hz_x of the image, hz_t of the text) is standardised with validation statistics;
each probe is fit on validation and scored on test (R², scikit-learn's). Targets: every
unperturbed s_i, and m_x, m_t (5-dimensional: the uniform average R²). Probes: least
squares ("linear") and scikit-learn's MLPRegressor(max_iter=10000) ("mlp"), the authors'
--mlp-eval; one regressor per target as theirs, the s_i fits of both codes run together.

Example, untrained encoders:
    >>> import jax
    >>> from mmident_jax.misalign.config import MisalignConfig
    >>> from mmident_jax.misalign.model import make_init
    >>> cfg = MisalignConfig(semantic_n=3, modality_n=2, selected=(0, 1), encoder_widths=(16,), cond_pool=1000)
    >>> state = make_init(cfg)(jax.random.PRNGKey(0), hyper(cfg))
    >>> rows = evaluate(state, cfg, probes=("linear",), batch_size=256)
    >>> len(rows), [(r["factor"], r["role"]) for r in rows[:5]]
    (10, [('s1', 'invariant'), ('s2', 'invariant'), ('s3', 'omitted'), ('m_x', 'modality'), ('m_t', 'modality')])
"""

from __future__ import annotations

import math

import jax
import numpy as np

from mmident_jax import core
from mmident_jax import probes as P
from mmident_jax.config import Hyper, hyper
from mmident_jax.misalign.config import PROBES, MisalignConfig, role_of
from mmident_jax.misalign.model import ENCODINGS, TrainState, codes, contrastive_loss, sample

MLP_MAX_ITER = 10_000  # the authors' MLPRegressor(max_iter=10000)


def factor_names(cfg: MisalignConfig) -> tuple[str, ...]:
    """The evaluated targets: s1 .. s{n} (1-based, as the paper), then m_x and m_t when there are any."""
    return (*(f"s{i + 1}" for i in range(cfg.semantic_n)), *(("m_x", "m_t") if cfg.modality_n else ()))


def eval_data(state: TrainState, cfg: MisalignConfig, hp: Hyper, split: int, num_batches: int, batch_size: int):
    """Per batch of `num_batches` fresh ones: the codes (hz_x, hz_t), the latents s, m_x, m_t and
    the loss against an independent negative batch, each with a leading batch axis.

    Batch i of split s draws from fold_in(fold_in(evaluation stream, s), i), split in two:
    positives, negatives.
    """
    key = jax.random.fold_in(core.stream(state.key, "evaluation"), split)

    def batch(i):
        k_pos, k_neg = jax.random.split(jax.random.fold_in(key, i))
        positives, negatives = (sample(k, state.truth.latents, cfg, hp, batch_size) for k in (k_pos, k_neg))
        loss = contrastive_loss(state.params, cfg, hp, state.truth, positives, negatives)
        return codes(state.params, cfg, state.truth, positives), (positives.s, positives.m_x, positives.m_t), loss

    return jax.lax.map(batch, jax.numpy.arange(num_batches))


_eval_data = jax.jit(eval_data, static_argnums=(1, 4, 5))  # one program per config, for every seed and split


def _flat(x) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(-1, x.shape[-1])


def _scores(probes, x_val, x_test, y_val, y_test, key) -> tuple[list, list]:
    """(linear, nonlinear) R² of each target block (lists per code), NaN for a probe not asked for.

    `x_*` are both codes stacked (2, n, d); `y_*` the target blocks [s_1, ..., s_n, m_x, m_t].
    """
    nan = [[math.nan] * len(y_val) for _ in x_val]
    linear = [P.linear_r2_blocks(xv, y_val, xt, y_test) for xv, xt in zip(x_val, x_test)] if "linear" in probes else nan
    if "mlp" not in probes:
        return linear, nan
    singles = [i for i, y in enumerate(y_val) if y.shape[1] == 1]  # the s_i, fit together for both codes

    def stack(ys):
        columns = np.concatenate([ys[i] for i in singles], axis=1)
        return np.broadcast_to(columns, (len(x_val), *columns.shape))

    fits = P.mlp_regressor_r2_columns(
        x_val, stack(y_val), x_test, stack(y_test), key=jax.random.fold_in(key, 0), max_iter=MLP_MAX_ITER
    )
    nonlinear = [[math.nan] * len(y_val) for _ in x_val]
    for e in range(len(x_val)):
        for j, i in enumerate(singles):
            nonlinear[e][i] = fits[e][j]
        for i in (i for i in range(len(y_val)) if i not in singles):  # m_x, m_t: one multi-output regressor each
            nonlinear[e][i] = P.mlp_regressor_r2(
                x_val[e],
                y_val[i],
                x_test[e],
                y_test[i],
                key=jax.random.fold_in(key, 1 + e * len(y_val) + i),
                max_iter=MLP_MAX_ITER,
            )
    return linear, nonlinear


def evaluate(
    state: TrainState, cfg: MisalignConfig, *, probes=PROBES, num_batches: int = 1, batch_size: int = 4096
) -> list[dict]:
    """One row per code x factor: encoding ("hz_x" or "hz_t"), factor ("s1".., "m_x", "m_t"), role
    ("invariant", "perturbed", "omitted" or "modality"), r2_linear, r2_nonlinear (the MLP; NaN when
    a probe is not asked for) and val_loss, the objective on the validation batches."""
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe {unknown[0]!r}")
    hp = hyper(cfg)
    (h_val, y_val, val_loss), (h_test, y_test, _) = (
        _eval_data(state, cfg, hp, s, num_batches, batch_size) for s in (0, 1)
    )

    def standardized(hs_fit, hs):
        return np.stack(
            [
                np.asarray(P.standardize_apply(_flat(h), *P.standardize_fit(_flat(fit))), np.float32)
                for fit, h in zip(hs_fit, hs)
            ]
        )

    def blocks(y):
        s, m_x, m_t = (_flat(v) for v in y)
        return [s[:, i : i + 1] for i in range(cfg.semantic_n)] + ([m_x, m_t] if cfg.modality_n else [])

    linear, nonlinear = _scores(
        probes,
        standardized(h_val, h_val),
        standardized(h_val, h_test),
        blocks(y_val),
        blocks(y_test),
        core.stream(state.key, "probes"),
    )
    r = cfg.roles
    loss = float(np.mean(np.asarray(val_loss)))
    return [
        {
            "encoding": encoding,
            "factor": name,
            "role": role_of(r, i) if i < cfg.semantic_n else "modality",
            "r2_linear": float(linear[e][i]),
            "r2_nonlinear": float(nonlinear[e][i]),
            "val_loss": loss,
        }
        for e, encoding in enumerate(ENCODINGS)
        for i, name in enumerate(factor_names(cfg))
    ]
