"""The pipeline's two Trainers: TFX's Trainer that also reads what ExampleGen recorded about the data.

Class names and count, and the image size and augmentation the data plan was made for, are known
only when a run reads its plan (on Kubeflow/Vertex the plan is a runtime parameter, and a schedule
reads a growing bucket). ExampleGen records them on its Examples artifact (example_gen.data_facts
reads them back); this Trainer takes that artifact as one more input (`data_examples`; its files
are not read) and its executor adds the facts to the run_fn's custom_config (components/trainer_config.py).

The executor also fails at once, with one line, when the compiled pipeline asked for GPUs and
TensorFlow sees none, or when the data cannot train or measure a model
(components/training_checks.py), and records what pre-training decided on its model artifact
(components/pretrain_properties.py).
"""
from __future__ import annotations

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import json_utils, proto_utils

from simsiam_tfx.components import example_gen, pretrain_properties, trainer_config, training_checks

DATA_EXAMPLES_KEY = "data_examples"
CODE_VERSION_KEY = "code_version"


class Executor(trainer_executor.GenericExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        key = standard_component_specs.CUSTOM_CONFIG_KEY
        custom = json_utils.loads(exec_properties.get(key) or "{}")
        training_checks.check_gpus(int(custom.get("gpus") or 0))
        facts = example_gen.data_facts(artifact_utils.get_single_instance(input_dict[DATA_EXAMPLES_KEY]))
        if not input_dict.get(standard_component_specs.BASE_MODEL_KEY):  # once, in the first Trainer
            training_checks.check_splits(
                artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY]),
                _splits(exec_properties), facts["class_names"])
        exec_properties = {**exec_properties, key: json_utils.dumps(trainer_config.with_data_plan(custom, facts))}
        inputs = {k: v for k, v in input_dict.items() if k != DATA_EXAMPLES_KEY}
        super().Do(inputs, output_dict, exec_properties)
        for model in output_dict.get(standard_component_specs.MODEL_KEY) or []:
            pretrain_properties.record_retraining(model)
            for model_run in output_dict.get(standard_component_specs.MODEL_RUN_KEY) or []:
                pretrain_properties.record_schedule(model, model_run.uri)


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
