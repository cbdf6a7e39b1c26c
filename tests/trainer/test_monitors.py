"""Tests of simsiam_tfx.trainer.monitors."""

import numpy as np

from simsiam_tfx.trainer import monitors


def test_knn_on_a_toy_set_with_a_known_answer():
    train = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    train_y = np.array([0, 0, 1, 1])
    test = np.array([[1, 0.05], [0.05, 1], [0.2, 1]], np.float32)
    assert monitors.knn_accuracy(train, train_y, test, np.array([0, 1, 1]), k=2) == 1.0
    assert monitors.knn_accuracy(train, train_y, test, np.array([1, 0, 0]), k=2) == 0.0
