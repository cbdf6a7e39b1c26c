"""Quality per CPU-minute: SimSiam pre-training + the pipeline's linear probe, outside TFX, over
several seeds and data sets, for before/after comparisons of a lever (issue #23).

    python -m benchmarks.study --datasets shapes digits textures --seeds 0 1 2 --epochs 8
    python -m benchmarks.study --tiny            # seconds: the CI smoke test's setting

Every run prints one JSON line; the last line is a table (mean and spread over seeds per data set).
Each run reports three accuracies of the same linear probe (trainer/probe.py):
  select_accuracy  fitted on one half of probe_train, measured on the other half: the number to
                   choose a lever by (the eval split is never used for a choice);
  eval_accuracy    fitted on all of probe_train, measured on eval: reported after choosing;
  gain             eval_accuracy minus the same probe on a random-init encoder (seeded per run).
Pre-training uses the pipeline's recipe for the data set (`PretrainConfig.resolved` with
registries.EMBEDDED_DATASETS: augmentation, view side, epochs; textures takes shapes') unless a flag
overrides it. `--epochs` gives a load-independent comparison
(a wall-clock budget is the pipeline's `--time-budget`, not offered here yet).

Data sets: `shapes` and `digits` are the pipeline's embedded sets at the pipeline's split sizes;
`textures` (built here, never used to tune a default) is band-pass-filtered noise in 9 classes
(3 spatial-frequency bands x isotropic / axis-aligned / diagonal orientation, mirror-symmetric so
flips keep the class), two random colours per image over a 1/f "natural-image-like" background.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

# isort: off
import simsiam_tfx  # noqa: F401  (sets the Keras mode before TensorFlow loads)
# isort: on

import numpy as np
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.components import embedded, shapes
from simsiam_tfx.components.preprocessing import policy_config
from simsiam_tfx.config import DataConfig, PretrainConfig
from simsiam_tfx.registries import EMBEDDED_DATASETS
from simsiam_tfx.trainer import augment, backbones, data, probe, schedules
from simsiam_tfx.trainer.pretrain import PRECISION_POLICIES, auto_precision, build_simsiam

DATASETS = ("shapes", "digits", "textures")
TEXTURE_CLASSES = 9


def textures(num_images: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced, seeded texture images (uint8, S x S x 3) and labels; see the module docstring."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_images) % TEXTURE_CLASSES).astype(np.int64)
    fy = np.fft.fftfreq(image_size)[:, None]
    fx = np.fft.fftfreq(image_size)[None, :]
    radius = np.sqrt(fx ** 2 + fy ** 2) + 1e-9
    angle = np.arctan2(fy, fx)
    bands = [(0.04, 0.10), (0.12, 0.22), (0.26, 0.40)]  # cycles per pixel
    # isotropic; along 0 and 90 degrees; along 45 and 135 degrees
    orient = [np.ones_like(angle), np.cos(2 * angle) ** 8, np.sin(2 * angle) ** 8]
    pink = 1.0 / radius  # 1/f amplitude: natural-image-like background
    pink[0, 0] = 0.0
    images = np.empty((num_images, image_size, image_size, 3), np.uint8)
    for i, y in enumerate(labels):
        # Scale jitter (+-15 %) so a band is a distribution, not a single frequency.
        noise = np.fft.fft2(rng.normal(size=(image_size, image_size)))
        scale = rng.uniform(0.85, 1.15)
        lo, hi = bands[y // 3]
        mask = ((radius >= lo * scale) & (radius < hi * scale)) * orient[y % 3]
        tex = np.real(np.fft.ifft2(noise * mask))
        tex = (tex - tex.mean()) / (tex.std() + 1e-9)
        background = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(image_size, image_size))) * pink))
        background = (background - background.mean()) / (background.std() + 1e-9)
        weight = 1.0 / (1.0 + np.exp(-3.0 * tex))  # soft two-colour map of the texture
        c1, c2, bg = rng.uniform(0, 255, (3, 3))
        image = weight[..., None] * c1 + (1 - weight[..., None]) * c2
        image = 0.8 * image + 0.2 * (bg + 40.0 * background[..., None])
        images[i] = np.clip(image + rng.normal(0, 4.0, image.shape), 0, 255).astype(np.uint8)
    return images, labels


def _to_rgb(images: np.ndarray, image_size: int) -> np.ndarray:
    """Grey or small images -> uint8 S x S x 3 (bilinear, as the Transform graph resizes)."""
    x = tf.convert_to_tensor(images)
    if x.shape.rank == 3:
        x = x[..., None]
    x = tf.image.resize(tf.cast(x, tf.float32), (image_size, image_size))
    x = tf.image.grayscale_to_rgb(x) if x.shape[-1] == 1 else x
    return np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8)


def load(dataset: str, image_size: int, per_split=None, seed: int = 0):
    """[(x, y) for pretrain, probe_train, eval] and the number of classes; the pipeline's splits."""
    if dataset == "digits":
        images, labels, classes = embedded._digits(seed)
        per_split = per_split or embedded.DIGITS_SPLIT
        images = _to_rgb(images, image_size)
    elif dataset == "shapes":
        per_split = per_split or DataConfig().shapes_per_split
        images, labels = shapes.generate(sum(per_split), image_size, seed)
        classes = len(shapes.CLASS_NAMES)
    elif dataset == "textures":
        per_split = per_split or DataConfig().shapes_per_split
        images, labels = textures(sum(per_split), image_size, seed)
        classes = TEXTURE_CLASSES
    else:
        raise ValueError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}")
    out, start = [], 0
    for n in per_split:
        out.append((images[start:start + n], labels[start:start + n]))
        start += n
    return out, classes


