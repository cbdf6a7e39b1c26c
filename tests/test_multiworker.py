"""Data-parallel pre-training: the train step's gradients are those of the global batch, two CPU
worker processes on loopback pre-train one model with MultiWorkerMirroredStrategy through the
Trainer's own entry point (`run_fn`), and only the chief writes the TFX outputs."""
import json
import math
import os
import socket
import subprocess
import sys
import time

import pytest

from trainer import distribute
from trainer.bench import write_transformed_examples

# One worker: run_fn with a stand-in for TFX's FnArgs. argv: data file, output root, kNN file.
SCRIPT = """
import os, sys, types
import trainer
from pipeline.config import PipelineConfig
from trainer import pretrain
config = PipelineConfig()
config.data.image_size = 16
p = config.pretrain
# kNN on: the chief evaluates it alone, which must not leave the other worker waiting in an all-reduce.
p.epochs, p.width, p.batch_size, p.knn_k = 2, 2, 16, 5
trainer_dir = os.path.join(sys.argv[2], "SimSiamPretrain")
serving_model_dir = os.path.join(trainer_dir, "model", "7", "Format-Serving")
pretrain.run_fn(types.SimpleNamespace(
    custom_config={"config": config.to_dict(), "num_classes": 10}, train_files=[sys.argv[1]],
    eval_files=[sys.argv[3], sys.argv[3]], model_run_dir=os.path.join(trainer_dir, "model_run", "7"),
    serving_model_dir=serving_model_dir))
# TFX's Trainer executor fails every worker, the chief's helpers too, if this is missing now.
assert os.path.exists(serving_model_dir), "run_fn failed to generate model."
print("WORKER DONE", flush=True)
"""


# Two replicas (two logical CPUs, MirroredStrategy) each given the same 8 examples must update the
# weights exactly as one replica given those 8: the loss is a mean over the global batch and the
# weight decay is added once, not once per replica; in float16 too, where both optimizers scale
# the loss. argv: the Keras precision policy.
MIRRORED_SCRIPT = """
import sys
import trainer
import numpy as np, tensorflow as tf, tf_keras as keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from trainer.pretrain import build_simsiam
keras.mixed_precision.set_global_policy(sys.argv[1])
# Fixed initial weights: in float16 some draws overflow at the first loss scale in one set-up and
# not the other (each replica's gradients are half the size), which skips a step; this one does not.
keras.utils.set_random_seed(1)
views = tf.random.stateless_uniform((2, 8, 16, 16, 3), (1, 2))
nets = lambda m: m.encoder.weights + m.projector.weights + m.predictor.weights
single = build_simsiam("resnet18", 2, 16, 16, weight_decay=0.05, learning_rate=0.1)
initial = [v.numpy() for v in nets(single)]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = build_simsiam("resnet18", 2, 16, 16, weight_decay=0.05, learning_rate=0.1)
for v, w in zip(nets(mirrored), initial):
    v.assign(w)
step = tf.function(lambda v: strategy.run(mirrored.train_step, args=(v,)))
for _ in range(2):
    single.train_step((views[0], views[1]))
    step(strategy.experimental_distribute_values_from_function(lambda ctx: (views[0], views[1])))
moved = max(float(np.max(np.abs(a - v.numpy()))) for a, v in zip(initial, nets(single)))
# BatchNorm is synchronised across replicas (SyncBN), so its moving variance is an unbiased
# estimate over the global batch (16 rows, the 8 twice): a different Bessel factor than over 8.
# Everything else, trainable weights and moving means, must match.
compared = lambda m: [v for v in nets(m) if "moving_variance" not in v.name]
diff = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(compared(single), compared(mirrored)))
scales = [float(getattr(o, "loss_scale", 1.0)) for m in (single, mirrored) for o in (m.optimizer, m.predictor_optimizer)]
assert len(set(scales)) == 1, f"a step was skipped for overflow in one set-up only: loss scales {scales}"
print("RESULT", strategy.num_replicas_in_sync, moved, diff, type(mirrored.optimizer).__name__)
"""


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_two_replicas_on_the_same_examples_update_the_weights_like_one(policy):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, policy], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    replicas, moved, diff, optimizer = result.stdout.split("RESULT ", 1)[1].split()
    assert int(replicas) == 2
    assert ("LossScaleOptimizer" in optimizer) == (policy == "mixed_float16")
    assert float(moved) > 1e-3  # the steps did change the weights ...
    # ... identically (not twice the gradient, not twice the decay; either moves them by > 0.1).
    # float16: the synchronised BatchNorm sums statistics over replicas in another order, and
    # float16 rounding (epsilon 1e-3) makes that visible.
    assert float(diff) < (1e-5 if policy == "float32" else 1e-2)


def test_chief_and_worker_count_from_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.is_chief() and distribute.num_workers() == 1
    for cluster, task, chief, workers in [
            ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True, 2),
            ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False, 2),
            ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True, 2),
            ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False, 2),
            ({"chief": ["c:1"], "evaluator": ["e:1"]}, {"type": "evaluator", "index": 0}, False, 1)]:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert (distribute.is_chief(), distribute.num_workers()) == (chief, workers), (cluster, task)


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
    write_transformed_examples(data, 64, 16)
    knn = str(tmp_path / "knn.tfrecord.gz")
    write_transformed_examples(knn, 20, 16, seed=1)
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
            workers.append(subprocess.Popen([sys.executable, "-c", SCRIPT, data, str(out), knn], env=env,
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
    trainer_dir = out / "SimSiamPretrain"
    assert saved_models(tmp_path) == [str(trainer_dir / "model" / "7" / "Format-Serving")]  # the chief's only
    assert [list((tmp_path / f"tmp{i}").iterdir()) for i in range(2)] == [[], []]  # scratch copies deleted
    metrics_files = [os.path.join(d, f) for d, _, files in os.walk(out) for f in files if f == "pretrain_metrics.json"]
    assert len(metrics_files) == 1
    with open(metrics_files[0]) as f:
        metrics = json.load(f)
    assert (metrics["replicas"], metrics["workers"], metrics["batch_size"], metrics["steps"]) == (2, 2, 16, 8)
    assert math.isfinite(metrics["final_loss"]) and -1.0 <= metrics["final_loss"] <= 1.0
    assert [row["epoch"] for row in metrics["history"]] == [1, 2]
    assert 0.0 <= metrics["knn_accuracy"] <= 1.0
    assert not (trainer_dir / "checkpoints").exists() or not any((trainer_dir / "checkpoints").iterdir())
