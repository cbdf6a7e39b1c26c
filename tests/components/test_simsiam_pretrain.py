"""Tests of simsiam_tfx.components.simsiam_pretrain: two CPU worker processes on loopback pre-train one
model with MultiWorkerMirroredStrategy through the Trainer's own entry point (`run_fn`), and only the
chief writes the TFX outputs."""
import json
import math
import os
import socket
import subprocess
import sys
import time

import pytest

from simsiam_tfx import contract
from simsiam_tfx.components import preprocessing
from simsiam_tfx.trainer import data as trainer_data
from tests import data_factory

# One worker: run_fn with a stand-in for TFX's FnArgs. argv: data file, output root, kNN file, Transform graph.
SCRIPT = """
import os, sys, types
from simsiam_tfx.components import simsiam_pretrain, trainer_config
from simsiam_tfx.config import PipelineConfig
config = PipelineConfig()
config.data.image_size = 16
p = config.pretrain
# kNN on: the chief evaluates it alone, which must not leave the other worker waiting in an all-reduce,
# after epoch 2 only (its cadence): every worker skips epoch 1's encoder snapshot together.
p.epochs, p.width, p.batch_size, p.knn_k, p.knn_every = 2, 2, 16, 5, 2
p.view_size = 8  # the views the test's Transform graph draws
trainer_dir = os.path.join(sys.argv[2], "SimSiamPretrain")
serving_model_dir = os.path.join(trainer_dir, "model", "7", "Format-Serving")
simsiam_pretrain.run_fn(types.SimpleNamespace(
    custom_config=trainer_config.with_data_plan(trainer_config.custom_config(config),
                                                {"class_names": [str(i) for i in range(10)]}),
    train_files=[sys.argv[1]], transform_output=sys.argv[4],
    eval_files=[sys.argv[3], sys.argv[3]], model_run_dir=os.path.join(trainer_dir, "model_run", "7"),
    serving_model_dir=serving_model_dir))
# TFX's Trainer executor fails every worker, the chief's helpers too, if this is missing now.
assert os.path.exists(serving_model_dir), "run_fn failed to generate model."
print("WORKER DONE", flush=True)
"""



def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def saved_models(root) -> list[str]:
    return sorted(dirpath for dirpath, _, files in os.walk(root) if "saved_model.pb" in files)


@pytest.mark.slow
def test_two_workers_train_one_model_and_only_the_chief_exports(tmp_path):
    data = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_random_transformed(data, 64, 16)
    knn = str(tmp_path / "knn.tfrecord.gz")
    data_factory.write_random_transformed(knn, 20, 16, seed=1)
    graph = str(tmp_path / "transform_graph")  # the Transform graph draws each worker's views
    trainer_data.write_transform_graph(graph, preprocessing.policy_config("strong-colour"), 16, "strong-colour",
                                       temp_dir=str(tmp_path / "tft"), view_size=8)
    out = tmp_path / "out"
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    workers, logs = [], []
    try:
        for index in range(2):
            scratch = tmp_path / f"tmp{index}"  # the worker's own temp folder, to check it is left empty
            scratch.mkdir()
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(scratch), CUDA_VISIBLE_DEVICES="",
                       TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
            logs.append(open(tmp_path / f"worker{index}.log", "w+"))
            workers.append(subprocess.Popen([sys.executable, "-c", SCRIPT, data, str(out), knn, graph], env=env,
                                            stdout=logs[-1], stderr=subprocess.STDOUT))
        deadline = time.time() + 300
        while any(w.poll() is None for w in workers):
            assert time.time() < deadline, "the workers did not finish in 300 s"
            time.sleep(0.2)
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
        for worker, output in zip(workers, outputs):
            assert worker.returncode == 0, output[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        for log in logs:
            log.close()

    for output in outputs:
        assert "MultiWorkerMirroredStrategy: num_replicas_in_sync=2, workers=2" in output, output[-3000:]
        assert "WORKER DONE" in output
    assert "chief=True" in outputs[0] and "chief=False" in outputs[1]
    trainer_dir = out / contract.PRETRAIN
    # The chief's export is the only SavedModel written (the Transform graph's are the test's own).
    assert [m for m in saved_models(tmp_path) if not m.startswith(graph) and "/tft/" not in m] == [
        str(trainer_dir / "model" / "7" / "Format-Serving")]
    # The workers' scratch copies are deleted. (TMPDIR also holds what TensorFlow's autograph writes
    # there, with a __pycache__ unless PYTHONDONTWRITEBYTECODE is set: not ours to delete.)
    leftovers = [p.name for i in range(2) for p in (tmp_path / f"tmp{i}").iterdir() if p.name.startswith("simsiam-")]
    assert leftovers == []
    metrics_files = [os.path.join(d, f) for d, _, files in os.walk(out) for f in files if f == "pretrain_metrics.json"]
    assert len(metrics_files) == 1
    with open(metrics_files[0]) as f:
        metrics = json.load(f)
    assert (metrics["replicas"], metrics["workers"], metrics["batch_size"], metrics["steps"]) == (2, 2, 16, 8)
    assert math.isfinite(metrics["final_loss"]) and -1.0 <= metrics["final_loss"] <= 1.0
    assert [row["epoch"] for row in metrics["history"]] == [1, 2]
    assert [row["epoch"] for row in metrics["history"] if row.get("knn_accuracy") is not None] == [2]
    assert 0.0 <= metrics["knn_accuracy"] <= 1.0
    assert not (trainer_dir / "checkpoints").exists() or not any((trainer_dir / "checkpoints").iterdir())


def test_a_changed_recipe_default_is_a_new_checkpoint_folder(monkeypatch):
    # An execution that crashed is resumed from its folder only while the settings it trains with,
    # defaults resolved, are the same: the recipe's epochs set the cosine schedule of the checkpoints.
    from simsiam_tfx import registries
    from simsiam_tfx.components.simsiam_pretrain import checkpoint_dir_for
    from simsiam_tfx.config import PipelineConfig
    config = PipelineConfig()
    before = checkpoint_dir_for("/r/SimSiamPretrain/model_run/7", config, ["a.gz"])
    assert checkpoint_dir_for("/r/SimSiamPretrain/model_run/8", config, ["a.gz"]) == before
    monkeypatch.setitem(registries.EMBEDDED_DATASETS, "shapes", {**registries.EMBEDDED_DATASETS["shapes"], "epochs": 7})
    assert checkpoint_dir_for("/r/SimSiamPretrain/model_run/7", config, ["a.gz"]) != before
