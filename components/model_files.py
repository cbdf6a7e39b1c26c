"""A SavedModel folder as files: its content fingerprint, and a copy TF Serving never takes for
complete before it is (saved_model.pb last). The baseline lookup and the Pusher both copy models."""
from __future__ import annotations

import hashlib
import os

from simsiam_tfx.components.model_record import PUSH_RECORD, SAVED_MODEL


def _gfile():
    import tensorflow as tf
    return tf.io.gfile


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


def save_keras_model(model, path: str, signatures=None) -> None:
    """Saves a Keras model as a SavedModel without the per-layer call traces. Keras reloads it from
    the layers' configs (every layer here is a stock Keras layer), and TF Serving, TFMA and
    `tf.saved_model.load` go through the signatures, so the traces were never read; tracing every
    layer made each save, and every later load, several times slower (docs/benchmarks.md)."""
    model.save(path, include_optimizer=False, save_traces=False, signatures=signatures)
