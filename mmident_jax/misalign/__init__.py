"""How misalignment shapes multimodal contrastive learning (Cai et al., 2025), numerically.

Semantic factors s are shared by an image and a text modality; the text sees only a
selection of them (I_θ) and some of those perturbed (I_ρ); each modality also has its own
factors m_x, m_t. The two-view paper's InfoNCE (Daunhawer et al., ICLR 2023) is trained on
the pairs, and the evaluation asks which factors each code recovers: the selected,
unperturbed ones and nothing else. See docs/misalignment.md.

- `config`: `MisalignConfig`, `roles`, `Preset`, `sweep_settings`, the presets' base configs
- `model`: `sample`, `init_truth`, `init_params`, `codes`, `contrastive_loss`, `make_train`
- `evaluation`: `evaluate` (R² per code x factor)
- `experiment`: `study` (settings x seeds for the sweep engine), `write_results`, `run_experiment`
- `command`: the `mmident-jax misalign` command (`add_parser`, `run`, `report`)

The names below load their modules on first use: `add_parser` and `run` load no JAX
until a command runs.

Example, the text sees the first four of ten factors, the first of them perturbed (shapes only):
    >>> import jax
    >>> from mmident_jax import misalign as ma
    >>> cfg = ma.MisalignConfig(selected=(0, 1, 2, 3), perturbed=(0,), train_steps=3, cond_pool=1000)
    >>> ma.roles(cfg.semantic_n, cfg.selected, cfg.perturbed).invariant, cfg.input_sizes
    ((1, 2, 3), (15, 9))
    >>> state, losses = jax.eval_shape(ma.make_train(cfg), jax.random.PRNGKey(0))
    >>> losses.shape, [p["params"]["Dense_6"]["kernel"].shape for p in state.params]
    ((3,), [(150, 3), (90, 3)])
"""

import importlib

_API = {
    **dict.fromkeys(("MisalignConfig", "MisalignError", "Preset", "Roles", "roles", "sweep_settings"), "config"),
    **dict.fromkeys(("codes", "contrastive_loss", "make_init", "make_step", "make_train", "sample"), "model"),
    "evaluate": "evaluation",
    **dict.fromkeys(("study", "run_experiment", "write_results"), "experiment"),
    **dict.fromkeys(("add_parser", "run", "report"), "command"),
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'mmident_jax.misalign' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mmident_jax.misalign.{_API[name]}"), name)
    globals()[name] = value
    return value
