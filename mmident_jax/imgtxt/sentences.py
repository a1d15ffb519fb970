"""Sentences describing the scenes of `scenes`: colour names, tokens, decoding, parsing.

As in Multimodal3DIdent, a sentence names the object's shape, its position (y-x, e.g.
"top-left") and its colour, in one of five phrasings. The colour is the name nearest to
the object's hue (circular hue distance) in the sample's palette; the three palettes have
3, 7 and 12 names (the RGB colour wheel at its primary, secondary and tertiary
colours). A name means one hue in every palette that has it, so `COLOR_NAMES` is their
union without duplicates. Every name, like every word, is one token.

`tokens` is jittable (templates are a static token table whose slot markers are filled
with `jnp.where`); `decode`, `strings` and `parse` run on the host.

Example:
    >>> import jax
    >>> from mmident_jax.imgtxt.scenes import sample_factors
    >>> factors = sample_factors(jax.random.PRNGKey(4), 2)
    >>> jax.jit(tokens)(factors).shape == (2, MAX_LEN)
    True
    >>> sentence = strings(factors)[1]; sentence
    'The cyan star is at the mid-right of the image.'
    >>> parse(sentence)
    {'shape': 3, 'x': 2, 'y': 1, 'color_name': 6, 'phrasing': 1}
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from mmident_jax.imgtxt.scenes import SHAPES, X_POSITIONS, Y_POSITIONS, Factors

COLOR_HUES = {  # the twelve-hue RGB colour wheel
    "red": 0 / 12,
    "orange": 1 / 12,
    "yellow": 2 / 12,
    "chartreuse": 3 / 12,
    "green": 4 / 12,
    "springgreen": 5 / 12,
    "cyan": 6 / 12,
    "azure": 7 / 12,
    "blue": 8 / 12,
    "violet": 9 / 12,
    "magenta": 10 / 12,
    "rose": 11 / 12,
}
COLOR_NAMES = tuple(COLOR_HUES)
PALETTES = (
    ("red", "green", "blue"),
    ("red", "orange", "yellow", "green", "cyan", "blue", "magenta"),
    COLOR_NAMES,
)

# Tokens separated by spaces; "-", "," and "." are tokens of their own (see `decode`).
SLOTS = ("{shape}", "{color}", "{x}", "{y}")
TEMPLATES = (
    "A {shape} of {color} color is visible , positioned at the {y} - {x} of the image .",
    "The {color} {shape} is at the {y} - {x} of the image .",
    "The {y} - {x} of the image shows a {shape} colored {color} .",
    "At the {y} - {x} of the picture is a {shape} in {color} color .",
    "At the {y} - {x} of the image , there is an object of {color} color in the form of a {shape} .",
)
_WORDS = tuple(dict.fromkeys(w for t in TEMPLATES for w in t.split() if w not in SLOTS))
VOCAB = ("<pad>", *_WORDS, *SHAPES, *X_POSITIONS, *Y_POSITIONS, *COLOR_NAMES)
MAX_LEN = max(len(t.split()) for t in TEMPLATES)
_INDEX = {word: i for i, word in enumerate(VOCAB)}
# Template table: word ids, slot k as -(k + 1), padded with 0.
_TABLE = np.array(
    [
        [_INDEX[w] if w not in SLOTS else -1 - SLOTS.index(w) for w in t.split()] + [0] * (MAX_LEN - len(t.split()))
        for t in TEMPLATES
    ],
    np.int32,
)
_IN_PALETTE = np.array([[name in p for name in COLOR_NAMES] for p in PALETTES])


def color_name(hue: jax.Array, palette: jax.Array) -> jax.Array:
    """Index into COLOR_NAMES of the name in PALETTES[palette] nearest to `hue` (jittable).

    Ties go to the earlier name of COLOR_NAMES.
    """
    distance = jnp.abs(jnp.asarray(hue)[..., None] - jnp.asarray(list(COLOR_HUES.values())))
    distance = jnp.minimum(distance, 1 - distance)
    distance = jnp.where(jnp.asarray(_IN_PALETTE)[palette], distance, jnp.inf)
    return jnp.argmin(distance, axis=-1).astype(jnp.int32)


def tokens(factors: Factors) -> jax.Array:
    """(n, MAX_LEN) int32 token ids into VOCAB of each sample's sentence, 0-padded."""

    def ids(words, values):
        return jnp.asarray([_INDEX[w] for w in words], jnp.int32)[values]

    fills = jnp.stack(
        [
            ids(SHAPES, factors.shape),
            ids(COLOR_NAMES, color_name(factors.hue, factors.palette)),
            ids(X_POSITIONS, factors.x),
            ids(Y_POSITIONS, factors.y),
        ],
        axis=1,
    )
    table = jnp.asarray(_TABLE)[factors.phrasing]
    slot_values = jnp.take_along_axis(fills, jnp.maximum(-table - 1, 0), axis=1)
    return jnp.where(table < 0, slot_values, table)


def decode(token_ids) -> list[str]:
    """Token ids (n, L) -> sentences; padding dropped, punctuation attached."""
    sentences = []
    for row in np.asarray(token_ids):
        text = " ".join(VOCAB[i] for i in row if i != 0)
        sentences.append(text.replace(" - ", "-").replace(" ,", ",").replace(" .", "."))
    return sentences


def strings(factors: Factors) -> list[str]:
    """The samples' sentences: decode(tokens(factors))."""
    return decode(tokens(factors))


def parse(sentence: str) -> dict[str, int]:
    """Invert the generation: shape, x, y, color_name (COLOR_NAMES index) and phrasing.

    Raises ValueError for a sentence no template produces.
    """
    words = re.findall(r"\w+|[^\w\s]", sentence)
    lists = {"{shape}": SHAPES, "{color}": COLOR_NAMES, "{x}": X_POSITIONS, "{y}": Y_POSITIONS}
    for phrasing, template in enumerate(TEMPLATES):
        pattern = template.split()
        if len(pattern) != len(words):
            continue
        if all(p == w or (p in lists and w in lists[p]) for p, w in zip(pattern, words)):
            slots = {p: lists[p].index(w) for p, w in zip(pattern, words) if p in lists}
            return {
                "shape": slots["{shape}"],
                "x": slots["{x}"],
                "y": slots["{y}"],
                "color_name": slots["{color}"],
                "phrasing": phrasing,
            }
    raise ValueError(f"not a generated sentence: {sentence!r}")
