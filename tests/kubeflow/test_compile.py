"""`compile --target kfp|vertex`: the files KFP and Vertex accept, with parameters and resources."""
import json
import subprocess
import sys

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from simsiam_tfx import contract
from simsiam_tfx.config import ConfigError, PipelineConfig
from simsiam_tfx.kubeflow.compile import KubeflowConfig, compile_pipeline, load_spec
from simsiam_tfx.pipeline import cli
from tests.pipeline.test_pipeline import EXPECTED_UPSTREAM as LOCAL_UPSTREAM

IMAGE = "europe-docker.pkg.dev/proj/repo/simsiam-tfx@sha256:" + "1" * 64
GPU_IMAGE = "europe-docker.pkg.dev/proj/repo/simsiam-tfx-gpu@sha256:" + "2" * 64
ROOT = "gs://bucket/simsiam"
ENTRYPOINT = ["python", "-m", "simsiam_tfx.kubeflow.entrypoint"]
TRAINERS = ("SimSiamPretrain_executor", "LinearProbe_executor")
# The local pipeline's graph, with the PlanData step the compiled one starts with.
EXPECTED_UPSTREAM = {contract.PLAN_DATA: set(), **LOCAL_UPSTREAM,
                     contract.EXAMPLE_GEN: {contract.PLAN_DATA}}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("kf")
    kconfig = KubeflowConfig(image=IMAGE, gpu_image=GPU_IMAGE, pipeline_root=ROOT, trainer_cpu=8, trainer_memory=30,
                             trainer_gpus=1, gpu_type="NVIDIA_L4", beam_cpu=2, beam_memory=6, input_disk=50,
                             beam_pipeline_args=["--runner=DataflowRunner", "--region=europe-west4"])
    config = PipelineConfig()
    config.pretrain.epochs, config.eval.min_accuracy = 7, 0.3
    yaml_path = compile_pipeline(config, kconfig, str(out / "pipeline.yaml"), "kfp")
    json_path = compile_pipeline(config, kconfig, str(out / "pipeline.json"), "vertex")
    with open(yaml_path) as f:
        spec, platforms = yaml.safe_load_all(f)
    with open(json_path) as f:
        job = json.load(f)
    return {"spec": spec, "platforms": platforms, "job": job, "yaml": yaml_path, "json": json_path}


def test_yaml_is_a_kfp_pipeline_spec_with_every_component_and_dependency(compiled):
    spec = json_format.ParseDict(compiled["spec"], pipeline_spec_pb2.PipelineSpec())
    assert spec.schema_version == "2.1.0" and spec.pipeline_info.name == "simsiam-tfx"
    tasks = spec.root.dag.tasks
    assert set(tasks) == set(EXPECTED_UPSTREAM)
    for name, upstream in EXPECTED_UPSTREAM.items():
        assert set(tasks[name].dependent_tasks) == upstream, name

    def producer(task, key):
        return tasks[task].inputs.artifacts[key].task_output_artifact.producer_task
    assert producer(contract.EVALUATOR, "baseline_model") == contract.PUSHED_BASELINE
    assert not tasks[contract.PUSHED_BASELINE].caching_options.enable_cache  # reads the push destination
    assert tasks[contract.EVALUATOR].caching_options.enable_cache
    assert producer(contract.PRETRAIN, "data_examples") == contract.EXAMPLE_GEN
    assert producer(contract.PROBE, "base_model") == contract.PRETRAIN


@pytest.mark.parametrize("fmt", ["spec", "job"])
def test_kfp_and_vertex_specs_hold_only_container_executors(compiled, fmt):
    """Open-source KFP runs only container and importer executors (argocompiler/dag.go); no
    resolver (LatestBlessedModelResolver) and no customJob."""
    spec = compiled[fmt] if fmt == "spec" else compiled[fmt]["pipelineSpec"]
    kinds = {kind for executor in spec["deploymentSpec"]["executors"].values() for kind in executor}
    assert kinds == {"container"}


