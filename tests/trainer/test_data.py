"""Tests of simsiam_tfx.trainer.data: the Transform graph's body and the Trainers' tf.data input."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from simsiam_tfx.components import preprocessing
from simsiam_tfx.trainer import augment, data
from tests import data_factory

SIZE = 32
IDENTITY = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_prob=0.0,
                                 grayscale_prob=0.0, flip=False)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """Transform graphs written and loaded as the pipeline does: the cifar policy, and the same
    policy with only the crops changed (an edit of the policy, no edit of the Trainer)."""
    root = tmp_path_factory.mktemp("graphs")
    cifar = preprocessing.policy_config("cifar")
    data.write_transform_graph(str(root / "cifar"), cifar, SIZE, "cifar", temp_dir=str(root / "tmp1"))
    data.write_transform_graph(str(root / "edited"), dataclasses.replace(cifar, crop_scale=(0.9, 1.0)), SIZE,
                               "edited", temp_dir=str(root / "tmp2"))
    return {name: data.Transform.load(str(root / name)) for name in ("cifar", "edited")}


def _random_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, SIZE, SIZE, 3), dtype=np.uint8)


def _serialized(images):
    return tf.constant([tf.io.serialize_tensor(i).numpy() for i in images])


def _first_views(ds):
    v1, _ = next(iter(ds))
    return v1.numpy()


def test_parse_images_reads_what_serialize_tensor_writes():
    images = _random_images(5)
    np.testing.assert_array_equal(data.parse_images(_serialized(images), SIZE).numpy(), images)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a serialized uint8"):
        data.parse_images(_serialized(_random_images(2)[:, :16]), SIZE)


def test_graph_without_seed_is_deterministic_and_maps_its_own_output_to_itself(graphs):
    png = data_factory.encode_array(_random_images(1)[0][:20, :27], "PNG")
    transform = graphs["cifar"]
    once = transform.images(tf.constant([png, png]))
    np.testing.assert_array_equal(once.numpy(), transform.images(tf.constant([png, png])).numpy())
    # The materialised form is a valid input and maps to itself: the Trainer reads it back.
    np.testing.assert_array_equal(transform.images(once).numpy(), once.numpy())


def test_graph_view_depends_on_the_seed_alone(graphs):
    transform = graphs["cifar"]
    serialized = _serialized(_random_images(4))
    seeds = augment.example_seeds(tf.constant([3, 4], tf.int64), 4)
    views = transform.images(serialized, seeds).numpy()
    assert not np.array_equal(views, transform.images(serialized).numpy())
    np.testing.assert_array_equal(views, transform.images(serialized, seeds).numpy())  # same seed, same view
    # Example 2 alone, with its seed: the same view as inside the batch (no dependence on batchmates).
    np.testing.assert_array_equal(views[2], transform.images(serialized[2:3], seeds[2:3]).numpy()[0])
    # The loaded graph and the function it was traced from draw the same views.
    direct = data.Transform.direct(preprocessing.policy_config("cifar"), SIZE)
    np.testing.assert_array_equal(views, direct.images(serialized, seeds).numpy())


def test_two_training_steps_on_one_image_draw_different_views(tmp_path, graphs):
    path = str(tmp_path / "one.tfrecord.gz")
    data_factory.write_transformed(path, _random_images(1))
    batches = data.pretrain_views([path], SIZE, 1, graphs["cifar"], seed=0, num_examples=1).take(2)
    (a1, a2), (b1, b2) = [(v1.numpy(), v2.numpy()) for v1, v2 in batches]
    assert not np.allclose(a1, b1) and not np.allclose(a2, b2) and not np.allclose(a1, a2)


def test_the_trainers_views_come_from_the_transform_graph(tmp_path, graphs):
    path = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_transformed(path, _random_images(8))
    views = {name: _first_views(data.pretrain_views([path], SIZE, 8, g, seed=0, num_examples=8))
             for name, g in graphs.items()}
    assert not np.allclose(views["cifar"], views["edited"])  # same Trainer code, same seed
    # The edited graph keeps 90-100 % of the image: its views stay closer to the images.
    assert graphs["edited"].policy["crop_scale"] == [0.9, 1.0] and graphs["cifar"].policy["name"] == "cifar"


def test_input_pipeline_pairs_two_views_of_the_same_example(tmp_path):
    # With an augmentation that changes nothing, both views must be identical: same example.
    images = [np.full((SIZE, SIZE, 3), 10 * i, np.uint8) for i in range(12)]
    path = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_transformed(path, images)
    ds = data.pretrain_views([path], SIZE, 4, data.Transform.direct(IDENTITY, SIZE), seed=0, num_examples=12)
    seen = set()
    for v1, v2 in ds.take(6):
        np.testing.assert_allclose(v1.numpy(), v2.numpy(), atol=1e-6)
        seen.update(np.round(v1.numpy()[:, 0, 0, 0] * 255).astype(int).tolist())
    assert seen == {10 * i for i in range(12)}  # every example appears, none is invented


def test_views_of_in_memory_images_are_the_trainers_views(tmp_path, graphs):
    # The benchmarks train outside TFX on `views_of`: the same batches the Trainer draws from the
    # transformed examples, for the same seed.
    images = _random_images(8)
    path = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_transformed(path, images)
    trainer = data.pretrain_views([path], SIZE, 4, graphs["cifar"], seed=3, num_examples=8)
    in_memory = data.views_of(tf.data.Dataset.from_tensor_slices(np.stack(images)), SIZE, 4, graphs["cifar"],
                              seed=3, num_examples=8)
    for (a1, a2), (b1, b2) in zip(trainer.take(3), in_memory.take(3)):
        np.testing.assert_array_equal(a1.numpy(), b1.numpy())
        np.testing.assert_array_equal(a2.numpy(), b2.numpy())


def test_input_pipeline_draws_new_views_every_epoch(tmp_path, graphs):
    path = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_transformed(path, _random_images(4))
    ds = data.pretrain_views([path], SIZE, 4, graphs["cifar"], seed=0, num_examples=4)
    batches = [b[0].numpy() for b in ds.take(2)]
    # Same 4 images in both "epochs" (in some order), but never the same views.
    assert not any(np.allclose(batches[0][i], batches[1][j]) for i in range(4) for j in range(4))


def test_views_smaller_than_the_images_come_from_the_graph_at_their_size(tmp_path):
    # Pre-training on views of 8 px while the graph's deterministic path (probe, Evaluator,
    # serving) still gives the whole image at its size.
    transform = data.Transform.direct(preprocessing.policy_config("cifar"), SIZE, "cifar", view_size=8)
    serialized = _serialized(_random_images(4))
    assert data.parse_images(transform.images(serialized), SIZE).shape == (4, SIZE, SIZE, 3)
    seeds = augment.example_seeds(tf.constant([1, 2], tf.int64), 4)
    assert data.parse_images(transform.images(serialized, seeds), 8).shape == (4, 8, 8, 3)
    path = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_transformed(path, _random_images(8))
    v1, v2 = next(iter(data.pretrain_views([path], SIZE, 4, transform, seed=0, num_examples=8, view_size=8)))
    assert v1.shape == v2.shape == (4, 8, 8, 3) and not np.allclose(v1.numpy(), v2.numpy())
