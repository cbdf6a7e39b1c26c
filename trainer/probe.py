"""Trainer #2, LinearProbe: a linear classifier on the frozen pre-trained encoder.

The encoder is frozen and runs with BatchNorm in inference mode; its pooled features are
extracted once, and a multinomial logistic regression is solved on them exactly (L-BFGS, a
convex problem: the paper's large-LR SGD probe approximates the same optimum). The same probe
is fitted on a randomly initialised encoder of the same architecture, on the same splits, so
every run says whether pre-training beat the untrained baseline.
"""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
import tf_keras as keras
from sklearn.linear_model import LogisticRegression

from pipeline.config import PipelineConfig
from trainer import backbones, data, export, monitors, supervised

METRICS_FILE = "probe_metrics.json"
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


def probe_encoder(encoder: keras.Model, train_ds, eval_ds, num_classes: int, l2: float):
    """Fits the probe on `train_ds` features; returns (kernel, bias, eval accuracy, train accuracy)."""
    train_x, train_y = monitors.extract_features(encoder, train_ds)
    eval_x, eval_y = monitors.extract_features(encoder, eval_ds)
    kernel, bias = fit_linear_probe(train_x, train_y, num_classes, l2)
    return kernel, bias, accuracy(kernel, bias, eval_x, eval_y), accuracy(kernel, bias, train_x, train_y)


def build_classifier(encoder: keras.Model, kernel: np.ndarray, bias: np.ndarray) -> keras.Model:
    """Frozen encoder + linear layer -> {'probabilities', 'embedding'}."""
    encoder.trainable = False  # also puts its BatchNorm layers in inference mode
    images = keras.Input(encoder.input_shape[1:], name="image")
    embedding = encoder(images, training=False)
    linear = keras.layers.Dense(kernel.shape[1], name="linear")
    probabilities = keras.layers.Softmax(name="probabilities", dtype="float32")(linear(embedding))
    linear.set_weights([kernel, bias])
    return keras.Model(images, {"probabilities": probabilities, "embedding": embedding}, name="classifier")


def run_fn(fn_args) -> None:
    """TFX Trainer entry point. base_model: SimSiamPretrain's encoder; train: probe_train; eval: eval."""
    import tensorflow_transform as tft

    custom = fn_args.custom_config
    config = PipelineConfig.from_dict(custom["config"])
    num_classes, size = custom["num_classes"], config.data.image_size
    batch = config.probe.batch_size
    train_ds = data.labelled_images(fn_args.train_files, size, batch)
    eval_ds = data.labelled_images(fn_args.eval_files, size, batch)

    encoder = keras.models.load_model(fn_args.base_model, compile=False)
    kernel, bias, eval_acc, train_acc = probe_encoder(encoder, train_ds, eval_ds, num_classes, config.probe.l2)

    keras.utils.set_random_seed(RANDOM_INIT_SEED)
    random_encoder = backbones.build_encoder(config.pretrain.backbone, size, config.pretrain.width)
    _, _, random_acc, _ = probe_encoder(random_encoder, train_ds, eval_ds, num_classes, config.probe.l2)

    metrics = {"accuracy": eval_acc, "train_accuracy": train_acc, "random_init_accuracy": random_acc,
               "gain_over_random_init": eval_acc - random_acc, "l2": config.probe.l2}
    print(f"[probe] eval accuracy {eval_acc:.4f} (train {train_acc:.4f}); random-init encoder "
          f"{random_acc:.4f}; gain {eval_acc - random_acc:+.4f}", flush=True)
    if config.probe.supervised_epochs > 0:
        p = config.pretrain.resolved(size)
        reference = supervised.supervised_accuracy(
            fn_args.train_files, fn_args.eval_files, backbone=p.backbone, width=p.width, image_size=size,
            num_classes=num_classes, epochs=config.probe.supervised_epochs, batch_size=p.batch_size,
            augment_config=config.data.augment_preset(), seed=p.seed, weight_decay=p.weight_decay)
        metrics.update(supervised_accuracy=reference["accuracy"], supervised_train_accuracy=reference["train_accuracy"],
                       supervised_epochs=reference["epochs"], supervised_seconds=reference["seconds"])
        print(f"[probe] supervised-from-scratch reference {reference['accuracy']:.4f} "
              f"(train {reference['train_accuracy']:.4f})", flush=True)

    classifier = build_classifier(encoder, kernel, bias)
    export.save_serving_model(classifier, tft.TFTransformOutput(fn_args.transform_output), size,
                              fn_args.serving_model_dir, class_names=custom.get("class_names"))
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)
