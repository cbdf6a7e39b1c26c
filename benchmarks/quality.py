"""Quality baselines on the embedded `shapes` data, outside TFX: the same blocks as the Trainers.

    python -m benchmarks.quality random-init            # linear probe on an untrained encoder
    python -m benchmarks.quality supervised --epochs 15  # same encoder + linear head, end to end
    python -m benchmarks.quality simsiam --epochs 20     # SimSiam, then the same linear probe

Each prints one JSON line. Splits are the pipeline's (pretrain / probe_train / eval, seed 0).
"""
from __future__ import annotations

import argparse
import json
import time

# isort: off
import simsiam_tfx  # noqa: F401  (sets the Keras mode before TensorFlow loads)
# isort: on

import numpy as np
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.components import shapes
from simsiam_tfx.components.preprocessing import policy_config
from simsiam_tfx.config import DataConfig, default_proj_dim
from simsiam_tfx.trainer import backbones, data, monitors, probe, schedules
from simsiam_tfx.trainer import supervised as sup
from simsiam_tfx.trainer.pretrain import build_simsiam


def load_splits(image_size: int, per_split, seed: int):
    images, labels = shapes.generate(sum(per_split), image_size, seed)
    out, start = [], 0
    for n in per_split:
        out.append((images[start:start + n], labels[start:start + n]))
        start += n
    return out


def _labelled(x, y, batch=512):
    return tf.data.Dataset.from_tensor_slices((x.astype(np.float32) / 255.0, y)).batch(batch)


def linear_probe(encoder, splits, l2=1e-4):
    (_, _), (xt, yt), (xe, ye) = splits
    fit = probe.probe_encoder(encoder, _labelled(xt, yt), _labelled(xe, ye), 10, l2)
    return fit.eval_accuracy, fit.train_accuracy


class QualityCurve(keras.callbacks.Callback):
    """Every `every` epochs: linear probe and kNN (k=200) accuracy on eval, one JSON line each."""

    def __init__(self, splits, every: int, steps_per_epoch: int, start: float):
        super().__init__()
        self.splits, self.every, self.steps_per_epoch, self.start = splits, every, steps_per_epoch, start

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        (_, _), (xt, yt), (xe, ye) = self.splits
        encoder = self.model.encoder
        acc, _ = linear_probe(encoder, self.splits)
        train_x, train_y = monitors.extract_features(encoder, _labelled(xt, yt))
        eval_x, eval_y = monitors.extract_features(encoder, _labelled(xe, ye))
        knn = monitors.knn_accuracy(train_x, train_y, eval_x, eval_y, k=200, temperature=0.1, num_classes=10)
        print(json.dumps({"curve": "simsiam", "epoch": epoch + 1, "steps": (epoch + 1) * self.steps_per_epoch,
                          "seconds": round(time.perf_counter() - self.start, 1), "loss": float(logs["loss"]),
                          "probe_accuracy": acc, "knn_accuracy": knn}), flush=True)


def supervised(splits, args):
    """The Trainer's supervised reference (trainer/supervised.py) on every labelled non-eval image."""
    (xp, yp), (xt, yt), (xe, ye) = splits
    x, y = np.concatenate([xp, xt]), np.concatenate([yp, yt])
    result = sup.supervised_accuracy_arrays(x, y, xe, ye, backbone=args.backbone, width=args.width, num_classes=10,
                                            epochs=args.epochs, batch_size=args.batch_size,
                                            augment_config=policy_config(args.augment), seed=args.seed, base_lr=0.1,
                                            weight_decay=5e-4, verbose=True)
    return result["accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["random-init", "supervised", "simsiam"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--base-lr", type=float, default=0.03)
    parser.add_argument("--augment", default="cifar")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=0,
                        help="simsiam: every N epochs print a JSON line with linear-probe and kNN accuracy (a curve)")
    args = parser.parse_args()
    splits = load_splits(args.image_size, DataConfig().shapes_per_split, 0)
    start = time.perf_counter()
    result = {"what": args.what, **vars(args)}
    if args.what == "random-init":
        keras.utils.set_random_seed(args.seed)
        result["accuracy"], result["train_accuracy"] = linear_probe(
            backbones.build_encoder(args.backbone, args.image_size, args.width), splits)
    elif args.what == "supervised":
        result["accuracy"] = supervised(splits, args)
    else:
        keras.utils.set_random_seed(args.seed)
        x = splits[0][0]
        steps = len(x) // args.batch_size
        lr = schedules.warmup_cosine(args.base_lr * args.batch_size / 256, args.epochs * steps)
        model = build_simsiam(args.backbone, args.width, args.image_size, default_proj_dim(args.backbone, args.width), 5e-4, lr)
        views = data.views_of(tf.data.Dataset.from_tensor_slices(x), args.image_size, args.batch_size,
                              data.Transform.direct(policy_config(args.augment), args.image_size, args.augment),
                              args.seed, len(x))
        callbacks = [QualityCurve(splits, args.eval_every, steps, start)] if args.eval_every else []
        hist = model.fit(views, epochs=args.epochs, steps_per_epoch=steps, verbose=2, callbacks=callbacks)
        result["final_loss"] = hist.history["loss"][-1]
        result["accuracy"], result["train_accuracy"] = linear_probe(model.encoder, splits)
    result["seconds"] = time.perf_counter() - start
    print(json.dumps(result))


if __name__ == "__main__":
    main()
