"""Tests of simsiam_tfx.trainer.data: the Trainers' tf.data input."""
import numpy as np

from simsiam_tfx.trainer import augment, data
from tests import data_factory

SIZE = 32


def test_input_pipeline_pairs_two_views_of_the_same_example(tmp_path):
    # With an augmentation that changes nothing, both views must be identical: same example.
    images = [np.full((SIZE, SIZE, 3), 10 * i, np.uint8) for i in range(12)]
    path = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_transformed(path, images)
    identity = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_prob=0.0,
                                     grayscale_prob=0.0, flip=False)
    ds = data.pretrain_views([path], SIZE, 4, identity, seed=0, num_examples=12)
    seen = set()
    for v1, v2 in ds.take(6):
        np.testing.assert_allclose(v1.numpy(), v2.numpy(), atol=1e-6)
        seen.update(np.round(v1.numpy()[:, 0, 0, 0] * 255).astype(int).tolist())
    assert seen == {10 * i for i in range(12)}  # every example appears, none is invented


def test_input_pipeline_draws_new_views_every_epoch(tmp_path):
    images = [np.random.default_rng(i).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for i in range(4)]
    path = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_transformed(path, images)
    ds = data.pretrain_views([path], SIZE, 4, augment.preset("cifar"), seed=0, num_examples=4)
    batches = [b[0].numpy() for b in ds.take(2)]
    # Same 4 images in both "epochs" (in some order), but never the same views.
    assert not any(np.allclose(batches[0][i], batches[1][j]) for i in range(4) for j in range(4))
