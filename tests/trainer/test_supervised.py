"""The supervised-from-scratch reference (trainer/supervised.py), on tiny data whose class is visible:
each class is one dominant colour channel, which the "mild" augmentation without its random
grayscale (crops, brightness and contrast only) keeps."""
import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from simsiam_tfx.components import preprocessing
from simsiam_tfx.trainer import supervised
from tests import data_factory

SIZE, CLASSES = 16, 3
KEYS = {"accuracy", "train_accuracy", "epochs", "steps", "steps_per_epoch", "batch_size", "peak_learning_rate",
        "weight_decay", "final_loss", "seconds", "images_per_second"}
COLOUR_KEEPING = dataclasses.replace(preprocessing.policy_config("mild"), grayscale_prob=0.0)
TINY = dict(backbone="resnet18", width=4, num_classes=CLASSES, epochs=4, batch_size=16,
            augment_config=COLOUR_KEEPING, base_lr=0.8)


def _coloured(n, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % CLASSES
    images = np.full((n, SIZE, SIZE, 3), 40.0)
    images[np.arange(n), :, :, labels] = 200.0
    return np.clip(images + rng.normal(0, 20, images.shape), 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("transformed")
    paths = {}
    for split, (n, seed) in {"train": (96, 0), "eval": (60, 1)}.items():
        paths[split] = str(root / f"{split}.tfrecord.gz")
        data_factory.write_transformed(paths[split], *_coloured(n, seed))
    return paths


@pytest.fixture(scope="module")
def from_files(files):
    return supervised.supervised_accuracy([files["train"]], [files["eval"]], image_size=SIZE, seed=0, **TINY)


def test_learns_from_transformed_files_and_reports_the_documented_keys(from_files):
    assert set(from_files) == KEYS
    assert from_files["accuracy"] >= 0.9 and from_files["train_accuracy"] >= 0.9  # chance: 1/3
    assert from_files["final_loss"] < 0.5 * math.log(CLASSES)
    assert (from_files["epochs"], from_files["steps_per_epoch"], from_files["steps"]) == (4, 6, 24)
    assert from_files["peak_learning_rate"] == pytest.approx(0.8 * 16 / 256)


def test_same_seed_reproduces_the_run_and_another_seed_changes_it(files, from_files):
    again = supervised.supervised_accuracy([files["train"]], [files["eval"]], image_size=SIZE, seed=0, **TINY)
    for key in ("accuracy", "train_accuracy", "final_loss"):
        assert again[key] == from_files[key], key
    other = supervised.supervised_accuracy([files["train"]], [files["eval"]], image_size=SIZE, seed=1,
                                           **{**TINY, "epochs": 1})
    first_epoch = supervised.supervised_accuracy([files["train"]], [files["eval"]], image_size=SIZE, seed=0,
                                                 **{**TINY, "epochs": 1})
    assert other["final_loss"] != first_epoch["final_loss"]


def test_in_memory_arrays_share_the_core():
    (xt, yt), (xe, ye) = _coloured(96, 0), _coloured(60, 1)
    # A preset by name, grayscale included: a grey view carries no class, yet most views do.
    result = supervised.supervised_accuracy_arrays(xt, yt, xe, ye, seed=0,
                                                   **{**TINY, "augment_config": preprocessing.policy_config("mild")})
    assert set(result) == KEYS and result["accuracy"] >= 0.9


def test_augmented_batches_are_seeded_fresh_per_batch_and_keep_labels_with_images():
    images, labels = _coloured(32, 0)
    examples = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))

    def take(seed, n=3):
        ds = supervised.augmented_batches(examples, 32, SIZE, 8, COLOUR_KEEPING, seed)
        return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]

    a, b, c = take(0), take(0), take(1)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(a[0][0], c[0][0])
    for x, y in a:
        assert x.shape == (8, SIZE, SIZE, 3) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
        np.testing.assert_array_equal(x.mean(axis=(1, 2)).argmax(axis=1), y)  # the colour still names the class
    # Not the unaugmented pixels: a view is a crop / jitter of its image.
    assert not any(np.allclose(x[0], images[i] / 255.0, atol=1e-3) for x, _ in a for i in range(32))
