"""Trainer #1, SimSiamPretrain: TFX's FnArgs -> SimSiam pre-training -> exported encoder.

Runs on one device, on several GPUs (MirroredStrategy) or on several machines
(MultiWorkerMirroredStrategy, from TF_CONFIG); see `trainer.distribute`. With several workers every
one of them runs `run_fn`; only the chief writes TensorBoard logs, resumable checkpoints, the
SavedModel and the metrics.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import types

import tensorflow as tf
import tf_keras as keras

from pipeline.config import PipelineConfig
from trainer import augment, backbones, data, distribute, heads, model, monitors, schedules

METRICS_FILE = "pretrain_metrics.json"
# fp16 is float16 compute with dynamic loss scaling (see `build_simsiam`); bf16 needs none.
PRECISION_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
HISTORY_FILE = "history.json"


def build_simsiam(backbone: str, width: int, image_size: int, proj_dim: int, weight_decay: float,
                  learning_rate, momentum: float = 0.9, jit_compile: bool = False) -> model.SimSiam:
    """The SimSiam model, compiled, under the current global precision policy.

    Build it inside `strategy.scope()` to train it under a strategy. Under "mixed_float16" both
    optimizers are wrapped in a dynamic `LossScaleOptimizer` (the train step scales the loss and
    unscales the gradients); Keras would wrap only the one passed to compile.
    """
    encoder = backbones.build_encoder(backbone, image_size, width)
    feature_dim = encoder.output_shape[-1]
    projector = heads.build_projector(feature_dim, proj_dim, num_layers=2 if image_size <= 96 else 3)
    predictor = heads.build_predictor(proj_dim)
    predictor_lr = getattr(learning_rate, "peak_lr", learning_rate)  # paper: fixed at the peak LR
    optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum)
    predictor_optimizer = keras.optimizers.SGD(float(predictor_lr), momentum=momentum)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        predictor_optimizer = keras.mixed_precision.LossScaleOptimizer(predictor_optimizer)
    simsiam = model.SimSiam(encoder, projector, predictor, weight_decay, predictor_optimizer=predictor_optimizer)
    simsiam.compile(optimizer=optimizer, jit_compile=jit_compile)
    return simsiam


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves model, both optimizers, the epoch counter and the monitor history after every epoch."""

    def __init__(self, manager: tf.train.CheckpointManager, epoch: tf.Variable, monitor: monitors.EpochMonitor):
        super().__init__()
        self.manager, self.epoch, self.monitor = manager, epoch, monitor

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        # History first: a kill between the two writes leaves an extra row, dropped on restore.
        tf.io.gfile.makedirs(self.manager.directory)
        with tf.io.gfile.GFile(os.path.join(self.manager.directory, HISTORY_FILE), "w") as f:
            json.dump(self.monitor.history, f)
        self.manager.save(checkpoint_number=epoch + 1)


def _restore(simsiam: model.SimSiam, checkpoint_dir: str, monitor: monitors.EpochMonitor,
             write_dir: str | None = None):
    """Returns (manager, epoch variable, completed epochs); resumes from the latest checkpoint in
    `checkpoint_dir`. The manager saves into `write_dir` (default: `checkpoint_dir`).

    Call it inside the strategy's scope. With several workers every one of them must save (reading
    the BatchNorm moving averages is an all-reduce across workers), but only the chief into
    `checkpoint_dir`, the one every worker resumes from; the others save into a scratch folder.
    """
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    # Optimizer slots must exist before restoring so their values are restored too.
    simsiam.optimizer.build(simsiam.backbone_variables())
    simsiam.predictor_optimizer.build(simsiam.predictor.trainable_variables)
    checkpoint = tf.train.Checkpoint(encoder=simsiam.encoder, projector=simsiam.projector,
                                     predictor=simsiam.predictor, optimizer=simsiam.optimizer,
                                     predictor_optimizer=simsiam.predictor_optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, write_dir or checkpoint_dir, max_to_keep=2)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        history_path = os.path.join(checkpoint_dir, HISTORY_FILE)
        if tf.io.gfile.exists(history_path):
            with tf.io.gfile.GFile(history_path) as f:
                monitor.history = [row for row in json.load(f) if row["epoch"] <= int(epoch.numpy())]
        print(f"[pretrain] resuming after epoch {int(epoch.numpy())} from {latest}", flush=True)
    return manager, epoch, int(epoch.numpy())


