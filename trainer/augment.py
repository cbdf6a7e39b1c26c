"""SimSiam's view augmentations, with stateless TensorFlow random ops only.

Every random choice is drawn from a per-example seed (shape [2]) with `tf.random.stateless_*`, so
a view is a pure function of (image, seed): reproducible under a fixed seed, fresh for every seed,
and safe inside `tf.function` / `tf.data` (no numpy or Python randomness frozen at trace time).

This is the one implementation of the views. In the pipeline it runs inside the Transform stage's
graph (trainer/data.py `transform_features`, traced by components/preprocessing.py), which the
SimSiam Trainer applies on the fly with fresh seeds every step; the supervised reference and the
benchmarks outside TFX call it directly.
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Every parameter of a view policy (defaults: the paper's CIFAR policy). The named policies the
    pipeline offers are simsiam_tfx/registries.py `AUGMENT_POLICIES`."""
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    flip: bool = True


def to_dict(config: AugmentConfig) -> dict:
    """The policy as JSON-ready values (every parameter): what the Transform artifact records."""
    return dataclasses.asdict(config)


def from_dict(values: dict) -> AugmentConfig:
    fields = {f.name: f for f in dataclasses.fields(AugmentConfig)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown augmentation parameter(s): {', '.join(sorted(unknown))}")
    return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def to_record(name: str, config: AugmentConfig) -> dict:
    """The one recorded shape of a policy, {"name", **every parameter}: in Transform's
    custom_config, the file beside its graph, MLMD and the run summary."""
    return {"name": name, **to_dict(config)}


def from_record(record: dict) -> AugmentConfig:
    return from_dict({k: v for k, v in record.items() if k != "name"})


# Uniform numbers one view draws: its columns in `augment_examples`.
_CROP, _JITTER_P, _JITTER, _GREY_P, _BLUR_P, _BLUR_SIGMA, _FLIP_P = 0, 4, 5, 9, 10, 11, 12
_DRAWS = 13


def example_seeds(seed: tf.Tensor, count) -> tf.Tensor:
    """`count` independent seeds (count, 2) from one seed [2]."""
    return tf.random.stateless_uniform([count, 2], tf.cast(seed, tf.int64), minval=None, maxval=None,
                                       dtype=tf.int64)


def example_uniforms(seeds: tf.Tensor, count: int) -> tf.Tensor:
    """(B, count) uniforms in [0, 1), row i a function of seeds[i] alone: a view depends on its
    image and its seed, never on the other examples of the batch."""
    return tf.map_fn(lambda s: tf.random.stateless_uniform([count], s), tf.cast(seeds, tf.int64),
                     fn_output_signature=tf.TensorSpec([count], tf.float32))


def _scaled(u, low, high):
    return low + u * (high - low)


def crop_boxes(u: tf.Tensor, scale, ratio) -> tf.Tensor:
    """Crop boxes [y0, x0, y1, x1] (normalised) from (B, 4) uniforms: area fraction in `scale` and
    aspect ratio (w/h) log-uniform in `ratio`, as torchvision's RandomResizedCrop; sides that would
    exceed the image are clipped to it instead of re-drawn."""
    area = _scaled(u[:, 0], *scale)
    log_ratio = _scaled(u[:, 1], math.log(ratio[0]), math.log(ratio[1]))
    w = tf.minimum(tf.sqrt(area * tf.exp(log_ratio)), 1.0)
    h = tf.minimum(tf.sqrt(area / tf.exp(log_ratio)), 1.0)
    x0 = u[:, 2] * (1.0 - w)
    y0 = u[:, 3] * (1.0 - h)
    return tf.stack([y0, x0, y0 + h, x0 + w], axis=1)


def _applied(u, prob):
    """A (B, 1, 1, 1) boolean mask from (B,) uniforms: which examples get a transform applied."""
    return tf.reshape(u < prob, [-1, 1, 1, 1])


def _factor(u, spread, applied):
    """Per-example factors U(1 - spread, 1 + spread), 1 where the transform is not applied."""
    f = tf.reshape(_scaled(u, 1.0 - spread, 1.0 + spread), [-1, 1, 1, 1])
    return tf.where(applied, f, tf.ones_like(f))


def _grey(images):
    return tf.image.rgb_to_grayscale(images)  # (B, H, W, 1), ITU-R 601 weights as torchvision


def color_jitter(images, u, applied, brightness, contrast, saturation, hue):
    """torchvision's ColorJitter (in its fixed order b, c, s, h) on a batch, from (B, 4) uniforms."""
    if brightness > 0:
        images = tf.clip_by_value(images * _factor(u[:, 0], brightness, applied), 0.0, 1.0)
    if contrast > 0:
        mean_grey = tf.reduce_mean(_grey(images), axis=[1, 2, 3], keepdims=True)
        images = tf.clip_by_value((images - mean_grey) * _factor(u[:, 1], contrast, applied) + mean_grey, 0.0, 1.0)
    if saturation > 0:
        grey = _grey(images)
        images = tf.clip_by_value((images - grey) * _factor(u[:, 2], saturation, applied) + grey, 0.0, 1.0)
    if hue > 0:
        delta = tf.where(tf.reshape(applied, [-1]), _scaled(u[:, 3], -hue, hue), 0.0)
        hsv = tf.image.rgb_to_hsv(images)
        h = tf.math.floormod(hsv[..., 0] + delta[:, None, None], 1.0)
        images = tf.clip_by_value(tf.image.hsv_to_rgb(tf.stack([h, hsv[..., 1], hsv[..., 2]], -1)), 0.0, 1.0)
    return images


def gaussian_blur(image, sigma):
    """Separable Gaussian blur of one image, kernel about 10 % of the image side (as in SimCLR)."""
    side = image.shape[0] or 224
    radius = max(1, int(side * 0.1) // 2)
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(x / sigma))
    kernel /= tf.reduce_sum(kernel)
    kh = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
    kw = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    blurred = tf.nn.depthwise_conv2d(image[tf.newaxis], kh, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(blurred, kw, [1, 1, 1, 1], "SAME")[0]


def augment_examples(images: tf.Tensor, seeds: tf.Tensor, config: AugmentConfig, size: int) -> tf.Tensor:
    """One random view of each float32 [0, 1] image of a (B, H, W, 3) batch -> (B, size, size, 3),
    view i drawn from seeds[i] ((B, 2) int64) alone.

    Vectorised over the batch (one op per transform, not per image); only the few uniform numbers
    of each view are drawn per example.
    """
    u = example_uniforms(seeds, _DRAWS)
    batch = tf.shape(images)[0]
    boxes = crop_boxes(u[:, _CROP:_CROP + 4], config.crop_scale, config.crop_ratio)
    images = tf.image.crop_and_resize(images, boxes, tf.range(batch), (size, size), method="bilinear")
    if config.jitter_prob > 0 and any(v > 0 for v in config.jitter):
        images = color_jitter(images, u[:, _JITTER:_JITTER + 4], _applied(u[:, _JITTER_P], config.jitter_prob),
                              *config.jitter)
    if config.grayscale_prob > 0:
        images = tf.where(_applied(u[:, _GREY_P], config.grayscale_prob),
                          tf.image.grayscale_to_rgb(_grey(images)), images)
    if config.blur_prob > 0:
        sigmas = _scaled(u[:, _BLUR_SIGMA], *config.blur_sigma)
        blurred = tf.map_fn(lambda a: gaussian_blur(a[0], a[1]), (images, sigmas),
                            fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32))
        images = tf.where(_applied(u[:, _BLUR_P], config.blur_prob), blurred, images)
    if config.flip:
        images = tf.where(_applied(u[:, _FLIP_P], 0.5), tf.reverse(images, axis=[2]), images)
    return tf.ensure_shape(tf.clip_by_value(images, 0.0, 1.0), (None, size, size, 3))


def augment_batch(images: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, size: int) -> tf.Tensor:
    """`augment_examples` with every example's seed split from one batch seed [2]."""
    return augment_examples(images, example_seeds(seed, tf.shape(images)[0]), config, size)
