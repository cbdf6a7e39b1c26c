"""The linear probe: a linear classifier on a frozen encoder (the TFX adapter is
components/linear_probe.py).

The encoder is frozen and runs with BatchNorm in inference mode; its pooled features are
extracted once, and a multinomial logistic regression is solved on them exactly (L-BFGS, a
convex problem: the paper's large-LR SGD probe approximates the same optimum). The same probe
is fitted on a randomly initialised encoder of the same architecture, on the same splits, so
every run says whether pre-training beat the untrained baseline.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tf_keras as keras
from sklearn.linear_model import LogisticRegression

from simsiam_tfx.features import EMBEDDING_KEY, HEAD_LAYER, PREDICTION_KEY
from simsiam_tfx.trainer import backbones, monitors

RANDOM_INIT_SEED = 12345

def fit_linear_probe(features: np.ndarray, labels: np.ndarray, num_classes: int, l2: float):
    """Softmax regression with penalty l2/2 * |W|^2 on the mean loss, on standardised features.

    Returns (kernel, bias) acting on the raw features (the standardisation is folded in) so the
    classifier is a single Dense layer on top of the encoder.
    """
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    c = 1.0 / (l2 * len(features)) if l2 > 0 else 1e12
    solver = LogisticRegression(C=c, max_iter=2000, tol=1e-6)
    solver.fit((features - mean) / std, labels)
    # Classes absent from the training labels keep a very negative bias: never predicted.
    kernel = np.zeros((features.shape[1], num_classes), np.float32)
    bias = np.full((num_classes,), -1e4, np.float32)
    w = solver.coef_.T / std[:, None]
    b = solver.intercept_ - (mean / std) @ solver.coef_.T
    if len(solver.classes_) == 2:  # sklearn's binary form: one column for the positive class
        w = np.concatenate([-w / 2, w / 2], axis=1)
        b = np.array([-b[0] / 2, b[0] / 2])
    kernel[:, solver.classes_] = w
    bias[solver.classes_] = b
    return kernel, bias


def accuracy(kernel: np.ndarray, bias: np.ndarray, features: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(features @ kernel + bias, axis=1) == labels))


class ProbeFit(NamedTuple):
    kernel: np.ndarray
    bias: np.ndarray
    eval_accuracy: float
    train_accuracy: float
    eval_labels: np.ndarray  # the labelled eval examples' classes (chance is measured on them)


def chance_accuracy(labels: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class: what a classifier must beat."""
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else 0.0


def probe_encoder(encoder: keras.Model, train_ds, eval_ds, num_classes: int, l2: float, name: str = "encoder",
                  sizes: tuple[int, int] | None = None) -> ProbeFit:
    """Fits the probe on `train_ds` features and measures it on `eval_ds`.
    Unlabelled examples (-1) are left out.

    `name` and `sizes` (examples in train_ds and eval_ds) label the feature extraction's progress bars."""
    sizes = sizes or (None, None)
    train_x, train_y = monitors.labelled(*monitors.extract_features(encoder, train_ds, f"{name} features, probe_train",
                                                                    sizes[0]))
    eval_x, eval_y = monitors.labelled(*monitors.extract_features(encoder, eval_ds, f"{name} features, eval", sizes[1]))
    kernel, bias = fit_linear_probe(train_x, train_y, num_classes, l2)
    return ProbeFit(kernel, bias, accuracy(kernel, bias, eval_x, eval_y), accuracy(kernel, bias, train_x, train_y),
                    eval_y)


def build_classifier(encoder: keras.Model, kernel: np.ndarray, bias: np.ndarray) -> keras.Model:
    """Frozen encoder + linear layer -> {'probabilities', 'embedding'}."""
    encoder.trainable = False  # also puts its BatchNorm layers in inference mode
    images = keras.Input(encoder.input_shape[1:], name="image")
    embedding = encoder(images, training=False)
    linear = keras.layers.Dense(kernel.shape[1], name=HEAD_LAYER)
    probabilities = keras.layers.Softmax(name=PREDICTION_KEY, dtype="float32")(linear(embedding))
    linear.set_weights([kernel, bias])
    return keras.Model(images, {PREDICTION_KEY: probabilities, EMBEDDING_KEY: embedding}, name="classifier")


def random_init_encoder(backbone: str, width: int, image_size: int) -> keras.Model:
    """The untrained baseline encoder: the same architecture, a fixed seed (the same every run)."""
    keras.utils.set_random_seed(RANDOM_INIT_SEED)
    return backbones.build_encoder(backbone, image_size, width)


def probe_with_baseline(encoder: keras.Model, train_ds, eval_ds, num_classes: int, l2: float, *,
                        backbone: str, width: int, image_size: int, sizes: tuple[int, int] | None = None):
    """Probes `encoder`, and a randomly initialised encoder of the same architecture on the same
    splits; returns (kernel, bias, metrics) with the gain of the first over the second."""
    fit = probe_encoder(encoder, train_ds, eval_ds, num_classes, l2, "SimSiam", sizes)
    random_encoder = random_init_encoder(backbone, width, image_size)
    random_acc = probe_encoder(random_encoder, train_ds, eval_ds, num_classes, l2, "random-init", sizes).eval_accuracy
    return fit.kernel, fit.bias, {
        "accuracy": fit.eval_accuracy, "train_accuracy": fit.train_accuracy, "random_init_accuracy": random_acc,
        "gain_over_random_init": fit.eval_accuracy - random_acc, "chance_accuracy": chance_accuracy(fit.eval_labels),
        "eval_labelled": len(fit.eval_labels), "l2": l2}
