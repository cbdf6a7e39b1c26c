"""The SimSiam model: encoder f, projector g (together the paper's f), predictor h, and its step.

Optimisation follows the paper: SGD with momentum; weight decay added to the gradient of every
weight, BatchNorm included (PyTorch's coupled `weight_decay`, not Keras' decoupled one); the
predictor on its own optimizer with a constant learning rate while the rest follows the cosine.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from trainer import losses


def normalized_std(z: tf.Tensor) -> tf.Tensor:
    """Std over the batch of the l2-normalised z, averaged over dimensions (paper Fig. 2).

    About 1/sqrt(d) for well-spread outputs; 0 when every output is the same (collapse).
    """
    z = tf.math.l2_normalize(tf.cast(z, tf.float32), axis=1)
    return tf.reduce_mean(tf.math.reduce_std(z, axis=0))


class SimSiam(keras.Model):
    def __init__(self, encoder: keras.Model, projector: keras.Model, predictor: keras.Model,
                 weight_decay: float, predictor_optimizer: keras.optimizers.Optimizer, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.projector, self.predictor = encoder, projector, predictor
        self.weight_decay = weight_decay
        self.predictor_optimizer = predictor_optimizer
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.z_std_tracker = keras.metrics.Mean(name="z_std")

    @property
    def metrics(self):
        return [self.loss_tracker, self.z_std_tracker]

    def call(self, images, training=False):
        return self.projector(self.encoder(images, training=training), training=training)

    def backbone_variables(self):
        """Encoder and projector weights: the ones on the cosine schedule."""
        return self.encoder.trainable_variables + self.projector.trainable_variables

    def train_step(self, data):
        view1, view2 = data
        with tf.GradientTape() as tape:
            # Each view is its own forward pass, so BatchNorm statistics are per view as in the paper.
            z1 = self(view1, training=True)
            z2 = self(view2, training=True)
            p1 = self.predictor(z1, training=True)
            p2 = self.predictor(z2, training=True)
            loss = losses.simsiam_loss(p1, p2, z1, z2)
        backbone_vars = self.backbone_variables()
        predictor_vars = self.predictor.trainable_variables
        grads = tape.gradient(loss, backbone_vars + predictor_vars)
        grads = [g + self.weight_decay * tf.cast(v, g.dtype) for g, v in zip(grads, backbone_vars + predictor_vars)]
        n = len(backbone_vars)
        self.optimizer.apply_gradients(zip(grads[:n], backbone_vars))
        self.predictor_optimizer.apply_gradients(zip(grads[n:], predictor_vars))
        self.loss_tracker.update_state(loss)
        self.z_std_tracker.update_state(normalized_std(z1))
        return {m.name: m.result() for m in self.metrics}
