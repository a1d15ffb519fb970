"""Classification probes for discrete factors: multinomial logistic regression (scikit-learn's
`LogisticRegression()` objective) and an early-stopped MLP classifier; they report accuracy.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from mmident_jax.probes.metrics import ProbeError, _as_2d, _x64
from mmident_jax.probes.mlp import _heads_xent, _train_mlp, _Training


def _encode_labels(y_train, y_test):
    """Per label column: training classes, and both label sets as class indices (-1: unseen)."""
    train, test = _as_2d(y_train), _as_2d(y_test)
    classes = [np.unique(col) for col in train.T]
    for j, c in enumerate(classes):
        if len(c) < 2:
            raise ProbeError(f"label column {j} has a single class {c.tolist()}; need at least 2")

    def encode(labels):
        idx = [np.clip(np.searchsorted(c, col), 0, len(c) - 1) for c, col in zip(classes, labels.T)]
        return np.stack([np.where(c[i] == col, i, -1) for c, i, col in zip(classes, idx, labels.T)], 1)

    return classes, encode(train), encode(test)


def _logits(w, x, n_classes):
    """Affine logits; two classes use one free column (binomial, as scikit-learn)."""
    z = x @ w[:-1] + w[-1]
    return jnp.concatenate([jnp.zeros_like(z), z], axis=1) if n_classes == 2 else z


@functools.partial(jax.jit, static_argnames=("n_classes", "max_iter"))
def _fit_logistic(x, labels, c, tol, *, n_classes, max_iter):
    """L-BFGS on mean cross-entropy + ||W||² / (2 C n) (intercept unpenalised)."""
    free = 1 if n_classes == 2 else n_classes

    def objective(w):
        xent = optax.softmax_cross_entropy_with_integer_labels(_logits(w, x, n_classes), labels)
        return xent.mean() + jnp.sum(w[:-1] ** 2) / (2 * c * len(x))

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        w, state = carry
        value, grad = value_and_grad(w, state=state)
        updates, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(w, updates), state

    def running(carry):
        count = optax.tree.get(carry[1], "count")
        grad_norm = optax.tree.norm(optax.tree.get(carry[1], "grad"))
        return (count == 0) | ((count < max_iter) & (grad_norm >= tol))

    w = jnp.zeros((x.shape[1] + 1, free), x.dtype)
    return lax.while_loop(running, step, (w, opt.init(w)))[0]


@_x64
def logistic_accuracy(x_train, y_train, x_test, y_test, *, C=1.0, max_iter=1000, tol=1e-6) -> float:
    """Test accuracy of L2-regularised multinomial logistic regression, averaged over label columns.

    The objective of scikit-learn's ``LogisticRegression(C=C)`` (lbfgs; binomial for
    two classes), optimised in float64 until the gradient norm is below ``tol``.
    Labels: integers of shape (n,) or (n, k) for k discrete factors.

    >>> x = np.random.default_rng(0).normal(size=(200, 2))
    >>> labels = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0)
    >>> logistic_accuracy(x[:150], labels[:150], x[150:], labels[150:]) > 0.9
    True
    """
    classes, train, test = _encode_labels(y_train, y_test)
    x, x_test = (jnp.asarray(a, jnp.float64) for a in (x_train, x_test))
    accuracies = []
    for j, c in enumerate(classes):
        w = _fit_logistic(x, train[:, j], C, tol, n_classes=len(c), max_iter=max_iter)
        pred = np.asarray(jnp.argmax(_logits(w, x_test, len(c)), axis=1))
        accuracies.append(np.mean(pred == test[:, j]))
    return float(np.mean(accuracies))


def mlp_accuracy(
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
    """Test accuracy of a ReLU MLP classifier (one softmax head per label column), averaged.

    Trained like `mlp_r2` on the summed cross-entropy. Deterministic given ``key``.

    >>> x = np.random.default_rng(0).normal(size=(600, 2)).astype("float32")
    >>> labels = (x ** 2).sum(1) > 1.4
    >>> mlp_accuracy(x[:500], labels[:500], x[500:], labels[500:],
    ...              key=jax.random.key(0), hidden=(64, 64), steps=500) > 0.9
    True
    """
    classes, train, test = _encode_labels(y_train, y_test)
    sizes = tuple(len(c) for c in classes)
    cfg = _Training(tuple(hidden), steps, batch_size, learning_rate, val_fraction, eval_every, patience)
    logits = _train_mlp(
        key,
        jnp.asarray(x_train, jnp.float32),
        jnp.asarray(train),
        jnp.asarray(x_test, jnp.float32),
        loss=_heads_xent(sizes),
        out_dim=sum(sizes),
        cfg=cfg,
    )
    heads = jnp.split(logits, np.cumsum(sizes)[:-1].tolist(), axis=1)
    return float(np.mean([np.mean(np.asarray(h.argmax(1)) == test[:, j]) for j, h in enumerate(heads)]))
