"""Tests of simsiam_tfx.trainer.probe."""

import numpy as np
import pytest
import tensorflow as tf

from simsiam_tfx.trainer import backbones, probe


def test_probe_on_linearly_separable_features(rng):
    centres = rng.normal(0, 5, (4, 16))
    x = np.concatenate([c + rng.normal(0, 0.5, (50, 16)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(4), 50)
    kernel, bias = probe.fit_linear_probe(x, y, num_classes=5, l2=1e-4)
    assert kernel.shape == (16, 5)
    assert probe.accuracy(kernel, bias, x, y) == 1.0
    assert np.all(np.argmax(x @ kernel + bias, axis=1) != 4)  # a class never seen is never predicted


def test_classifier_freezes_the_encoder_with_bn_in_inference_mode():
    enc = backbones.build_encoder("resnet18", 16, width=2)
    clf = probe.build_classifier(enc, np.zeros((16, 3), np.float32), np.zeros(3, np.float32))
    assert not enc.trainable and clf.trainable_weights == clf.get_layer("linear").trainable_weights
    x = tf.random.stateless_uniform((4, 16, 16, 3), (0, 1))
    np.testing.assert_allclose(clf(x, training=True)["embedding"].numpy(), enc(x, training=False).numpy(), atol=1e-5)


@pytest.mark.fault
def test_unlabelled_examples_are_left_out_of_the_probe():
    enc = backbones.build_encoder("resnet18", 16, width=2)
    images = tf.random.stateless_uniform((8, 16, 16, 3), (0, 2))
    labels = tf.constant([0, 1, -1, 0, 1, -1, 0, 1], tf.int64)
    keep = labels != -1
    # One image a batch: every feature is computed the same way in both data sets.
    mixed = tf.data.Dataset.from_tensor_slices((images, labels)).batch(1)
    labelled_only = tf.data.Dataset.from_tensor_slices((images[keep], labels[keep])).batch(1)
    with_unlabelled = probe.probe_encoder(enc, mixed, mixed, num_classes=2, l2=1e-4)
    expected = probe.probe_encoder(enc, labelled_only, labelled_only, num_classes=2, l2=1e-4)
    np.testing.assert_allclose(with_unlabelled.kernel, expected.kernel, rtol=1e-4, atol=1e-5)  # -1 is no class
    assert (with_unlabelled.eval_accuracy, with_unlabelled.train_accuracy) == \
        (expected.eval_accuracy, expected.train_accuracy)
    np.testing.assert_array_equal(with_unlabelled.eval_labels, expected.eval_labels)


def test_chance_is_the_share_of_the_most_frequent_class():
    assert probe.chance_accuracy(np.array([0, 1, 1, 1])) == 0.75
    assert probe.chance_accuracy(np.array([0, 1, 2, 3])) == 0.25
    assert probe.chance_accuracy(np.array([], np.int64)) == 0.0
