"""Serving signatures of the pushed model.

- `serving_default`: serialized raw `tf.Example`s (what TFMA and TF Serving's predict send) ->
  class probabilities, predicted class and embedding.
- `serve_image_bytes`: encoded image bytes (JPEG, PNG, ... of any size) -> the same outputs.

Both run the Transform graph first (decode, resize), so serving preprocessing is exactly
training preprocessing.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.features import IMAGE_KEY, LABEL_KEY, PREDICTION_KEY
from simsiam_tfx.trainer import data


def save_serving_model(classifier: keras.Model, tft_output, image_size: int, path: str,
                       class_names=None) -> None:
    """`class_names[i]` is served as `class_name` for class id i (default: the id as text)."""
    classifier.tft_layer = tft_output.transform_features_layer()
    num_classes = classifier.get_layer("linear").units
    names = tf.constant(list(class_names) if class_names else [str(i) for i in range(num_classes)])
    raw_spec = tft_output.raw_feature_spec()
    raw_spec.pop(LABEL_KEY, None)

    def predict(raw_features):
        transformed = classifier.tft_layer(raw_features)
        images = data.decode_images(transformed[IMAGE_KEY], image_size)
        outputs = classifier(images, training=False)
        class_id = tf.argmax(outputs["probabilities"], axis=1)
        return {PREDICTION_KEY: outputs["probabilities"], "class_id": class_id,
                "class_name": tf.gather(names, class_id), "embedding": outputs["embedding"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return predict(tf.io.parse_example(serialized, raw_spec))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_image_bytes(image_bytes):
        # Same shape as a parsed raw example ((B,) or (B, 1), as the schema says).
        shape = [-1] + list(raw_spec[IMAGE_KEY].shape)
        return predict({IMAGE_KEY: tf.reshape(image_bytes, shape)})

    classifier.save(path, include_optimizer=False,
                    signatures={"serving_default": serve_examples, "serve_image_bytes": serve_image_bytes})
