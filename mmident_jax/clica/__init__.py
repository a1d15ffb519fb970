"""cl-ica's numerical experiment (Zimmermann et al., ICML 2021) and AnInfoNCE's (Rusak et al. 2024).

One latent vector in a space (box, sphere, unbounded), its positive partner from a
conditional around it, one invertible mixer and one encoder trained with InfoNCE of
the model's similarity (Lp, cosine, or anisotropic with a learned Λ); linear R² and MCC
say how much of the latents the codes recover. See docs/clica.md.

- `config`: `IcaConfig`, `Hyper`, the base configs of the presets
- `spaces`: marginals and conditionals (vMF, generalised normal, box truncation, anisotropic shell)
- `objectives`: `lp_infonce`, `cosine_infonce`, `aninfonce`
- `model`: `sample_pairs`, `codes`, `experiment`, `make_train`
- `evaluation`: `evaluate` (R², MCC, identity baseline, learned Λ)
- `settings`: `Preset`, the presets' rows, labels in the papers' terms
- `experiment`: `study` (for the sweep engine), tables, figure, `run_experiment`
- `command`: the `mmident-jax clica` command (`add_parser`, `run`, `report`)
"""
