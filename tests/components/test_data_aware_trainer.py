"""Tests of simsiam_tfx.components.data_aware_trainer: the data plan's facts reach the run_fn, and a
GPU request that TensorFlow cannot serve stops the Trainer before any work."""
import json

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts
from tfx.utils import json_utils

from simsiam_tfx.components import data_aware_trainer, trainer_config, training_checks
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
    monkeypatch.setattr(training_checks, "check_splits", lambda *args: None)  # no data here
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
