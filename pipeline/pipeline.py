"""create_pipeline(config, ...): the SimSiam TFX pipeline, in the order of its diagram.

    ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> StopOnAnomalies -> Transform
      -> SimSiamPretrain (Trainer) -> LinearProbe (Trainer, base_model = pre-trained encoder)
      -> PushedBaseline (the served model) -> Evaluator (accuracy floor, no regression)
      -> ModelGate (above chance, gain over random init, same classes as served) -> Pusher

No Resolver: open-source Kubeflow Pipelines runs only container and importer steps, so the
Evaluator's baseline is looked up by a container step (components/pushed_baseline.py), the same on
every runner. Class names come from the data at run time (components/data_aware_trainer.py).

Every runner (local, Kubeflow, Vertex) builds its pipeline here. Values a cluster run may change per
run enter as TFX RuntimeParameters through `RuntimeParameters`; without them, the values come from
the configuration.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from simsiam_tfx import contract
from simsiam_tfx.components import code_version, model_gate, preprocessing, trainer_config
from simsiam_tfx.components import example_gen as example_gen_component
from simsiam_tfx.components.anomalies_gate import StopOnAnomalies
from simsiam_tfx.components.curated_schema import CuratedSchemaGen
from simsiam_tfx.components.data_aware_trainer import DataAwareTrainer
from simsiam_tfx.components.evaluator import EvaluatorExecutor
from simsiam_tfx.components.pushed_baseline import PushedBaseline
from simsiam_tfx.components.pusher import PusherExecutor
from simsiam_tfx.config import EvalConfig, PipelineConfig
from simsiam_tfx.features import LABEL_KEY, PREDICTION_KEY, SPLITS

PRETRAIN_RUN_FN = "simsiam_tfx.components.simsiam_pretrain.run_fn"
PROBE_RUN_FN = "simsiam_tfx.components.linear_probe.run_fn"
PREPROCESSING_FN = "simsiam_tfx.components.preprocessing.preprocessing_fn"
# TFMA needs a strictly negative change bound to allow "equal"; this stands for zero.
_ZERO_REGRESSION = 1e-10


def eval_config(settings: EvalConfig) -> tfma.EvalConfig:
    """Accuracy on the eval split: above the floor, and no worse than the last blessed model."""
    return tfma.EvalConfig(
        # Told the type, TFMA loads the SavedModel once and calls this signature; left to find out,
        # it loads the model as Keras too. The served model is saved uncompiled: Keras adds no metric.
        model_specs=[tfma.ModelSpec(signature_name="serving_default", model_type=tfma.TF_GENERIC,
                                    label_key=LABEL_KEY, prediction_key=PREDICTION_KEY)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(
            class_name="SparseCategoricalAccuracy",
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": settings.min_accuracy}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -max(settings.max_regression, _ZERO_REGRESSION)})))])])


def eval_config_json(settings: EvalConfig) -> str:
    from google.protobuf import json_format
    return json_format.MessageToJson(eval_config(settings), sort_keys=True, indent=None)


def eval_settings(eval_config_text: str) -> EvalConfig:
    """The EvalConfig settings that `eval_config_json` encoded."""
    from google.protobuf import json_format
    threshold = json_format.Parse(eval_config_text, tfma.EvalConfig()).metrics_specs[0].metrics[0].threshold
    return EvalConfig(min_accuracy=threshold.value_threshold.lower_bound.value,
                      max_regression=max(0.0, -threshold.change_threshold.absolute.value - _ZERO_REGRESSION))


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
    """`input_base`: a folder holding the sources.json plan (components/source_plan.py)."""
    example_gen = example_gen_component.create(input_base)

    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"],
        # Bounded-memory sketches for top-k/unique counts: the exact ones keep every distinct value,
        # and every image is one (docs/benchmarks.md, "Data stages at scale", has the measurement).
        stats_options=tfdv.StatsOptions(use_sketch_based_topk_uniques=True))
    if config.data.schema:  # a curated schema: data that drifts from it stops the run
        schema_gen = CuratedSchemaGen(schema_file=config.data.schema).with_id(contract.IMPORT_SCHEMA_GEN)
    else:
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                              infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    stop_on_anomalies = StopOnAnomalies(anomalies=example_validator.outputs["anomalies"])

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        # The augmentation policy is Transform's: in its custom_config (its cache key), its graph and
        # its artifact (components/preprocessing.py).
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={**preprocessing.custom_config(config), "code_version": code_version.fingerprint(
            PREPROCESSING_FN.rpartition(".")[0])},
        # The preprocessing has no analyzers; analysing the pre-training split alone is cheapest.
        splits_config=tfx.proto.SplitsConfig(analyze=["pretrain"], transform=list(SPLITS)),
        # Transform's own pre/post-transform statistics would keep a count of every distinct image
        # (memory growing with the data set); StatisticsGen already describes the raw data.
        disable_statistics=True)
    # TFX's Transform executor, with the optional augmentation seed in the graph's input schema.
    transform.executor_spec = executor_spec.BeamExecutorSpec(preprocessing.Executor)
    transform.add_upstream_node(stop_on_anomalies)  # no Transform on data with anomalies
    return DataStages(example_gen, statistics_gen, schema_gen, example_validator, stop_on_anomalies, transform)


@dataclasses.dataclass
class RuntimeParameters:
    """Per-run values of a cluster run (tfx.dsl.experimental.RuntimeParameter). TFX 1.21's Kubeflow V2
    runner substitutes only a *whole* execution property, so each is one: the data plan folder, the
    Trainers' whole custom_config JSON (components/trainer_config.py), the Evaluator's EvalConfig JSON."""
    input_base: Any
    trainer_config: Any
    eval_config: Any


def create_pipeline(config: PipelineConfig, input_base: str, *, runtime: RuntimeParameters | None = None,
                    trainer_platform_config=None, trainer_gpus: int = 0,
                    metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """`input_base`: a folder holding the sources.json plan (components/source_plan.py).
    `runtime` replaces `input_base` and the values built from `config` by runtime parameters;
    `trainer_platform_config` (e.g. a KFP ResourceSpec) is given to both Trainers, which fail at
    once when `trainer_gpus` were requested and TensorFlow sees fewer."""
    if runtime:
        input_base = runtime.input_base
    custom = runtime.trainer_config if runtime else trainer_config.custom_config(config, trainer_gpus)
    data = data_stages(config, input_base)
    example_gen, schema_gen, transform = data.example_gen, data.schema_gen, data.transform

    pretrain = DataAwareTrainer(
        run_fn=PRETRAIN_RUN_FN,
        examples=transform.outputs["transformed_examples"],
        data_examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["pretrain"]),
        # Not for validation: the kNN monitor's reference (probe_train) and query (eval) sets.
        eval_args=tfx.proto.EvalArgs(splits=["probe_train", "eval"]),
        custom_config=custom, code_version=code_version.fingerprint(PRETRAIN_RUN_FN.rpartition(".")[0]),
    ).with_id(contract.PRETRAIN)

    probe = DataAwareTrainer(
        run_fn=PROBE_RUN_FN,
        examples=transform.outputs["transformed_examples"],
        data_examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        base_model=pretrain.outputs["model"],
        train_args=tfx.proto.TrainArgs(splits=["probe_train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=custom, code_version=code_version.fingerprint(PROBE_RUN_FN.rpartition(".")[0]),
    ).with_id(contract.PROBE)

    push_destination = tfx.proto.PushDestination(
        filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_model_dir))
    baseline = PushedBaseline(model=probe.outputs["model"],
                              push_destination=push_destination).with_id(contract.PUSHED_BASELINE)

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=probe.outputs["model"],
        baseline_model=baseline.outputs["baseline_model"],
        example_splits=["eval"],
        eval_config=runtime.eval_config if runtime else eval_config(config.eval))
    # Evaluator takes no custom executor argument; its executor is swapped before the Pipeline adds
    # the Beam flags to every Beam executor spec.
    evaluator.executor_spec = executor_spec.BeamExecutorSpec(EvaluatorExecutor)

    gate = model_gate.ModelGate(model=probe.outputs["model"], evaluator_blessing=evaluator.outputs["blessing"],
                                baseline_model=baseline.outputs["baseline_model"], settings=config.eval)

    pusher = tfx.components.Pusher(
        model=probe.outputs["model"],
        model_blessing=gate.outputs["blessing"],
        push_destination=push_destination,
        custom_executor_spec=executor_spec.ExecutorClassSpec(PusherExecutor))

    if trainer_platform_config is not None:
        for trainer in (pretrain, probe):
            trainer.with_platform_config(trainer_platform_config)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=data.components() + [pretrain, probe, baseline, evaluator, gate, pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args))
