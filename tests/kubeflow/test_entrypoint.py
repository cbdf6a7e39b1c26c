"""Tests of simsiam_tfx.kubeflow.entrypoint: input types restored from the component's inputs spec."""
import json

import pytest

from simsiam_tfx.kubeflow import entrypoint

EXAMPLES_TYPE = {"instanceSchema": "title: tfx.Examples\ntype: object\n"}
INPUTS_SPEC = json.dumps({"artifacts": {"examples": {"artifactType": EXAMPLES_TYPE}},
                          "parameters": {"exclude_splits": {"parameterType": "STRING"}}})


def invocation(artifact_type):
    return {"inputs": {"artifacts": {"examples": {"artifacts": [
        {"name": "17", "uri": "gs://b/ExampleGen/examples", "type": artifact_type, "metadata": {"span": 0}}]}},
        "parameterValues": {"exclude_splits": "[]"}},
        "outputs": {"outputFile": "/tmp/out.json"}}


def argv(executor_input, separate=True):
    text = json.dumps(executor_input)
    flag = ["--json_serialized_invocation_args", text] if separate else [f"--json_serialized_invocation_args={text}"]
    return ["--executor_class_path", "x.Executor", *flag, "--json_serialized_inputs_spec_args", INPUTS_SPEC,
            "--runner=DirectRunner"]


def sent(args):
    return json.loads(args[args.index("--json_serialized_invocation_args") + 1])


@pytest.mark.parametrize("untyped", [{"instanceSchema": ""}, {}, {"instanceSchema": "type: object\n"}])
@pytest.mark.parametrize("separate", [True, False])
def test_an_input_without_a_schema_gets_its_declared_type(untyped, separate):
    args = entrypoint.patched_argv(argv(invocation(untyped), separate))
    [artifact] = sent(args)["inputs"]["artifacts"]["examples"]["artifacts"]
    assert artifact["type"] == EXAMPLES_TYPE
    assert artifact["name"] == "17" and artifact["metadata"] == {"span": 0}  # nothing else changes
    assert args[-3:] == ["--json_serialized_inputs_spec_args", INPUTS_SPEC, "--runner=DirectRunner"]


@pytest.mark.parametrize("typed", [EXAMPLES_TYPE, {"schemaTitle": "tfx.Examples"}])
def test_typed_inputs_pass_unchanged(typed):
    original = argv(invocation(typed))
    assert entrypoint.patched_argv(original) == original


def test_a_user_mistake_at_run_time_is_one_line_and_exit_2(monkeypatch, capsys):
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    from simsiam_tfx.config import ConfigError

    def fail(_):
        raise ConfigError("2 GPU(s) requested for this Trainer but TensorFlow sees 0")
    monkeypatch.setattr(kubeflow_v2_run_executor, "main", fail)
    with pytest.raises(SystemExit) as exited:
        entrypoint.main(argv(invocation(EXAMPLES_TYPE)))
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "simsiam-tfx: error: 2 GPU(s) requested for this Trainer but TensorFlow sees 0"]


def test_the_launchers_executor_logs_output_is_not_passed_to_tfx(capsys):
    """KFP >= 2.5 adds `executor-logs` (system.Artifact) to every task's outputs; TFX would fail
    importing a class for it. Outputs TFX can type stay, and a typed invocation is left as is."""
    executor_input = invocation(EXAMPLES_TYPE)
    executor_input["outputs"]["artifacts"] = {
        "statistics": {"artifacts": [{"name": "statistics", "uri": "gs://b/s", "type": {"schemaTitle": "tfx.ExampleStatistics"}}]},
        "executor-logs": {"artifacts": [{"name": "executor-logs", "uri": "gs://b/logs",
                                         "type": {"schemaTitle": "system.Artifact"}}]}}
    args = entrypoint.patched_argv(argv(executor_input))
    assert set(sent(args)["outputs"]["artifacts"]) == {"statistics"}
    assert "outputs kept by the launcher, not passed to TFX: executor-logs (system.Artifact)" in capsys.readouterr().out
    without_logs = invocation(EXAMPLES_TYPE)
    without_logs["outputs"]["artifacts"] = {"statistics": executor_input["outputs"]["artifacts"]["statistics"]}
    assert entrypoint.patched_argv(argv(without_logs)) == argv(without_logs)
