"""create_pipeline(config): the SimSiam TFX pipeline, in the order of its diagram.

    ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> StopOnAnomalies -> Transform
      -> SimSiamPretrain (Trainer) -> LinearProbe (Trainer, base_model = pre-trained encoder)
      -> Resolver (latest blessed model) -> Evaluator (accuracy floor, no regression) -> Pusher
"""
from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components import example_gen as example_gen_component
from components.anomalies_gate import StopOnAnomalies
from pipeline.config import SPLITS, PipelineConfig
from trainer.export import PREDICTION_KEY

PRETRAIN_RUN_FN = "trainer.pretrain.run_fn"
PROBE_RUN_FN = "trainer.probe.run_fn"
PREPROCESSING_FN = "components.preprocessing.preprocessing_fn"


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Accuracy on the eval split: above the floor, and no worse than the last blessed model."""
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key="label",
                                    prediction_key=PREDICTION_KEY)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(
            class_name="SparseCategoricalAccuracy",
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.eval.min_accuracy}),
                # TFMA needs a strictly negative bound to allow "equal"; 1e-10 stands for zero.
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -max(config.eval.max_regression, 1e-10)})))])])


@dataclasses.dataclass
class DataStages:
    """The Beam-based data half of the pipeline, ExampleGen to Transform (also run alone by
    benchmarks/data_scale.py)."""
    example_gen: Any
    statistics_gen: Any
    schema_gen: Any
    example_validator: Any
    stop_on_anomalies: Any
    transform: Any

    def components(self) -> list:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


def data_stages(config: PipelineConfig, input_base: str) -> DataStages:
    """`input_base`: a folder holding the sources.json plan (components/sources.py)."""
    example_gen = example_gen_component.create(input_base)

    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"],
        # Bounded-memory sketches for top-k/unique counts: the exact ones keep every distinct value,
        # and every image is one (measured: +320 MB from 2k to 20k small images without this).
        stats_options=tfdv.StatsOptions(use_sketch_based_topk_uniques=True))
    if config.data.schema:  # a curated schema: data that drifts from it stops the run
        schema_gen = tfx.components.ImportSchemaGen(schema_file=config.data.schema)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    stop_on_anomalies = StopOnAnomalies(anomalies=example_validator.outputs["anomalies"])

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, custom_config={"image_size": config.data.image_size},
        # The preprocessing has no analyzers; analysing the pre-training split alone is cheapest.
        splits_config=tfx.proto.SplitsConfig(analyze=["pretrain"], transform=list(SPLITS)),
        # Transform's own pre/post-transform statistics would keep a count of every distinct image
        # (memory growing with the data set); StatisticsGen already describes the raw data.
        disable_statistics=True)
    transform.add_upstream_node(stop_on_anomalies)  # no Transform on data with anomalies
    return DataStages(example_gen, statistics_gen, schema_gen, example_validator, stop_on_anomalies, transform)


def create_pipeline(config: PipelineConfig, input_base: str, num_classes: int,
                    metadata_connection_config=None, class_names=None) -> tfx.dsl.Pipeline:
    """`input_base`: a folder holding the sources.json plan (components/sources.py); `class_names`
    (label order) become the served model's `class_name` output (default: "0", "1", ...)."""
    custom = {"config": config.trainer_dict(), "num_classes": num_classes}
    if class_names:
        custom["class_names"] = list(class_names)
    data = data_stages(config, input_base)
    example_gen, schema_gen, transform = data.example_gen, data.schema_gen, data.transform

    pretrain = tfx.components.Trainer(
        run_fn=PRETRAIN_RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["pretrain"]),
        # Not for validation: the kNN monitor's reference (probe_train) and query (eval) sets.
        eval_args=tfx.proto.EvalArgs(splits=["probe_train", "eval"]),
        custom_config=custom).with_id("SimSiamPretrain")

    probe = tfx.components.Trainer(
        run_fn=PROBE_RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        base_model=pretrain.outputs["model"],
        train_args=tfx.proto.TrainArgs(splits=["probe_train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=custom).with_id("LinearProbe")

    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("LatestBlessedModelResolver")

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=probe.outputs["model"],
        baseline_model=latest_blessed.outputs["model"],
        example_splits=["eval"],
        eval_config=eval_config(config))

    pusher = tfx.components.Pusher(
        model=probe.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_model_dir)))

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=data.components() + [pretrain, probe, latest_blessed, evaluator, pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args))
