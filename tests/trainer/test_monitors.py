"""Tests of simsiam_tfx.trainer.monitors."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.trainer import monitors


def test_knn_on_a_toy_set_with_a_known_answer():
    train = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    train_y = np.array([0, 0, 1, 1])
    test = np.array([[1, 0.05], [0.05, 1], [0.2, 1]], np.float32)
    assert monitors.knn_accuracy(train, train_y, test, np.array([0, 1, 1]), k=2) == 1.0
    assert monitors.knn_accuracy(train, train_y, test, np.array([1, 0, 0]), k=2) == 0.0


def test_knn_votes_match_the_one_hot_formula_on_random_data(rng):
    train, test = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(50, 8)).astype(np.float32)
    train_y, test_y = rng.integers(0, 7, 300), rng.integers(0, 7, 50)
    t = train / np.linalg.norm(train, axis=1, keepdims=True)
    q = test / np.linalg.norm(test, axis=1, keepdims=True)
    sims = q @ t.T
    top = np.argsort(-sims, axis=1)[:, :20]
    votes = np.zeros((50, 7))
    for row in range(50):
        for j in top[row]:
            votes[row, train_y[j]] += np.exp(sims[row, j] / 0.1)
    expected = float(np.mean(votes.argmax(axis=1) == test_y))
    assert monitors.knn_accuracy(train, train_y, test, test_y, k=20, temperature=0.1, num_classes=7) == expected


@pytest.mark.fault
def test_knn_memory_does_not_grow_with_the_number_of_classes():
    """5,000 classes, k = 200, one 1,024-row chunk: a one-hot of every neighbour would be 4 GB."""
    import resource
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2048, 16)).astype(np.float32)
    test = rng.normal(size=(1024, 16)).astype(np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    monitors.knn_accuracy(train, rng.integers(0, 5000, 2048), test, rng.integers(0, 5000, 1024), k=200,
                          num_classes=5000)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 500, f"peak memory grew by {grown_mib:.0f} MiB"


@pytest.mark.fault
def test_unlabelled_examples_are_neither_neighbours_nor_queries():
    train = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 0.01]], np.float32)
    train_y = np.array([0, 0, 1, 1, -1])
    test = np.array([[1, 0.05], [0.05, 1], [1, 0]], np.float32)
    # With -1 as a class the first query's nearest neighbour would vote for "class -1".
    assert monitors.knn_accuracy(train, train_y, test, np.array([0, 1, -1]), k=1) == 1.0


def test_step_progress_runs_inside_fit_and_counts_every_step():
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    model.compile("sgd", "mse")
    progress = monitors.StepProgress(total_steps=6, batch_size=4, initial_step=0)
    x = np.zeros((8, 2), np.float32)
    model.fit(x, x[:, :1], batch_size=4, epochs=3, verbose=0, callbacks=[progress])
    assert progress.steps == 6 and progress.epoch == 3


def test_extract_features_with_a_progress_label_returns_the_same_features():
    encoder = keras.Sequential([keras.layers.Dense(3, input_shape=(2,))])
    ds = tf.data.Dataset.from_tensor_slices((np.ones((5, 2), np.float32), np.arange(5))).batch(2)
    plain, labels = monitors.extract_features(encoder, ds)
    labelled, _ = monitors.extract_features(encoder, ds, "features", total=5)
    np.testing.assert_array_equal(plain, labelled)
    np.testing.assert_array_equal(labels, np.arange(5))
