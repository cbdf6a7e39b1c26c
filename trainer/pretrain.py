"""Trainer #1, SimSiamPretrain: TFX's FnArgs -> SimSiam pre-training -> exported encoder."""
from __future__ import annotations

import hashlib
import json
import os
import time

import tensorflow as tf
import tf_keras as keras

from pipeline.config import PipelineConfig
from trainer import augment, backbones, data, heads, model, monitors, schedules

METRICS_FILE = "pretrain_metrics.json"
PRECISION_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16"}
HISTORY_FILE = "history.json"


def build_simsiam(backbone: str, width: int, image_size: int, proj_dim: int, weight_decay: float,
                  learning_rate, momentum: float = 0.9, jit_compile: bool = False) -> model.SimSiam:
    encoder = backbones.build_encoder(backbone, image_size, width)
    feature_dim = encoder.output_shape[-1]
    projector = heads.build_projector(feature_dim, proj_dim, num_layers=2 if image_size <= 96 else 3)
    predictor = heads.build_predictor(proj_dim)
    predictor_lr = getattr(learning_rate, "peak_lr", learning_rate)  # paper: fixed at the peak LR
    simsiam = model.SimSiam(encoder, projector, predictor, weight_decay,
                            predictor_optimizer=keras.optimizers.SGD(float(predictor_lr), momentum=momentum))
    simsiam.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=momentum), jit_compile=jit_compile)
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


def _restore(simsiam: model.SimSiam, checkpoint_dir: str, monitor: monitors.EpochMonitor):
    """Returns (manager, epoch variable, completed epochs); resumes from the latest checkpoint."""
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    # Optimizer slots must exist before restoring so their values are restored too.
    simsiam.optimizer.build(simsiam.backbone_variables())
    simsiam.predictor_optimizer.build(simsiam.predictor.trainable_variables)
    checkpoint = tf.train.Checkpoint(encoder=simsiam.encoder, projector=simsiam.projector,
                                     predictor=simsiam.predictor, optimizer=simsiam.optimizer,
                                     predictor_optimizer=simsiam.predictor_optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        history_path = os.path.join(checkpoint_dir, HISTORY_FILE)
        if tf.io.gfile.exists(history_path):
            with tf.io.gfile.GFile(history_path) as f:
                monitor.history = [row for row in json.load(f) if row["epoch"] <= int(epoch.numpy())]
        print(f"[pretrain] resuming after epoch {int(epoch.numpy())} from {manager.latest_checkpoint}", flush=True)
    return manager, epoch, int(epoch.numpy())


def checkpoint_dir_for(model_run_dir: str, config: PipelineConfig, train_files) -> str:
    """A working directory that outlives one Trainer execution: the same inputs and settings map to
    the same folder, so an execution that crashed is resumed by the next one."""
    key = hashlib.sha256(json.dumps([config.trainer_dict(), sorted(train_files)], sort_keys=True).encode())
    component_root = os.path.dirname(os.path.dirname(model_run_dir.rstrip("/")))
    return os.path.join(component_root, "checkpoints", key.hexdigest()[:16])


def pretrain(config: PipelineConfig, pretrain_files, probe_files, eval_files, num_classes: int,
             log_dir: str, checkpoint_dir: str | None = None) -> tuple[model.SimSiam, dict]:
    """Runs pre-training; returns the model and a metrics dict (per-epoch history included).

    With `checkpoint_dir`, saves after every epoch and resumes from the last completed one.
    """
    p = config.pretrain.resolved(config.data.image_size)
    # The policy is global in Keras: set it only while this model is built and trained.
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[p.precision])
    try:
        return _pretrain(config, p, pretrain_files, probe_files, eval_files, num_classes, log_dir, checkpoint_dir)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _pretrain(config, p, pretrain_files, probe_files, eval_files, num_classes, log_dir, checkpoint_dir):
    image_size = config.data.image_size
    keras.utils.set_random_seed(p.seed)
    num_examples = data.count_examples(pretrain_files)
    batch_size = min(p.batch_size, num_examples)
    steps_per_epoch = max(1, num_examples // batch_size)
    peak_lr = p.base_lr * batch_size / 256
    schedule = schedules.WarmupCosine(peak_lr, p.epochs * steps_per_epoch, p.warmup_epochs * steps_per_epoch)
    simsiam = build_simsiam(p.backbone, p.width, image_size, p.proj_dim, p.weight_decay, schedule, p.momentum)

    views = data.pretrain_views(pretrain_files, image_size, batch_size,
                                augment.preset(config.data.augment_preset()), p.seed, num_examples)
    knn_data = None
    if p.knn_k > 0 and probe_files and eval_files:
        knn_data = (data.labelled_images(probe_files, image_size, 512), data.labelled_images(eval_files, image_size, 512))
    monitor = monitors.EpochMonitor(
        log_dir, p.proj_dim, knn_data, p.knn_k, p.knn_temperature, num_classes,
        learning_rate=lambda: schedule(simsiam.optimizer.iterations))
    print(f"[pretrain] {num_examples} images, batch {batch_size}, {steps_per_epoch} steps/epoch x {p.epochs} "
          f"epochs, peak lr {peak_lr:.4g}, wd {p.weight_decay}, d={p.proj_dim}, "
          f"augment={config.data.augment_preset()}", flush=True)
    callbacks, initial_epoch = [monitor], 0
    if checkpoint_dir:
        manager, epoch_var, initial_epoch = _restore(simsiam, checkpoint_dir, monitor)
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
    custom = fn_args.custom_config
    config = PipelineConfig.from_dict(custom["config"])
    probe_files, eval_files = (fn_args.eval_files + [None, None])[:2]
    checkpoint_dir = checkpoint_dir_for(fn_args.model_run_dir, config, fn_args.train_files)
    simsiam, metrics = pretrain(config, fn_args.train_files, [probe_files] if probe_files else None,
                                [eval_files] if eval_files else None, custom["num_classes"],
                                log_dir=os.path.join(fn_args.model_run_dir, "tensorboard"),
                                checkpoint_dir=checkpoint_dir)
    simsiam.encoder.save(fn_args.serving_model_dir, include_optimizer=False)
    # Finished: a later execution (e.g. --no-cache) must train afresh, not resume a finished run.
    tf.io.gfile.rmtree(checkpoint_dir)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)
