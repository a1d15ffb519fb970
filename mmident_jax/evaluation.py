"""Evaluation: probe the codes of a trained run for every latent block (docs/probes.md).

Validation and test sets are drawn from the run's evaluation stream (never the
training data) with the run's own latent model and mixers; codes are standardised
with validation statistics; each probe is fit on validation and scored on test, for
both encoders (hz1, hz2) and every block (c, s, s~, m1, m2, and c' under the
permuted-content intervention). Kernel ridge factorises once per encoder for all
blocks together.

Example:
    >>> import jax
    >>> from mmident_jax.config import Config
    >>> from mmident_jax.train import make_train
    >>> cfg = Config(encoder_widths=(16,), batch_size=32, train_steps=5, cond_pool=1000)
    >>> state, _ = jax.jit(make_train(cfg))(jax.random.PRNGKey(0))
    >>> rows = evaluate(state, cfg, probes=("linear",), batch_size=256)
    >>> rows[0]["encoding"], rows[0]["predicted_factors"], sorted(rows[0])
    ('hz1', 'c', ['encoding', 'predicted_factors', 'r2_linear', 'r2_nonlinear'])
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mmident_jax import core, latents, report, rundir, train
from mmident_jax import probes as P
from mmident_jax.config import EVAL_BATCH_SIZE as BATCH_SIZE
from mmident_jax.config import IDENTIFIABILITY_METRICS, NONLINEAR_PROBES, PROBES, Config, Hyper, hyper
from mmident_jax.progress import status

COLUMNS = ("encoding", "predicted_factors", "r2_linear", "r2_nonlinear")
VALIDATION_SIZE = 2000  # samples of the validation loss (the paper's encoding-size ablation)
MONITOR_SIZE = 2048  # samples to fit, and as many to score, the training monitor's linear probes


def eval_data(
    state: train.TrainState,
    cfg: Config,
    hp: Hyper,
    split: int,
    num_batches: int,
    batch_size: int = BATCH_SIZE,
    permuted_content: bool = False,
):
    """Codes (h1, h2), labelled blocks and the loss of `num_batches` fresh batches.

    `split` 0 is the validation set, 1 the test set. With `permuted_content`, content
    is permuted across each batch before mixing (both modalities alike): the codes see
    c' while the labels keep c (on which style may depend) and c'.
    """
    key = jax.random.fold_in(core.stream(state.key, "evaluation"), split)

    def batch(i):
        k_pos, k_neg, k_perm = jax.random.split(jax.random.fold_in(key, i), 3)
        sample = lambda k: latents.sample_blocks(k, state.truth.latents, cfg, hp, batch_size)
        blocks = sample(k_pos)
        loss = train.contrastive_loss(state.params, cfg, hp, state.truth, blocks, sample(k_neg))
        labels = blocks.named()
        if permuted_content:
            c_prime = jax.random.permutation(k_perm, blocks.c)
            blocks = blocks._replace(c=c_prime)
            labels["c'"] = c_prime
        return train.codes(state.params, cfg, state.truth, blocks), labels, loss

    codes, labels, loss = jax.lax.map(batch, jnp.arange(num_batches))
    flat = lambda x: x.reshape(num_batches * batch_size, x.shape[-1])
    return jax.tree.map(flat, codes), jax.tree.map(flat, labels), loss.mean()


PROBE_KINDS = ("mlp", "mlp_regressor", "mlp_classifier")


def probe_key(run_key: jax.Array, kind: str, block: int, encoder: int) -> jax.Array:
    """The key of one stochastic probe fit: the run's "probes" stream, by probe kind, block and encoder."""
    key = jax.random.fold_in(core.stream(run_key, "probes"), PROBE_KINDS.index(kind))
    return jax.random.fold_in(jax.random.fold_in(key, block), encoder)


def dependence_ceilings(y_val: dict, y_test: dict) -> dict[str, dict[str, float]]:
    """Per probe ("linear", "kernel") and block: the R² with which the true content c predicts the block."""
    from mmident_jax import identifiability as I

    names = list(y_val)
    with jax.enable_x64(True):
        return {
            probe: dict(
                zip(
                    names,
                    I.dependence_ceilings(
                        y_val["c"], [y_val[k] for k in names], y_test["c"], [y_test[k] for k in names], probe=probe
                    ),
                )
            )
            for probe in ("linear", "kernel")
        }


