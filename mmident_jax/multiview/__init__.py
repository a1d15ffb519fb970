"""Multi-view contrastive learning with partial observability (Yao et al., ICLR 2024).

K >= 2 views of one latent vector z: view k sees the latents S_k (some perhaps
perturbed between views, some private to it), mixes them with its own invertible MLP
and has its own encoder. For every subset V of views with shared content C_V the
objective contrasts V's codes on the coordinates that stand for C_V; the evaluation
asks whether those coordinates recover C_V and nothing else. The two-view paper
(Daunhawer et al., ICLR 2023) is the special case `from_two_view(cfg)`, bit for bit.
See docs/multiview.md.

- `structure`: `Views`, `MultiviewConfig`, `from_two_view`, Yao et al.'s `MULTIVIEW*` configs (named in `presets`)
- `model`: `sample`, `init_truth`, `init_params`, `codes`, `group_losses`, `contrastive_loss`, `make_train`
- `evaluation`: `evaluate` (R² per group x view x latent)
- `tables`: CSV, markdown, heatmap and loss curves
- `experiment`: `study` (the seeds for the sweep engine), `run_experiment`, `write_results`
- `command`: the `mmident-jax multiview` command (`add_parser`, `run`)

The names below load their modules on first use: `add_parser` and `run` load no JAX
until a command runs.

Example, Yao et al.'s four views at quick scale (shapes only: `eval_shape` traces, runs nothing):
    >>> import jax
    >>> from mmident_jax import multiview as mv
    >>> from mmident_jax.multiview.structure import MULTIVIEW_QUICK
    >>> cfg = mv.replace(MULTIVIEW_QUICK, train_steps=3, cond_pool=1000)
    >>> [g.views for g in cfg.views.plan][:3], len(cfg.views.plan)
    ([(0, 1), (0, 2), (0, 3)], 11)
    >>> state, losses = jax.eval_shape(mv.make_train(cfg), jax.random.PRNGKey(0))
    >>> losses.shape, [p["params"]["Dense_3"]["kernel"].shape for p in state.params]
    ((3, 11), [(64, 5), (64, 5), (64, 5), (64, 5)])
"""

import importlib

_API = {
    **dict.fromkeys(
        ("Group", "MultiviewConfig", "MultiviewError", "Preset", "Views", "from_two_view", "replace"), "structure"
    ),
    **dict.fromkeys(("contrastive_loss", "make_init", "make_step", "make_train", "sample"), "model"),
    "evaluate": "evaluation",
    "study": "experiment",
    "run_experiment": "experiment",
    **dict.fromkeys(("add_parser", "run"), "command"),
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'mmident_jax.multiview' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mmident_jax.multiview.{_API[name]}"), name)
    globals()[name] = value
    return value
