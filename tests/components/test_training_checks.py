"""Tests of simsiam_tfx.components.training_checks: degenerate splits stop before training. (A GPU
request TensorFlow cannot serve: test_data_aware_trainer.py, through the executor.)"""
import json

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from simsiam_tfx.components import training_checks
from simsiam_tfx.config import ConfigError


def transformed(tmp_path, labels_per_split):
    """Transform-shaped output: GZIP TFRecords of examples with a label, one folder per split."""
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp_path / "transformed")
    artifact.split_names = json.dumps(list(labels_per_split))
    for split, labels in labels_per_split.items():
        folder = tmp_path / "transformed" / f"Split-{split}"
        folder.mkdir(parents=True)
        with tf.io.TFRecordWriter(str(folder / "data.gz"), options="GZIP") as writer:
            for label in labels:
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))})).SerializeToString())
    return artifact


@pytest.mark.fault
@pytest.mark.parametrize("labels, message", [
    ({"pretrain": [-1], "probe_train": [0, 1], "eval": [0, 1]}, "the pretrain split holds 1 image"),
    # The observed case: a small class whose images all hashed into eval.
    ({"pretrain": [-1] * 4, "probe_train": [0, 0, -1], "eval": [0, 1]},
     r"1 class\(es\) have no labelled example in probe_train: \['square'\]"),
    ({"pretrain": [-1] * 4, "probe_train": [0, 1], "eval": [1, 1]}, r"no labelled example in eval: \['circle'\]"),
])
def test_degenerate_splits_stop_before_training_with_one_line(tmp_path, labels, message):
    with pytest.raises(ConfigError, match=message):
        training_checks.check_splits(transformed(tmp_path, labels), list(labels), ["circle", "square"])


def test_usable_splits_pass_the_check(tmp_path):
    labels = {"pretrain": [-1] * 3, "probe_train": [0, 1, -1], "eval": [1, 0]}
    training_checks.check_splits(transformed(tmp_path, labels), list(labels), ["circle", "square"])