def checkpoint_dir_for(model_run_dir: str, config: PipelineConfig, train_files) -> str:
    """A working directory that outlives one Trainer execution: the same inputs and settings map to
    the same folder, so an execution that crashed is resumed by the next one."""
    key = hashlib.sha256(json.dumps([config.trainer_dict(), sorted(train_files)], sort_keys=True).encode())
    component_root = os.path.dirname(os.path.dirname(model_run_dir.rstrip("/")))
    return os.path.join(component_root, "checkpoints", key.hexdigest()[:16])


class _EncoderSnapshot(keras.callbacks.Callback):
    """Several workers only: copies the trained encoder's weights into an undistributed copy.

    Under MultiWorkerMirroredStrategy each replica keeps its own BatchNorm moving averages and a
    read outside the train step averages them, an all-reduce every worker must join. So every
    worker reads them here, together, at the end of each epoch, and the chief runs the kNN
    monitor on its own copy (`copy`; None on the other workers) without the other workers.
    """

    def __init__(self, copy: keras.Model | None):
        super().__init__()
        self.copy = copy

    def on_epoch_end(self, epoch, logs=None):
        weights = self.model.encoder.get_weights()
        if self.copy is not None:
            self.copy.set_weights(weights)


class _CopyMonitor(monitors.EpochMonitor):
    """An EpochMonitor whose kNN features come from `encoder` instead of the trained model's."""

    def __init__(self, encoder: keras.Model, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._copy = types.SimpleNamespace(encoder=encoder)

    def set_model(self, model):
        super().set_model(self._copy)  # EpochMonitor reads only `self.model.encoder`


def _views(strategy: tf.distribute.Strategy, files, image_size: int, batch_size: int,
           augment_config: augment.AugmentConfig, seed: int, num_examples: int):
    """Endless (view1, view2) batches of `batch_size` (the global batch) as `strategy` trains on them.

    One replica: `data.pretrain_views`. Several: `distribute_datasets_from_function`, every replica
    getting batch_size / replicas examples a step, so a step still trains on `batch_size` examples
    in all. There is one input pipeline per worker, each reading every record but decoding and
    augmenting only its own 1/workers of the examples (`shard` before the views), with its own
    augmentation seed. Not tf.data auto-sharding: FILE sharding needs at least as many files as
    workers (one file is common here), and DATA sharding of this already batched and augmented
    stream would make every worker decode and augment the whole global batch to keep 1/workers.
    """
    if strategy.num_replicas_in_sync == 1:
        return data.pretrain_views(files, image_size, batch_size, augment_config, seed, num_examples)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = context.get_per_replica_batch_size(batch_size)
        pipelines, index = context.num_input_pipelines, context.input_pipeline_id
        if pipelines == 1:  # one worker, several GPUs: its replicas take turns on one stream
            return data.pretrain_views(files, image_size, per_replica, augment_config, seed, num_examples)
        return data.pretrain_views(files, image_size, per_replica, augment_config, seed + index,
                                   len(range(index, num_examples, pipelines)), shard=(pipelines, index))

    return strategy.distribute_datasets_from_function(dataset_fn)


def pretrain(config: PipelineConfig, pretrain_files, probe_files, eval_files, num_classes: int,
             log_dir: str, checkpoint_dir: str | None = None) -> tuple[model.SimSiam, dict]:
    """Runs pre-training; returns the model and a metrics dict (per-epoch history included).

    With `checkpoint_dir`, saves after every epoch and resumes from the last completed one.
    Under the strategy of `distribute.strategy_from_environment()`; with several workers, every
    worker calls this, and only the chief writes into `log_dir` and `checkpoint_dir`.
    """
    p = config.pretrain.resolved(config.data.image_size)
    # First, before TensorFlow runs anything: MultiWorkerMirroredStrategy sets up collective ops.
    strategy = distribute.strategy_from_environment()
    # Workers other than the chief write logs and checkpoints into a scratch folder, deleted after.
    scratch = None if distribute.is_chief() else tempfile.mkdtemp(prefix="simsiam-worker-")
    # The policy is global in Keras: set it only while this model is built and trained.
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[p.precision])
    try:
        return _pretrain(config, p, pretrain_files, probe_files, eval_files, num_classes, log_dir, checkpoint_dir,
                         strategy, scratch)
    finally:
        keras.mixed_precision.set_global_policy("float32")
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _pretrain(config, p, pretrain_files, probe_files, eval_files, num_classes, log_dir, checkpoint_dir,
              strategy, scratch):
    image_size = config.data.image_size
    keras.utils.set_random_seed(p.seed)
    replicas = strategy.num_replicas_in_sync
    num_examples = data.count_examples(pretrain_files)
    # The global batch, split evenly over the replicas.
    batch_size = min(p.batch_size, num_examples) // replicas * replicas
    if batch_size == 0:
        raise ValueError(f"{num_examples} examples cannot fill a batch on each of {replicas} replicas")
    steps_per_epoch = max(1, num_examples // batch_size)
    peak_lr = p.base_lr * batch_size / 256
    schedule = schedules.WarmupCosine(peak_lr, p.epochs * steps_per_epoch, p.warmup_epochs * steps_per_epoch)
    with strategy.scope():
        simsiam = build_simsiam(p.backbone, p.width, image_size, p.proj_dim, p.weight_decay, schedule, p.momentum)

    views = _views(strategy, pretrain_files, image_size, batch_size, augment.preset(config.data.augment_preset()),
                   p.seed, num_examples)
    knn = p.knn_k > 0 and bool(probe_files) and bool(eval_files)
    knn_data = None
    if knn and not scratch:  # the monitor reports from the chief only
        knn_data = (data.labelled_images(probe_files, image_size, 512),
                    data.labelled_images(eval_files, image_size, 512))
    callbacks, copy = [], None
    if knn and distribute.num_workers() > 1:
        # Every worker joins the weight snapshot (see _EncoderSnapshot); the chief runs kNN on its copy.
        copy = None if scratch else backbones.build_encoder(p.backbone, image_size, p.width)
        callbacks.append(_EncoderSnapshot(copy))
    monitor_args = (os.path.join(scratch, "tensorboard") if scratch else log_dir, p.proj_dim, knn_data, p.knn_k,
                    p.knn_temperature, num_classes)
    learning_rate = lambda: schedule(simsiam.optimizer.iterations)  # noqa: E731
    monitor = (_CopyMonitor(copy, *monitor_args, learning_rate=learning_rate) if copy is not None
               else monitors.EpochMonitor(*monitor_args, learning_rate=learning_rate))
    callbacks.append(monitor)
    print(f"[pretrain] {num_examples} images, batch {batch_size}, {steps_per_epoch} steps/epoch x {p.epochs} "
          f"epochs, peak lr {peak_lr:.4g}, wd {p.weight_decay}, d={p.proj_dim}, "
          f"augment={config.data.augment_preset()}, precision={p.precision}", flush=True)
    print(f"[pretrain] {distribute.strategy_name(strategy)}: num_replicas_in_sync={replicas}, "
          f"workers={distribute.num_workers()}, chief={scratch is None}", flush=True)
    initial_epoch = 0
    if checkpoint_dir:
        with strategy.scope():
            manager, epoch_var, initial_epoch = _restore(
                simsiam, checkpoint_dir, monitor, write_dir=os.path.join(scratch, "checkpoints") if scratch else None)
        callbacks.append(EpochCheckpoint(manager, epoch_var, monitor))
    start = time.perf_counter()
    if initial_epoch < p.epochs:
        simsiam.fit(views, epochs=p.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                    callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - start
    last = monitor.history[-1]
    metrics = {
        "epochs": p.epochs,
        "precision": p.precision,
        "steps": p.epochs * steps_per_epoch,
        "batch_size": batch_size,
        "replicas": replicas,
        "workers": distribute.num_workers(),
        "peak_learning_rate": peak_lr,
        "final_loss": last["loss"],
        "z_std": last["z_std"],
        "z_std_healthy": monitors.healthy_z_std(p.proj_dim),
        "collapsed": last["collapsed"],
        "knn_accuracy": last.get("knn_accuracy"),
        # Of this execution only (a resumed run counts the epochs it ran itself).
        "images_per_second": (p.epochs - initial_epoch) * steps_per_epoch * batch_size / max(seconds, 1e-9),
        "seconds": seconds,
        "resumed_after_epoch": initial_epoch,
        "history": monitor.history,
    }
    if last["collapsed"]:
        message = (f"SimSiam collapsed: z-std {last['z_std']:.4g} vs healthy {metrics['z_std_healthy']:.4g}, "
                   f"loss {last['loss']:.4f}")
        if p.fail_on_collapse:
            raise RuntimeError(message)
        print(f"[pretrain] WARNING: {message}", flush=True)
    return simsiam, metrics


def run_fn(fn_args) -> None:
    """TFX Trainer entry point. train split: pretrain; eval splits: probe_train, eval (kNN monitor)."""
    distribute.strategy_from_environment()  # first: a multi-worker strategy must start before any op
    custom = fn_args.custom_config
    config = PipelineConfig.from_dict(custom["config"])
    probe_files, eval_files = (fn_args.eval_files + [None, None])[:2]
    checkpoint_dir = checkpoint_dir_for(fn_args.model_run_dir, config, fn_args.train_files)
    simsiam, metrics = pretrain(config, fn_args.train_files, [probe_files] if probe_files else None,
                                [eval_files] if eval_files else None, custom["num_classes"],
                                log_dir=os.path.join(fn_args.model_run_dir, "tensorboard"),
                                checkpoint_dir=checkpoint_dir)
    if not distribute.is_chief():
        # Saving reads the BatchNorm moving averages, an all-reduce every worker must join: the
        # other workers save too, into a scratch folder, and write nothing into the TFX outputs.
        scratch = tempfile.mkdtemp(prefix="simsiam-export-")
        try:
            simsiam.encoder.save(scratch, include_optimizer=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        _await_chief_export(fn_args.serving_model_dir)
        return
    simsiam.encoder.save(fn_args.serving_model_dir, include_optimizer=False)
    # Finished: a later execution (e.g. --no-cache) must train afresh, not resume a finished run.
    tf.io.gfile.rmtree(checkpoint_dir)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)


def _await_chief_export(serving_model_dir: str, timeout_s: float = 600, poll_s: float = 1) -> None:
    """On a worker other than the chief: returns once the chief's SavedModel is in
    `serving_model_dir` (the workers share the TFX output location), or after `timeout_s`.

    TFX's Trainer executor fails any worker whose run_fn returns before `serving_model_dir`
    exists ("run_fn failed to generate model"), the chief's helpers included.
    """
    deadline = time.monotonic() + timeout_s
    while not tf.io.gfile.exists(os.path.join(serving_model_dir, "saved_model.pb")):
        if time.monotonic() > deadline:
            print(f"[pretrain] WARNING: no SavedModel from the chief in {serving_model_dir} after {timeout_s:.0f} s",
                  flush=True)
            return
        time.sleep(poll_s)