def identifiability_columns(
    x_val, x_test, y_val: dict, y_test: dict, metrics, r2: dict, ceilings: dict | None = None
) -> dict[str, dict]:
    """Per block: the `metrics` of docs/metrics.md for standardised codes and the blocks (val/test).

    "mcc": Pearson and Spearman MCC in and out of sample; "dci": disentanglement (of all
    blocks' dimensions together), and completeness and informativeness averaged over the
    block; "ceiling": the `dependence_ceilings` and, beside the codes' R² in `r2`
    (block -> {"r2_linear", "r2_nonlinear"}), the normalised scores `norm_linear`, `norm_nonlinear`.
    """
    from mmident_jax import identifiability as I

    names = list(y_val)
    stops = np.cumsum([y_val[k].shape[1] for k in names])
    slices = {k: slice(stop - y_val[k].shape[1], stop) for k, stop in zip(names, stops)}
    z_val, z_test = (np.concatenate([y[k] for k in names], axis=1) for y in (y_val, y_test))
    with jax.enable_x64(True):
        out, d = I.block_columns(z_val, x_val, z_test, x_test, slices, metrics)
    if d is not None:  # disentanglement, of all blocks' dimensions together, on every block's row
        for k in names:
            completeness, informativeness = out[k].pop("dci_c"), out[k].pop("dci_i")
            out[k].update(dci_d=d.disentanglement, dci_c=completeness, dci_i=informativeness)
    if "ceiling" in metrics and "c" in y_val:
        ceilings = ceilings or dependence_ceilings(y_val, y_test)
        for probe, column in (("linear", "r2_linear"), ("kernel", "r2_nonlinear")):
            for k in names:
                out[k][f"ceiling_{probe}"] = ceilings[probe][k]
                if k != "c" and not math.isnan(r2[k].get(column, math.nan)):
                    out[k][f"norm_{column[3:]}"] = I.normalized_score(r2[k][column], ceilings[probe][k])
    return out


