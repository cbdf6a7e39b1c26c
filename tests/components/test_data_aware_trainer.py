"""Tests of simsiam_tfx.components.data_aware_trainer: the data plan's facts reach the run_fn, and a
GPU request that TensorFlow cannot serve stops the Trainer before any work."""
import json

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts
from tfx.utils import json_utils

from simsiam_tfx.components import data_aware_trainer, trainer_config
from simsiam_tfx.config import ConfigError, PipelineConfig


def examples(class_names=("circle", "square"), image_size=32):
    artifact = standard_artifacts.Examples()
    artifact.uri = "/data/ExampleGen/examples/1"
    if class_names is not None:
        artifact.set_string_custom_property("class_names", json.dumps(list(class_names)))
        artifact.set_int_custom_property("image_size", image_size)
    return artifact


def run_executor(monkeypatch, gpus=0, data=None):
    seen = {}
    monkeypatch.setattr(data_aware_trainer.trainer_executor.GenericExecutor, "Do",
                        lambda self, inputs, outputs, props: seen.update(inputs=inputs, props=props))
    monkeypatch.setattr(data_aware_trainer, "check_splits", lambda *args: None)  # no data here
    props = {"custom_config": trainer_config.custom_config_json(PipelineConfig(), gpus)}
    data_aware_trainer.Executor().Do({"examples": [standard_artifacts.Examples()],
                                      data_aware_trainer.DATA_EXAMPLES_KEY: [data or examples()]},
                                     {}, props)
    return seen


def test_the_run_fn_sees_the_class_names_ExampleGen_recorded(monkeypatch):
    seen = run_executor(monkeypatch)
    assert set(seen["inputs"]) == {"examples"}  # the extra input is not the Trainer's business
    settings = trainer_config.read(json_utils.loads(seen["props"]["custom_config"]))
    assert settings.class_names == ("circle", "square")


def test_examples_without_a_record_of_the_plan_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match="carry no class names"):
        run_executor(monkeypatch, data=examples(class_names=None))


def test_requested_gpus_that_tensorflow_does_not_see_stop_the_trainer_at_once(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    with pytest.raises(ConfigError, match=r"1 GPU\(s\) requested for this Trainer but TensorFlow sees 0"):
        run_executor(monkeypatch, gpus=1)
    run_executor(monkeypatch, gpus=0)  # no request, no check


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
        data_aware_trainer.check_splits(transformed(tmp_path, labels), list(labels), ["circle", "square"])


def test_usable_splits_pass_the_check(tmp_path):
    labels = {"pretrain": [-1] * 3, "probe_train": [0, 1, -1], "eval": [1, 0]}
    data_aware_trainer.check_splits(transformed(tmp_path, labels), list(labels), ["circle", "square"])


def test_the_retraining_decision_beside_the_encoder_becomes_mlmd_properties(tmp_path):
    from simsiam_tfx.components import model_record
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    model_record.write_json(str(tmp_path / "model" / "Format-Serving"), model_record.RETRAINING_FILE,
                          {"policy": "warm_start", "reason": "--warm-start: ... version 7", "from_version": 7})
    data_aware_trainer.record_retraining(model)
    assert model.get_string_custom_property("retraining_policy") == "warm_start"
    assert model.get_string_custom_property("retraining_reason") == "--warm-start: ... version 7"
    assert model.get_int_custom_property("warm_start_from_version") == 7
    untouched = standard_artifacts.Model()
    untouched.uri = str(tmp_path / "probe")  # no decision file: nothing recorded
    data_aware_trainer.record_retraining(untouched)
    assert not untouched.has_custom_property("retraining_policy")
