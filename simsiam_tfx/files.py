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
    """Written aside and renamed into place: a reader never sees half a record (on a remote store
    the rename is a copy, still never a partial object at `path`)."""
    import tensorflow as tf
    staged = path + ".tmp"
    with tf.io.gfile.GFile(staged, "w") as f:
        json.dump(value, f, **dump_options)
    if is_remote(path):
        tf.io.gfile.rename(staged, path, overwrite=True)
    else:
        os.replace(staged, path)
    return path
