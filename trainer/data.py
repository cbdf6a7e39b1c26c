"""The Transform stage's graph body and the Trainers' tf.data input.

`transform_features` is what the Transform component traces into its graph
(components/preprocessing.py binds it to a policy): encoded image -> decoded, resized uint8 image,
stored as a serialized uint8 tensor (3 bytes a pixel). Given an `augment_seed` per example, the
same graph returns a random view of the image instead, drawn by `augment.augment_examples`. Its
own output is a valid input and maps to itself without a seed, so the Trainer reads the compact
materialised images and applies the graph to them on the fly, with fresh seeds every step
(`pretrain_views`, through `Transform`).

This module is also the one place that turns serialized images back into float32 pixels in [0, 1],
for training and for the serving signatures alike.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from simsiam_tfx import contract, files
from simsiam_tfx.features import IMAGE_KEY, LABEL_KEY, UNLABELLED
from simsiam_tfx.trainer import augment

# Decoded uint8 images are cached in memory when they fit under this many bytes; above it they
# are re-read each epoch (still only a cheap parse of the compact transformed bytes).
CACHE_MAX_BYTES = 2 << 30


# The optional raw feature that selects the random path of the Transform graph: two int64 per
# example (absent in the data, so Transform materialises the deterministic images).
SEED_KEY = "augment_seed"
# Written by the Transform executor beside its graph (components/preprocessing.py).
POLICY_FILE = contract.AUGMENT_POLICY_FILE
# A serialized uint8 TensorProto starts with field 1 (dtype) = DT_UINT8 (4), then the shape (field
# 2); no image format starts so (PNG \x89, JPEG \xff, GIF "G", BMP "B", WebP "R").
_SERIALIZED_UINT8 = b"\x08\x04\x12"


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """One encoded image (scalar string) -> uint8 (S, S, 3)."""
    image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _serialized_size(image_size: int) -> int:
    return len(tf.make_tensor_proto(np.zeros((image_size, image_size, 3), np.uint8)).SerializeToString())


def parse_images(serialized: tf.Tensor, image_size: int) -> tf.Tensor:
    """(B,) serialized uint8 (S, S, 3) tensors -> uint8 (B, S, S, 3), in one vectorised op: the
    pixels are the last S*S*3 bytes of each (a TensorProto's tensor_content, its last field)."""
    pixels = image_size * image_size * 3
    size = tf.strings.length(serialized)
    tf.debugging.assert_equal(size, _serialized_size(image_size),
                              message=f"not a serialized uint8 ({image_size}, {image_size}, 3) tensor")
    raw = tf.io.decode_raw(serialized, tf.uint8, fixed_length=_serialized_size(image_size))
    return tf.reshape(raw[:, -pixels:], [-1, image_size, image_size, 3])


def _to_pixels(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """(B,) encoded images, or images already in the materialised form -> uint8 (B, S, S, 3)."""
    materialised = tf.reduce_all(tf.strings.substr(encoded, 0, 3) == _SERIALIZED_UINT8)
    return tf.cond(materialised, lambda: parse_images(encoded, image_size),
                   lambda: tf.map_fn(lambda e: decode_and_resize(e, image_size), encoded,
                                     fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.uint8)))


def transform_features(inputs: dict, config: augment.AugmentConfig, image_size: int,
                       view_size: int | None = None) -> dict:
    """The Transform graph's body (a tf.Transform preprocessing_fn bound to a policy): a batch of raw
    features -> {image: serialized uint8 (S, S, 3)[, label]}.

    Without seeds (the feature absent or empty, as in the data, at serving and evaluation) the image
    is decoded and resized to `image_size`; with `SEED_KEY` ((B, 2) int64 as a SparseTensor) it is a
    random view of that image of `view_size` (default: `image_size`), one draw per example and seed.
    """
    encoded = tf.reshape(inputs[IMAGE_KEY], [-1])
    images = _to_pixels(encoded, image_size)
    if SEED_KEY in inputs:
        seeds = tf.sparse.to_dense(inputs[SEED_KEY])

        def views():
            seed_pairs = tf.reshape(seeds, [-1, 2])
            drawn = augment.augment_examples(to_float(images), seed_pairs, config, view_size or image_size)
            return tf.cast(tf.round(drawn * 255.0), tf.uint8)
        images = tf.cond(tf.shape(seeds)[1] > 0, views, lambda: images)
    outputs = {IMAGE_KEY: tf.map_fn(tf.io.serialize_tensor, images, fn_output_signature=tf.TensorSpec([], tf.string))}
    if LABEL_KEY in inputs:
        outputs[LABEL_KEY] = tf.reshape(inputs[LABEL_KEY], [-1])
    return outputs


def seeds_feature(seeds: tf.Tensor) -> tf.SparseTensor:
    """(B, 2) int64 seeds as the `SEED_KEY` feature, as tf.io.parse_example would give it."""
    return tf.RaggedTensor.from_tensor(tf.cast(seeds, tf.int64)).to_sparse()


@dataclasses.dataclass(frozen=True)
class Transform:
    """The Transform stage's graph as the Trainers apply it.

    `load` reads the graph from the Transform component's artifact (what the pipeline's Trainers
    use); `direct` calls `transform_features` in process, for trainer-level code outside TFX. Both
    run the same function; `policy` is the augmentation it was built with.
    """
    apply: Callable[[dict], dict]
    image_shape: tuple  # the raw image feature's per-example shape: () or (1,)
    policy: dict

    @classmethod
    def load(cls, transform_graph_dir: str) -> Transform:
        import tensorflow_transform as tft  # only where a graph is loaded
        output = tft.TFTransformOutput(transform_graph_dir)
        return cls(output.transform_features_layer(), tuple(output.raw_feature_spec()[IMAGE_KEY].shape),
                   read_policy(transform_graph_dir))

    @classmethod
    def direct(cls, config: augment.AugmentConfig, image_size: int, name: str = "",
               view_size: int | None = None) -> Transform:
        return cls(lambda features: transform_features(features, config, image_size, view_size), (),
                   augment.to_record(name, config))

    def images(self, encoded: tf.Tensor, seeds: tf.Tensor | None = None) -> tf.Tensor:
        """(B,) encoded (or materialised) images -> (B,) serialized uint8 images: random views with
        seeds ((B, 2)), the deterministic images without."""
        encoded = tf.reshape(encoded, [-1] + list(self.image_shape))
        if seeds is None:
            seeds = tf.zeros([tf.shape(encoded)[0], 0], tf.int64)
        return self.apply({IMAGE_KEY: encoded, SEED_KEY: seeds_feature(seeds)})[IMAGE_KEY]


def read_policy(transform_graph_dir: str) -> dict:
    """{"name", **parameters}: the augmentation policy recorded beside a Transform graph."""
    path = os.path.join(transform_graph_dir, POLICY_FILE)
    record = files.read_json(path)
    if record is None:
        raise ValueError(f"no readable augmentation policy at {path}")
    return record


def write_transform_graph(path: str, config: augment.AugmentConfig, image_size: int, name: str = "",
                          temp_dir: str | None = None, view_size: int | None = None) -> None:
    """A Transform graph and its policy file, built with tf.Transform outside TFX (bench, tests):
    `transform_features` traced exactly as the Transform component traces it."""
    import tempfile

    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
    spec = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string), SEED_KEY: tf.io.VarLenFeature(tf.int64)}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tft_beam.Context(temp_dir=temp_dir or tempfile.mkdtemp(), force_tf_compat_v1=False):
        transform_fn = ([], metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: transform_features(inputs, config, image_size, view_size))
        _ = transform_fn | tft_beam.WriteTransformFn(path)
    metadata_io.write_metadata(metadata, os.path.join(path, tft.TFTransformOutput.RAW_METADATA_DIR))
    files.write_json(os.path.join(path, POLICY_FILE), augment.to_record(name, config), indent=2, sort_keys=True)