def _labelled(x, y, batch=512):
    return tf.data.Dataset.from_tensor_slices((x.astype(np.float32) / 255.0, y)).batch(batch)


def probe_scores(encoder, splits, classes: int, l2: float) -> dict:
    """select (half of probe_train vs the other half) and eval accuracy of the pipeline's probe."""
    (_, _), (xt, yt), (xe, ye) = splits
    half = len(xt) // 2
    select = probe.probe_encoder(encoder, _labelled(xt[:half], yt[:half]), _labelled(xt[half:], yt[half:]),
                                 classes, l2)
    full = probe.probe_encoder(encoder, _labelled(xt, yt), _labelled(xe, ye), classes, l2)
    return {"select_accuracy": select.eval_accuracy, "eval_accuracy": full.eval_accuracy}


def recipe(dataset: str) -> dict:
    """The pipeline's recipe of an embedded data set (registries.EMBEDDED_DATASETS); textures, whose
    colours carry no class either, is measured with shapes' recipe."""
    return EMBEDDED_DATASETS.get(dataset, EMBEDDED_DATASETS["shapes"])


def policy_with(name: str, overrides: dict | None) -> augment.AugmentConfig:
    """A named policy with some parameters replaced (`--augment-set crop_scale=0.4,1.0`)."""
    values = {**augment.to_dict(policy_config(name)), **(overrides or {})}
    return augment.from_dict(values)


