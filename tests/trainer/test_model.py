"""Tests of simsiam_tfx.trainer.model."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.trainer import model, monitors, schedules
from simsiam_tfx.trainer.pretrain import build_simsiam


def test_train_step_applies_coupled_weight_decay_to_bn_and_keeps_predictor_lr_constant():
    keras.utils.set_random_seed(0)
    schedule = schedules.warmup_cosine(0.1, total_steps=4)
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
    warm = build_simsiam("resnet18", 2, 16, 16, 0.0, schedules.warmup_cosine(0.2, 10, warmup_steps=5))
    assert float(warm.predictor_optimizer.learning_rate) == pytest.approx(0.2)  # not the warm-up's first value


def test_collapse_is_detected_on_constant_features():
    constant = tf.ones((16, 32))
    std = float(model.normalized_std(constant))
    assert std == pytest.approx(0.0, abs=1e-6)
    assert monitors.is_collapsed(std, 32, loss=-0.5)
    healthy = float(model.normalized_std(tf.random.normal((512, 32), seed=3)))
    assert healthy == pytest.approx(monitors.healthy_z_std(32), rel=0.1)
    assert not monitors.is_collapsed(healthy, 32, loss=-0.5)
    assert monitors.is_collapsed(healthy, 32, loss=-1.0)