def evaluate(
    state: train.TrainState,
    cfg: Config,
    *,
    probes=("linear", "kernel"),
    num_batches: int = 1,
    batch_size: int = BATCH_SIZE,
    permuted_content: bool = False,
    nonlinear_probe: str = "kernel",
    metrics=(),
    progress=None,
) -> list[dict]:
    """Rows of the results table: encoding, predicted_factors, r2_linear, r2_nonlinear (, r2_mlp).

    "kernel" in `probes` fills `r2_nonlinear` (NaN when not asked for) with the
    `nonlinear_probe`: "kernel" ridge (the paper's tables) or "mlp", scikit-learn's
    `MLPRegressor(max_iter=1000)` as the original's `--mlp-eval` (`probes.mlp_regressor_r2`).
    "mlp" in `probes` adds an `r2_mlp` column (the early-stopped `probes.mlp_r2`).
    `metrics` (a subset of "mcc", "dci", "ceiling") adds the identifiability metrics of
    continuous blocks (`identifiability_columns`). The blocks of `cfg.discrete_block` are classified instead, per
    dimension: `acc_linear` (logistic regression), `acc_nonlinear` (MLP classifier,
    for "kernel" or "mlp") and `chance` = 1/k. `progress(message)` is called before
    each probe runs.
    """
    unknown = [p for p in probes if p not in PROBES] + [m for m in metrics if m not in IDENTIFIABILITY_METRICS]
    if unknown or nonlinear_probe not in NONLINEAR_PROBES:
        raise ValueError(f"unknown probe or metric {unknown[0] if unknown else nonlinear_probe!r}")
    hp = hyper(cfg)
    data = jax.jit(eval_data, static_argnums=(1, 3, 4, 5, 6))
    val = data(state, cfg, hp, 0, num_batches, batch_size, permuted_content)
    test = data(state, cfg, hp, 1, num_batches, batch_size, permuted_content)
    names = [k for k in (*latents.BLOCK_NAMES, "c'") if k in val[1] and val[1][k].shape[1]]
    discrete = [k for k in names if k in latents.DISCRETE_NAMES[cfg.discrete_block]]
    continuous = [k for k in names if k not in discrete]
    targets = lambda split, keys: [np.asarray(split[1][k]) for k in keys]
    labels = lambda split: [np.asarray(latents.categories(y, cfg.categories)) for y in targets(split, discrete)]
    ceilings = None
    if "ceiling" in metrics and "c" in continuous:  # the latents' own: the same for both encoders
        ceilings = dependence_ceilings(
            dict(zip(continuous, targets(val, continuous))), dict(zip(continuous, targets(test, continuous)))
        )
    rows = []
    for e, encoding in enumerate(("hz1", "hz2")):
        mean, std = P.standardize_fit(val[0][e])
        x_val, x_test = (np.asarray(P.standardize_apply(d[0][e], mean, std)) for d in (val, test))
        y_val, y_test = targets(val, continuous), targets(test, continuous)
        scores = {
            name: {"encoding": encoding, "predicted_factors": name, "r2_linear": math.nan, "r2_nonlinear": math.nan}
            for name in names
        }
        for name in discrete:
            scores[name]["chance"] = 1.0 / cfg.categories
        for probe in probes:
            if progress:
                progress(f"{encoding}: {probe} probes on {len(x_val)} samples")
            if probe == "linear":
                for name, r2 in zip(continuous, P.linear_r2_blocks(x_val, y_val, x_test, y_test)):
                    scores[name]["r2_linear"] = r2
                for name, t_val, t_test in zip(discrete, labels(val), labels(test)):
                    scores[name]["acc_linear"] = P.logistic_accuracy(x_val, t_val, x_test, t_test)
            if probe == "kernel" and nonlinear_probe == "kernel":
                for name, (r2, _) in zip(continuous, P.kernel_ridge_r2_blocks(x_val, y_val, x_test, y_test)):
                    scores[name]["r2_nonlinear"] = r2
            if probe == "kernel" and nonlinear_probe == "mlp":
                for i, name in enumerate(continuous):
                    key = probe_key(state.key, "mlp_regressor", i, e)
                    scores[name]["r2_nonlinear"] = P.mlp_regressor_r2(x_val, y_val[i], x_test, y_test[i], key=key)
            if probe == "mlp":
                for i, name in enumerate(continuous):
                    key = probe_key(state.key, "mlp", i, e)
                    scores[name]["r2_mlp"] = P.mlp_r2(x_val, y_val[i], x_test, y_test[i], key=key)
            if probe in ("kernel", "mlp"):
                for i, (name, t_val, t_test) in enumerate(zip(discrete, labels(val), labels(test))):
                    if "acc_nonlinear" not in scores[name]:
                        key = probe_key(state.key, "mlp_classifier", i, e)
                        scores[name]["acc_nonlinear"] = P.mlp_accuracy(x_val, t_val, x_test, t_test, key=key)
        if metrics and continuous:
            extra = identifiability_columns(
                x_val, x_test, dict(zip(continuous, y_val)), dict(zip(continuous, y_test)), metrics, scores, ceilings
            )
            for name, columns in extra.items():
                scores[name].update(columns)
        rows.extend(scores.values())
    return rows


def monitor_data(state: train.TrainState, cfg: Config, hp: Hyper):
    """Validation loss, codes and latent blocks of the run's fixed monitor set (jittable)."""
    n = MONITOR_SIZE
    blocks = latents.sample_blocks(core.stream(state.key, "monitor"), state.truth.latents, cfg, hp, 2 * n)
    first, second = (jax.tree.map(lambda x: x[sl], blocks) for sl in (slice(None, n), slice(n, None)))
    val_loss = train.contrastive_loss(state.params, cfg, hp, state.truth, first, second)
    return val_loss, train.codes(state.params, cfg, state.truth, blocks), blocks


_monitor_data = jax.jit(monitor_data, static_argnums=1)


