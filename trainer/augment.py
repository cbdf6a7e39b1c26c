"""SimSiam's view augmentations, with stateless TensorFlow random ops only.

Every random choice is drawn from a `seed` tensor (shape [2]) with `tf.random.stateless_*`, so a
view is a pure function of (image, seed): reproducible under a fixed seed, fresh for every seed,
and safe inside `tf.function` / `tf.data` (no numpy or Python randomness frozen at trace time).
The input pipeline gives each example one seed and splits it into the seeds of its two views, so
both views always come from the same example.
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    flip: bool = True


PRESETS = {
    # The paper's ImageNet policy (MoCo v2's): crops down to 20 %, jitter, grayscale, blur, flip.
    "imagenet": AugmentConfig(blur_prob=0.5),
    # The paper's CIFAR policy: the same without blur (blur destroys 32 px images).
    "cifar": AugmentConfig(),
    # The CIFAR policy with colour jitter strong enough (any hue, large saturation/brightness
    # changes) that two views cannot be matched by their colour alone: on `shapes`, where colour
    # is random and carries no class, weaker jitter lets SimSiam match views by colour.
    "strong-colour": AugmentConfig(jitter=(0.8, 0.8, 0.8, 0.5)),
    # For tiny, centred, colourless images such as 8x8 digits: large crops, no flips (a flipped
    # digit is another glyph), no hue/saturation: the paper's crops make SimSiam worse there (README,
    # `digits`).
    "mild": AugmentConfig(crop_scale=(0.5, 1.0), jitter=(0.4, 0.4, 0.0, 0.0), flip=False),
}


def preset(name: str) -> AugmentConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def _uniform(shape, seed, low=0.0, high=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def crop_boxes(batch: tf.Tensor, seed, scale, ratio) -> tf.Tensor:
    """Random crop boxes [y0, x0, y1, x1] (normalised) of area fraction in `scale` and aspect ratio
    (w/h) log-uniform in `ratio`, as torchvision's RandomResizedCrop; sides that would exceed the
    image are clipped to it instead of re-drawn."""
    s = tf.random.experimental.stateless_split(seed, 4)
    area = _uniform([batch], s[0], *scale)
    log_ratio = _uniform([batch], s[1], math.log(ratio[0]), math.log(ratio[1]))
    w = tf.minimum(tf.sqrt(area * tf.exp(log_ratio)), 1.0)
    h = tf.minimum(tf.sqrt(area / tf.exp(log_ratio)), 1.0)
    x0 = _uniform([batch], s[2]) * (1.0 - w)
    y0 = _uniform([batch], s[3]) * (1.0 - h)
    return tf.stack([y0, x0, y0 + h, x0 + w], axis=1)


def _per_example(batch, seed, prob):
    """A (B, 1, 1, 1) boolean mask: which examples get a transform applied with probability `prob`."""
    return tf.reshape(_uniform([batch], seed) < prob, [-1, 1, 1, 1])


def _factor(batch, seed, spread, applied):
    """Per-example factors U(1 - spread, 1 + spread), 1 where the transform is not applied."""
    f = tf.reshape(_uniform([batch], seed, 1.0 - spread, 1.0 + spread), [-1, 1, 1, 1])
    return tf.where(applied, f, tf.ones_like(f))


def _grey(images):
    return tf.image.rgb_to_grayscale(images)  # (B, H, W, 1), ITU-R 601 weights as torchvision


def color_jitter(images, seed, applied, brightness, contrast, saturation, hue):
    """torchvision's ColorJitter (in its fixed order b, c, s, h) on a batch, one draw per example."""
    batch = tf.shape(images)[0]
    s = tf.random.experimental.stateless_split(seed, 4)
    if brightness > 0:
        images = tf.clip_by_value(images * _factor(batch, s[0], brightness, applied), 0.0, 1.0)
    if contrast > 0:
        mean_grey = tf.reduce_mean(_grey(images), axis=[1, 2, 3], keepdims=True)
        images = tf.clip_by_value((images - mean_grey) * _factor(batch, s[1], contrast, applied) + mean_grey, 0.0, 1.0)
    if saturation > 0:
        grey = _grey(images)
        images = tf.clip_by_value((images - grey) * _factor(batch, s[2], saturation, applied) + grey, 0.0, 1.0)
    if hue > 0:
        delta = tf.where(tf.reshape(applied, [-1]), _uniform([batch], s[3], -hue, hue), 0.0)
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


def augment_batch(images: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, size: int) -> tf.Tensor:
    """One random view of each float32 [0, 1] image of a (B, H, W, 3) batch -> (B, size, size, 3).

    Vectorised over the batch (one op per transform, not per image), with an independent draw
    for every example from `seed`.
    """
    s = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 8)
    batch = tf.shape(images)[0]
    boxes = crop_boxes(batch, s[0], config.crop_scale, config.crop_ratio)
    images = tf.image.crop_and_resize(images, boxes, tf.range(batch), (size, size), method="bilinear")
    if config.jitter_prob > 0 and any(v > 0 for v in config.jitter):
        images = color_jitter(images, s[2], _per_example(batch, s[1], config.jitter_prob), *config.jitter)
    if config.grayscale_prob > 0:
        images = tf.where(_per_example(batch, s[3], config.grayscale_prob),
                          tf.image.grayscale_to_rgb(_grey(images)), images)
    if config.blur_prob > 0:
        sigmas = _uniform([batch], s[5], *config.blur_sigma)
        blurred = tf.map_fn(lambda a: gaussian_blur(a[0], a[1]), (images, sigmas),
                            fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32))
        images = tf.where(_per_example(batch, s[4], config.blur_prob), blurred, images)
    if config.flip:
        images = tf.where(_per_example(batch, s[6], 0.5), tf.reverse(images, axis=[2]), images)
    return tf.ensure_shape(tf.clip_by_value(images, 0.0, 1.0), (None, size, size, 3))


def two_views(images: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, size: int):
    """Two independent views of every image of a batch, from one seed: both views of row i come
    from image i."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    return augment_batch(images, seeds[0], config, size), augment_batch(images, seeds[1], config, size)


def augment_view(image: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, size: int) -> tf.Tensor:
    """One random view of a single (H, W, 3) image."""
    return augment_batch(image[tf.newaxis], seed, config, size)[0]
