"""SimSiam's view augmentations, with stateless TensorFlow random ops only.

Every random choice is drawn from a `seed` tensor (shape [2]) with `tf.random.stateless_*`, so a
view is a pure function of (image, seed): reproducible under a fixed seed, fresh for every seed,
and safe inside `tf.function` / `tf.data` (no numpy or Python randomness frozen at trace time).
The input pipeline gives each example one seed and splits it into the seeds of its two views, so
both views always come from the same example.
"""
from __future__ import annotations

import dataclasses

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
    # digit is another glyph), no hue/saturation. Random-init probes already reach >90 % there and
    # the paper's crops make SimSiam worse (measured: 0.68-0.80 vs 0.92).
    "mild": AugmentConfig(crop_scale=(0.5, 1.0), jitter=(0.4, 0.4, 0.0, 0.0), flip=False),
}


def preset(name: str) -> AugmentConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def _uniform(seed, low, high):
    return tf.random.stateless_uniform([], seed, minval=low, maxval=high)


def _happens(seed, prob):
    return tf.random.stateless_uniform([], seed) < prob


def random_resized_crop(image, seed, size, scale, ratio):
    """Crop a random area fraction in `scale` with aspect ratio in `ratio`, resize to size x size."""
    shape = tf.shape(image)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=ratio, area_range=scale, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, crop_size)
    return tf.image.resize(crop, (size, size), method="bilinear", antialias=True)


def color_jitter(image, seed, brightness, contrast, saturation, hue):
    """torchvision's ColorJitter factors (multiplicative brightness, contrast about the mean grey)."""
    s = tf.random.experimental.stateless_split(seed, 4)
    if brightness > 0:
        image = image * _uniform(s[0], 1.0 - brightness, 1.0 + brightness)
    if contrast > 0:
        grey = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
        image = (image - grey) * _uniform(s[1], 1.0 - contrast, 1.0 + contrast) + grey
    image = tf.clip_by_value(image, 0.0, 1.0)
    if saturation > 0:
        image = tf.image.adjust_saturation(image, _uniform(s[2], 1.0 - saturation, 1.0 + saturation))
    if hue > 0:
        image = tf.image.adjust_hue(image, _uniform(s[3], -hue, hue))
    return tf.clip_by_value(image, 0.0, 1.0)


def gaussian_blur(image, sigma):
    """Separable Gaussian blur, kernel about 10 % of the image side (as in SimCLR)."""
    side = image.shape[0] or 224
    radius = max(1, int(side * 0.1) // 2)
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(x / sigma))
    kernel /= tf.reduce_sum(kernel)
    batched = image[tf.newaxis]
    kh = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
    kw = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    blurred = tf.nn.depthwise_conv2d(batched, kh, [1, 1, 1, 1], "SAME")
    blurred = tf.nn.depthwise_conv2d(blurred, kw, [1, 1, 1, 1], "SAME")
    return blurred[0]


def augment_view(image: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, size: int) -> tf.Tensor:
    """One random view of a float32 [0, 1] image of shape (H, W, 3); returns (size, size, 3)."""
    s = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 8)
    image = random_resized_crop(image, s[0], size, config.crop_scale, config.crop_ratio)
    if config.jitter_prob > 0 and any(v > 0 for v in config.jitter):
        image = tf.cond(_happens(s[1], config.jitter_prob),
                        lambda: color_jitter(image, s[2], *config.jitter), lambda: image)
    if config.grayscale_prob > 0:
        image = tf.cond(_happens(s[3], config.grayscale_prob),
                        lambda: tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image)), lambda: image)
    if config.blur_prob > 0:
        sigma = _uniform(s[5], *config.blur_sigma)
        image = tf.cond(_happens(s[4], config.blur_prob), lambda: gaussian_blur(image, sigma), lambda: image)
    if config.flip:
        image = tf.image.stateless_random_flip_left_right(image, s[6])
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), (size, size, 3))


def two_views(image: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, size: int):
    """Two independent views of the same image from one example seed."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    return augment_view(image, seeds[0], config, size), augment_view(image, seeds[1], config, size)

