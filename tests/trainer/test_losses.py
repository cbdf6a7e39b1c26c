import numpy as np
import tensorflow as tf

from simsiam_tfx.trainer import losses


def test_identical_prediction_and_target_give_minus_one():
    x = tf.random.normal((8, 16), seed=1)
    assert np.isclose(losses.negative_cosine(x, x).numpy(), -1.0, atol=1e-6)
    assert np.isclose(losses.simsiam_loss(x, x, x, x).numpy(), -1.0, atol=1e-6)


def test_loss_is_scale_invariant_and_bounded():
    p, z = tf.random.normal((8, 16), seed=2), tf.random.normal((8, 16), seed=3)
    assert np.isclose(losses.negative_cosine(p, z).numpy(), losses.negative_cosine(3 * p, 0.5 * z).numpy(), atol=1e-6)
    assert np.isclose(losses.negative_cosine(p, -p).numpy(), 1.0, atol=1e-6)


def test_no_gradient_flows_into_the_stop_gradient_branch():
    p1, p2 = tf.Variable(tf.random.normal((4, 8), seed=4)), tf.Variable(tf.random.normal((4, 8), seed=5))
    z1, z2 = tf.Variable(tf.random.normal((4, 8), seed=6)), tf.Variable(tf.random.normal((4, 8), seed=7))
    with tf.GradientTape(persistent=True) as tape:
        loss = losses.simsiam_loss(p1, p2, z1, z2)
    grad_z1, grad_z2 = tape.gradient(loss, [z1, z2])
    grad_p1, grad_p2 = tape.gradient(loss, [p1, p2])
    assert grad_z1 is None and grad_z2 is None
    assert np.abs(grad_p1.numpy()).sum() > 0 and np.abs(grad_p2.numpy()).sum() > 0


def test_loss_is_symmetric_in_the_two_views():
    p1, p2, z1, z2 = (tf.random.normal((4, 8), seed=s) for s in range(10, 14))
    assert np.isclose(losses.simsiam_loss(p1, p2, z1, z2).numpy(), losses.simsiam_loss(p2, p1, z2, z1).numpy())
