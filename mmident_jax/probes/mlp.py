"""MLP regression probes: an early-stopped probe (`mlp_r2`) and the original's `--mlp-eval`
(`mlp_regressor_r2`, scikit-learn's `MLPRegressor` defaults step for step). Both train in
float32 like the encoders (docs/probes.md).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from mmident_jax.probes.metrics import _as_2d, r2_score, standardize_apply, standardize_fit


def _mlp_init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        (jax.random.normal(k, (m, n)) * jnp.sqrt(2.0 / m), jnp.zeros(n)) for k, m, n in zip(keys, sizes[:-1], sizes[1:])
    ]


def _mlp_apply(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def _mse(pred, target):
    return jnp.mean((pred - target) ** 2)


@functools.lru_cache
def _heads_xent(sizes: tuple[int, ...]):
    """Summed softmax cross-entropy of consecutive logit heads of the given sizes."""
    splits = np.cumsum(sizes)[:-1].tolist()

    def loss(logits, labels):
        heads = jnp.split(logits, splits, axis=1)
        return sum(optax.softmax_cross_entropy_with_integer_labels(h, labels[:, j]).mean() for j, h in enumerate(heads))

    return loss


@dataclasses.dataclass(frozen=True)
class _Training:
    """MLP probe settings (hashable: static under jit); see `mlp_r2`."""

    hidden: tuple[int, ...]
    steps: int
    batch_size: int
    learning_rate: float
    val_fraction: float
    eval_every: int
    patience: int


@functools.partial(jax.jit, static_argnames=("loss", "out_dim", "cfg"))
def _fit_mlp(key, x, t, x_val, t_val, *, loss, out_dim, cfg: _Training):
    """Adam on random mini-batches; every ``cfg.eval_every`` steps the held-out loss
    is checked and the best parameters kept; stops after ``cfg.patience`` checks
    without improvement or ``cfg.steps`` steps."""
    init_key, batch_key = jax.random.split(key)
    params = _mlp_init(init_key, (x.shape[1], *cfg.hidden, out_dim))
    opt = optax.adam(cfg.learning_rate)

    def objective(p, xb, tb):
        return loss(_mlp_apply(p, xb), tb)

    def step(carry, i):
        p, state = carry
        idx = jax.random.randint(jax.random.fold_in(batch_key, i), (cfg.batch_size,), 0, len(x))
        updates, state = opt.update(jax.grad(objective)(p, x[idx], t[idx]), state)
        return (optax.apply_updates(p, updates), state), None

    def train_round(carry):
        p, state, best, best_loss, stale, r = carry
        (p, state), _ = lax.scan(step, (p, state), r * cfg.eval_every + jnp.arange(cfg.eval_every))
        val_loss = objective(p, x_val, t_val)
        better = val_loss < best_loss
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), p, best)
        return p, state, best, jnp.minimum(val_loss, best_loss), jnp.where(better, 0, stale + 1), r + 1

    def running(carry):
        return (carry[-1] < cfg.steps // cfg.eval_every) & (carry[-2] < cfg.patience)

    start = (params, opt.init(params), params, objective(params, x_val, t_val), 0, 0)
    return lax.while_loop(running, train_round, start)[2]


def _train_mlp(key, x, t, x_test, *, loss, out_dim, cfg: _Training):
    """Standardise inputs, hold out ``cfg.val_fraction`` of the rows, fit; return test outputs."""
    mean, std = standardize_fit(x)
    x, x_test = standardize_apply(x, mean, std), standardize_apply(x_test, mean, std)
    split_key, fit_key = jax.random.split(key)
    order = jax.random.permutation(split_key, len(x))
    val, fit = jnp.split(order, [max(1, round(cfg.val_fraction * len(x)))])
    params = _fit_mlp(fit_key, x[fit], t[fit], x[val], t[val], loss=loss, out_dim=out_dim, cfg=cfg)
    return _mlp_apply(params, x_test)


def mlp_r2(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    key,
    hidden=(256, 256),
    steps=3000,
    batch_size=256,
    learning_rate=1e-3,
    val_fraction=0.1,
    eval_every=100,
    patience=5,
) -> float:
    """Test R² of a ReLU MLP regressor (Adam, early stopping on a held-out split).

    Inputs and targets are standardised with training statistics; at most ``steps``
    Adam steps; the parameters with the best held-out loss (checked every
    ``eval_every`` steps, stopping after ``patience`` checks without improvement)
    predict the test set. Deterministic given ``key``.

    >>> x = np.random.default_rng(0).normal(size=(600, 2)).astype("float32")
    >>> r2 = mlp_r2(x[:500], np.sin(x[:500]), x[500:], np.sin(x[500:]),
    ...             key=jax.random.key(0), hidden=(64, 64), steps=500)
    >>> r2 > 0.9
    True
    """
    y = _as_2d(y_train, np.float32)
    y_mean, y_std = standardize_fit(y)
    cfg = _Training(tuple(hidden), steps, batch_size, learning_rate, val_fraction, eval_every, patience)
    pred = _train_mlp(
        key,
        jnp.asarray(x_train, jnp.float32),
        standardize_apply(y, y_mean, y_std),
        jnp.asarray(x_test, jnp.float32),
        loss=_mse,
        out_dim=y.shape[1],
        cfg=cfg,
    )
    return r2_score(y_test, pred * y_std + y_mean)


@dataclasses.dataclass(frozen=True)
class _Regressor:
    """scikit-learn `MLPRegressor` settings (hashable: static under jit); see `mlp_regressor_r2`."""

    hidden: tuple[int, ...]
    learning_rate: float
    alpha: float
    batch_size: int
    max_iter: int
    tol: float
    n_iter_no_change: int


@functools.partial(jax.jit, static_argnames=("cfg",))
def _fit_regressor(key, x, y, cfg: _Regressor):
    """scikit-learn's `MLPRegressor` fit with the adam solver, step for step (docs/probes.md)."""
    n, out = x.shape[0], y.shape[1]
    batch = min(cfg.batch_size, n)
    n_batches = -(-n // batch)
    sizes = (x.shape[1], *cfg.hidden, out)
    init_key, shuffle_key = jax.random.split(key)
    params = []
    for k, fan_in, fan_out in zip(jax.random.split(init_key, len(sizes) - 1), sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform, weights and intercepts alike
        kw, kb = jax.random.split(k)
        params.append(
            (
                jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound),
                jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound),
            )
        )

    def losses(p, xb, yb, rows):
        """(reported loss, objective whose gradient scikit-learn follows) on the first `rows` rows."""
        mask = (jnp.arange(batch) < rows)[:, None]
        sq = jnp.sum(jnp.where(mask, _mlp_apply(p, xb) - yb, 0.0) ** 2)
        penalty = 0.5 * cfg.alpha * sum(jnp.sum(w**2) for w, _ in p) / rows
        return 0.5 * sq / (rows * out) + penalty, 0.5 * sq / rows + penalty

    def adam(p, m, v, t, g):
        t = t + 1
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g**2, v, g)
        lr = cfg.learning_rate * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        return jax.tree.map(lambda p, m, v: p - lr * m / (jnp.sqrt(v) + 1e-8), p, m, v), m, v, t

    def minibatch(carry, i):
        p, m, v, t, order, total = carry
        rows = jnp.minimum(batch, n - i * batch)
        idx = lax.dynamic_slice(order, (i * batch,), (batch,))
        grads, loss = jax.grad(lambda p: losses(p, x[idx], y[idx], rows)[::-1], has_aux=True)(p)
        p, m, v, t = adam(p, m, v, t, grads)
        return (p, m, v, t, order, total + loss * rows), None

    def epoch(carry):
        p, m, v, t, best, stale, it = carry
        order = jnp.pad(jax.random.permutation(jax.random.fold_in(shuffle_key, it), n), (0, n_batches * batch - n))
        (p, m, v, t, _, total), _ = lax.scan(minibatch, (p, m, v, t, order, 0.0), jnp.arange(n_batches))
        loss = total / n
        stale = jnp.where(loss > best - cfg.tol, stale + 1, 0)
        return p, m, v, t, jnp.minimum(loss, best), stale, it + 1

    def running(carry):
        return (carry[-1] < cfg.max_iter) & (carry[-2] <= cfg.n_iter_no_change)

    zeros = jax.tree.map(jnp.zeros_like, params)
    start = (params, zeros, zeros, 0, jnp.inf, 0, 0)
    return lax.while_loop(running, epoch, start)[0]


