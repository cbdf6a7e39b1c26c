"""The Transform module: the augmentation policy, the preprocessing_fn, and Transform's executor.

The Transform stage owns the augmentation. Its graph (`data.transform_features` bound to the
policy in Transform's custom_config) maps an encoded image to the decoded, resized uint8 image,
and, given an `augment_seed` per example, to a random view of it instead:

- Transform materialises what is computed once: the decoded, resized uint8 images (no seed in the
  data, so no randomness in the materialised examples).
- The SimSiam Trainer applies the same graph on the fly to those images with fresh seeds every
  step (trainer/data.py `pretrain_views`); the probe, the kNN monitor, the Evaluator and the served
  model use its deterministic path (no seed).

A stock Transform cannot take the seed: the preprocessing_fn's inputs are exactly the features of
the schema, and the seed is in no data. `Executor` is TFX's Transform executor given the schema
with the seed added as an optional int64 feature (`with_seed`), and it writes the policy (`augment_policy.json`,
also custom properties of the transform_graph artifact) and a preview of views drawn by the graph
(`augment_preview.png`) beside the graph.
"""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
from tfx.components.transform import executor as transform_executor

from simsiam_tfx import contract, files
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.registries import AUGMENT_POLICIES
from simsiam_tfx.trainer import augment, data

PREVIEW_FILE = contract.AUGMENT_PREVIEW_FILE
PREVIEW_IMAGES = 8
# Custom properties of the transform_graph artifact (MLMD): the policy's name and every parameter.
POLICY_NAME_PROPERTY = contract.AUGMENT_POLICY
POLICY_JSON_PROPERTY = contract.AUGMENT_POLICY_JSON

def policy_config(name: str) -> augment.AugmentConfig:
    """Every parameter of the named policy (simsiam_tfx/registries.py AUGMENT_POLICIES)."""
    try:
        return augment.from_dict(AUGMENT_POLICIES[name])
    except KeyError:
        raise ValueError(f"unknown augmentation policy {name!r}; choose one of {', '.join(AUGMENT_POLICIES)}") from None


def custom_config(config: PipelineConfig) -> dict:
    """Transform's custom_config: the image size, the views' size and the whole policy, so that the
    cache key changes with any parameter of the augmentation (Transform and the Trainers re-run;
    ExampleGen, statistics and schema do not)."""
    name = config.augment_policy()
    return {"image_size": config.data.image_size, "view_size": _view_size(config),
            "augment": augment.to_record(name, policy_config(name))}


def _view_size(config: PipelineConfig) -> int:
    return config.pretrain_settings().view_size


def policy(custom: dict) -> dict:
    """{"name", **parameters}: the policy a Transform custom_config selects."""
    chosen = custom["augment"]
    return augment.to_record(chosen["name"], augment.from_record(chosen))


def in_process(config: PipelineConfig) -> data.Transform:
    """The graph's function for `config`'s policy, called in process: for pre-training outside TFX
    (tests, benchmarks), where no Transform component has written a graph."""
    name = config.augment_policy()
    return data.Transform.direct(policy_config(name), config.data.image_size, name, _view_size(config))


def preprocessing_fn(inputs, custom_config):
    return data.transform_features(inputs, augment.from_record(custom_config["augment"]),
                                   int(custom_config["image_size"]), int(custom_config["view_size"]))


def preview(transform: data.Transform, serialized: tf.Tensor, image_size: int, seed: int = 0,
            view_size: int | None = None) -> np.ndarray:
    """A uint8 grid with one row per image: the image, then two views of it drawn by the graph
    (views smaller than the image shown enlarged to its size, pixels kept square)."""
    count = int(serialized.shape[0])
    images = data.parse_images(transform.images(serialized), image_size)
    views = data.parse_images(transform.images(tf.concat([serialized, serialized], 0),
                                               augment.example_seeds(tf.constant([seed, 0], tf.int64), 2 * count)),
                              view_size or image_size)
    views = tf.cast(tf.image.resize(views, (image_size, image_size), method="nearest"), tf.uint8)
    tiles = tf.concat([images, views], 0).numpy()
    rows = [np.concatenate([tiles[i], tiles[count + i], tiles[2 * count + i]], axis=1) for i in range(count)]
    grid = np.concatenate(rows, axis=0)
    scale = max(1, 96 // image_size)  # small images enlarged (nearest) so the views can be seen
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def _first_images(file_pattern: str, count: int) -> tf.Tensor:
    return next(iter(data.serialized_images([file_pattern]).batch(count)))


def with_seed(schema):
    """A copy of `schema` with the optional seed feature: int64, no shape and no required presence,
    so a VarLenFeature, empty wherever it is absent (in all the data)."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    if any(f.name == data.SEED_KEY for f in schema.feature):
        raise ValueError(f"the data has a feature named {data.SEED_KEY!r}, which the Transform graph reserves")
    extended = schema_pb2.Schema()
    extended.CopyFrom(schema)
    extended.feature.add(name=data.SEED_KEY, type=schema_pb2.INT)
    return extended


class Executor(transform_executor.Executor):
    """TFX's Transform executor, given the schema with the optional seed feature; after the
    transform, it records the policy and writes a preview beside the graph."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        from tfx.types import artifact_utils
        from tfx.types import standard_component_specs as specs
        input_dict = {**input_dict, specs.SCHEMA_KEY: [self._schema_with_seed(input_dict[specs.SCHEMA_KEY])]}
        super().Do(input_dict, output_dict, exec_properties)
        custom = json.loads(exec_properties.get(specs.CUSTOM_CONFIG_KEY) or "{}")
        values = policy(custom)
        graph = artifact_utils.get_single_instance(output_dict[specs.TRANSFORM_GRAPH_KEY])
        files.write_json(os.path.join(graph.uri, data.POLICY_FILE), values, indent=2, sort_keys=True)
        graph.set_string_custom_property(POLICY_NAME_PROPERTY, values["name"])
        graph.set_string_custom_property(POLICY_JSON_PROPERTY, json.dumps(values, sort_keys=True))
        transformed = output_dict.get(specs.TRANSFORMED_EXAMPLES_KEY)
        if transformed:
            split_uri = artifact_utils.get_split_uri(transformed, "pretrain")
            images = _first_images(os.path.join(split_uri, "*"), PREVIEW_IMAGES)
            grid = preview(data.Transform.load(graph.uri), images, int(custom["image_size"]),
                           view_size=int(custom["view_size"]))
            tf.io.write_file(os.path.join(graph.uri, PREVIEW_FILE), tf.io.encode_png(grid))

    def _schema_with_seed(self, schema_artifacts):
        """A Schema artifact in this execution's temporary folder: the input schema `with_seed`."""
        from tfx.types import artifact_utils, standard_artifacts
        from tfx.utils import io_utils
        source = io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(schema_artifacts))
        extended = standard_artifacts.Schema()
        extended.uri = os.path.join(self._get_tmp_dir(), "schema_with_seed")
        io_utils.write_pbtxt_file(os.path.join(extended.uri, "schema.pbtxt"),
                                  with_seed(io_utils.SchemaReader().read(source)))
        return extended
