"""The record a trained model carries of what produced it, inside its SavedModel.

`assets.extra/` is the SavedModel folder TF Serving leaves alone, and the Pusher copies every file
of a model, so each pushed version carries TRAINING_RECORD (written by LinearProbe: the encoder it
was probed on, the retraining decision, the data, the probe's numbers; read by the gate, warm
start and `simsiam-tfx served`), and each pre-trained encoder its RETRAINING_FILE
(components/warm_start.py).
"""
from __future__ import annotations

import json
import os
from typing import Any

EXTRA_DIR = "assets.extra"
TRAINING_RECORD = "simsiam_tfx_record.json"  # in the classifier (and so in every pushed version)
RETRAINING_FILE = "retraining.json"  # beside the pre-trained encoder


def _read_json(path: str) -> dict[str, Any] | None:
    import tensorflow as tf
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def write_json(model_dir: str, name: str, value: dict[str, Any]) -> str:
    import tensorflow as tf
    folder = os.path.join(model_dir, EXTRA_DIR)
    tf.io.gfile.makedirs(folder)
    path = os.path.join(folder, name)
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True, ensure_ascii=False)
    return path


def training_record(model_dir: str) -> dict[str, Any] | None:
    """What a classifier (a LinearProbe model or a pushed version) says produced it."""
    return _read_json(os.path.join(model_dir, EXTRA_DIR, TRAINING_RECORD))


def retraining_of(encoder_dir: str) -> dict[str, Any] | None:
    return _read_json(os.path.join(encoder_dir, EXTRA_DIR, RETRAINING_FILE))