def monitor(cfg: Config):
    """`figures(state)`: cheap progress figures for `driver.fit`'s metrics lines.

    The validation loss and held-out linear R² per encoder and block (keys like
    "r2_linear/hz1/c"), the probes fit on `MONITOR_SIZE` samples and scored on as many others.
    """
    hp = hyper(cfg)

    def figures(state: train.TrainState) -> dict[str, float]:
        val_loss, hs, blocks = _monitor_data(state, cfg, hp)
        n, named = MONITOR_SIZE, {k: np.asarray(v) for k, v in blocks.named().items() if v.shape[1]}
        out = {"val_loss": float(val_loss)}
        for name, h in zip(("hz1", "hz2"), map(np.asarray, hs)):
            r2 = P.linear_r2_blocks(h[:n], [y[:n] for y in named.values()], h[n:], [y[n:] for y in named.values()])
            out.update({f"r2_linear/{name}/{block}": r for block, r in zip(named, r2)})
        return out

    return figures


def validation_loss(state: train.TrainState, cfg: Config, n: int = VALIDATION_SIZE) -> float:
    """The training objective on `n` held-out positive pairs (and `n` negatives), as the paper reports it."""
    hp = hyper(cfg)
    key = jax.random.fold_in(core.stream(state.key, "evaluation"), 2)  # splits 0, 1: validation, test sets
    sample = lambda k: latents.sample_blocks(k, state.truth.latents, cfg, hp, n)
    k_pos, k_neg = jax.random.split(key)
    loss = jax.jit(train.contrastive_loss, static_argnums=1)
    return float(loss(state.params, cfg, hp, state.truth, sample(k_pos), sample(k_neg)))


def to_csv(rows: list[dict]) -> str:
    """CSV in the original script's layout (pandas index column first, then `COLUMNS`)."""
    columns = list(COLUMNS) + sorted({k for row in rows for k in row} - set(COLUMNS))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([""] + columns)
    for i, row in enumerate(rows):
        writer.writerow([i] + [row.get(c, "") for c in columns])
    return out.getvalue()


def format_table(rows: list[dict]) -> str:
    """The results as an aligned text table."""
    extra = sorted({k for row in rows for k in row} - set(COLUMNS) - {"r2_mlp"})
    return report.text_table(rows, [c for c in [*COLUMNS, "r2_mlp", *extra] if any(c in row for row in rows)])


def correlation_panels(state: train.TrainState, cfg: Config, batch_size: int = BATCH_SIZE) -> list[tuple]:
    """Per encoder: |Pearson correlation| of every latent dimension with every code dimension on the
    validation batch, codes ordered as matched to the latents (MCC's assignment), for `report.correlation_heatmaps`."""
    from mmident_jax import identifiability as I

    codes, labels, _ = jax.jit(eval_data, static_argnums=(1, 3, 4, 5))(state, cfg, hyper(cfg), 0, 1, batch_size)
    names = [k for k in latents.BLOCK_NAMES if labels[k].shape[1]]
    z = np.concatenate([np.asarray(labels[k]) for k in names], axis=1)
    rows = [f"{k}[{j}]" for k in names for j in range(labels[k].shape[1])]
    panels = []
    for encoding, h in zip(("hz1", "hz2"), map(np.asarray, codes)):
        corr = np.asarray(I.correlation(z, h))
        matched = [int(c) for c in np.asarray(I.mcc(z, h).code_index)]
        order = matched + [c for c in range(h.shape[1]) if c not in matched]
        panels.append((f"{encoding}: latents x codes (matched order)", corr[:, order], rows, [f"h{c}" for c in order]))
    return panels


def evaluate_run(
    run_dir,
    *,
    probes=("linear", "kernel"),
    num_batches: int = 5,
    permuted_content: bool = False,
    nonlinear_probe: str = "kernel",
    metrics=(),
    progress: bool = True,
) -> list[dict]:
    """Evaluate the checkpoint in `run_dir` and write `run_dir/results.csv`."""
    cfg = rundir.load_config(run_dir)
    state = train.restore(run_dir, cfg)
    with status(progress) as update:
        rows = evaluate(
            state,
            cfg,
            probes=probes,
            num_batches=num_batches,
            permuted_content=permuted_content,
            nonlinear_probe=nonlinear_probe,
            metrics=metrics,
            progress=update,
        )
    rundir.write_atomic(Path(run_dir) / rundir.RESULTS, to_csv(rows).encode())
    if "mcc" in metrics:
        report.correlation_heatmaps(Path(run_dir) / "correlations.png", correlation_panels(state, cfg))
    return rows
