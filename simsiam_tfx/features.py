"""The data contract every layer shares: split names, feature keys, and the one tf.train.Example.

ExampleGen writes `{image: encoded bytes, label: int64}`; Transform keeps the keys and replaces the
image by a serialized uint8 (S, S, 3) tensor (see components/preprocessing.py); the served model
answers under PREDICTION_KEY.
"""
from __future__ import annotations

# The three fixed splits every data source is cut into. Pre-training sees only `pretrain`; the
# linear probe trains on `probe_train`; `eval` is used by nothing but the final measurements.
SPLITS = ("pretrain", "probe_train", "eval")

IMAGE_KEY = "image"
LABEL_KEY = "label"
UNLABELLED = -1  # the label of every pre-training example, and of images without a class

PREDICTION_KEY = "probabilities"  # the served model's class probabilities (read by the Evaluator)
EMBEDDING_KEY = "embedding"  # the served model's encoder output
HEAD_LAYER = "linear"  # the classifier's linear head (trainer/probe.py builds it, serving reads its size)


def to_example(image: bytes, label: int) -> bytes:
    """One serialized tf.train.Example{image, label}."""
    import tensorflow as tf
    return tf.train.Example(features=tf.train.Features(feature={
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    })).SerializeToString()


def to_transformed_example(image, label: int) -> bytes:
    """A uint8 (S, S, 3) image and its label in Transform's output format."""
    import tensorflow as tf
    return to_example(tf.io.serialize_tensor(tf.constant(image, tf.uint8)).numpy(), label)
