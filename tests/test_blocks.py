"""Unit tests of the SimSiam building blocks."""
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer import backbones, heads, model, monitors, probe, schedules
from trainer.pretrain import build_simsiam


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


def test_projector_and_predictor_follow_the_paper():
    proj = heads.build_projector(64, 32, num_layers=2)
    dense = [layer for layer in proj.layers if isinstance(layer, keras.layers.Dense)]
    bns = [layer for layer in proj.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(dense) == 2 and not any(d.use_bias for d in dense)
    assert len(bns) == 2 and bns[-1].center is False and bns[-1].scale is False and bns[0].scale
    assert proj.output_shape == (None, 32)
    pred = heads.build_predictor(32)
    dense = [layer for layer in pred.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [8, 32] and not dense[0].use_bias and dense[1].use_bias
    assert len([layer for layer in pred.layers if isinstance(layer, keras.layers.BatchNormalization)]) == 1
    # PyTorch-default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    kernel = dense[0].kernel.numpy()
    assert np.abs(kernel).max() <= 1 / math.sqrt(32) + 1e-6 and np.abs(kernel).max() > 0.8 / math.sqrt(32)


def test_cosine_schedule_spans_exactly_the_whole_run():
    s = schedules.WarmupCosine(0.1, total_steps=1000)
    assert math.isclose(float(s(0)), 0.1, rel_tol=1e-6)
    assert math.isclose(float(s(500)), 0.05, rel_tol=1e-5)
    assert float(s(999)) > 0 and float(s(1000)) == pytest.approx(0.0, abs=1e-9)
    w = schedules.WarmupCosine(0.1, total_steps=1000, warmup_steps=100)
    assert float(w(0)) == pytest.approx(0.001) and float(w(99)) == pytest.approx(0.1)
    assert float(w(550)) == pytest.approx(0.05, rel=1e-5)


def test_train_step_applies_coupled_weight_decay_to_bn_and_keeps_predictor_lr_constant():
    keras.utils.set_random_seed(0)
    schedule = schedules.WarmupCosine(0.1, total_steps=4)
    simsiam = build_simsiam("resnet18", 2, 16, 16, weight_decay=0.5, learning_rate=schedule)
    bn = simsiam.encoder.get_layer("stem_bn")
    gamma_before = bn.gamma.numpy().copy()
    views = tf.random.stateless_uniform((2, 8, 16, 16, 3), (1, 2))
    simsiam.train_step((views[0], views[1]))
    assert not np.allclose(gamma_before, bn.gamma.numpy())  # BN gamma is decayed too
    assert float(simsiam.predictor_optimizer.learning_rate) == pytest.approx(0.1)
    for _ in range(3):
        simsiam.train_step((views[0], views[1]))
    assert float(schedule(simsiam.optimizer.iterations)) == pytest.approx(0.0, abs=1e-9)
    assert float(simsiam.predictor_optimizer.learning_rate) == pytest.approx(0.1)
    warm = build_simsiam("resnet18", 2, 16, 16, 0.0, schedules.WarmupCosine(0.2, 10, warmup_steps=5))
    assert float(warm.predictor_optimizer.learning_rate) == pytest.approx(0.2)  # not the warm-up's first value


def test_knn_on_a_toy_set_with_a_known_answer():
    train = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    train_y = np.array([0, 0, 1, 1])
    test = np.array([[1, 0.05], [0.05, 1], [0.2, 1]], np.float32)
    assert monitors.knn_accuracy(train, train_y, test, np.array([0, 1, 1]), k=2) == 1.0
    assert monitors.knn_accuracy(train, train_y, test, np.array([1, 0, 0]), k=2) == 0.0


def test_collapse_is_detected_on_constant_features():
    constant = tf.ones((16, 32))
    std = float(model.normalized_std(constant))
    assert std == pytest.approx(0.0, abs=1e-6)
    assert monitors.is_collapsed(std, 32, loss=-0.5)
    healthy = float(model.normalized_std(tf.random.normal((512, 32), seed=3)))
    assert healthy == pytest.approx(monitors.healthy_z_std(32), rel=0.1)
    assert not monitors.is_collapsed(healthy, 32, loss=-0.5)
    assert monitors.is_collapsed(healthy, 32, loss=-1.0)


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
