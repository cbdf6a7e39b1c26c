"""PushedBaseline: the served model as the Evaluator's baseline, looked up by a plain container step.

TFX's LatestBlessedModelResolver compiles to a `resolver` executor, which open-source Kubeflow
Pipelines does not run (kubeflow/pipelines backend/src/v2/compiler/argocompiler/dag.go: "resolver
executors not implemented"). What the Evaluator must compare with is, in the end, the model being
served: the newest version under the Pusher's destination. So one portable mechanism serves every
runner (LocalDagRunner, KFP, Vertex): this step copies the newest pushed version into its output
Model artifact, or leaves it empty (`has_model` is False) before the first push, or when the
candidate's classes differ from the served version's (accuracies over different classes do not
compare; components/model_gate.py refuses or allows the change). It is never cached
(pipeline/runner_duties.py): the push destination changes outside the pipeline's inputs.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import path_utils

from simsiam_tfx import contract
from simsiam_tfx.components import model_gate
from simsiam_tfx.components.model_files import copy_tree
from simsiam_tfx.components.model_record import SAVED_MODEL, newest_pushed, push_directory


class PushedBaselineSpec(ComponentSpec):
    PARAMETERS = {"push_destination": ExecutionParameter(type=pusher_pb2.PushDestination)}
    INPUTS = {"model": ChannelParameter(type=standard_artifacts.Model)}  # the candidate: its classes
    OUTPUTS = {"baseline_model": ChannelParameter(type=standard_artifacts.Model)}


class PushedBaselineExecutor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        baseline = artifact_utils.get_single_instance(output_dict["baseline_model"])
        newest = newest_pushed(push_directory(exec_properties["push_destination"]))
        if newest is None:
            print("[baseline] nothing pushed yet: the Evaluator applies the accuracy floor only", flush=True)
            baseline.set_int_custom_property(contract.PUSHED_VERSION, 0)
            tf.io.gfile.makedirs(baseline.uri)
            return
        served_names = (model_gate.model_facts(newest.path) or {}).get("class_names")
        candidate_model = artifact_utils.get_single_instance(input_dict["model"])
        candidate = model_gate.model_facts(path_utils.serving_model_dir(candidate_model.uri)) or {}
        if served_names is not None:
            baseline.set_string_custom_property(model_gate.SERVED_CLASS_NAMES, json.dumps(served_names))
            if candidate.get("class_names") is not None and candidate["class_names"] != served_names:
                # Accuracy over other classes is no comparison; the gate decides (model_gate.py).
                print(f"[baseline] the candidate's classes differ from pushed version {newest.version}'s: "
                      f"no accuracy comparison", flush=True)
                baseline.set_int_custom_property(contract.PUSHED_VERSION, newest.version)
                baseline.set_int_custom_property(model_gate.LABEL_SPACE_CHANGED, 1)
                tf.io.gfile.makedirs(baseline.uri)
                return
        copy_tree(newest.path, path_utils.serving_model_dir(baseline.uri))
        baseline.set_int_custom_property(contract.PUSHED_VERSION, newest.version)
        baseline.set_string_custom_property(contract.PUSHED_PATH, newest.path)
        print(f"[baseline] comparing with pushed version {newest.version} ({newest.path})", flush=True)


class PushedBaseline(base_component.BaseComponent):
    """The newest pushed model as a Model artifact (empty before the first push)."""
    SPEC_CLASS = PushedBaselineSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(PushedBaselineExecutor)

    def __init__(self, model: types.BaseChannel, push_destination: pusher_pb2.PushDestination):
        super().__init__(spec=PushedBaselineSpec(
            model=model, push_destination=push_destination,
            baseline_model=types.Channel(type=standard_artifacts.Model)))


def has_model(model: types.Artifact) -> bool:
    return tf.io.gfile.exists(os.path.join(path_utils.serving_model_path(model.uri), SAVED_MODEL))
