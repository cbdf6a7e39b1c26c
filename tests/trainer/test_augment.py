"""Tests of simsiam_tfx.trainer.augment."""
import numpy as np
import pytest
import tensorflow as tf

from simsiam_tfx.components import preprocessing
from simsiam_tfx.registries import AUGMENT_POLICIES
from simsiam_tfx.trainer import augment

SIZE = 32


def _image(seed=0):
    return tf.random.stateless_uniform((SIZE, SIZE, 3), (seed, 1))


def _two_views(images, seed, cfg):
    return tuple(augment.augment_examples(images, augment.example_seeds(tf.constant(seed, tf.int64), 2)[i:i + 1],
                                          cfg, SIZE) for i in (0, 1))


def test_two_views_of_one_image_differ_and_keep_shape_and_range():
    for name in AUGMENT_POLICIES:
        v1, v2 = _two_views(_image()[None], [1, 2], preprocessing.policy_config(name))
        for v in (v1, v2):
            assert v.shape == (1, SIZE, SIZE, 3) and v.dtype == tf.float32
            assert float(tf.reduce_min(v)) >= 0.0 and float(tf.reduce_max(v)) <= 1.0
        assert float(tf.reduce_mean(tf.abs(v1 - v2))) > 1e-3, name


def test_views_are_reproducible_under_a_fixed_seed_and_change_with_it():
    cfg = preprocessing.policy_config("imagenet")
    a = _two_views(_image()[None], [7, 8], cfg)
    b = _two_views(_image()[None], [7, 8], cfg)
    c = _two_views(_image()[None], [7, 9], cfg)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    assert not np.allclose(a[0].numpy(), c[0].numpy())


def test_every_example_of_a_batch_gets_its_own_draw():
    same = tf.repeat(_image()[None], 8, axis=0)
    views = augment.augment_batch(same, tf.constant([3, 4], tf.int64), preprocessing.policy_config("cifar"), SIZE).numpy()
    assert all(not np.allclose(views[0], views[i]) for i in range(1, 8))


def test_views_inside_tf_function_are_fresh_for_every_seed():
    # The seeds' bug: numpy randomness inside tf.function is drawn once at trace time.
    cfg = preprocessing.policy_config("cifar")
    fn = tf.function(lambda img, seed: augment.augment_examples(img[None], seed[None], cfg, SIZE)[0])
    outs = [fn(_image(), tf.constant([s, 0], tf.int64)).numpy() for s in range(4)]
    assert all(not np.allclose(outs[0], o) for o in outs[1:])


def test_crop_and_colour_statistics_follow_the_configuration():
    cfg = preprocessing.policy_config("cifar")
    uniforms = augment.example_uniforms(augment.example_seeds(tf.constant([0, 1], tf.int64), 4096), 4)
    boxes = augment.crop_boxes(uniforms, cfg.crop_scale, cfg.crop_ratio).numpy()
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0
    assert (h * w).min() >= 0.2 - 1e-6 and (h * w).max() <= 1.0 + 1e-6
    assert abs((h * w).mean() - 0.6) < 0.03  # mean of U(0.2, 1.0)
    ratios = w / h
    assert ratios.min() >= 3 / 4 - 1e-5 and ratios.max() <= 4 / 3 + 1e-5
    # Grayscale with p = 0.2: about a fifth of the views of a colourful image have no colour.
    colourful = tf.repeat(tf.constant([[[[1.0, 0.0, 0.0]]]]) * tf.ones((1, SIZE, SIZE, 3)), 2000, axis=0)
    views = augment.augment_batch(colourful, tf.constant([5, 6], tf.int64), cfg, SIZE).numpy()
    grey = np.all(np.abs(views[..., 0] - views[..., 1]) < 1e-5, axis=(1, 2))
    assert 0.16 < grey.mean() < 0.24


def test_a_view_depends_on_its_image_and_seed_not_on_the_batch():
    cfg = preprocessing.policy_config("imagenet")
    images = tf.random.stateless_uniform((4, SIZE, SIZE, 3), (1, 2))
    seeds = augment.example_seeds(tf.constant([9, 9], tf.int64), 4)
    batch = augment.augment_examples(images, seeds, cfg, SIZE).numpy()
    alone = augment.augment_examples(images[1:2], seeds[1:2], cfg, SIZE).numpy()
    np.testing.assert_allclose(batch[1], alone[0], atol=1e-6)


def test_policy_round_trips_through_json_values():
    for name in AUGMENT_POLICIES:
        assert augment.from_dict(augment.to_dict(preprocessing.policy_config(name))) == preprocessing.policy_config(name)
    with pytest.raises(ValueError, match="unknown augmentation parameter"):
        augment.from_dict({"crop_sclae": [0.2, 1.0]})
