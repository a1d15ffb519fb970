"""Scenes and sentences: determinism, factor ranges, geometry, the sentence round trip."""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmident_jax.imgtxt import scenes, sentences
from mmident_jax.imgtxt.scenes import NUM_PALETTES, NUM_PHRASINGS, Factors, sample_factors

render = jax.jit(scenes.render, static_argnames="size")
coverage = jax.jit(scenes.coverage, static_argnames="size")


@jax.jit
def generate(key):
    factors = sample_factors(key, 8)
    return scenes.render(factors, size=32), sentences.tokens(factors)


def grid_factors(rotation=None):
    """Every shape in every cell (63 scenes), random rotations unless given."""
    shape, y, x = (a.ravel() for a in np.meshgrid(range(7), range(3), range(3), indexing="ij"))
    base = sample_factors(jax.random.PRNGKey(5), len(shape))
    rotation = base.rotation if rotation is None else jnp.full(len(shape), rotation)
    return base._replace(
        shape=jnp.asarray(shape, jnp.int32), x=jnp.asarray(x, jnp.int32), y=jnp.asarray(y, jnp.int32), rotation=rotation
    )


def test_generator_is_deterministic_per_key():
    (images, tokens), (images2, tokens2) = generate(jax.random.PRNGKey(0)), generate(jax.random.PRNGKey(0))
    other_images, other_tokens = generate(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(images, images2)
    np.testing.assert_array_equal(tokens, tokens2)
    assert float(jnp.abs(images - other_images).mean()) > 0.05
    assert bool((tokens != other_tokens).any())


def test_factor_ranges():
    factors = sample_factors(jax.random.PRNGKey(0), 600)
    counts = {"shape": len(scenes.SHAPES), "x": 3, "y": 3, "palette": NUM_PALETTES, "phrasing": NUM_PHRASINGS}
    for name, count in counts.items():
        values = getattr(factors, name)
        assert values.dtype == jnp.int32 and values.shape == (600,)
        assert set(np.asarray(values).tolist()) == set(range(count)), name
    for name in set(Factors._fields) - set(counts):
        values = np.asarray(getattr(factors, name))
        assert values.dtype == np.float32 and values.shape == (600,)
        assert 0 <= values.min() < 0.02 and 0.98 < values.max() <= 1, name


def test_position_dependent_color_puts_hue_in_the_x_third():
    key = jax.random.PRNGKey(1)
    plain, dependent = sample_factors(key, 600), sample_factors(key, 600, position_dependent_color=True)
    hue, x = np.asarray(dependent.hue), np.asarray(dependent.x)
    np.testing.assert_array_equal(np.minimum(np.floor(hue * 3), 2), x)
    for lo in range(3):  # each third is covered
        assert hue[x == lo].min() < (lo + 0.05) / 3 and hue[x == lo].max() > (lo + 0.95) / 3
    for name in set(Factors._fields) - {"hue"}:  # the other factors do not change
        np.testing.assert_array_equal(getattr(plain, name), getattr(dependent, name))


@pytest.mark.parametrize("size", [64, 224])
def test_object_centroid_is_at_its_cell_centre(size):
    factors = grid_factors()
    alpha = np.asarray(coverage(factors, size=size), np.float64)
    pixel = np.arange(size) + 0.5
    mass = alpha.sum((1, 2))
    column = (alpha * pixel[None, None, :]).sum((1, 2)) / mass
    row = (alpha * pixel[None, :, None]).sum((1, 2)) / mass
    expected_column = (np.asarray(factors.x) + 0.5) / 3 * size
    expected_row = (np.asarray(factors.y) + 0.5) / 3 * size
    assert np.abs(column - expected_column).max() < 1.5
    assert np.abs(row - expected_row).max() < 1.5
    # every shape covers roughly the same area: 1.4 .. 2.3 (object radius)^2
    area = mass / (0.13 * size) ** 2
    assert 1.3 < area.min() and area.max() < 2.4


def test_different_shapes_give_different_masks():
    """No shape's mask is another's (1 - IoU >= 0.1) under any of 24 rotations."""

    def masks(rotation):  # the seven shapes in the centre cell
        return np.asarray(coverage(jax.tree.map(lambda a: a[4::9], grid_factors(rotation)), size=64) > 0.5)

    upright = masks(0.0)
    rotated = np.stack([masks(r) for r in np.arange(24) / 24])  # (rotation, shape, H, W)
    inter = (upright[None, :, None] & rotated[:, None]).sum((-2, -1))
    union = (upright[None, :, None] | rotated[:, None]).sum((-2, -1))
    distance = (1 - inter / union).min(0)  # (shape, shape) over rotations
    assert np.diag(distance).max() == 0
    np.fill_diagonal(distance, 1)
    assert distance.min() > 0.1


def test_render_composites_the_object_over_the_background():
    factors = sample_factors(jax.random.PRNGKey(2), 64)
    images = np.asarray(render(factors, size=48))
    alpha = np.asarray(coverage(factors, size=48))
    assert images.shape == (64, 48, 48, 3) and images.min() >= 0 and images.max() <= 1
    recoloured = np.asarray(render(factors._replace(hue=(factors.hue + 0.5) % 1), size=48))
    outside, inside = alpha == 0, alpha == 1
    np.testing.assert_array_equal(images[outside], recoloured[outside])
    assert np.abs(images[inside] - recoloured[inside]).max(-1).min() > 0.3
    pure = np.broadcast_to(np.asarray(scenes.hsv_to_rgb(factors.hue, 1.0, 1.0))[:, None, None], images.shape)
    inside_pixels = images[inside]  # the object keeps its hue, shaded by the light
    np.testing.assert_allclose(inside_pixels / inside_pixels.max(-1, keepdims=True), pure[inside], atol=1e-5)
    for image, a in zip(images, alpha):  # it stands out from background and light
        assert np.abs(image[a == 1].mean(0) - image[a == 0].mean(0)).max() > 0.15


def test_hsv_to_rgb_matches_colorsys():
    hsv = np.random.default_rng(0).uniform(size=(50, 3))
    expected = np.array([colorsys.hsv_to_rgb(*c) for c in hsv])
    np.testing.assert_allclose(scenes.hsv_to_rgb(*hsv.T), expected, atol=1e-6)


def test_vocabulary_and_palettes():
    assert sentences.VOCAB[0] == "<pad>" and len(set(sentences.VOCAB)) == len(sentences.VOCAB)
    assert [len(p) for p in sentences.PALETTES] == [3, 7, 12] and len(sentences.PALETTES) == NUM_PALETTES
    assert len(sentences.TEMPLATES) == NUM_PHRASINGS
    assert set(sentences.COLOR_NAMES) == {name for p in sentences.PALETTES for name in p}


def test_color_name_is_the_nearest_in_the_palette():
    rng = np.random.default_rng(0)
    hue, palette = rng.uniform(size=300).astype(np.float32), rng.integers(0, 3, 300)
    got = np.asarray(jax.jit(sentences.color_name)(hue, palette))
    for h, p, index in zip(hue, palette, got):
        distance = {
            name: min(abs(h - sentences.COLOR_HUES[name]), 1 - abs(h - sentences.COLOR_HUES[name]))
            for name in sentences.PALETTES[p]
        }
        assert sentences.COLOR_NAMES[index] == min(distance, key=distance.get)
    assert sentences.COLOR_NAMES[int(sentences.color_name(0.95, 0))] == "red"  # hue is circular


def test_sentence_round_trip():
    factors = sample_factors(jax.random.PRNGKey(3), 200)
    token_ids = np.asarray(jax.jit(sentences.tokens)(factors))
    assert token_ids.shape == (200, sentences.MAX_LEN) and token_ids.dtype == np.int32
    lengths = (token_ids != 0).sum(1)
    assert (token_ids[np.arange(sentences.MAX_LEN) >= lengths[:, None]] == 0).all()  # padded at the end
    names = np.asarray(sentences.color_name(factors.hue, factors.palette))
    parsed = [sentences.parse(s) for s in sentences.strings(factors)]
    expected_values = {
        "shape": factors.shape,
        "x": factors.x,
        "y": factors.y,
        "color_name": names,
        "phrasing": factors.phrasing,
    }
    for key, expected in expected_values.items():
        assert [p[key] for p in parsed] == np.asarray(expected).tolist(), key
    assert len({p["phrasing"] for p in parsed}) == NUM_PHRASINGS


def test_parse_rejects_other_sentences():
    with pytest.raises(ValueError, match="not a generated sentence"):
        sentences.parse("A purple teapot is at the top-left of the image.")
