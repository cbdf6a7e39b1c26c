"""The Transform module through tf.Transform's Beam implementation, on awkward real image files;
its policy, preview and executor's input schema."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from simsiam_tfx.components import preprocessing
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.trainer import augment, data
from tests.data_factory import encode_array as encode

SIZE = 24


def _awkward_images(rng):
    rgb = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    return {
        "jpeg_odd_size": encode(rgb, "JPEG"),
        "png_rgb_odd_size": encode(rgb, "PNG"),
        "png_grayscale": encode(rng.integers(0, 255, (19, 61), dtype=np.uint8), "PNG"),
        "png_rgba": encode(rng.integers(0, 255, (40, 30, 4), dtype=np.uint8), "PNG"),
        "jpeg_grayscale_tall": encode(rng.integers(0, 255, (90, 8), dtype=np.uint8), "JPEG"),
        "png_tiny_8x8": encode(rng.integers(0, 255, (8, 8), dtype=np.uint8), "PNG"),
    }


def test_preprocessing_fn_through_tft_beam(tmp_path, rng):
    images = _awkward_images(rng)
    raw = [{"image": b, "label": i, data.SEED_KEY: []} for i, b in enumerate(images.values())]
    # The schema as the executor gives it: the data's features and the optional seed, absent here.
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
        "image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64),
        data.SEED_KEY: tf.io.VarLenFeature(tf.int64)}))
    config = PipelineConfig()
    config.data.image_size = SIZE
    fn = lambda inputs: preprocessing.preprocessing_fn(inputs, preprocessing.custom_config(config))  # noqa: E731
    with tft_beam.Context(temp_dir=str(tmp_path), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
    assert len(transformed) == len(raw)
    for row, name in zip(sorted(transformed, key=lambda r: r["label"]), images):
        image = tf.io.parse_tensor(row["image"], tf.uint8).numpy()
        assert image.shape == (SIZE, SIZE, 3), name
        assert image.dtype == np.uint8
        assert image.std() > 0, f"{name}: decoded to a constant image"
    # Compact output: uint8 pixels plus a small header, far less than float32's 4 bytes a value.
    assert len(transformed[0]["image"]) < SIZE * SIZE * 3 + 64


def test_decode_is_deterministic_and_grayscale_becomes_rgb(rng):
    gray = rng.integers(0, 255, (10, 14), dtype=np.uint8)
    a = data.decode_and_resize(tf.constant(encode(gray, "PNG")), 16).numpy()
    b = data.decode_and_resize(tf.constant(encode(gray, "PNG")), 16).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[..., 0], a[..., 1])
    np.testing.assert_array_equal(a[..., 0], a[..., 2])


def test_resize_preserves_content(rng):
    # A left-dark / right-bright image stays that way after resizing.
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 30:] = 255
    out = data.decode_and_resize(tf.constant(encode(img, "PNG")), 20).numpy()
    assert out[:, :8].mean() < 10 and out[:, 12:].mean() > 245


def test_custom_config_carries_the_whole_policy_and_changes_with_augment():
    config = PipelineConfig()
    default, cifar = preprocessing.custom_config(config), None
    config.pretrain.augment = "cifar"
    cifar = preprocessing.custom_config(config)
    assert default["augment"]["name"] == "strong-colour" and cifar["augment"]["name"] == "cifar"
    assert default != cifar  # Transform's cache key
    assert preprocessing.policy(cifar) == {"name": "cifar", **augment.to_dict(preprocessing.policy_config("cifar"))}
    json.dumps(cifar)  # an execution property: JSON
    config.pretrain.view_size = 24
    assert preprocessing.custom_config(config)["view_size"] == 24
    assert default["view_size"] == PipelineConfig().pretrain_settings().view_size < config.data.image_size  # shapes'


def test_preview_rows_are_the_image_then_two_views_drawn_by_the_graph(rng):
    images = rng.integers(0, 255, (3, SIZE, SIZE, 3), dtype=np.uint8)
    serialized = tf.constant([tf.io.serialize_tensor(i).numpy() for i in images])
    grid = preprocessing.preview(data.Transform.direct(preprocessing.policy_config("cifar"), SIZE), serialized, SIZE)
    scale = 96 // SIZE
    assert grid.shape == (3 * SIZE * scale, 3 * SIZE * scale, 3) and grid.dtype == np.uint8
    tile = lambda r, c: grid[r * SIZE * scale:(r + 1) * SIZE * scale:scale, c * SIZE * scale:(c + 1) * SIZE * scale:scale]  # noqa: E731
    np.testing.assert_array_equal(tile(1, 0), images[1])
    assert not np.array_equal(tile(1, 1), images[1]) and not np.array_equal(tile(1, 1), tile(1, 2))


def test_the_executors_schema_adds_the_optional_seed():
    from tensorflow_metadata.proto.v0 import schema_pb2
    schema = schema_pb2.Schema()
    image = schema.feature.add(name="image", type=schema_pb2.BYTES)
    image.shape.dim.add(size=1)
    image.presence.min_fraction = 1.0
    spec = schema_utils.schema_as_feature_spec(preprocessing.with_seed(schema)).feature_spec
    assert spec[data.SEED_KEY] == tf.io.VarLenFeature(tf.int64) and len(schema.feature) == 1
    with pytest.raises(ValueError, match="reserves"):
        preprocessing.with_seed(preprocessing.with_seed(schema))


def test_preview_shows_views_smaller_than_the_images_at_the_images_side(rng):
    images = rng.integers(0, 255, (2, SIZE, SIZE, 3), dtype=np.uint8)
    serialized = tf.constant([tf.io.serialize_tensor(i).numpy() for i in images])
    transform = data.Transform.direct(preprocessing.policy_config("cifar"), SIZE, view_size=SIZE // 2)
    grid = preprocessing.preview(transform, serialized, SIZE, view_size=SIZE // 2)
    scale = 96 // SIZE
    assert grid.shape == (2 * SIZE * scale, 3 * SIZE * scale, 3)
    view = grid[:SIZE * scale:scale, SIZE * scale:2 * SIZE * scale:scale]
    np.testing.assert_array_equal(view[::2, ::2], view[1::2, 1::2])  # each view pixel shown as 2 x 2
