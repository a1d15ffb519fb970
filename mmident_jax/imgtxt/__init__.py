"""The image/text experiment on generated Multimodal3DIdent-style scenes.

`scenes` samples and renders images, `sentences` writes their descriptions as tokens,
`dataset` exports to and loads from the real data set's layout, `encoders` are the image
and text encoders, `config` the settings and `experiment` the training program,
evaluation and sweep over encoding sizes (run on disk by `mmident_jax.driver`).
"""