def parse_overrides(pairs: list[str]) -> dict:
    """["crop_scale=0.4,1.0", "flip=false"] -> {"crop_scale": [0.4, 1.0], "flip": False} (JSON values)."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        values = json.loads(f"[{value}]")
        out[key] = values if len(values) > 1 else values[0]
    return out


def run_one(dataset: str, seed: int, p: PretrainConfig, image_size: int, augment_name: str | None,
            per_split=None, l2: float = 1e-4, overrides: dict | None = None) -> dict:
    splits, classes = load(dataset, image_size, per_split)
    p = p.resolved(image_size, recipe(dataset))
    if p.precision == "auto":
        p = dataclasses.replace(p, precision=auto_precision(p.width)[0])
    policy = augment_name or recipe(dataset)["augment"]
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[p.precision])
    try:
        keras.utils.set_random_seed(seed)
        x = splits[0][0]
        batch = min(p.batch_size, len(x))
        steps = max(1, len(x) // batch)
        transform = data.Transform.direct(policy_with(policy, overrides), image_size, policy, p.view_size)
        views = data.views_of(tf.data.Dataset.from_tensor_slices(x), image_size, batch, transform, seed, len(x),
                              p.view_size)
        start = time.perf_counter()
        epochs = p.epochs
        lr = schedules.warmup_cosine(p.base_lr * batch / 256, epochs * steps, p.warmup_epochs * steps,
                                     p.final_lr_fraction)
        model = build_simsiam(p.backbone, p.width, image_size, p.proj_dim, p.weight_decay, lr, p.momentum,
                              view_size=p.view_size)
        fit_start = time.perf_counter()
        hist = model.fit(views, epochs=epochs, steps_per_epoch=steps, verbose=0)
        fit_seconds = time.perf_counter() - fit_start
        pretrain_seconds = time.perf_counter() - start
    finally:
        keras.mixed_precision.set_global_policy("float32")
    scores = probe_scores(backbones.with_input_size(model.encoder, image_size), splits, classes, l2)
    keras.utils.set_random_seed(probe.RANDOM_INIT_SEED + seed)
    random_init = probe_scores(backbones.build_encoder(p.backbone, image_size, p.width), splits, classes, l2)
    return {"dataset": dataset, "seed": seed, "epochs": epochs, "batch_size": batch, "augment": policy,
            "augment_overrides": overrides or {},
            "base_lr": p.base_lr, "weight_decay": p.weight_decay, "warmup_epochs": p.warmup_epochs,
            "final_lr_fraction": p.final_lr_fraction, "width": p.width, "view_size": p.view_size, "proj_dim": p.proj_dim, "precision": p.precision, "image_size": image_size,
            **scores, "random_init_select": random_init["select_accuracy"],
            "random_init_eval": random_init["eval_accuracy"],
            "gain": scores["eval_accuracy"] - random_init["eval_accuracy"],
            "final_loss": float(hist.history["loss"][-1]),
            "images_per_second": epochs * steps * batch / fit_seconds, "pretrain_seconds": pretrain_seconds}


def table(rows: list[dict]) -> dict:
    """Per data set: mean and (max - min) over seeds of each accuracy, and mean images/s."""
    out = {}
    for name in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == name]
        entry = {"seeds": [r["seed"] for r in mine]}
        for key in ("select_accuracy", "eval_accuracy", "random_init_eval", "gain", "images_per_second"):
            values = [r[key] for r in mine]
            entry[key] = round(statistics.fmean(values), 4)
            entry[key + "_spread"] = round(max(values) - min(values), 4)
        out[name] = entry
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--augment", default=None, help="override the data set's preset")
    parser.add_argument("--augment-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="replace parameters of the policy, e.g. crop_scale=0.4,1.0 jitter_prob=0.5")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (CI): 60/40/40 images at 16 px")
    defaults = PretrainConfig()
    for field in ("width", "epochs", "view_size", "batch_size", "proj_dim", "base_lr", "weight_decay", "momentum",
                  "warmup_epochs", "final_lr_fraction", "precision"):
        value = getattr(defaults, field)
        kind = type(value) if value is not None else float
        kind = int if field in ("proj_dim", "view_size", "epochs") else kind
        parser.add_argument("--" + field.replace("_", "-"), type=kind, default=value)
    args = parser.parse_args(argv)
    p = dataclasses.replace(defaults, **{f: getattr(args, f) for f in (
        "width", "epochs", "view_size", "batch_size", "proj_dim", "base_lr", "weight_decay", "momentum",
        "warmup_epochs", "final_lr_fraction", "precision")})
    per_split, image_size = None, args.image_size
    if args.tiny:
        per_split, image_size = (60, 40, 40), 16
        p = dataclasses.replace(p, width=2, epochs=1, batch_size=16)
    rows = []
    for name in args.datasets:
        for seed in args.seeds:
            row = run_one(name, seed, p, image_size, args.augment, per_split,
                          overrides=parse_overrides(args.augment_set))
            print(json.dumps(row), flush=True)
            rows.append(row)
    summary = table(rows)
    print(json.dumps({"table": summary}), flush=True)
    return summary


if __name__ == "__main__":
    main()
