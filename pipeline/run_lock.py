"""One writer per output folder, and what a killed run left behind.

A local run holds an exclusive lock on `<output>/.simsiam-tfx.lock` for its whole length: a second
run on the same --output stops at once with one line naming the first, instead of sharing its
checkpoints, MLMD store and run summary. The lock is the kernel's (flock), so a run killed with
SIGKILL releases it with its process; executions that run left RUNNING in MLMD are then marked
CANCELED by the next run, which is the only writer and therefore knows no one else is running them.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from typing import Iterator

from simsiam_tfx import contract
from simsiam_tfx.config import ConfigError

LOCK_FILE = ".simsiam-tfx.lock"


@contextlib.contextmanager
def exclusive_output(output_dir: str) -> Iterator[None]:
    """Holds the output folder's lock; raises ConfigError at once if another run holds it."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        handle = open(os.path.join(output_dir, LOCK_FILE), "a+")
    except OSError as e:
        raise ConfigError(f"cannot write to the output directory {output_dir}: {e.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "{}"
            raise ConfigError(f"another simsiam-tfx run is using {output_dir} ({_describe(holder)}); wait for it "
                              f"to finish or choose another --output") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"pid {info['pid']}, started {info['started']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def cancel_abandoned_executions(metadata_path: str) -> int:
    """Marks executions left NEW or RUNNING in the MLMD store as CANCELED; call it only while holding
    the lock (then no other run can be executing them). Returns how many were marked."""
    if not os.path.exists(metadata_path):
        return 0
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = mlmd.MetadataStore(config)
    unfinished = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)
    abandoned = [e for e in store.get_executions() if e.last_known_state in unfinished]
    for execution in abandoned:
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
        execution.custom_properties[contract.RUN_NOTE].string_value = "abandoned: its run was killed"
    if abandoned:
        store.put_executions(abandoned)
    return len(abandoned)
