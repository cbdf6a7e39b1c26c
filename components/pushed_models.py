"""The served model's versions: the no-regression baseline, and a push that never repeats itself.

TFX's LatestBlessedModelResolver compiles to a `resolver` executor, which open-source Kubeflow
Pipelines does not run (kubeflow/pipelines backend/src/v2/compiler/argocompiler/dag.go: "resolver
executors not implemented"). What the Evaluator must compare with is, in the end, the model being
served: the newest version under the Pusher's destination. So one portable mechanism serves every
runner (LocalDagRunner, KFP, Vertex), a plain container step reading the push destination:

- `PushedBaseline` copies the newest pushed version into its output Model artifact, or leaves it
  empty before the first push, or when the candidate's classes differ from the served version's
  (accuracies over different classes do not compare; components/model_gate.py refuses or allows
  the change). It is never cached (pipeline.UNCACHED_NODES): the push destination changes outside
  the pipeline's inputs.
- `EvaluatorExecutor`: TFX's Evaluator, told "no baseline" when that artifact is empty (the change
  threshold is then rubber-stamped by TFX, the accuracy floor still applies).
- `PusherExecutor`: TFX's Pusher, but a model whose content is already the newest pushed version is
  not pushed again (a rerun with unchanged inputs, or caching off, must not add an identical
  version), and a version appears whole and working: staged under a hidden name, loaded and asked
  one request (TFX's InfraValidator idea, in-process), then renamed (local and POSIX-like
  filesystems); on object stores, verified where it was staged and copied with saved_model.pb last,
  as TF Serving expects.
Each pushed version carries PUSH_RECORD (content fingerprint, source artifact, time).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import path_utils, proto_utils

from simsiam_tfx import contract, features
from simsiam_tfx.components import model_gate
from simsiam_tfx.components.model_record import PUSH_RECORD, SAVED_MODEL, newest_pushed
from simsiam_tfx.files import is_remote

_STAGING_PREFIX = ".staging-"


def _gfile():
    import tensorflow as tf
    return tf.io.gfile


def push_directory(push_destination: str | pusher_pb2.PushDestination) -> str:
    """The base directory of a filesystem PushDestination (proto or its JSON text)."""
    if isinstance(push_destination, str):
        push_destination = proto_utils.json_to_proto(push_destination, pusher_pb2.PushDestination())
    return push_destination.filesystem.base_directory


def _files(root: str) -> list[str]:
    """Relative paths of every file under root, sorted."""
    gfile = _gfile()
    paths = []
    for folder, _, names in gfile.walk(root):
        paths += [os.path.relpath(os.path.join(folder, n), root) for n in names]
    return sorted(paths)


def model_fingerprint(model_dir: str) -> str:
    """sha256 over the SavedModel's file names and contents (the push record is not the model)."""
    gfile = _gfile()
    digest = hashlib.sha256()
    for relative in _files(model_dir):
        if relative == PUSH_RECORD:
            continue
        digest.update(relative.encode() + b"\0")
        with gfile.GFile(os.path.join(model_dir, relative), "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def copy_tree(source: str, destination: str) -> None:
    """Copies every file; saved_model.pb last (the file TF Serving takes as "model complete")."""
    gfile = _gfile()
    files = sorted(_files(source), key=lambda p: p == SAVED_MODEL)
    for relative in files:
        target = os.path.join(destination, relative)
        gfile.makedirs(os.path.dirname(target))
        gfile.copy(os.path.join(source, relative), target, overwrite=True)


# ---- the baseline lookup --------------------------------------------------------------------
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
            _gfile().makedirs(baseline.uri)
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
                _gfile().makedirs(baseline.uri)
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
    return _gfile().exists(os.path.join(path_utils.serving_model_path(model.uri), SAVED_MODEL))


class EvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator; an empty baseline (nothing pushed yet) counts as no baseline."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        key = standard_component_specs.BASELINE_MODEL_KEY
        if input_dict.get(key) and not has_model(artifact_utils.get_single_instance(input_dict[key])):
            input_dict = {k: v for k, v in input_dict.items() if k != key}
        super().Do(input_dict, output_dict, exec_properties)


# ---- the push -------------------------------------------------------------------------------
class PusherExecutor(pusher_executor.Executor):
    """Pushes a blessed model as a new version unless that content is already the newest version."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            print("[push] not blessed: nothing pushed", flush=True)
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        base = push_directory(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY])
        fingerprint = model_fingerprint(model_path)
        newest = newest_pushed(base)
        if newest is not None and newest.record.get("fingerprint") == fingerprint:
            print(f"[push] this model is already the served version {newest.version}: nothing pushed", flush=True)
            self._MarkNotPushed(model_push)
            model_push.set_int_custom_property(contract.ALREADY_PUSHED_VERSION, newest.version)
            return
        version = max(int(time.time()), newest.version + 1 if newest else 0)
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        record = {"fingerprint": fingerprint, "model_uri": model.uri, "pushed_at": int(time.time())}
        destination = publish(model_path, base, version, record)
        print(f"[push] pushed version {version} to {destination}", flush=True)
        self._MarkPushed(model_push, pushed_destination=destination, pushed_version=str(version))
        model_push.set_string_custom_property(contract.FINGERPRINT, fingerprint)


class PushRefused(RuntimeError):
    """The staged model did not load or answer a request: nothing was published."""


def answers_one_request(model_dir: str) -> None:
    """Loads the SavedModel and sends one image through each serving signature; raises
    PushRefused with the reason when it cannot (what a model server would meet first)."""
    import numpy as np
    import tensorflow as tf
    try:
        model = tf.saved_model.load(model_dir)
        image = tf.io.encode_png(np.full((8, 8, 3), 128, np.uint8))
        example = features.to_example(image.numpy(), features.UNLABELLED)
        answers = [model.signatures["serve_image_bytes"](image_bytes=tf.stack([image])),
                   model.signatures["serving_default"](examples=tf.constant([example]))]
        for answer in answers:
            total = float(tf.reduce_sum(answer[features.PREDICTION_KEY]))
            if not np.isclose(total, 1.0, atol=1e-3):
                raise ValueError(f"probabilities of one image sum to {total}")
    except Exception as error:  # whatever fails here would fail in the model server
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PushRefused(f"the model in {model_dir} does not answer a request ({type(error).__name__}: "
                          f"{reason[:300]}): nothing pushed") from error


def publish(model_path: str, base: str, version: int, record: dict[str, Any], verify=None) -> str:
    """Copies the model to base/version whole and verified: staged, `verify`-ed, then renamed where
    renaming a folder is atomic (local disks); on object stores verified in the staging copy and
    copied in place with saved_model.pb last. A model that fails `verify` leaves nothing behind."""
    gfile = _gfile()
    final = os.path.join(base, str(version))
    atomic_rename = not is_remote(base)
    staging = os.path.join(base, f"{_STAGING_PREFIX}{version}")
    if gfile.exists(staging):
        gfile.rmtree(staging)
    gfile.makedirs(staging)
    with gfile.GFile(os.path.join(staging, PUSH_RECORD), "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    copy_tree(model_path, staging)
    try:
        (verify or answers_one_request)(staging)
    except Exception:
        gfile.rmtree(staging)
        raise
    if atomic_rename:
        os.rename(staging, final)
    else:
        gfile.makedirs(final)
        copy_tree(staging, final)
        gfile.rmtree(staging)
    return final
