"""The Trainers' tf.data input: transformed examples -> images (and labels, or two views).

Transform stores each image as a serialized uint8 tensor (see components/preprocessing.py); this
module is the one place that turns it back into float32 pixels in [0, 1], for training and for
the serving signatures alike.
"""
from __future__ import annotations

import tensorflow as tf

from simsiam_tfx.features import IMAGE_KEY, LABEL_KEY, UNLABELLED
from simsiam_tfx.trainer import augment

# Decoded uint8 images are cached in memory when they fit under this many bytes; above it they
# are re-read each epoch (still only a cheap parse of the compact transformed bytes).
CACHE_MAX_BYTES = 2 << 30


def to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1]."""
    return tf.cast(images, tf.float32) / 255.0


def decode_image(serialized: tf.Tensor, image_size: int) -> tf.Tensor:
    """One serialized uint8 (S, S, 3) tensor -> float32 image in [0, 1]."""
    return to_float(tf.ensure_shape(tf.io.parse_tensor(serialized, tf.uint8), (image_size, image_size, 3)))


def decode_images(serialized: tf.Tensor, image_size: int) -> tf.Tensor:
    """A batch of serialized images -> float32 (B, S, S, 3)."""
    serialized = tf.reshape(serialized, [-1])
    return tf.map_fn(lambda s: decode_image(s, image_size), serialized,
                     fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.float32))


def _records(file_patterns: list[str]) -> tf.data.Dataset:
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {file_patterns}")
    return tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)


def _examples(file_patterns: list[str], with_labels: bool) -> tf.data.Dataset:
    """Parsed examples, one at a time (parsing itself runs on batches of records: faster)."""
    spec = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    if with_labels:
        spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64)
    return (_records(file_patterns).batch(1024)
            .map(lambda records: tf.io.parse_example(records, spec), num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch())


def count_examples(file_patterns: list[str]) -> int:
    return int(_records(file_patterns).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())


def label_counts(file_patterns: list[str]) -> dict[int, int]:
    """label -> number of examples (unlabelled ones under UNLABELLED); no image is decoded."""
    spec = {LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=UNLABELLED)}
    counts: dict[int, int] = {}
    for labels in _records(file_patterns).batch(4096).map(lambda r: tf.io.parse_example(r, spec)[LABEL_KEY]):
        values, _, number = tf.unique_with_counts(labels)
        for value, n in zip(values.numpy().tolist(), number.numpy().tolist()):
            counts[value] = counts.get(value, 0) + n
    return counts


def _maybe_cache(ds: tf.data.Dataset, num_examples: int, image_size: int) -> tf.data.Dataset:
    return ds.cache() if num_examples * image_size * image_size * 3 <= CACHE_MAX_BYTES else ds


def labelled_images(file_patterns: list[str], image_size: int, batch_size: int) -> tf.data.Dataset:
    """Finite, in file order, no augmentation: (images, labels) batches for probes and monitors."""
    ds = _examples(file_patterns, with_labels=True).map(
        lambda ex: (decode_image(ex[IMAGE_KEY], image_size), ex[LABEL_KEY]), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def uint8_images(file_patterns: list[str], image_size: int, with_labels: bool = False,
                 shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Transformed examples -> uint8 (S, S, 3) images (or (image, label)), in file order.

    `shard=(count, index)` keeps every count-th example from the index-th (one worker's share),
    before anything is decoded.
    """
    ds = _examples(file_patterns, with_labels)
    if shard:
        ds = ds.shard(*shard)

    def decode(ex):
        image = tf.ensure_shape(tf.io.parse_tensor(ex[IMAGE_KEY], tf.uint8), (image_size, image_size, 3))
        return (image, ex[LABEL_KEY]) if with_labels else image
    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def pretrain_views(file_patterns: list[str], image_size: int, batch_size: int,
                   config: augment.AugmentConfig, seed: int, num_examples: int,
                   shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Endless batches of (view1, view2) from transformed examples (`num_examples` of them, after
    `shard`; see `uint8_images`); see `views_of`."""
    return views_of(uint8_images(file_patterns, image_size, shard=shard), image_size, batch_size, config, seed,
                    num_examples)


def augmented_batches(examples: tf.data.Dataset, num_examples: int, image_size: int, batch_size: int, seed: int,
                      augment_fn) -> tf.data.Dataset:
    """Examples -> endless batches, reshuffled every epoch, each mapped by
    `augment_fn(batch, batch_seed)`.

    One random stream (`Dataset.random`) gives every batch its own seed, from which `augment_fn`
    draws once per example: nothing repeats between epochs, and a fixed `seed` reproduces the whole
    stream. Augmentation runs on whole batches (vectorised), so the input pipeline costs a small
    fraction of a training step even on 2 CPU cores.
    """
    ds = _maybe_cache(examples, num_examples, image_size)
    ds = ds.shuffle(min(num_examples, 10_000), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds)).map(augment_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def views_of(images: tf.data.Dataset, image_size: int, batch_size: int, config: augment.AugmentConfig,
             seed: int, num_examples: int) -> tf.data.Dataset:
    """uint8 (S, S, 3) images -> endless batches of (view1, view2), see `augmented_batches`: the two
    views' seeds are split from the batch's, so both views of a row come from the same example."""
    def views(images, batch_seed):
        images = to_float(tf.ensure_shape(images, (None, image_size, image_size, 3)))
        return augment.two_views(images, batch_seed, config, image_size)
    return augmented_batches(images, num_examples, image_size, batch_size, seed, views)
