"""Trainer #2, LinearProbe: TFX's FnArgs -> linear probe on the frozen pre-trained encoder ->
the served classifier (components/serving.py).

base_model: SimSiamPretrain's encoder; train split: probe_train; eval split: eval.
"""
from __future__ import annotations

import os

import tensorflow as tf
import tf_keras as keras

from simsiam_tfx import contract, files
from simsiam_tfx.components import model_record, serving, trainer_config
from simsiam_tfx.trainer import augment, data, probe, supervised

METRICS_FILE = contract.PROBE_METRICS_FILE


def _graph_policy(transform_graph_dir: str) -> augment.AugmentConfig:
    """The augmentation the Transform graph draws views with (the supervised reference's too)."""
    return augment.from_record(data.read_policy(transform_graph_dir))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    import tensorflow_transform as tft

    settings = trainer_config.read(fn_args.custom_config)
    config, num_classes = settings.config, settings.num_classes
    size, p = config.data.image_size, config.pretrain_settings()
    # The materialised images: the Transform graph's deterministic path, as served.
    train_ds = data.labelled_images(fn_args.train_files, size, config.probe.batch_size)
    eval_ds = data.labelled_images(fn_args.eval_files, size, config.probe.batch_size)

    encoder = keras.models.load_model(fn_args.base_model, compile=False)
    sizes = data.count_examples(fn_args.train_files), data.count_examples(fn_args.eval_files)  # for the ETA
    kernel, bias, metrics = probe.probe_with_baseline(encoder, train_ds, eval_ds, num_classes, config.probe.l2,
                                                      backbone=p.backbone, width=p.width, image_size=size,
                                                      sizes=sizes)
    print(f"[probe] eval accuracy {metrics['accuracy']:.4f} (train {metrics['train_accuracy']:.4f}); random-init "
          f"encoder {metrics['random_init_accuracy']:.4f}; gain {metrics['gain_over_random_init']:+.4f}", flush=True)
    if config.probe.supervised_epochs > 0:
        reference = supervised.supervised_accuracy(
            fn_args.train_files, fn_args.eval_files, backbone=p.backbone, width=p.width, image_size=size,
            num_classes=num_classes, epochs=config.probe.supervised_epochs, batch_size=p.batch_size,
            augment_config=_graph_policy(fn_args.transform_output), seed=p.seed, weight_decay=p.weight_decay)
        metrics.update(supervised_accuracy=reference["accuracy"], supervised_train_accuracy=reference["train_accuracy"],
                       supervised_epochs=reference["epochs"], supervised_seconds=reference["seconds"])
        print(f"[probe] supervised-from-scratch reference {reference['accuracy']:.4f} "
              f"(train {reference['train_accuracy']:.4f})", flush=True)

    classifier = probe.build_classifier(encoder, kernel, bias)
    serving.save_serving_model(classifier, tft.TFTransformOutput(fn_args.transform_output), size,
                               fn_args.serving_model_dir, class_names=settings.class_names)
    # What produced this model travels with it into every pushed version (components/model_record.py).
    data_record = dict(fn_args.custom_config.get(trainer_config.DATA_PLAN_KEY) or {})
    # The gate reads the probe's numbers and the class names there too (components/model_gate.py).
    model_record.write_json(fn_args.serving_model_dir, model_record.TRAINING_RECORD, {
        "encoder_uri": fn_args.base_model, "retraining": model_record.retraining_of(fn_args.base_model),
        "data": {**data_record, "class_names": list(settings.class_names)},
        "probe": {**metrics, "train_examples": sizes[0], "eval_examples": sizes[1]}})
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    files.write_json(os.path.join(fn_args.model_run_dir, METRICS_FILE), metrics, indent=2)
