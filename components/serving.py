"""Serving signatures of the pushed model.

- `serving_default`: serialized raw `tf.Example`s (what TFMA and TF Serving's predict send) ->
  class probabilities, predicted class and embedding.
- `serve_image_bytes`: encoded image bytes (JPEG, PNG, GIF, BMP) -> the same outputs.

Both run the Transform graph first, on its deterministic path (decode, resize; never a seed, so
never an augmented view, whatever the request holds), so serving preprocessing is exactly the
preprocessing of the probe and the evaluation.

Every request is bounded and answered per image: the header of each image is read before
anything is decoded, and an image that is not JPEG/PNG/GIF/BMP (a JPEG whose header does not parse
included), would decode to more than MAX_DECODED_PIXELS, or comes in a serialized tf.Example that
does not parse (or has no `image` bytes), is not decoded at all. It gets `status` saying why,
class_id -1, an empty class_name and zero probabilities and embedding; the other images of the
batch are answered as usual (`status` "ok"). An empty batch gets an empty answer. TensorFlow has no
"try" for an op that raises (ParseExample, ExtractJpegShape): each element goes through it in a
tf.data pipeline that drops the elements that fail (`ignore_errors`), and the survivors' positions
say which parsed. What still fails a whole batch: image data that is corrupt after a header that
parses (the decoder raises).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.components import model_files
from simsiam_tfx.components.image_check import MAX_DECODED_PIXELS
from simsiam_tfx.features import EMBEDDING_KEY, HEAD_LAYER, IMAGE_KEY, LABEL_KEY, PREDICTION_KEY
from simsiam_tfx.trainer import data

OK, UNSUPPORTED, TOO_LARGE, NOT_AN_EXAMPLE = 0, 1, 2, 3
STATUS = ("ok", "not a JPEG, PNG, GIF or BMP image", f"too large: over {MAX_DECODED_PIXELS} decoded pixels",
          "not a serialized tf.Example with an image bytes feature")
_HEADER_PAD = b"\0" * 32  # every header field read below lies in the first 32 bytes


def _unsigned(padded: tf.Tensor, offset: int, size: int, little_endian: bool) -> tf.Tensor:
    digits = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, offset, size), tf.uint8), tf.int64)
    if little_endian:
        digits = tf.reverse(digits, [0])
    return tf.reduce_sum(digits * tf.constant([256 ** (size - 1 - i) for i in range(size)], tf.int64))


def header_status(encoded: tf.Tensor) -> tf.Tensor:
    """One encoded image (scalar string) -> OK, UNSUPPORTED or TOO_LARGE, from its header alone."""
    padded = tf.strings.join([encoded, _HEADER_PAD])

    def pixels(width, height):
        return tf.where((width > 0) & (height > 0), width * height, tf.constant(-1, tf.int64))

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(encoded), tf.int64)
        return pixels(shape[1], shape[0])

    def bmp():
        height = _unsigned(padded, 22, 4, True)
        height = tf.where(height >= 2 ** 31, 2 ** 32 - height, height)  # negative: a top-down bitmap
        return pixels(_unsigned(padded, 18, 4, True), height)

    magic = tf.strings.substr(padded, 0, 4)
    count = tf.case([
        (tf.equal(tf.strings.substr(magic, 0, 3), b"\xff\xd8\xff"), jpeg),
        (tf.equal(magic, b"\x89PNG"), lambda: pixels(_unsigned(padded, 16, 4, False), _unsigned(padded, 20, 4, False))),
        (tf.equal(magic, b"GIF8"), lambda: pixels(_unsigned(padded, 6, 2, True), _unsigned(padded, 8, 2, True))),
        (tf.equal(tf.strings.substr(magic, 0, 2), b"BM"), bmp),
    ], default=lambda: tf.constant(-1, tf.int64), exclusive=True)
    code = tf.where(count < 0, UNSUPPORTED, tf.where(count > MAX_DECODED_PIXELS, TOO_LARGE, OK))
    return tf.cast(code, tf.int64)


def per_element(fn, values: tf.Tensor, failed) -> tf.Tensor:
    """fn(value) for each element of a 1-D tensor, `failed` where fn raises (see the docstring)."""
    count = tf.shape(values, out_type=tf.int64)[0]
    survivors = (tf.data.Dataset.from_tensor_slices((tf.range(count), values))
                 .map(lambda i, v: (i, fn(v))).ignore_errors())
    none = tf.data.Dataset.from_tensors((tf.zeros([0], tf.int64), tf.zeros([0], tf.as_dtype(failed.dtype))))
    # The batch of all survivors, or (none survived) an empty one.
    index, results = survivors.batch(2**31 - 1).concatenate(none).take(1).get_single_element()
    return tf.tensor_scatter_nd_update(tf.fill([count], failed), index[:, None], results)


def _safe_header_status(encoded: tf.Tensor) -> tf.Tensor:
    return per_element(header_status, encoded, tf.constant(UNSUPPORTED, tf.int64))


def save_serving_model(classifier: keras.Model, tft_output, image_size: int, path: str,
                       class_names=None) -> None:
    """`class_names[i]` is served as `class_name` for class id i (default: the id as text)."""
    classifier.tft_layer = tft_output.transform_features_layer()
    num_classes = classifier.get_layer(HEAD_LAYER).units
    names = tf.constant(list(class_names) if class_names else [str(i) for i in range(num_classes)])
    raw_spec = tft_output.raw_feature_spec()
    raw_spec.pop(LABEL_KEY, None)
    raw_spec.pop(data.SEED_KEY, None)  # requests never choose a seed: no augmented view is served
    transform = data.Transform(classifier.tft_layer, tuple(raw_spec[IMAGE_KEY].shape), policy={})
    stand_in = tf.io.encode_png(np.zeros((1, 1, 3), np.uint8)).numpy()  # decoded in place of refused images

    def predict(image_bytes, parsed=None):
        image_bytes = tf.reshape(image_bytes, [-1])
        count = tf.shape(image_bytes)[0]
        status = _safe_header_status(image_bytes)
        if parsed is not None:
            status = tf.where(parsed, status, tf.constant(NOT_AN_EXAMPLE, tf.int64))
        accepted = tf.equal(status, OK)
        safe = tf.where(accepted, image_bytes, stand_in)
        # An empty batch is answered by running one stand-in image and keeping none of it.
        safe = tf.cond(count > 0, lambda: safe, lambda: tf.constant([stand_in]))
        outputs = classifier(data.decode_images(transform.images(safe), image_size), training=False)
        probabilities, embedding = outputs[PREDICTION_KEY][:count], outputs[EMBEDDING_KEY][:count]
        class_id = tf.where(accepted, tf.argmax(probabilities, axis=1), tf.constant(-1, tf.int64))
        keep = tf.cast(accepted, tf.float32)[:, None]
        return {PREDICTION_KEY: probabilities * keep, "class_id": class_id,
                "class_name": tf.where(accepted, tf.gather(names, tf.maximum(class_id, 0)), ""),
                EMBEDDING_KEY: embedding * keep, "status": tf.gather(tf.constant(STATUS), status)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        image_spec = {IMAGE_KEY: raw_spec[IMAGE_KEY]}
        marker = tf.constant(b"\x00not parsed")  # no image starts with a NUL byte
        image_bytes = per_element(lambda s: tf.reshape(tf.io.parse_single_example(s, image_spec)[IMAGE_KEY], []),
                                  serialized, marker)
        return predict(image_bytes, parsed=tf.not_equal(image_bytes, marker))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_image_bytes(image_bytes):
        return predict(image_bytes)

    model_files.save_keras_model(classifier, path, signatures={"serving_default": serve_examples,
                                                               "serve_image_bytes": serve_image_bytes})
