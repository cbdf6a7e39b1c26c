"""`compile --target kfp|vertex`: the files KFP and Vertex accept, with parameters and resources."""
import json

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from simsiam_tfx.config import ConfigError, PipelineConfig
from simsiam_tfx.kubeflow.compile import KubeflowConfig, compile_pipeline, load_spec
from simsiam_tfx.pipeline import cli

IMAGE = "europe-docker.pkg.dev/proj/repo/simsiam-tfx:1"
ROOT = "gs://bucket/simsiam"
ENTRYPOINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
BLESSING, MODEL = "LatestBlessedModelResolver-model-blessing-resolver", "LatestBlessedModelResolver-model-resolver"
# KFP has no resolver node: TFX splits LatestBlessedModelResolver into two artifact queries.
EXPECTED_UPSTREAM = {
    "ExampleGen": set(), "StatisticsGen": {"ExampleGen"}, "SchemaGen": {"StatisticsGen"},
    "ExampleValidator": {"StatisticsGen", "SchemaGen"}, "StopOnAnomalies": {"ExampleValidator"},
    "Transform": {"ExampleGen", "SchemaGen", "StopOnAnomalies"},
    "SimSiamPretrain": {"Transform", "SchemaGen"}, "LinearProbe": {"Transform", "SchemaGen", "SimSiamPretrain"},
    BLESSING: set(), MODEL: set(),  # MODEL reads BLESSING's output (asserted below)
    "Evaluator": {"ExampleGen", "LinearProbe", MODEL}, "Pusher": {"LinearProbe", "Evaluator"},
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("kf")
    kconfig = KubeflowConfig(image=IMAGE, pipeline_root=ROOT, trainer_cpu=8, trainer_memory=30,
                             trainer_gpus=1, gpu_type="NVIDIA_L4",
                             beam_pipeline_args=["--runner=DataflowRunner", "--region=europe-west4"])
    config = PipelineConfig()
    config.pretrain.epochs, config.eval.min_accuracy = 7, 0.3
    yaml_path = compile_pipeline(config, kconfig, str(out / "pipeline.yaml"), "kfp")
    json_path = compile_pipeline(config, kconfig, str(out / "pipeline.json"), "vertex")
    with open(yaml_path) as f:
        spec = yaml.safe_load(f)
    with open(json_path) as f:
        job = json.load(f)
    return {"spec": spec, "job": job, "yaml": yaml_path, "json": json_path}


def test_yaml_is_a_kfp_pipeline_spec_with_every_component_and_dependency(compiled):
    spec = json_format.ParseDict(compiled["spec"], pipeline_spec_pb2.PipelineSpec())
    assert spec.schema_version == "2.1.0" and spec.pipeline_info.name == "simsiam-tfx"
    tasks = spec.root.dag.tasks
    assert set(tasks) == set(EXPECTED_UPSTREAM)
    for name, upstream in EXPECTED_UPSTREAM.items():
        assert set(tasks[name].dependent_tasks) == upstream, name
    assert tasks[MODEL].inputs.artifacts["input"].task_output_artifact.producer_task == BLESSING
    assert tasks["Evaluator"].inputs.artifacts["baseline_model"].task_output_artifact.producer_task == MODEL
    assert tasks["LinearProbe"].inputs.artifacts["base_model"].task_output_artifact.producer_task == "SimSiamPretrain"


def test_every_container_runs_the_image_with_the_v2_entrypoint_and_beam_args(compiled):
    executors = compiled["spec"]["deploymentSpec"]["executors"]
    containers = {k: v["container"] for k, v in executors.items() if "container" in v}
    assert len(containers) == 10  # all but the two resolver queries
    for name, container in containers.items():
        assert container["image"] == IMAGE, name
        assert container["command"] == ENTRYPOINT, name
        if name != "StopOnAnomalies_executor":  # a plain Python component: no Beam
            assert "--runner=DataflowRunner" in container["args"], name
    example_gen_args = containers["ExampleGen_executor"]["args"]
    assert example_gen_args[example_gen_args.index("--executor_class_path") + 1] == "simsiam_tfx.components.example_gen.Executor"
    pretrain_args = containers["SimSiamPretrain_executor"]["args"]
    assert pretrain_args[pretrain_args.index("--executor_class_path") + 1] == "tfx.components.trainer.executor.GenericExecutor"
    # ExampleGen's driver (input fingerprint, span) runs in the same image.
    assert "lifecycle" in containers["ExampleGen_executor"]


def test_only_the_trainers_request_cpu_memory_and_gpu(compiled):
    executors = compiled["spec"]["deploymentSpec"]["executors"]
    for name in ("SimSiamPretrain_executor", "LinearProbe_executor"):
        resources = executors[name]["container"]["resources"]
        assert resources["cpuLimit"] == 8 and resources["memoryLimit"] == 30
        assert resources["accelerator"] == {"type": "NVIDIA_L4", "count": "1"}
    assert "resources" not in executors["Transform_executor"]["container"]


def test_data_location_epochs_and_floor_are_runtime_parameters(compiled):
    spec = compiled["spec"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"input_base", "trainer_config", "eval_config"}
    assert all(p["parameterType"] == "STRING" and p["isOptional"] for p in params.values())
    assert params["input_base"]["defaultValue"] == f"{ROOT}/data"
    assert json.loads(params["trainer_config"]["defaultValue"])["config"]["pretrain"]["epochs"] == 7
    threshold = json.loads(params["eval_config"]["defaultValue"])["metricsSpecs"][0]["metrics"][0]["threshold"]
    assert threshold["valueThreshold"]["lowerBound"] == 0.3
    tasks = spec["root"]["dag"]["tasks"]
    uses = {(task, name): p["componentInputParameter"] for task, t in tasks.items()
            for name, p in t.get("inputs", {}).get("parameters", {}).items() if "componentInputParameter" in p}
    assert uses == {("ExampleGen", "input_base"): "input_base",
                    ("SimSiamPretrain", "custom_config"): "trainer_config",
                    ("LinearProbe", "custom_config"): "trainer_config",
                    ("Evaluator", "eval_config"): "eval_config"}
    # Pushed models go under the pipeline root, not to a local folder.
    push = json.loads(tasks["Pusher"]["inputs"]["parameters"]["push_destination"]["runtimeValue"]["constant"])
    assert push["filesystem"]["base_directory"] == f"{ROOT}/serving_model"


def test_json_is_a_vertex_pipeline_job_with_the_pipeline_root(compiled):
    job = json_format.ParseDict(compiled["job"], pipeline_spec_pb2.PipelineJob())
    assert job.runtime_config.gcs_output_directory == f"{ROOT}/tfx"
    assert job.runtime_config.parameter_values["input_base"].string_value == f"{ROOT}/data"
    assert compiled["job"]["pipelineSpec"] == compiled["spec"]
    assert load_spec(compiled["json"]) == load_spec(compiled["yaml"]) == compiled["spec"]


@pytest.mark.parametrize("kwargs, target, output, message", [
    ({"pipeline_root": ROOT}, "kfp", "p.yaml", "--image is required"),
    ({"image": IMAGE}, "kfp", "p.yaml", "--pipeline-root is required"),
    ({"image": IMAGE, "pipeline_root": "/local/dir"}, "kfp", "p.yaml", "must be a URI"),
    ({"image": IMAGE, "pipeline_root": ROOT}, "kfp", "p.json", "must end in .yaml"),
    ({"image": IMAGE, "pipeline_root": ROOT}, "vertex", "p.yaml", "must end in .json"),
    ({"image": IMAGE, "pipeline_root": ROOT, "trainer_gpus": -1}, "kfp", "p.yaml", "non-negative"),
])
def test_mistakes_are_config_errors(tmp_path, kwargs, target, output, message):
    with pytest.raises(ConfigError, match=message):
        compile_pipeline(PipelineConfig(), KubeflowConfig(**kwargs), str(tmp_path / output), target)


def test_cli_compile_writes_the_file_and_reports_mistakes_in_one_line(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    argv = ["compile", "--target", "kfp", "--image", IMAGE, "--pipeline-root", ROOT, "--output", str(out),
            "--epochs", "3", "--trainer-gpus", "2", "--input-base", "gs://data/shapes"]
    assert cli.main(argv) == 0
    params = load_spec(str(out))["root"]["inputDefinitions"]["parameters"]
    assert params["input_base"]["defaultValue"] == "gs://data/shapes"
    assert json.loads(params["trainer_config"]["defaultValue"])["config"]["pretrain"]["epochs"] == 3
    assert cli.main(argv[:-6] + ["--epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "simsiam-tfx: error: --epochs must be >= 1, got 0"
