"""Supervised-from-scratch reference: SimSiam's encoder + a linear head, trained end to end on labels.

The baseline the SimSiam linear probe is read against, next to the random-init probe: the same
architecture (`backbones.build_encoder`), trained with labels on the probe-training split and
measured on the eval split. Recipe: one augmented view per image (`augment.augment_batch`, on whole
batches, stateless seeded ops), SGD with momentum and a cosine schedule, lr = base_lr x batch / 256,
plain cross-entropy (no label smoothing), weight decay added to the gradient of every weight as in
SimSiam's own step. BatchNorm is in training mode while training and in inference mode (moving
statistics) for every accuracy reported.

Two entry points share one core: `supervised_accuracy` reads Transform's output TFRecords (the
Trainer's inputs); `supervised_accuracy_arrays` takes in-memory uint8 arrays (benchmarks). A fixed
`seed` fixes the initial weights, the shuffling and every augmentation draw. No TFX imports.
"""
from __future__ import annotations

import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.trainer import augment, backbones, data, schedules


def build_classifier(backbone: str, image_size: int, width: int, num_classes: int) -> keras.Model:
    """Images in [0, 1] (B, S, S, 3) -> logits (B, num_classes): the encoder and one Dense layer."""
    encoder = backbones.build_encoder(backbone, image_size, width)
    images = keras.Input((image_size, image_size, 3), name="image")
    logits = keras.layers.Dense(num_classes, name="linear", dtype="float32")(encoder(images))
    return keras.Model(images, logits, name="supervised")


def augmented_batches(examples: tf.data.Dataset, num_examples: int, image_size: int, batch_size: int,
                      config: augment.AugmentConfig, seed: int) -> tf.data.Dataset:
    """(uint8 (S, S, 3) image, label) examples -> endless, reshuffled every epoch, batches of
    (one augmented float32 view, int64 label); see `data.augmented_batches`."""
    def view(batch, batch_seed):
        images, labels = batch
        images = data.to_float(tf.ensure_shape(images, (None, image_size, image_size, 3)))
        return augment.augment_batch(images, batch_seed, config, image_size), tf.cast(labels, tf.int64)
    return data.augmented_batches(examples, num_examples, image_size, batch_size, seed, view)


def evaluate(model: keras.Model, examples: tf.data.Dataset, image_size: int, batch_size: int) -> float:
    """Top-1 accuracy with BatchNorm in inference mode, on (uint8 image, label) examples."""
    predict = tf.function(lambda x: tf.argmax(model(x, training=False), axis=-1),
                          input_signature=[tf.TensorSpec((None, image_size, image_size, 3), tf.float32)])
    correct = total = 0
    for images, labels in examples.batch(batch_size).prefetch(tf.data.AUTOTUNE):
        predicted = predict(data.to_float(images)).numpy()
        correct += int(np.sum(predicted == labels.numpy().reshape(-1)))
        total += len(predicted)
    if total == 0:
        raise ValueError("no examples to evaluate")
    return correct / total


