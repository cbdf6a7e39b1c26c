"""The pipeline's two Trainers: TFX's Trainer that also reads what ExampleGen recorded about the data.

Class names and count, and the image size and augmentation the data plan was made for, are known
only when a run reads its plan (on Kubeflow/Vertex the plan is a runtime parameter, and a schedule
reads a growing bucket). ExampleGen records them on its Examples artifact (`data_facts`); this
Trainer takes that artifact as one more input (`data_examples`; its files are not read) and its
executor adds the facts to the run_fn's custom_config (components/trainer_config.py).

The executor also fails at once, with one line, when the compiled pipeline asked for GPUs and
TensorFlow sees none (a CPU image on a GPU node, or missing CUDA libraries) instead of silently
training on the CPU, and when the data cannot train or measure a model (`check_splits`).
"""
from __future__ import annotations

import os
from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import json_utils, proto_utils

from simsiam_tfx import contract, files
from simsiam_tfx.components import trainer_config
from simsiam_tfx.config import ConfigError

DATA_EXAMPLES_KEY = "data_examples"
CODE_VERSION_KEY = "code_version"


def data_facts(examples: types.Artifact) -> dict[str, Any]:
    """What ExampleGen recorded about the plan it read."""
    facts = contract.examples_record(examples.mlmd_artifact)
    if facts is None:
        raise ConfigError(f"Examples {examples.uri} carry no class names: made by an ExampleGen older than this "
                          f"pipeline; re-run ExampleGen (disable the cache)")
    return facts


def check_gpus(requested: int) -> None:
    if requested <= 0:
        return
    import tensorflow as tf
    seen = len(tf.config.list_physical_devices("GPU"))
    if seen < requested:
        raise ConfigError(f"{requested} GPU(s) requested for this Trainer but TensorFlow sees {seen}: "
                          f"run the GPU image (kubeflow/Dockerfile, --build-arg LOCK=requirements-gpu.lock) "
                          f"on a GPU node")


def check_splits(examples: types.Artifact, splits: list[str], class_names: list[str]) -> None:
    """Degenerate data stops here, before any training, with one line: fewer than 2 pre-training
    images, or a class without a labelled example in probe_train or in eval (the probe could not
    learn it, or its accuracy would not measure it)."""
    from simsiam_tfx.trainer import data
    counts = {split: data.label_counts([os.path.join(artifact_utils.get_split_uri([examples], split), "*")])
              for split in splits}
    if "pretrain" in counts and sum(counts["pretrain"].values()) < 2:
        raise ConfigError(f"the pretrain split holds {sum(counts['pretrain'].values())} image(s); "
                          f"pre-training needs at least 2")
    for split in ("probe_train", "eval"):
        if split not in counts:
            continue
        missing = [name for i, name in enumerate(class_names) if not counts[split].get(i)]
        if missing:
            have = {name: counts[split].get(i, 0) for i, name in enumerate(class_names)}
            raise ConfigError(f"{len(missing)} class(es) have no labelled example in {split}: {missing[:10]} "
                              f"(per class: {dict(list(have.items())[:20])}); every class needs images in "
                              f"probe_train and eval: add images or remove the class")


class Executor(trainer_executor.GenericExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        key = standard_component_specs.CUSTOM_CONFIG_KEY
        custom = json_utils.loads(exec_properties.get(key) or "{}")
        check_gpus(int(custom.get("gpus") or 0))
        facts = data_facts(artifact_utils.get_single_instance(input_dict[DATA_EXAMPLES_KEY]))
        if not input_dict.get(standard_component_specs.BASE_MODEL_KEY):  # once, in the first Trainer
            check_splits(artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY]),
                         _splits(exec_properties), facts["class_names"])
        exec_properties = {**exec_properties, key: json_utils.dumps(trainer_config.with_data_plan(custom, facts))}
        inputs = {k: v for k, v in input_dict.items() if k != DATA_EXAMPLES_KEY}
        super().Do(inputs, output_dict, exec_properties)
        for model in output_dict.get(standard_component_specs.MODEL_KEY) or []:
            record_retraining(model)
            for model_run in output_dict.get(standard_component_specs.MODEL_RUN_KEY) or []:
                record_schedule(model, model_run.uri)


def record_retraining(model: types.Artifact) -> None:
    """The retraining decision pre-training wrote beside its encoder, as MLMD custom properties."""
    from tfx.utils import path_utils

    from simsiam_tfx.components import model_record
    decision = model_record.retraining_of(path_utils.serving_model_path(model.uri))
    if decision:
        model.set_string_custom_property(contract.RETRAINING_POLICY, decision.get("policy", ""))
        model.set_string_custom_property(contract.RETRAINING_REASON, decision.get("reason", ""))
        model.set_int_custom_property(contract.WARM_START_FROM_VERSION, int(decision.get("from_version") or 0))


def record_schedule(model: types.Artifact, model_run_dir: str) -> None:
    """Pre-training's epochs, and the time budget that chose them, as MLMD custom properties."""
    metrics = files.read_json(os.path.join(model_run_dir, contract.PRETRAIN_METRICS_FILE))
    if metrics is None:  # the probe's Trainer: no pre-training
        return
    model.set_int_custom_property(contract.PRETRAIN_EPOCHS, int(metrics["epochs"]))
    budget = metrics.get("time_budget") or {}
    model.set_string_custom_property(contract.TIME_BUDGET, budget.get("budget", ""))


def _splits(exec_properties) -> list[str]:
    train_args, eval_args = trainer_pb2.TrainArgs(), trainer_pb2.EvalArgs()
    proto_utils.json_to_proto(exec_properties.get(standard_component_specs.TRAIN_ARGS_KEY) or "{}", train_args)
    proto_utils.json_to_proto(exec_properties.get(standard_component_specs.EVAL_ARGS_KEY) or "{}", eval_args)
    return list(train_args.splits) + list(eval_args.splits)


class Spec(standard_component_specs.TrainerSpec):
    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS,
              DATA_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    # The run_fn's code (components/code_version.py): TFX's key sees only its import path.
    PARAMETERS = {**standard_component_specs.TrainerSpec.PARAMETERS,
                  CODE_VERSION_KEY: ExecutionParameter(type=str, optional=True)}


class DataAwareTrainer(base_component.BaseComponent):
    """tfx.components.Trainer(run_fn=..., examples=..., ...) plus `data_examples` (ExampleGen's output)
    and `code_version` (the run_fn's code, for the cache key)."""
    SPEC_CLASS = Spec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, *, run_fn: str, examples, data_examples, transform_graph, schema,
                 train_args: trainer_pb2.TrainArgs, eval_args: trainer_pb2.EvalArgs, custom_config,
                 base_model=None, code_version: str | None = None):
        custom = custom_config if not isinstance(custom_config, dict) else json_utils.dumps(custom_config)
        super().__init__(spec=Spec(
            examples=examples, data_examples=data_examples, transform_graph=transform_graph, schema=schema,
            base_model=base_model, train_args=train_args, eval_args=eval_args, run_fn=run_fn,
            custom_config=custom, code_version=code_version, model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun)))