def mlp_regressor_r2(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    key,
    hidden=(100,),
    learning_rate=1e-3,
    alpha=1e-4,
    batch_size=200,
    max_iter=1000,
    tol=1e-4,
    n_iter_no_change=10,
) -> float:
    """Test R² of scikit-learn's `MLPRegressor(max_iter=1000)` with its defaults, in JAX.

    The original script's `--mlp-eval` probe: one hidden layer of 100 ReLU units, Glorot
    uniform init, Adam (lr 1e-3) on shuffled minibatches of min(200, n), L2 penalty
    `alpha`, stopping when the epoch's training loss has not improved by `tol` for more
    than `n_iter_no_change` epochs, or after `max_iter` epochs. No scaling of inputs or
    targets (the evaluation standardises the codes). Deterministic given ``key``.

    >>> x = np.random.default_rng(0).normal(size=(600, 2)).astype("float32")
    >>> r2 = mlp_regressor_r2(x[:500], np.sin(x[:500]), x[500:], np.sin(x[500:]), key=jax.random.key(0))
    >>> r2 > 0.9
    True
    """
    cfg = _Regressor(tuple(hidden), learning_rate, alpha, batch_size, max_iter, tol, n_iter_no_change)
    y = jnp.asarray(_as_2d(y_train, np.float32))
    params = _fit_regressor(key, jnp.asarray(x_train, jnp.float32), y, cfg)
    return r2_score(y_test, _mlp_apply(params, jnp.asarray(x_test, jnp.float32)))


