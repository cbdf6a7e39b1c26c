"""What a trained model carries of what produced it, and the served versions on disk.

`assets.extra/` is the SavedModel folder TF Serving leaves alone, and the Pusher copies every file
of a model, so each pushed version carries TRAINING_RECORD (written by LinearProbe: the encoder it
was probed on, the retraining decision, the data, the probe's numbers; read by the gate, warm
start and `simsiam-tfx served`), and each pre-trained encoder its RETRAINING_FILE
(components/warm_start.py).

A served version is a numeric folder under the push destination holding saved_model.pb (TF
Serving's layout) and PUSH_RECORD (components/pusher.py writes it).
"""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Optional

from simsiam_tfx import contract, files

if TYPE_CHECKING:
    from tfx.proto import pusher_pb2

PUSH_RECORD = contract.PUSH_RECORD_FILE
SAVED_MODEL = contract.SAVED_MODEL_FILE
EXTRA_DIR = "assets.extra"
TRAINING_RECORD = contract.MODEL_RECORD_FILE  # in the classifier (and so in every pushed version)
RETRAINING_FILE = contract.RETRAINING_FILE  # beside the pre-trained encoder


def write_json(model_dir: str, name: str, value: dict[str, Any]) -> str:
    import tensorflow as tf
    folder = os.path.join(model_dir, EXTRA_DIR)
    tf.io.gfile.makedirs(folder)
    return files.write_json(os.path.join(folder, name), value, indent=1, sort_keys=True, ensure_ascii=False)


def training_record(model_dir: str) -> dict[str, Any] | None:
    """What a classifier (a LinearProbe model or a pushed version) says produced it."""
    return files.read_json(os.path.join(model_dir, EXTRA_DIR, TRAINING_RECORD))


def retraining_of(encoder_dir: str) -> dict[str, Any] | None:
    return files.read_json(os.path.join(encoder_dir, EXTRA_DIR, RETRAINING_FILE))


@dataclasses.dataclass(frozen=True)
class PushedVersion:
    version: int
    path: str
    record: dict[str, Any]


def pushed_versions(base_directory: str) -> list[PushedVersion]:
    """Complete versions (numeric folder holding saved_model.pb), oldest first."""
    import tensorflow as tf
    gfile = tf.io.gfile
    if not gfile.isdir(base_directory):
        return []
    found = []
    for name in gfile.listdir(base_directory):
        name = name.rstrip("/")
        path = os.path.join(base_directory, name)
        if not name.isdigit() or not gfile.exists(os.path.join(path, SAVED_MODEL)):
            continue
        record_path = os.path.join(path, PUSH_RECORD)
        record = files.read_json(record_path) or {}  # a corrupt record is no record
        found.append(PushedVersion(int(name), path, record))
    return sorted(found, key=lambda v: v.version)


def newest_pushed(base_directory: str) -> Optional[PushedVersion]:
    versions = pushed_versions(base_directory)
    return versions[-1] if versions else None


def push_directory(push_destination: str | pusher_pb2.PushDestination) -> str:
    """The base directory of a filesystem PushDestination (proto or its JSON text): where the
    served versions are."""
    from tfx.proto import pusher_pb2
    from tfx.utils import proto_utils
    if isinstance(push_destination, str):
        push_destination = proto_utils.json_to_proto(push_destination, pusher_pb2.PushDestination())
    return push_destination.filesystem.base_directory