def train_supervised(train_examples: tf.data.Dataset, num_train: int, *, backbone: str, width: int,
                     image_size: int, num_classes: int, epochs: int, batch_size: int,
                     augment_config: augment.AugmentConfig, seed: int = 0, base_lr: float = 0.1,
                     weight_decay: float = 5e-4, momentum: float = 0.9, warmup_epochs: int = 0,
                     verbose: bool = False) -> tuple[keras.Model, dict]:
    """The shared core: trains a classifier on (uint8 image, label) examples.

    Returns (model, metrics); metrics has epochs, steps, steps_per_epoch, batch_size,
    peak_learning_rate, weight_decay, final_loss (mean training loss of the last epoch, on
    augmented views), seconds (training only) and images_per_second.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if num_train < 2:
        raise ValueError(f"need at least 2 training examples (BatchNorm needs a batch), got {num_train}")
    batch_size = min(batch_size, num_train)
    steps_per_epoch = max(1, num_train // batch_size)
    peak_lr = base_lr * batch_size / 256
    schedule = schedules.warmup_cosine(peak_lr, epochs * steps_per_epoch, warmup_epochs * steps_per_epoch)

    keras.utils.set_random_seed(seed)  # initial weights; the data stream has its own seeds
    model = build_classifier(backbone, image_size, width, num_classes)
    optimizer = keras.optimizers.SGD(schedule, momentum=momentum)
    train_step = _train_step(model, optimizer, weight_decay, batch_size, image_size)
    batches = iter(augmented_batches(train_examples, num_train, image_size, batch_size, augment_config, seed))
    start = time.perf_counter()
    epoch_loss = 0.0
    for epoch in range(epochs):
        losses = [train_step(*next(batches)) for _ in range(steps_per_epoch)]
        epoch_loss = float(tf.reduce_mean(tf.stack(losses)))
        if verbose:
            print(f"[supervised] epoch {epoch + 1}/{epochs}: loss={epoch_loss:.4f} "
                  f"lr={float(schedule(optimizer.iterations)):.4g}", flush=True)
    seconds = time.perf_counter() - start
    return model, {
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "peak_learning_rate": peak_lr,
        "weight_decay": weight_decay,
        "final_loss": epoch_loss,
        "seconds": seconds,
        "images_per_second": epochs * steps_per_epoch * batch_size / max(seconds, 1e-9),
    }


def _train_step(model: keras.Model, optimizer, weight_decay: float, batch_size: int, image_size: int):
    """One cross-entropy step, compiled for the fixed batch shape."""
    variables = model.trainable_variables
    optimizer.build(variables)

    @tf.function(input_signature=[tf.TensorSpec((batch_size, image_size, image_size, 3), tf.float32),
                                  tf.TensorSpec((batch_size,), tf.int64)])
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, variables)
        # PyTorch-style coupled weight decay on every weight, BatchNorm included (as SimSiam's step).
        grads = [g + weight_decay * v for g, v in zip(grads, variables)]
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return train_step


def _run(train_examples, num_train, eval_examples, image_size, batch_size, **kwargs) -> dict:
    model, metrics = train_supervised(train_examples, num_train, image_size=image_size,
                                      batch_size=batch_size, **kwargs)
    accuracy = evaluate(model, eval_examples, image_size, batch_size)
    train_accuracy = evaluate(model, train_examples, image_size, batch_size)
    return {"accuracy": accuracy, "train_accuracy": train_accuracy, **metrics}


def supervised_accuracy(train_files: list[str], eval_files: list[str], *, backbone: str, width: int,
                        image_size: int, num_classes: int, epochs: int, batch_size: int,
                        augment_config: augment.AugmentConfig, seed: int = 0, base_lr: float = 0.1,
                        weight_decay: float = 5e-4, momentum: float = 0.9, warmup_epochs: int = 0,
                        verbose: bool = False) -> dict:
    """Trains from scratch on `train_files`, measures on `eval_files` (Transform-format TFRecords).

    Returns {"accuracy" (eval split), "train_accuracy" (train split, un-augmented), "epochs",
    "steps", "steps_per_epoch", "batch_size", "peak_learning_rate", "weight_decay", "final_loss",
    "seconds", "images_per_second"}. Both accuracies use BatchNorm's moving statistics.
    """
    train = data.uint8_images(train_files, image_size, with_labels=True)
    return _run(train, data.count_examples(train_files), data.uint8_images(eval_files, image_size, with_labels=True),
                image_size,
                batch_size, backbone=backbone, width=width, num_classes=num_classes, epochs=epochs,
                augment_config=augment_config, seed=seed, base_lr=base_lr, weight_decay=weight_decay,
                momentum=momentum, warmup_epochs=warmup_epochs, verbose=verbose)


def supervised_accuracy_arrays(train_images: np.ndarray, train_labels: np.ndarray, eval_images: np.ndarray,
                               eval_labels: np.ndarray, *, backbone: str, width: int, num_classes: int,
                               epochs: int, batch_size: int, augment_config: augment.AugmentConfig, seed: int = 0,
                               base_lr: float = 0.1, weight_decay: float = 5e-4, momentum: float = 0.9,
                               warmup_epochs: int = 0, verbose: bool = False) -> dict:
    """As `supervised_accuracy`, on in-memory uint8 (N, S, S, 3) images and integer labels."""
    image_size = int(train_images.shape[1])

    def examples(images, labels):
        return tf.data.Dataset.from_tensor_slices((np.asarray(images, np.uint8), np.asarray(labels, np.int64)))
    return _run(examples(train_images, train_labels), len(train_images), examples(eval_images, eval_labels),
                image_size, batch_size, backbone=backbone, width=width, num_classes=num_classes, epochs=epochs,
                augment_config=augment_config, seed=seed, base_lr=base_lr, weight_decay=weight_decay,
                momentum=momentum, warmup_epochs=warmup_epochs, verbose=verbose)
