"""The Transform module: raw image bytes -> fixed-size images, deterministically.

Decodes JPEG/PNG/GIF/BMP of any size and channel count (grayscale is replicated to RGB, alpha is
dropped, 16-bit is scaled down), resizes to image_size x image_size with antialiasing, and stores
the result as a serialized uint8 tensor: 3 bytes per pixel instead of float32's 12, so transformed
data stays as compact as the images. Scaling to [0, 1] happens at decode time in the trainer
(trainer/data.py), the one place shared by training and serving.

Augmentation is deliberately not here: Transform's output is materialised once, but SimSiam needs
fresh random views at every step, so the Trainer's tf.data input applies it on the fly.
"""
from __future__ import annotations

import tensorflow as tf

from simsiam_tfx.features import IMAGE_KEY, LABEL_KEY  # raw and transformed features share their keys


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """One encoded image (scalar string) -> uint8 (S, S, 3)."""
    image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def preprocessing_fn(inputs, custom_config):
    image_size = int(custom_config["image_size"])
    encoded = tf.reshape(inputs[IMAGE_KEY], [-1])
    images = tf.map_fn(lambda e: tf.io.serialize_tensor(decode_and_resize(e, image_size)), encoded,
                       fn_output_signature=tf.TensorSpec([], tf.string))
    outputs = {IMAGE_KEY: images}
    if LABEL_KEY in inputs:
        outputs[LABEL_KEY] = tf.reshape(inputs[LABEL_KEY], [-1])
    return outputs
