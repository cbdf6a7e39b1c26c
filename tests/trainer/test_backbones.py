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