def to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1]."""
    return tf.cast(images, tf.float32) / 255.0


def decode_image(serialized: tf.Tensor, image_size: int) -> tf.Tensor:
    """One serialized uint8 (S, S, 3) tensor -> float32 image in [0, 1]."""
    return to_float(tf.ensure_shape(tf.io.parse_tensor(serialized, tf.uint8), (image_size, image_size, 3)))


def decode_images(serialized: tf.Tensor, image_size: int) -> tf.Tensor:
    """A batch of serialized images -> float32 (B, S, S, 3)."""
    return to_float(parse_images(tf.reshape(serialized, [-1]), image_size))


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


def serialized_images(file_patterns: list[str], shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Transformed examples -> their serialized uint8 images, in file order (`shard` as in
    `uint8_images`)."""
    ds = _examples(file_patterns, with_labels=False)
    if shard:
        ds = ds.shard(*shard)
    return ds.map(lambda ex: ex[IMAGE_KEY], num_parallel_calls=tf.data.AUTOTUNE)


def pretrain_views(file_patterns: list[str], image_size: int, batch_size: int, transform: Transform,
                   seed: int, num_examples: int, shard: tuple[int, int] | None = None,
                   view_size: int | None = None) -> tf.data.Dataset:
    """Endless batches of (view1, view2) from transformed examples (`num_examples` of them, after
    `shard`; see `uint8_images`), drawn by the Transform graph (see `graph_views`) at `view_size`
    (the graph's; default `image_size`)."""
    return augmented_batches(serialized_images(file_patterns, shard), num_examples, image_size, batch_size, seed,
                             graph_views(transform, view_size or image_size))


