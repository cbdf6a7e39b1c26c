"""The SimSiam model: encoder f, projector g (together the paper's f), predictor h, and its step.

Optimisation follows the paper: SGD with momentum; weight decay added to the gradient of every
weight, BatchNorm included (PyTorch's coupled `weight_decay`, not Keras' decoupled one); the
predictor on its own optimizer with a constant learning rate while the rest follows the cosine.

The step is data-parallel-ready (see `SimSiam.train_step`) and supports float16 loss scaling: with
the "mixed_float16" policy both optimizers are `LossScaleOptimizer`s (see `pretrain.build_simsiam`).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.trainer import losses


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
        # Under a tf.distribute strategy Keras runs this step once per replica, on that replica's
        # slice of the global batch, and apply_gradients all-reduces the replicas' gradients by
        # SUM. Dividing the replica's mean loss, and the weight decay, by the replica count makes
        # that sum the gradient of the mean loss over the global batch, with the decay added
        # exactly once. With one replica (the default strategy) nothing changes.
        replicas = self.distribute_strategy.num_replicas_in_sync
        backbone_vars = self.backbone_variables()
        predictor_vars = self.predictor.trainable_variables
        scaled = loss_scaling(self.optimizer)
        with tf.GradientTape(persistent=scaled) as tape:
            # Each view is its own forward pass, so BatchNorm statistics are per view as in the paper.
            z1 = self(view1, training=True)
            z2 = self(view2, training=True)
            p1 = self.predictor(z1, training=True)
            p2 = self.predictor(z2, training=True)
            loss = losses.simsiam_loss(p1, p2, z1, z2)  # float32 whatever the compute dtype
            replica_loss = loss / replicas
            if scaled:
                backbone_loss = self.optimizer.get_scaled_loss(replica_loss)
                predictor_loss = self.predictor_optimizer.get_scaled_loss(replica_loss)
        if scaled:
            # float16: each optimizer multiplies the loss by its own dynamic loss scale (so small
            # gradients do not underflow) and divides its own gradients by it again; its
            # apply_gradients skips the step and lowers the scale when they overflowed. Separate
            # scales need a second backward pass, through the small predictor only.
            backbone_grads = self.optimizer.get_unscaled_gradients(tape.gradient(backbone_loss, backbone_vars))
            predictor_grads = self.predictor_optimizer.get_unscaled_gradients(
                tape.gradient(predictor_loss, predictor_vars))
            del tape
        else:
            grads = tape.gradient(replica_loss, backbone_vars + predictor_vars)
            backbone_grads, predictor_grads = grads[:len(backbone_vars)], grads[len(backbone_vars):]
        # Coupled weight decay, on the unscaled gradients.
        decay = self.weight_decay / replicas
        self.optimizer.apply_gradients(zip(_decayed(backbone_grads, backbone_vars, decay), backbone_vars))
        self.predictor_optimizer.apply_gradients(
            zip(_decayed(predictor_grads, predictor_vars, decay), predictor_vars))
        # Per-replica values; the metrics average them over replicas when read.
        self.loss_tracker.update_state(loss)
        self.z_std_tracker.update_state(normalized_std(z1))
        return {m.name: m.result() for m in self.metrics}


def loss_scaling(optimizer) -> bool:
    """Whether `optimizer` is a (float16) LossScaleOptimizer."""
    return isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)


def _decayed(grads, variables, decay: float):
    return [g + decay * tf.cast(v, g.dtype) for g, v in zip(grads, variables)]