def test_every_container_runs_our_entrypoint_and_beam_args(compiled):
    executors = compiled["spec"]["deploymentSpec"]["executors"]
    containers = {k: v["container"] for k, v in executors.items()}
    assert len(containers) == 13  # the pipeline's 12 components and PlanData
    plan = containers.pop("PlanData_executor")  # the data version: our own command, no TFX
    assert plan["image"] == IMAGE and plan["command"] == ["python", "-m", "simsiam_tfx.kubeflow.plan_step"]
    assert plan["args"] == ["--executor_input", "{{$}}"]
    for name, container in containers.items():
        assert container["image"] == (GPU_IMAGE if name in TRAINERS else IMAGE), name
        assert container["command"] == ENTRYPOINT, name
        if name != "StopOnAnomalies_executor":  # a plain Python component: no Beam
            assert "--runner=DataflowRunner" in container["args"], name
            # Dataflow workers run the pipeline image (TFX and our ExampleGen), not a TFX sdist.
            assert f"--sdk_container_image={IMAGE}" in container["args"], name
    example_gen_args = containers["ExampleGen_executor"]["args"]
    assert example_gen_args[example_gen_args.index("--executor_class_path") + 1] == "simsiam_tfx.components.example_gen.Executor"
    pretrain_args = containers["SimSiamPretrain_executor"]["args"]
    assert pretrain_args[pretrain_args.index("--executor_class_path") + 1] == \
        "simsiam_tfx.components.data_aware_trainer.Executor"
    # The input types our entrypoint restores come with every step (TFX's own inputs spec flag).
    evaluator_args = containers["Evaluator_executor"]["args"]
    inputs_spec = json.loads(evaluator_args[evaluator_args.index("--json_serialized_inputs_spec_args") + 1])
    assert set(inputs_spec["artifacts"]) == {"examples", "model", "baseline_model"}
    # ExampleGen's driver (input fingerprint, span) runs in the same image.
    assert "lifecycle" in containers["ExampleGen_executor"]


BEAM_STEPS = {"ExampleGen_executor", "StatisticsGen_executor", "Transform_executor", "Evaluator_executor"}


@pytest.mark.parametrize("fmt, accelerator, beam", [
    ("spec", "nvidia.com/gpu", {"cpuRequest": 2, "memoryRequest": 6}),
    ("job", "NVIDIA_L4", {"cpuLimit": 2, "memoryLimit": 6})])
def test_trainers_and_beam_steps_carry_resources_named_per_target(compiled, fmt, accelerator, beam):
    """OSS KFP uses the type verbatim as the Kubernetes resource and turns requests into the pod's
    requests (driver.go); Vertex its own accelerator names, and limits pick its machine."""
    spec = compiled[fmt] if fmt == "spec" else compiled[fmt]["pipelineSpec"]
    executors = spec["deploymentSpec"]["executors"]
    for name in TRAINERS:
        resources = executors[name]["container"]["resources"]
        assert resources["cpuLimit"] == 8 and resources["memoryLimit"] == 30
        assert resources["accelerator"] == {"type": accelerator, "count": "1"}
        assert json.loads(spec["root"]["inputDefinitions"]["parameters"]["trainer_config"]["defaultValue"])["gpus"] == 1
    with_resources = {name for name, e in executors.items() if "resources" in e["container"]}
    assert with_resources == BEAM_STEPS | set(TRAINERS)  # no step runs BestEffort but the light ones
    for name in BEAM_STEPS:
        assert executors[name]["container"]["resources"] == beam, name


