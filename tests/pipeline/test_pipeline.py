"""Tests of simsiam_tfx.pipeline.pipeline: the pipeline definition compiles to TFX IR with the expected components and wiring."""
import json

import pytest
from tfx.dsl.compiler import compiler

from simsiam_tfx import contract
from simsiam_tfx.config import EvalConfig, PipelineConfig
from simsiam_tfx.pipeline.pipeline import create_pipeline, eval_config_json, eval_settings

EXPECTED_UPSTREAM = {
    contract.EXAMPLE_GEN: set(),
    contract.STATISTICS_GEN: {contract.EXAMPLE_GEN},
    contract.SCHEMA_GEN: {contract.STATISTICS_GEN},
    contract.EXAMPLE_VALIDATOR: {contract.STATISTICS_GEN, contract.SCHEMA_GEN},
    contract.STOP_ON_ANOMALIES: {contract.EXAMPLE_VALIDATOR},
    contract.TRANSFORM: {contract.EXAMPLE_GEN, contract.SCHEMA_GEN, contract.STOP_ON_ANOMALIES},
    # The Trainers read ExampleGen's record of the data plan (class names) at run time.
    contract.PRETRAIN: {contract.EXAMPLE_GEN, contract.TRANSFORM, contract.SCHEMA_GEN},
    contract.PROBE: {contract.EXAMPLE_GEN, contract.TRANSFORM, contract.SCHEMA_GEN, contract.PRETRAIN},
    contract.PUSHED_BASELINE: {contract.PROBE},
    contract.EVALUATOR: {contract.EXAMPLE_GEN, contract.PROBE, contract.PUSHED_BASELINE},
    contract.MODEL_GATE: {contract.PROBE, contract.EVALUATOR, contract.PUSHED_BASELINE},
    contract.PUSHER: {contract.PROBE, contract.MODEL_GATE},
}


def _compile(tmp_path, **eval_overrides):
    config = PipelineConfig(output_dir=str(tmp_path))
    for key, value in eval_overrides.items():
        setattr(config.eval, key, value)
    pipeline = create_pipeline(config, input_base=str(tmp_path / "data"))
    return config, pipeline, compiler.Compiler().compile(pipeline)


def test_pipeline_has_every_component_wired_as_the_diagram(tmp_path):
    _, pipeline, ir = _compile(tmp_path)
    assert {c.id for c in pipeline.components} == set(EXPECTED_UPSTREAM)
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
    assert set(nodes) == set(EXPECTED_UPSTREAM)
    for node_id, upstream in EXPECTED_UPSTREAM.items():
        assert set(nodes[node_id].upstream_nodes) == upstream, node_id


def test_no_resolver_and_the_baseline_lookup_is_never_cached_locally(tmp_path):
    from simsiam_tfx.pipeline.local_runner import pipeline_ir
    _, pipeline, _ = _compile(tmp_path)
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in pipeline_ir(pipeline).nodes}
    assert not any("Resolver" in node_id for node_id in nodes)
    assert not nodes[contract.PUSHED_BASELINE].execution_options.caching_options.enable_cache
    assert nodes[contract.EVALUATOR].execution_options.caching_options.enable_cache
    executors = {c.id: c.executor_spec.executor_class.__name__ for c in pipeline.components}
    assert executors[contract.EVALUATOR] == "EvaluatorExecutor" and executors[contract.PUSHER] == "PusherExecutor"


def test_trainers_use_importable_run_fns_and_the_right_splits(tmp_path):
    _, pipeline, _ = _compile(tmp_path)
    by_id = {c.id: c for c in pipeline.components}
    pretrain, probe = by_id[contract.PRETRAIN], by_id[contract.PROBE]
    assert pretrain.exec_properties["run_fn"] == "simsiam_tfx.components.simsiam_pretrain.run_fn"
    assert probe.exec_properties["run_fn"] == "simsiam_tfx.components.linear_probe.run_fn"
    assert '"pretrain"' in pretrain.exec_properties["train_args"]
    assert '"probe_train"' in probe.exec_properties["train_args"]
    assert '"eval"' in probe.exec_properties["eval_args"]
    assert by_id[contract.TRANSFORM].exec_properties["preprocessing_fn"] == \
        "simsiam_tfx.components.preprocessing.preprocessing_fn"


def test_transform_owns_the_augmentation_policy(tmp_path):
    from simsiam_tfx.components import preprocessing
    _, pipeline, _ = _compile(tmp_path)
    transform = {c.id: c for c in pipeline.components}[contract.TRANSFORM]
    assert transform.executor_spec.executor_class is preprocessing.Executor
    # The whole policy is in Transform's custom_config: its cache key.
    assert json.loads(transform.exec_properties["custom_config"])["augment"]["name"] == "strong-colour"


def test_evaluator_gates_on_the_floor_and_on_regression(tmp_path):
    _, pipeline, _ = _compile(tmp_path, min_accuracy=0.7, max_regression=0.02)
    evaluator = {c.id: c for c in pipeline.components}[contract.EVALUATOR]
    metric = json.loads(evaluator.exec_properties["eval_config"])["metrics_specs"][0]["metrics"][0]
    assert metric["class_name"] == "SparseCategoricalAccuracy"
    assert metric["threshold"]["value_threshold"]["lower_bound"] == 0.7
    assert metric["threshold"]["change_threshold"]["absolute"] == -0.02
    assert metric["threshold"]["change_threshold"]["direction"] == "HIGHER_IS_BETTER"
    assert '"eval"' in evaluator.exec_properties["example_splits"]


def test_trainer_properties_ignore_evaluation_settings(tmp_path):
    # Changing the floor must not invalidate the (expensive) Trainers' cache.
    _, a, _ = _compile(tmp_path, min_accuracy=0.1)
    _, b, _ = _compile(tmp_path, min_accuracy=0.9)
    trainer_a = {c.id: c for c in a.components}[contract.PRETRAIN].exec_properties["custom_config"]
    trainer_b = {c.id: c for c in b.components}[contract.PRETRAIN].exec_properties["custom_config"]
    assert trainer_a == trainer_b


def test_another_augmentation_policy_changes_transforms_cache_key_and_no_data_stages(tmp_path):
    # TFX's cache key holds a node's execution properties and its inputs: Transform runs again (and
    # so the Trainers, whose input is its new graph); ExampleGen up to the validation do not.
    config = PipelineConfig(output_dir=str(tmp_path))
    properties = []
    for policy in ("strong-colour", "cifar"):
        config.pretrain.augment = policy
        pipeline = create_pipeline(config, input_base=str(tmp_path / "data"))
        properties.append({c.id: c.exec_properties for c in pipeline.components})
    before, after = properties
    for node in (contract.EXAMPLE_GEN, contract.STATISTICS_GEN, contract.SCHEMA_GEN, contract.EXAMPLE_VALIDATOR,
                 contract.STOP_ON_ANOMALIES):
        assert before[node] == after[node], node
    assert before[contract.TRANSFORM]["custom_config"] != after[contract.TRANSFORM]["custom_config"]


def test_the_evaluator_settings_read_back_from_their_tfma_json():
    for settings in (EvalConfig(), EvalConfig(min_accuracy=0.5, max_regression=0.02)):
        back = eval_settings(eval_config_json(settings))
        assert back.min_accuracy == pytest.approx(settings.min_accuracy)
        assert back.max_regression == pytest.approx(settings.max_regression, abs=1e-9)
