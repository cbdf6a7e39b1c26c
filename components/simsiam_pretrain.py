"""Trainer #1, SimSiamPretrain: TFX's FnArgs -> SimSiam pre-training -> exported encoder.

train split: pretrain; eval splits: probe_train and eval, the kNN monitor's reference and query
sets (not validation). With several workers every one of them runs `run_fn`; only the chief writes
the SavedModel and the metrics.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time

import tensorflow as tf

from simsiam_tfx import contract, files
from simsiam_tfx.components import model_files, model_record, trainer_config, warm_start
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.trainer import backbones, distribute
from simsiam_tfx.trainer.pretrain import PretrainData, pretrain

METRICS_FILE = contract.PRETRAIN_METRICS_FILE


def checkpoint_dir_for(model_run_dir: str, config: PipelineConfig, train_files) -> str:
    """A working directory that outlives one Trainer execution: the same inputs and settings map to
    the same folder, so an execution that crashed is resumed by the next one. The settings are
    hashed as resolved too: a default that changed in between (a data set's recipe) is a new folder."""
    settings = dataclasses.asdict(config.pretrain_settings())
    key = hashlib.sha256(json.dumps([config.trainer_dict(), settings, sorted(train_files)], sort_keys=True).encode())
    component_root = os.path.dirname(os.path.dirname(model_run_dir.rstrip("/")))
    return os.path.join(component_root, "checkpoints", key.hexdigest()[:16])


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    distribute.strategy_from_environment()  # first: a multi-worker strategy must start before any op
    settings = trainer_config.read(fn_args.custom_config)
    probe_files, eval_files = (fn_args.eval_files + [None, None])[:2]
    # The views are drawn by the Transform stage's graph (components/preprocessing.py).
    inputs = PretrainData(fn_args.train_files, fn_args.transform_output, [probe_files] if probe_files else None,
                          [eval_files] if eval_files else None, settings.num_classes)
    checkpoint_dir = checkpoint_dir_for(fn_args.model_run_dir, settings.config, fn_args.train_files)
    retraining, initial_weights = warm_start.decide(settings.config)
    print(f"[pretrain] retraining: {retraining['policy']} ({retraining['reason']})", flush=True)
    simsiam, metrics = pretrain(settings.config, inputs, log_dir=os.path.join(fn_args.model_run_dir, contract.TENSORBOARD_DIR),
                                checkpoint_dir=checkpoint_dir, initial_encoder_weights=initial_weights)
    # Trained on views maybe smaller than the images: exported at the image side (every worker:
    # reading the weights joins an all-reduce).
    encoder = backbones.with_input_size(simsiam.encoder, settings.config.data.image_size)
    if not distribute.is_chief():
        # Saving reads the BatchNorm moving averages, an all-reduce every worker must join: the
        # other workers save too, into a scratch folder, and write nothing into the TFX outputs.
        scratch = tempfile.mkdtemp(prefix="simsiam-export-")
        try:
            model_files.save_keras_model(encoder, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        _await_chief_export(fn_args.serving_model_dir)
        return
    model_files.save_keras_model(encoder, fn_args.serving_model_dir)
    model_record.write_json(fn_args.serving_model_dir, model_record.RETRAINING_FILE, retraining)
    # Finished: a later execution (e.g. --no-cache) must train afresh, not resume a finished run.
    tf.io.gfile.rmtree(checkpoint_dir)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    files.write_json(os.path.join(fn_args.model_run_dir, METRICS_FILE), metrics, indent=2)


def _await_chief_export(serving_model_dir: str, timeout_s: float = 600, poll_s: float = 1) -> None:
    """On a worker other than the chief: returns once the chief's SavedModel is in
    `serving_model_dir` (the workers share the TFX output location), or after `timeout_s`.

    TFX's Trainer executor fails any worker whose run_fn returns before `serving_model_dir`
    exists ("run_fn failed to generate model"), the chief's helpers included.
    """
    deadline = time.monotonic() + timeout_s
    while not tf.io.gfile.exists(os.path.join(serving_model_dir, contract.SAVED_MODEL_FILE)):
        if time.monotonic() > deadline:
            print(f"[pretrain] WARNING: no SavedModel from the chief in {serving_model_dir} after {timeout_s:.0f} s",
                  flush=True)
            return
        time.sleep(poll_s)
