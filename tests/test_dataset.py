"""Export to / load from the Multimodal3DIdent folder layout, and the loader's errors."""

import sys

import jax
import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

from mmident_jax.imgtxt import dataset
from mmident_jax.imgtxt.dataset import DatasetError, export, image_path, load, to_uint8
from mmident_jax.imgtxt.scenes import render, sample_factors
from mmident_jax.imgtxt.sentences import COLOR_NAMES, color_name, strings

render_jit = jax.jit(render, static_argnames="size")

N, SIZE = 12, 32


@pytest.fixture
def exported(tmp_path):
    factors = sample_factors(jax.random.PRNGKey(0), N)
    export(tmp_path, factors, size=SIZE)
    return tmp_path, factors


def test_image_names_follow_the_data_set():
    assert image_path("d", 5, 125_000).name == "000005.png"
    assert image_path("d", 3, 10).name == "3.png"
    assert image_path("d", 10, 11).name == "10.png"


def test_export_load_round_trip(exported):
    directory, factors = exported
    images, texts, latents = load(directory)
    np.testing.assert_array_equal(images, to_uint8(render_jit(factors, size=SIZE)))
    assert images.dtype == np.uint8 and images.shape == (N, SIZE, SIZE, 3)
    assert texts == strings(factors)
    assert list(latents)[:11] == list(dataset.IMAGE_COLUMNS)
    integer_columns = {
        "object_shape": "shape",
        "object_xpos": "x",
        "object_ypos": "y",
        "text_phrasing": "phrasing",
        "color_palette": "palette",
    }
    for column, field in integer_columns.items():
        assert latents[column].dtype == np.int64
        np.testing.assert_array_equal(latents[column], getattr(factors, field))
    float_columns = {
        "object_color": "hue",
        "object_gammarot": "rotation",
        "spotlight_pos": "light_position",
        "spotlight_color": "light_hue",
        "background_color": "background_hue",
    }
    for column, field in float_columns.items():
        np.testing.assert_array_equal(latents[column].astype(np.float32), getattr(factors, field))
    np.testing.assert_array_equal(latents["object_alpharot"], np.full(N, 0.5))
    index = np.asarray(color_name(factors.hue, factors.palette))
    np.testing.assert_array_equal(latents["object_color_index"], index)
    assert latents["object_color_name"].tolist() == [COLOR_NAMES[i] for i in index]


def test_export_given_images_and_load_resized_rgba(tmp_path):
    factors = sample_factors(jax.random.PRNGKey(1), 3)
    images = np.random.default_rng(0).integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)
    export(tmp_path, factors, images=images)
    loaded, _, _ = load(tmp_path)
    np.testing.assert_array_equal(loaded, images)
    rgba = np.concatenate([images[0], np.full((20, 20, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(image_path(tmp_path, 0, 3))  # the real data set's PNGs may be RGBA
    loaded, _, _ = load(tmp_path)
    np.testing.assert_array_equal(loaded[0], images[0])
    resized, _, _ = load(tmp_path, size=8)
    assert resized.shape == (3, 8, 8, 3) and resized.dtype == np.uint8


def test_missing_image_is_named(exported):
    directory, _ = exported
    image_path(directory, 4, N).unlink()
    with pytest.raises(DatasetError, match=r"missing image .*04\.png"):
        load(directory)


def test_truncated_text_is_named(exported):
    directory, _ = exported
    text = directory / "text" / "text_raw.txt"
    text.write_text("\n".join(text.read_text().splitlines()[:-1]))
    with pytest.raises(DatasetError, match=r"text_raw\.txt has 11 lines, expected 12"):
        load(directory)


def test_corrupt_image_is_named(exported):
    directory, _ = exported
    image_path(directory, 7, N).write_bytes(b"\x89PNG garbage" * 10)
    with pytest.raises(DatasetError, match=r"unreadable image .*07\.png"):
        load(directory)


def test_missing_and_short_files_are_named(exported):
    directory, _ = exported
    (directory / "latents_text.csv").write_text("object_shape\n1\n2\n")
    with pytest.raises(DatasetError, match=r"latents_text\.csv has 2 rows, expected 12"):
        load(directory)
    (directory / "latents_text.csv").unlink()
    with pytest.raises(DatasetError, match=r"missing file .*latents_text\.csv"):
        load(directory)
    with pytest.raises(DatasetError, match="missing folder"):
        load(directory / "nowhere")


def test_missing_pillow_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DatasetError, match=r"pip install 'mmident-jax\[images\]'"):
        load(tmp_path)