@functools.partial(jax.jit, static_argnames=("cfg",))
def _predict_fits(keys, x, y, x_test, cfg: _Regressor):
    """Independent regressors, one per leading index of keys (f,), x (f, n, d), y (f, n),
    x_test (f, m, d), fit together; their predictions (f, m)."""
    fit = lambda k, x, y, x_test: _mlp_apply(_fit_regressor(k, x, y[:, None], cfg), x_test)[:, 0]
    return jax.vmap(fit)(keys, x, y, x_test)


def mlp_regressor_r2_columns(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    key,
    hidden=(100,),
    learning_rate=1e-3,
    alpha=1e-4,
    batch_size=200,
    max_iter=1000,
    tol=1e-4,
    n_iter_no_change=10,
) -> list:
    """`mlp_regressor_r2` for every column of `y_train` on its own, as an evaluation that fits
    one `MLPRegressor` per target does; the fits run together (vmapped). A stack of b
    problems, x (b, n, d) and y (b, n, c), gives b lists. Fit j of the flattened (problem,
    column) order uses key `split(key, b * c)[j]`.

    >>> x = np.random.default_rng(0).normal(size=(600, 2)).astype("float32")
    >>> [r > 0.9 for r in mlp_regressor_r2_columns(x[:500], np.sin(x[:500]), x[500:], np.sin(x[500:]),
    ...                                               key=jax.random.key(0))]
    [True, True]
    """
    cfg = _Regressor(tuple(hidden), learning_rate, alpha, batch_size, max_iter, tol, n_iter_no_change)
    x, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
    stacked = x.ndim == 3
    if not stacked:
        x, x_test, y_train, y_test = x[None], x_test[None], _as_2d(y_train)[None], _as_2d(y_test)[None]
    y, y_test = np.asarray(y_train, np.float32), np.asarray(y_test, np.float32)
    b, c = y.shape[0], y.shape[2]
    flat = lambda a: np.repeat(a, c, axis=0)  # (b, ...) -> (b * c, ...), problem-major
    columns = lambda a: np.moveaxis(a, 2, 1).reshape(b * c, a.shape[1])
    pred = np.asarray(_predict_fits(jax.random.split(key, b * c), flat(x), columns(y), flat(x_test), cfg))
    r2 = [
        [r2_score(t, p) for t, p in zip(columns(y_test)[i * c : (i + 1) * c], pred[i * c : (i + 1) * c])]
        for i in range(b)
    ]
    return r2 if stacked else r2[0]
