"""Tests of simsiam_tfx.pipeline.run_lock: one writer per output folder, a killed run's lock and
MLMD executions recovered, and a run summary that always describes this run."""
import json
import os
import signal
import subprocess
import sys

import pytest

from simsiam_tfx.config import ConfigError
from simsiam_tfx.pipeline import cli, run_lock

HOLD = """
import sys, time
from simsiam_tfx.pipeline import run_lock
with run_lock.exclusive_output(sys.argv[1]):
    print("HOLDING", flush=True)
    time.sleep(120)
"""


def _holder(output_dir):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(output_dir)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "HOLDING"
    return process


@pytest.mark.fault
def test_a_second_run_on_the_same_output_stops_with_one_line_and_a_killed_run_frees_it(tmp_path, capsys):
    holder = _holder(tmp_path)
    try:
        assert cli.main(["run", "--output", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("simsiam-tfx: error: another simsiam-tfx run is using") and "\n" not in err
        assert f"pid {holder.pid}" in err
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel drops the lock with the process
        holder.wait()
    with run_lock.exclusive_output(str(tmp_path)):
        pass


@pytest.mark.fault
def test_executions_left_running_by_a_killed_run_are_marked_cancelled(tmp_path):
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2
    path = str(tmp_path / "metadata.sqlite")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    store = mlmd.MetadataStore(config)
    kind = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    states = [metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.COMPLETE]
    ids = store.put_executions([metadata_store_pb2.Execution(type_id=kind, last_known_state=s) for s in states])
    assert run_lock.cancel_abandoned_executions(path) == 1
    running, complete = store.get_executions_by_id(ids)
    assert running.last_known_state == metadata_store_pb2.Execution.CANCELED
    assert complete.last_known_state == metadata_store_pb2.Execution.COMPLETE
    assert run_lock.cancel_abandoned_executions(path) == 0


@pytest.mark.fault
def test_a_failed_run_leaves_a_summary_that_says_so(tmp_path, monkeypatch):
    (tmp_path / "run_summary.json").write_text(json.dumps({"evaluator": {"blessed": True}}))  # an older run's

    def fail(config):
        raise RuntimeError("disk full")
    monkeypatch.setattr("simsiam_tfx.pipeline.local_runner.run_local", fail)
    assert cli.main(["run", "--output", str(tmp_path)]) == 1
    summary = json.loads((tmp_path / "run_summary.json").read_text())
    assert summary == {"status": "failed", "error": "RuntimeError: disk full"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_output_under_a_read_only_parent_is_one_line(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    with pytest.raises(ConfigError, match="cannot write to the output directory"):
        with run_lock.exclusive_output(str(parent / "out")):
            pass


@pytest.mark.fault
def test_an_output_where_a_file_stands_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot write to the output directory"):
        with run_lock.exclusive_output(str(tmp_path / "file" / "out")):
            pass