def graph_views(transform: Transform, view_size: int):
    """`augment_fn` for `augmented_batches`: a batch of serialized images and its seed -> two views
    (of `view_size`) of every image, drawn by the Transform graph in one call with 2 x B
    per-example seeds, so both views of a row come from the same example and every step draws new
    ones."""
    def views(serialized, batch_seed):
        batch = tf.shape(serialized)[0]
        seeds = augment.example_seeds(batch_seed, 2 * batch)
        drawn = decode_images(transform.images(tf.concat([serialized, serialized], 0), seeds), view_size)
        return drawn[:batch], drawn[batch:]
    return views


def augmented_batches(examples: tf.data.Dataset, num_examples: int, image_size: int, batch_size: int, seed: int,
                      augment_fn) -> tf.data.Dataset:
    """Examples -> endless batches, reshuffled every epoch, each mapped by
    `augment_fn(batch, batch_seed)`.

    One random stream (`Dataset.random`) gives every batch its own seed, from which `augment_fn`
    draws once per example: nothing repeats between epochs, and a fixed `seed` reproduces the whole
    stream. Augmentation runs on whole batches (vectorised), so the input pipeline costs a small
    fraction of a training step even on 2 CPU cores.
    """
    ds = _maybe_cache(examples, num_examples, image_size)  # uint8 pixels or their serialized form
    ds = ds.shuffle(min(num_examples, 10_000), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds)).map(augment_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def views_of(images: tf.data.Dataset, image_size: int, batch_size: int, transform: Transform, seed: int,
             num_examples: int, view_size: int | None = None) -> tf.data.Dataset:
    """uint8 (S, S, 3) images held in memory -> the Trainer's endless (view1, view2) batches: the
    images serialized as Transform writes them and drawn by `graph_views`, so code outside TFX (the
    benchmarks) trains on exactly the pipeline's views."""
    serialized = images.map(tf.io.serialize_tensor, num_parallel_calls=tf.data.AUTOTUNE)
    return augmented_batches(serialized, num_examples, image_size, batch_size, seed,
                             graph_views(transform, view_size or image_size))
