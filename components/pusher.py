"""The Pusher's executor: TFX's Pusher, but a push that never repeats itself and a version that
appears whole and working.

A model whose content is already the newest pushed version is not pushed again (a rerun with
unchanged inputs, or caching off, must not add an identical version). A version is staged under a
hidden name, loaded and asked one request (TFX's InfraValidator idea, in-process), then renamed
(local and POSIX-like filesystems); on object stores it is verified where it was staged and copied
with saved_model.pb last, as TF Serving expects. Each pushed version carries PUSH_RECORD (content
fingerprint, source artifact, time).
"""
from __future__ import annotations

import os
import time
from typing import Any

import tensorflow as tf
from tfx.components.pusher import executor as pusher_executor
from tfx.types import artifact_utils, standard_component_specs

from simsiam_tfx import contract, features
from simsiam_tfx.components.model_files import copy_tree, model_fingerprint
from simsiam_tfx.components.model_record import PUSH_RECORD, newest_pushed, push_directory
from simsiam_tfx.files import is_remote, write_json

_STAGING_PREFIX = ".staging-"


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
    gfile = tf.io.gfile
    final = os.path.join(base, str(version))
    atomic_rename = not is_remote(base)
    staging = os.path.join(base, f"{_STAGING_PREFIX}{version}")
    if gfile.exists(staging):
        gfile.rmtree(staging)
    gfile.makedirs(staging)
    write_json(os.path.join(staging, PUSH_RECORD), record, indent=1, sort_keys=True)
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
