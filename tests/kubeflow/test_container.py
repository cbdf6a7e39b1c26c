"""The compiled ExampleGen container, run the way a KFP launcher runs it (slow).

A compiled task only names a command and arguments; at run time KFP's launcher replaces the
`{{$}}` placeholder with the task's ExecutorInput JSON (parameter values, output artifacts with
their URIs, the path of the ExecutorOutput file) and starts the container. Here the launcher's part
is played by hand on tiny local `shapes` data, and the entrypoint runs in a subprocess as it would
in the image, so a spec that compiles but cannot run is caught.
"""
import glob
import json
import os
import subprocess
import sys

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from simsiam_tfx.components import sources
from simsiam_tfx.config import DataConfig, PipelineConfig
from simsiam_tfx.features import SPLITS
from simsiam_tfx.kubeflow.compile import PARAM_INPUT_BASE, KubeflowConfig, compile_pipeline, load_spec

TASK = "ExampleGen"
PER_SPLIT = (20, 10, 10)  # pretrain, probe_train, eval
EXECUTOR_INPUT = "{{$}}"  # KFP's placeholder for the whole ExecutorInput JSON
# The launcher names each output artifact (Vertex: an MLMD resource name); TFX must echo it back.
ARTIFACT_NAME = "projects/1/locations/europe-west4/metadataStores/default/artifacts/42"
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    kconfig = KubeflowConfig(image="example.com/simsiam@sha256:" + "0" * 64, pipeline_root="gs://bucket/simsiam")
    # Compilation is offline, so a gs:// root is fine; the run below overrides input_base.
    return load_spec(compile_pipeline(PipelineConfig(), kconfig, str(out / "pipeline.yaml"), "kfp"))


@pytest.fixture(scope="module")
def input_base(tmp_path_factory):
    """A sources.json plan for tiny embedded `shapes` data (what `simsiam-tfx sources` writes)."""
    root = str(tmp_path_factory.mktemp("data"))
    plan = sources.plan(DataConfig(image_size=16, shapes_per_split=PER_SPLIT), root)
    return sources.write_plan(plan, root)


def task_parts(spec, task):
    """The task, its component and its container, linked by name as KFP links them."""
    task_spec = spec["root"]["dag"]["tasks"][task]
    component = spec["components"][task_spec["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    return task_spec, component, container


def executor_input(spec, task_spec, component, run_parameters, task_root):
    """What the launcher passes for `{{$}}`: resolved parameters, output artifacts, output file."""
    root_parameters = spec["root"]["inputDefinitions"]["parameters"]
    values = {}
    for name, source in task_spec["inputs"]["parameters"].items():
        if "componentInputParameter" in source:  # a pipeline (runtime) parameter: run value or default
            param = source["componentInputParameter"]
            values[name] = run_parameters.get(param, root_parameters[param].get("defaultValue"))
        elif "taskOutputParameter" in source:  # PlanData's output: played here by the given plan folder
            values[name] = run_parameters[name]
        else:  # pipeline spec 2.1 keeps constants as plain protobuf Values
            values[name] = source["runtimeValue"]["constant"]
    artifacts = {key: {"artifacts": [{"name": ARTIFACT_NAME, "type": definition["artifactType"],
                                      "uri": os.path.join(task_root, key), "metadata": {}}]}
                 for key, definition in component["outputDefinitions"]["artifacts"].items()}
    return {"inputs": {"parameterValues": values},
            "outputs": {"artifacts": artifacts,
                        "outputFile": os.path.join(task_root, "executor_output.json")}}


def run_container(command, args, invocation, cwd):
    """Fills the placeholder and runs command + args with this interpreter (the image's `python`)."""
    assert command[:2] == ["python", "-m"], command
    filled = [invocation if arg == EXECUTOR_INPUT else arg for arg in args]
    # Any other KFP placeholder would reach the program unfilled here (and on a cluster, unless
    # the launcher knows it): the contract is `{{$}}` only.
    assert not [arg for arg in filled if "{{$" in arg], filled
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, *command[1:], *filled], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{command[2]} exited {done.returncode}:\n{done.stderr[-4000:]}"


def read_output_file(path):
    with open(path) as f:
        return json_format.Parse(f.read(), pipeline_spec_pb2.ExecutorOutput())


def count_records(path):
    import tensorflow as tf
    return sum(1 for _ in tf.data.TFRecordDataset(path, compression_type="GZIP"))


@pytest.mark.slow
@pytest.mark.parametrize("with_driver", [False, True], ids=["executor", "driver+executor"])
def test_example_gen_container_writes_the_splits_and_its_executor_output(
        spec, input_base, tmp_path, with_driver):
    task_spec, component, container = task_parts(spec, TASK)
    task_root = str(tmp_path / "task")
    invocation = json.dumps(executor_input(spec, task_spec, component,
                                           {PARAM_INPUT_BASE: input_base}, task_root))
    output_file = os.path.join(task_root, "executor_output.json")

    if with_driver:
        # Launchers that honour the preCacheCheck hook (Vertex) first run TFX's driver, which
        # records the span and input fingerprint in the output file for the executor to read.
        hook = container["lifecycle"]["preCacheCheck"]
        run_container(hook["command"], hook["args"], invocation, cwd=tmp_path)
        driver_output = read_output_file(output_file)
        assert driver_output.parameter_values["span"].number_value == 0
        assert all(f"split:{split}" in driver_output.parameter_values["input_fingerprint"].string_value
                   for split in SPLITS)

    run_container(container["command"], container["args"], invocation, cwd=tmp_path)

    # Every split is written under the artifact URI the launcher chose, with all its examples.
    examples_uri = os.path.join(task_root, "examples")
    assert sorted(os.listdir(examples_uri)) == sorted([f"Split-{split}" for split in SPLITS] + ["skipped_files.jsonl"])
    for split, expected in zip(SPLITS, PER_SPLIT):
        files = glob.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz"))
        assert files, split
        assert sum(count_records(path) for path in files) == expected, split

    # The ExecutorOutput tells the launcher what to record in metadata for the output artifact.
    output = read_output_file(output_file)
    [examples] = output.artifacts["examples"].artifacts
    assert examples.uri == examples_uri and examples.name == ARTIFACT_NAME
    metadata = json_format.MessageToDict(examples.metadata)
    assert json.loads(metadata["split_names"]) == list(SPLITS)
    assert metadata["file_format"] == "tfrecords_gzip"
    assert metadata["payload_format"] == "FORMAT_TF_EXAMPLE"
    assert metadata["skipped_count"] == 0
