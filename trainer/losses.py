"""SimSiam's symmetric stop-gradient negative-cosine loss (Chen & He 2020, Eq. 1-4)."""
from __future__ import annotations

import tensorflow as tf


def negative_cosine(p: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
    """D(p, z) = -cos(p, sg(z)), averaged over the batch; computed in float32."""
    p = tf.math.l2_normalize(tf.cast(p, tf.float32), axis=1)
    z = tf.math.l2_normalize(tf.stop_gradient(tf.cast(z, tf.float32)), axis=1)
    return -tf.reduce_mean(tf.reduce_sum(p * z, axis=1))


def simsiam_loss(p1: tf.Tensor, p2: tf.Tensor, z1: tf.Tensor, z2: tf.Tensor) -> tf.Tensor:
    """L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2; -1 is its minimum."""
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
