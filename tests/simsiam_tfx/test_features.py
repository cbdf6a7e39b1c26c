"""Tests of simsiam_tfx.features."""
import numpy as np
import tensorflow as tf

from simsiam_tfx.features import IMAGE_KEY, LABEL_KEY, to_example, to_transformed_example


def test_to_example_writes_the_two_features_every_layer_reads():
    example = tf.train.Example.FromString(to_example(b"\x89PNG...", 7))
    assert example.features.feature[IMAGE_KEY].bytes_list.value == [b"\x89PNG..."]
    assert example.features.feature[LABEL_KEY].int64_list.value == [7]


def test_transformed_example_holds_a_serialized_uint8_image():
    image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    example = tf.train.Example.FromString(to_transformed_example(image, 1))
    decoded = tf.io.parse_tensor(example.features.feature[IMAGE_KEY].bytes_list.value[0], tf.uint8)
    np.testing.assert_array_equal(decoded.numpy(), image)
