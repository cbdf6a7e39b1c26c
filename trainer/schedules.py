"""Learning-rate schedules."""
from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak_lr`, then cosine decay to 0 at exactly `total_steps`.

    `total_steps` must be epochs x steps-per-epoch of the real run (one seed decayed over 500
    steps and then trained most of its epochs at LR 0).
    """

    def __init__(self, peak_lr: float, total_steps: int, warmup_steps: int = 0):
        super().__init__()
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
        self.peak_lr, self.total_steps, self.warmup_steps = peak_lr, total_steps, warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = float(max(self.warmup_steps, 1))
        progress = (step - self.warmup_steps) / float(self.total_steps - self.warmup_steps)
        cosine = 0.5 * self.peak_lr * (1.0 + tf.cos(math.pi * tf.clip_by_value(progress, 0.0, 1.0)))
        if self.warmup_steps == 0:
            return cosine
        return tf.where(step < self.warmup_steps, self.peak_lr * (step + 1.0) / warm, cosine)

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}
