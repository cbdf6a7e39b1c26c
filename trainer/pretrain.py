"""Trainer #1, SimSiamPretrain: TFX's FnArgs -> SimSiam pre-training -> exported encoder."""
from __future__ import annotations

import json
import os
import time

import tensorflow as tf
import tf_keras as keras

from pipeline.config import PipelineConfig
from trainer import augment, backbones, data, heads, model, monitors, schedules

METRICS_FILE = "pretrain_metrics.json"


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


def pretrain(config: PipelineConfig, pretrain_files, probe_files, eval_files, num_classes: int,
             log_dir: str) -> tuple[model.SimSiam, dict]:
    """Runs pre-training; returns the model and a metrics dict (per-epoch history included)."""
    image_size = config.data.image_size
    p = config.pretrain.resolved(image_size)
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
    start = time.perf_counter()
    simsiam.fit(views, epochs=p.epochs, steps_per_epoch=steps_per_epoch, callbacks=[monitor], verbose=0)
    seconds = time.perf_counter() - start
    last = monitor.history[-1]
    metrics = {
        "epochs": p.epochs,
        "steps": p.epochs * steps_per_epoch,
        "batch_size": batch_size,
        "peak_learning_rate": peak_lr,
        "final_loss": last["loss"],
        "z_std": last["z_std"],
        "z_std_healthy": monitors.healthy_z_std(p.proj_dim),
        "collapsed": last["collapsed"],
        "knn_accuracy": last.get("knn_accuracy"),
        "images_per_second": p.epochs * steps_per_epoch * batch_size / seconds,
        "seconds": seconds,
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
    simsiam, metrics = pretrain(config, fn_args.train_files, [probe_files] if probe_files else None,
                                [eval_files] if eval_files else None, custom["num_classes"],
                                log_dir=os.path.join(fn_args.model_run_dir, "tensorboard"))
    simsiam.encoder.save(fn_args.serving_model_dir, include_optimizer=False)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2)
