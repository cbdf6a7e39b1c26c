"""The Transform module through tf.Transform's Beam implementation, on awkward real image files."""
import numpy as np
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from simsiam_tfx.components import preprocessing
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
    raw = [{"image": b, "label": i} for i, b in enumerate(images.values())]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
        "image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}))
    fn = lambda inputs: preprocessing.preprocessing_fn(inputs, {"image_size": SIZE})  # noqa: E731
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
    a = preprocessing.decode_and_resize(tf.constant(encode(gray, "PNG")), 16).numpy()
    b = preprocessing.decode_and_resize(tf.constant(encode(gray, "PNG")), 16).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[..., 0], a[..., 1])
    np.testing.assert_array_equal(a[..., 0], a[..., 2])


def test_resize_preserves_content(rng):
    # A left-dark / right-bright image stays that way after resizing.
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 30:] = 255
    out = preprocessing.decode_and_resize(tf.constant(encode(img, "PNG")), 20).numpy()
    assert out[:, :8].mean() < 10 and out[:, 12:].mean() > 245
