"""Tests of simsiam_tfx.trainer.distribute: the strategy's train step takes the gradients of the global
batch, and TF_CONFIG decides the chief and the worker count. (Two worker processes training through
the Trainer's run_fn: tests/components/test_simsiam_pretrain.py.)"""
import json
import os
import subprocess
import sys

from simsiam_tfx.trainer import distribute

# Two replicas (two logical CPUs, MirroredStrategy) each given the same 8 examples must update the
# weights exactly as one replica given those 8: the loss is a mean over the global batch and the
# weight decay is added once, not once per replica; in float16 too, where both optimizers scale
# the loss. argv: the Keras precision policies, each checked in turn in one process. The replicas
# run the step eagerly (one thread each): the same arithmetic as the tf.function Keras fit traces,
# without tracing two replicas' steps, which took most of this test's time. Fit under a strategy,
# traced: the two-worker test (tests/components/test_simsiam_pretrain.py).
MIRRORED_SCRIPT = """
import sys
import simsiam_tfx
import numpy as np, tensorflow as tf, tf_keras as keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from simsiam_tfx.trainer.pretrain import build_simsiam
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
views = tf.random.stateless_uniform((2, 8, 16, 16, 3), (1, 2))
nets = lambda m: m.encoder.weights + m.projector.weights + m.predictor.weights
# BatchNorm is synchronised across replicas (SyncBN), so its moving variance is an unbiased
# estimate over the global batch (16 rows, the 8 twice): a different Bessel factor than over 8.
# Everything else, trainable weights and moving means, must match.
compared = lambda m: [v for v in nets(m) if "moving_variance" not in v.name]
for policy in sys.argv[1:]:
    keras.mixed_precision.set_global_policy(policy)
    # Fixed initial weights: in float16 some draws overflow at the first loss scale in one set-up
    # and not the other (each replica's gradients are half the size), which skips a step; this one does not.
    keras.utils.set_random_seed(1)
    single = build_simsiam("resnet18", 2, 16, 16, weight_decay=0.05, learning_rate=0.1)
    initial = [v.numpy() for v in nets(single)]
    with strategy.scope():
        mirrored = build_simsiam("resnet18", 2, 16, 16, weight_decay=0.05, learning_rate=0.1)
    for v, w in zip(nets(mirrored), initial):
        v.assign(w)
    step = lambda v: strategy.run(mirrored.train_step, args=(v,))
    for _ in range(2):
        single.train_step((views[0], views[1]))
        step(strategy.experimental_distribute_values_from_function(lambda ctx: (views[0], views[1])))
    moved = max(float(np.max(np.abs(a - v.numpy()))) for a, v in zip(initial, nets(single)))
    diff = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(compared(single), compared(mirrored)))
    scales = [float(getattr(o, "loss_scale", 1.0)) for m in (single, mirrored)
              for o in (m.optimizer, m.predictor_optimizer)]
    assert len(set(scales)) == 1, f"{policy}: a step was skipped for overflow in one set-up only: loss scales {scales}"
    print("RESULT", policy, strategy.num_replicas_in_sync, moved, diff, type(mirrored.optimizer).__name__, flush=True)
"""
POLICIES = ("float32", "mixed_float16")


def test_two_replicas_on_the_same_examples_update_the_weights_like_one_in_float32_and_float16():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    # The timeout only stops a hang: float16 on a CPU is slow, and a loaded 2-core machine (the suite's
    # other worker plus other jobs) took the mixed_float16 case past 300 s.
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, *POLICIES], check=False, capture_output=True,
                            text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert [policy for policy, *_ in results] == list(POLICIES)
    for policy, replicas, moved, diff, optimizer in results:
        assert int(replicas) == 2
        assert ("LossScaleOptimizer" in optimizer) == (policy == "mixed_float16")
        assert float(moved) > 1e-3, policy  # the steps did change the weights ...
        # ... identically (not twice the gradient, not twice the decay; either moves them by > 0.1).
        # float16: the synchronised BatchNorm sums statistics over replicas in another order, and
        # float16 rounding (epsilon 1e-3) makes that visible.
        assert float(diff) < (1e-5 if policy == "float32" else 1e-2), policy


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
