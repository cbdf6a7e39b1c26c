"""Reading and writing the run's small JSON records, on local disk or a remote store (gs://, s3://).

One reader, tolerant: a record that is missing, cut short or not a JSON object reads as None, so a
crafted or half-written file never breaks the stage that consults it (the caller decides what
"no record" means). One writer, atomic where the store allows: written aside and renamed into place.
"""
from __future__ import annotations

import json
import os
from typing import Any


def is_remote(path: str) -> bool:
    """A URL of a remote store (gs://bucket/...), rather than a local path."""
    return "://" in path


def read_json(path: str, expect: type = dict) -> Any:
    """The JSON value at `path` when it is an `expect` (an object unless told), or None when there
    is none (missing, undecodable, another kind of value)."""
    import tensorflow as tf
    try:
        with tf.io.gfile.GFile(path) as f:
            value = json.load(f)
    except (tf.errors.NotFoundError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, expect) else None


def write_json(path: str, value: Any, **dump_options) -> str:
    return write_text(path, json.dumps(value, **dump_options))


def write_text(path: str, text: str, overwrite: bool = True) -> str:
    """Written aside (a name of this process's own, so two writers never share it) and renamed into
    place: a reader never sees half a file (on a remote store the rename is a copy, still never a
    partial object at `path`). `overwrite=False`: raises tf.errors.AlreadyExistsError when `path`
    exists, and leaves it as it was."""
    import tensorflow as tf
    staged = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(staged, "w") as f:
        f.write(text)
    try:
        if overwrite and not is_remote(path):
            os.replace(staged, path)
        else:
            tf.io.gfile.rename(staged, path, overwrite=overwrite)
    except tf.errors.AlreadyExistsError:
        tf.io.gfile.remove(staged)
        raise
    return path