def test_kfp_steps_with_inputs_get_a_volume_where_the_launcher_copies_them(compiled):
    executors = compiled["platforms"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == (set(compiled["spec"]["deploymentSpec"]["executors"]) -
                              {"PlanData_executor", "ExampleGen_executor"})  # the two without input artifacts
    for config in executors.values():
        assert config["genericEphemeralVolume"] == [{"volumeName": "inputs-copy", "mountPath": "/gcs",
                                                     "accessModes": ["ReadWriteOnce"], "size": "50G",
                                                     "defaultStorageClass": True}]
    # What kfp.Client sends: the same file, read as the SDK reads it (pipeline spec + platform spec).
    from kfp.client.client import _extract_pipeline_yaml
    doc = _extract_pipeline_yaml(compiled["yaml"])
    sent = json_format.MessageToDict(doc.platform_spec)["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sent["Transform_executor"]["genericEphemeralVolume"][0]["mountPath"] == "/gcs"


@pytest.mark.parametrize("target, gpu_type", [("kfp", "nvidia.com/gpu"), ("kfp", "amd.com/gpu"),
                                              ("kfp", "NVIDIA_TESLA_T4"), ("vertex", "NVIDIA_L4")])
def test_gpu_types_compile_for_each_target(tmp_path, target, gpu_type):
    kconfig = KubeflowConfig(image=IMAGE, gpu_image=GPU_IMAGE, pipeline_root=ROOT, trainer_gpus=1, gpu_type=gpu_type)
    path = compile_pipeline(PipelineConfig(), kconfig, str(tmp_path / ("p.yaml" if target == "kfp" else "p.json")),
                            target)
    executors = load_spec(path, target)["deploymentSpec"]["executors"]
    expected = kconfig.accelerator(target)
    for name in TRAINERS:
        assert executors[name]["container"]["resources"]["accelerator"] == {"type": expected, "count": "1"}
        assert executors[name]["container"]["image"] == GPU_IMAGE


@pytest.mark.parametrize("gpu_type, target, expected", [
    (None, "kfp", "nvidia.com/gpu"), (None, "vertex", "NVIDIA_TESLA_T4"), ("NVIDIA_L4", "kfp", "nvidia.com/gpu"),
    ("amd.com/gpu", "kfp", "amd.com/gpu"), ("NVIDIA_H100_80GB", "vertex", "NVIDIA_H100_80GB")])
def test_accelerator_names_per_target(gpu_type, target, expected):
    assert KubeflowConfig(gpu_type=gpu_type).accelerator(target) == expected


def test_data_location_epochs_and_floor_are_runtime_parameters(compiled):
    spec = compiled["spec"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"input_base", "trainer_config", "eval_config", "data_config"}
    assert all(p["parameterType"] == "STRING" and p["isOptional"] for p in params.values())
    assert params["input_base"]["defaultValue"] == f"{ROOT}/data"
    assert json.loads(params["trainer_config"]["defaultValue"])["config"]["pretrain"]["epochs"] == 7
    threshold = json.loads(params["eval_config"]["defaultValue"])["metricsSpecs"][0]["metrics"][0]["threshold"]
    assert threshold["valueThreshold"]["lowerBound"] == 0.3
    tasks = spec["root"]["dag"]["tasks"]
    uses = {(task, name): p["componentInputParameter"] for task, t in tasks.items()
            for name, p in t.get("inputs", {}).get("parameters", {}).items() if "componentInputParameter" in p}
    assert uses == {(contract.PLAN_DATA, "input_base"): "input_base",
                    (contract.PLAN_DATA, "data_config"): "data_config",
                    (contract.PRETRAIN, "custom_config"): "trainer_config",
                    (contract.PROBE, "custom_config"): "trainer_config",
                    (contract.EVALUATOR, "eval_config"): "eval_config"}
    # The data version is decided by PlanData, first and never cached; ExampleGen reads its output.
    assert tasks[contract.EXAMPLE_GEN]["inputs"]["parameters"]["input_base"] == {
        "taskOutputParameter": {"producerTask": contract.PLAN_DATA, "outputParameterKey": "input_base"}}
    assert contract.PLAN_DATA in tasks[contract.EXAMPLE_GEN]["dependentTasks"]
    assert tasks[contract.PLAN_DATA]["cachingOptions"] == {"enableCache": False}
    plan_outputs = spec["components"][contract.PLAN_DATA]["outputDefinitions"]["parameters"]
    assert plan_outputs["input_base"]["parameterType"] == "STRING"
    assert json.loads(params["data_config"]["defaultValue"])["image_size"] == PipelineConfig().data.image_size
    # Pushed models go under the pipeline root, not to a local folder.
    push = json.loads(tasks[contract.PUSHER]["inputs"]["parameters"]["push_destination"]["runtimeValue"]["constant"])
    assert push["filesystem"]["base_directory"] == f"{ROOT}/serving_model"


def test_json_is_a_vertex_pipeline_job_with_the_pipeline_root(compiled):
    job = json_format.ParseDict(compiled["job"], pipeline_spec_pb2.PipelineJob())
    assert job.runtime_config.gcs_output_directory == f"{ROOT}/tfx"
    assert compiled["spec"]["defaultPipelineRoot"] == job.pipeline_spec["defaultPipelineRoot"] == f"{ROOT}/tfx"
    assert job.runtime_config.parameter_values["input_base"].string_value == f"{ROOT}/data"
    assert load_spec(compiled["json"]) == compiled["job"]["pipelineSpec"]
    assert load_spec(compiled["yaml"]) == compiled["spec"]
    with pytest.raises(ConfigError, match="compiled for --target kfp, not vertex"):
        load_spec(compiled["yaml"], "vertex")
    with pytest.raises(ConfigError, match="compiled for --target vertex, not kfp"):
        load_spec(compiled["json"], "kfp")


@pytest.mark.parametrize("kwargs, target, output, message", [
    ({"pipeline_root": ROOT}, "kfp", "p.yaml", "--image is required"),
    ({"image": IMAGE}, "kfp", "p.yaml", "--pipeline-root is required"),
    ({"image": IMAGE, "pipeline_root": "/local/dir"}, "kfp", "p.yaml", "must be a URI"),
    ({"image": IMAGE, "pipeline_root": ROOT}, "kfp", "p.json", "must end in .yaml"),
    ({"image": IMAGE, "pipeline_root": ROOT}, "vertex", "p.yaml", "must end in .json"),
    ({"image": IMAGE, "pipeline_root": ROOT, "trainer_gpus": -1}, "kfp", "p.yaml", "non-negative"),
    ({"image": IMAGE, "pipeline_root": ROOT, "trainer_gpus": 1}, "kfp", "p.yaml", "needs --gpu-image"),
    ({"image": IMAGE, "gpu_image": IMAGE, "pipeline_root": ROOT, "trainer_gpus": 1}, "kfp", "p.yaml",
     "--gpu-image is the same as --image"),
    ({"image": IMAGE, "gpu_image": GPU_IMAGE, "pipeline_root": ROOT, "trainer_gpus": 1, "gpu_type": "nvidia.com/gpu"},
     "vertex", "p.json", "Vertex AI needs an accelerator name"),
    ({"image": IMAGE, "pipeline_root": "minio://mlpipeline/simsiam"}, "kfp", "p.yaml",
     "cannot open minio:// paths; use gs://bucket/path"),
    ({"image": IMAGE, "pipeline_root": "s3://bucket/simsiam"}, "kfp", "p.yaml", "cannot open s3:// paths"),
    ({"image": IMAGE, "pipeline_root": "s3://bucket/simsiam"}, "vertex", "p.json", "writes only to Cloud Storage"),
    ({"image": "example.com/simsiam:0.1.0", "pipeline_root": ROOT}, "kfp", "p.yaml", "is a tag, which can move"),
    ({"image": IMAGE, "gpu_image": "example.com/gpu:latest", "trainer_gpus": 1, "pipeline_root": ROOT}, "kfp",
     "p.yaml", "--gpu-image example.com/gpu:latest is a tag"),
    ({"image": IMAGE, "pipeline_root": ROOT, "beam_memory": 0}, "kfp", "p.yaml", "must be positive"),
])
def test_mistakes_are_config_errors(tmp_path, kwargs, target, output, message):
    with pytest.raises(ConfigError, match=message):
        compile_pipeline(PipelineConfig(), KubeflowConfig(**kwargs), str(tmp_path / output), target)


def test_a_mutable_tag_is_accepted_when_asked_for(tmp_path):
    kconfig = KubeflowConfig(image="example.com/simsiam:0.1.0", pipeline_root=ROOT, allow_mutable_image=True)
    spec = load_spec(compile_pipeline(PipelineConfig(), kconfig, str(tmp_path / "p.yaml"), "kfp"))
    assert spec["deploymentSpec"]["executors"]["Transform_executor"]["container"]["image"] == "example.com/simsiam:0.1.0"


def test_cli_compile_writes_the_file_and_reports_mistakes_in_one_line(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    argv = ["compile", "--target", "kfp", "--image", IMAGE, "--pipeline-root", ROOT, "--output", str(out),
            "--epochs", "3", "--trainer-gpus", "2", "--gpu-image", GPU_IMAGE, "--input-base", "gs://data/shapes"]
    assert cli.main(argv) == 0
    params = load_spec(str(out))["root"]["inputDefinitions"]["parameters"]
    assert params["input_base"]["defaultValue"] == "gs://data/shapes"
    assert json.loads(params["trainer_config"]["defaultValue"])["config"]["pretrain"]["epochs"] == 3
    assert cli.main(argv[:-8] + ["--epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "simsiam-tfx: error: --epochs must be in [1, 100000], got 0"


@pytest.mark.parametrize("extra, message", [
    ([], "--trainer-gpus needs --gpu-image"),
    (["--gpu-image", IMAGE], "--gpu-image is the same as --image")])
def test_cli_gpus_with_a_cpu_image_is_one_line(tmp_path, capsys, extra, message):
    argv = ["compile", "--target", "vertex", "--image", IMAGE, "--pipeline-root", ROOT,
            "--output", str(tmp_path / "p.json"), "--trainer-gpus", "1", *extra]
    assert cli.main(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("simsiam-tfx: error: ") and message in line


def test_compile_imports_tfx_and_aiplatform_without_the_storage_future_warning():
    """aiplatform's notice about google-cloud-storage < 3 (compile._STORAGE_NOTICE) is hidden; checked
    in a fresh process with FutureWarnings as errors (in this one an earlier import may have run)."""
    code = ("from simsiam_tfx.kubeflow.compile import import_quietly\n"
            "import_quietly('tfx.v1'); import_quietly('google.cloud.aiplatform')\n"
            "import warnings\n"
            "try:\n"
            "    warnings.warn('any other FutureWarning', FutureWarning)\n"
            "except FutureWarning:\n"
            "    print('others still shown')\n")
    result = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "others still shown"
