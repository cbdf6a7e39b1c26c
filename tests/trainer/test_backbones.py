"""Tests of simsiam_tfx.trainer.backbones."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.trainer import backbones


def test_cifar_resnet18_shapes_and_zero_init_residual_gamma():
    enc = backbones.build_encoder("resnet18", 32, width=8)
    assert enc.output_shape == (None, 64)  # 8 * 2**3 channels after global pooling
    assert enc.get_layer("stem_conv").kernel_size == (3, 3) and enc.get_layer("stem_conv").strides == (1, 1)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in enc.layers)
    last_bns = [layer for layer in enc.layers if layer.name.endswith("_bn2")]
    assert len(last_bns) == 8 and all(np.all(bn.gamma.numpy() == 0) for bn in last_bns)
    out = enc(tf.zeros((2, 32, 32, 3)))
    assert out.shape == (2, 64)


def test_resnet50_uses_imagenet_stem_and_bottlenecks():
    enc = backbones.build_encoder("resnet50", 64, width=8)
    assert enc.output_shape == (None, 8 * 8 * 4)
    assert enc.get_layer("stem_conv").kernel_size == (7, 7)
    assert any(isinstance(layer, keras.layers.MaxPooling2D) for layer in enc.layers)
    assert len([layer for layer in enc.layers if layer.name.endswith("_bn3")]) == 16


def test_an_encoder_of_any_side_is_exported_at_the_image_side_with_its_weights_and_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        trained = backbones.build_encoder("resnet18", None, width=4)
        trained.get_layer("stem_bn").moving_mean.assign(tf.fill([4], 0.25))  # a non-initial state
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert trained.input_shape == (None, None, None, 3)
    trained(tf.zeros((1, 8, 8, 3)))  # trains on small views ...
    exported = backbones.with_input_size(trained, 16)
    assert exported.input_shape == (None, 16, 16, 3)  # ... is served at the image side
    assert exported.get_layer("stem_conv").compute_dtype == "bfloat16"  # built as it was trained
    images = tf.random.stateless_uniform((3, 16, 16, 3), (1, 2))
    np.testing.assert_array_equal(exported(images, training=False).numpy(), trained(images, training=False).numpy())
    assert backbones.with_input_size(exported, 16) is exported
