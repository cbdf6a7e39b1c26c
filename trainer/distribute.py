"""Which `tf.distribute` strategy the Trainer runs under, and which worker writes the outputs.

A distributed TFX Trainer (e.g. Vertex AI Training with several replicas) runs the same `run_fn`
on every machine and describes the cluster to each in the `TF_CONFIG` environment variable:
`{"cluster": {"chief": [...], "worker": [...]}, "task": {"type": "worker", "index": 1}}`. All
workers train one model together, synchronously; exactly one of them, the chief, owns the
outputs (SavedModel, metrics, TensorBoard, the checkpoints that a restart resumes from).
"""
from __future__ import annotations

import tensorflow as tf

# Task types that train (MultiWorkerMirroredStrategy's); "evaluator" and "ps" do not.
TRAINING_TASKS = ("chief", "worker")

# MultiWorkerMirroredStrategy starts this process's gRPC server, which cannot be started twice:
# one instance per process, reused by every later call.
_multi_worker_strategy: tf.distribute.Strategy | None = None


def _cluster() -> tuple[dict, str | None, int]:
    """(cluster as a dict of task type -> addresses, this task's type, its index) from TF_CONFIG."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return resolver.cluster_spec().as_dict(), resolver.task_type, int(resolver.task_id or 0)


def num_workers() -> int:
    """Training tasks (chief and workers) in TF_CONFIG's cluster; 1 without TF_CONFIG."""
    cluster, _, _ = _cluster()
    return max(1, sum(len(cluster.get(task_type) or []) for task_type in TRAINING_TASKS))


def is_chief() -> bool:
    """Whether this process owns the outputs: TF_CONFIG's chief task, or worker 0 of a cluster
    without a chief (MultiWorkerMirroredStrategy's convention); True without TF_CONFIG.

    Every worker holds the same weights, so one copy suffices, and several would race each other
    writing the same files.
    """
    cluster, task_type, index = _cluster()
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and index == 0 and not cluster.get("chief")


def strategy_from_environment() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names more than one training task (data-parallel
    over machines, gradients all-reduced every step); MirroredStrategy when this machine sees more
    than one GPU (data-parallel over them); otherwise the default strategy (one device, no change).

    With several workers, call it before TensorFlow runs any op in the process (as `run_fn` does):
    MultiWorkerMirroredStrategy configures the runtime for collective ops, which it can only do
    at start-up. Later calls return the same strategy.
    """
    global _multi_worker_strategy
    if num_workers() > 1:
        if _multi_worker_strategy is None:
            try:
                _multi_worker_strategy = tf.distribute.MultiWorkerMirroredStrategy()
            except RuntimeError as e:
                raise RuntimeError(
                    f"TF_CONFIG names {num_workers()} workers, but TensorFlow already ran ops in this process, "
                    "so MultiWorkerMirroredStrategy cannot start: call "
                    "simsiam_tfx.trainer.distribute.strategy_from_environment() before anything else uses TensorFlow") from e
        return _multi_worker_strategy
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public name (MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return "default strategy" if not tf.distribute.has_strategy() else type(strategy).__name__


def sync_batchnorm() -> bool:
    """Whether BatchNorm layers built now should synchronise their batch statistics across
    replicas: under a strategy with several replicas, as the paper's multi-GPU runs do (SyncBN),
    so each replica normalises over the global batch, not its slice."""
    return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1
