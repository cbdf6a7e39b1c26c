"""The whole compiled pipeline, run as a stock open-source KFP install and as Vertex AI run it
(slow): scheduled retraining on a growing folder of images.

tests/kubeflow/launcher.py plays each launcher (its docstring says what is and is not emulated,
with the kubeflow/pipelines lines it follows): every task runs its own container command and
arguments from the spec in a process of its own, with the ExecutorInput the launcher would build. KFP runs
with a stock install's defaults: the driver's `executor-logs` output on every task, the pipeline
root resolved as the root-DAG driver resolves it (here: the root `simsiam-tfx kfp run` sends),
output metadata converted through MLMD, input types left out. The object store is a local folder:
the bucket is mapped onto it, as a mount would.

Every run is started the way a schedule starts it: the same (compiled default) parameters. The
first task, PlanData, resolves the data version (span) from the image folder as it is then.
  kfp, run 1 on a folder of images trains, blesses and pushes a model serving the folder's
        classes; run 2 with no new image: the same span, ExampleGen and both Trainers are cache
        hits, nothing is pushed; images added, run 3: a new span, ExampleGen re-executes, the
        Trainers train on the new count (pre-training warm-started from the served model's
        encoder, --warm-start), the Evaluator compares with run 1's pushed model, and a change
        threshold no model can meet keeps it from being pushed ("worse is not pushed"); run 4
        stops at PlanData with one line (a half-written manifest) before any training, and the
        served model stays.
  vertex, what only it proves: run 1 end to end with typed inputs named by resource name and
        ExampleGen's driver hook before the cache lookup; run 2 cut to the steps up to the
        Trainers: the cache hit with the hook's fingerprint in the key (what follows a cache hit
        is the same on both launchers and shown by the KFP runs). Its data are the other common
        setting: pre-training on an unlabelled folder (a broken file in it, skipped and named),
        probe and evaluation on a TFDS data set prepared in the bucket.

The unpatched cases are kept as tests: TFX's own entrypoint fails on the stock install's
executor-logs and on untyped inputs, a run created without a pipeline root fails at its first
artifact, and a null in output metadata fails the task as MLMD's converter does.
"""
import glob
import json
import os
import time

import numpy as np
import pytest

from simsiam_tfx import contract
from simsiam_tfx.components import source_plan
from simsiam_tfx.components.example_gen import SKIPPED_REPORT
from simsiam_tfx.components.model_record import PUSH_RECORD, pushed_versions
from simsiam_tfx.config import DataConfig, PipelineConfig
from simsiam_tfx.features import SPLITS
from simsiam_tfx.kubeflow.commands import run_pipeline_root
from simsiam_tfx.kubeflow.compile import KubeflowConfig, compile_pipeline
from simsiam_tfx.pipeline.cli import served_record
from simsiam_tfx.pipeline.summary import evaluation_result
from tests import data_factory
from tests.kubeflow.launcher import (_VERTEX_PREFIX, EXECUTOR_LOGS, KFP_DEFAULT_ROOT, PLACEHOLDER, Launcher, RunResult,
                                     TaskFailed)

BUCKET = "gs://emulated-bucket"
ROOT = f"{BUCKET}/simsiam"
IMAGE = "example.com/simsiam@sha256:" + "0" * 64
IMAGE_SIZE = 16
CLASSES = 3
FOLDER_CLASSES = [f"class{i}" for i in range(CLASSES)]
UNLABELLED_IMAGES = 40
FIRST_IMAGES, NEW_IMAGES = 90, 45
UPSTREAM_OF_TRAINERS = (contract.EXAMPLE_GEN, contract.STATISTICS_GEN, contract.SCHEMA_GEN, contract.EXAMPLE_VALIDATOR,
                        contract.STOP_ON_ANOMALIES, contract.TRANSFORM, contract.PRETRAIN, contract.PROBE)
TFX_ENTRYPOINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


def tiny_config() -> PipelineConfig:
    config = PipelineConfig()
    config.data.image_size = IMAGE_SIZE
    config.data.images = f"{ROOT}/images"  # the growing folder the schedule retrains on
    config.pretrain.epochs = 1
    config.pretrain.batch_size = 32
    config.pretrain.width = 4
    config.pretrain.knn_k = 10
    config.eval.min_accuracy = 0.0
    # A run this short has not beaten chance or random init reliably; the gate has its own tests.
    config.eval.min_above_chance = config.eval.min_gain = -1.0
    return config


def compiled(tmp_path, target: str, config: PipelineConfig | None = None) -> tuple[dict, str]:
    """(the spec compiled for `target`, the pipeline root a run of it is created with: what
    `simsiam-tfx kfp run` sends, or the Vertex job's gcsOutputDirectory)."""
    suffix = ".yaml" if target == "kfp" else ".json"
    path = compile_pipeline(config or tiny_config(), KubeflowConfig(image=IMAGE, pipeline_root=ROOT),
                            str(tmp_path / f"pipeline{suffix}"), target)
    from simsiam_tfx.kubeflow.compile import load_spec
    spec = load_spec(path, target)
    if target == "kfp":
        return spec, run_pipeline_root(spec)
    with open(path) as f:
        return spec, json.load(f)["runtimeConfig"]["gcsOutputDirectory"]


def launcher(tmp_path, target, spec, run_root, **kwargs) -> Launcher:
    return Launcher(spec, target, str(tmp_path / "state"), run_root=run_root,
                    buckets={BUCKET: str(tmp_path / "bucket")}, **kwargs)


def only_tasks(spec: dict, names) -> dict:
    spec = json.loads(json.dumps(spec))
    spec["root"]["dag"]["tasks"] = {n: t for n, t in spec["root"]["dag"]["tasks"].items() if n in names}
    return spec


def data_plan(root: str) -> str:
    plan = source_plan.plan(DataConfig(image_size=IMAGE_SIZE, shapes_per_split=(64, 48, 48)), root)
    return source_plan.write_plan(plan, root)


def impossible_eval_config(spec: dict) -> str:
    """The compiled EvalConfig, but the candidate must beat the baseline by 2.0 accuracy."""
    config = json.loads(spec["root"]["inputDefinitions"]["parameters"][contract.EVAL_CONFIG_PARAM]["defaultValue"])
    config["metricsSpecs"][0]["metrics"][0]["threshold"]["changeThreshold"]["absolute"] = 2.0
    return json.dumps(config)


def blessed(run) -> bool:
    uri = run.artifact(contract.EVALUATOR, "blessing")["uri"]
    return os.path.exists(os.path.join(uri, "BLESSED"))


def evaluation(run) -> dict:
    return evaluation_result(run.artifact(contract.EVALUATOR, "evaluation")["uri"])


def pushed(run) -> bool:
    return int(run.artifact(contract.PUSHER, "pushed_model")["metadata"].get("pushed", 0)) == 1


def example_counts(run) -> dict[str, int]:
    """Examples per split, as ExampleGen recorded them in MLMD (its ExecutorOutput's metadata)."""
    return json.loads(run.artifact(contract.EXAMPLE_GEN, "examples")["metadata"]["example_counts"])


def pretrained_on(run) -> int:
    with open(os.path.join(run.artifact(contract.PRETRAIN, "model_run")["uri"], "pretrain_metrics.json")) as f:
        return json.load(f)["num_examples"]


def example_gen_wrote_every_split(run, target: str, skipped: int = 0):
    """ExampleGen's container wrote every split, with all the examples it counted, under the URI the
    launcher chose, described them in its ExecutorOutput and echoed the artifact's name there."""
    import tensorflow as tf
    examples, counts = run.artifact(contract.EXAMPLE_GEN, "examples"), example_counts(run)
    assert sorted(os.listdir(examples["uri"])) == sorted([f"Split-{s}" for s in SPLITS] + [SKIPPED_REPORT])
    for split in SPLITS:
        files = glob.glob(os.path.join(examples["uri"], f"Split-{split}", "*.gz"))
        records = sum(1 for path in files for _ in tf.data.TFRecordDataset(path, compression_type="GZIP"))
        assert records == counts[split] > 0, split
    metadata = examples["metadata"]
    assert json.loads(metadata["split_names"]) == list(SPLITS)
    assert metadata["file_format"] == "tfrecords_gzip" and metadata["payload_format"] == "FORMAT_TF_EXAMPLE"
    assert metadata["skipped_count"] == skipped
    [written] = run.executor_outputs[contract.EXAMPLE_GEN]["artifacts"]["examples"]["artifacts"]
    assert written["uri"] == examples["uri"]
    assert written["name"] == ("examples" if target == "kfp" else _VERTEX_PREFIX + "pending")


def timed(runner, parameters, label, times):
    start = time.perf_counter()
    result = runner.run(parameters)
    times[label] = round(time.perf_counter() - start, 1)
    return result


def first_run_pushes_a_model_naming_the_classes(first, serving_dir, span_root, class_names):
    import tensorflow as tf
    assert set(first.states.values()) == {"executed"}
    assert first.parameters[contract.PLAN_DATA]["input_base"] == os.path.join(span_root, "span-1")
    assert blessed(first) and pushed(first)
    assert evaluation(first)["baseline_accuracy"] is None  # nothing pushed before: floor only
    examples = first.artifact(contract.EXAMPLE_GEN, "examples")["metadata"]
    assert int(examples["data_span"]) == 1 and json.loads(examples["class_names"]) == class_names
    assert pretrained_on(first) == example_counts(first)["pretrain"] > 0
    [version] = pushed_versions(serving_dir)
    with open(os.path.join(version.path, PUSH_RECORD)) as f:
        assert json.load(f)["model_uri"] == first.artifact(contract.PROBE, "model")["uri"]
    # The served model names the data's classes (recorded by ExampleGen, read by the Trainers).
    model = tf.saved_model.load(version.path)
    image = tf.io.encode_png(np.full((20, 20, 3), 200, np.uint8))
    served = model.signatures["serve_image_bytes"](image_bytes=tf.stack([image]))
    assert served["probabilities"].shape == (1, len(class_names))
    # Which data produced the served model: the record it carries (`simsiam-tfx served`), and MLMD.
    record = served_record(serving_dir)
    assert record["version"] == version.version and record["data"]["span"] == 1
    assert record["data"]["example_counts"] == example_counts(first)
    assert record["data"]["class_names"] == class_names
    policy = first.artifact(contract.PRETRAIN, "model")["metadata"]
    assert policy["retraining_policy"] == "from_scratch" and record["retraining"]["policy"] == "from_scratch"
    return version


def second_run_is_cached_and_pushes_nothing(second, serving_dir, span_root, version):
    assert second.states[contract.PLAN_DATA] == "executed"  # never cached: it looks at the data every run
    assert second.parameters[contract.PLAN_DATA]["input_base"] == os.path.join(span_root, "span-1")
    for task in UPSTREAM_OF_TRAINERS:
        assert second.states[task] == "cached", task
    assert second.states[contract.PUSHED_BASELINE] == "executed"  # reads the push destination every run
    assert blessed(second) and not pushed(second)  # the same model: not a new version
    assert evaluation(second)["baseline_accuracy"] == pytest.approx(evaluation(second)["accuracy"])
    assert [v.version for v in pushed_versions(serving_dir)] == [version.version]


@pytest.mark.slow
def test_scheduled_runs_on_a_stock_kfp_install_retrain_only_on_new_images(tmp_path):
    bucket = str(tmp_path / "bucket")
    images = os.path.join(bucket, "simsiam", "images")
    data_factory.write_image_folder(images, FIRST_IMAGES, classes=CLASSES, size=20)
    config = tiny_config()
    config.pretrain.warm_start = True
    spec, run_root = compiled(tmp_path, "kfp", config)
    assert run_root == f"{ROOT}/tfx"
    kfp = launcher(tmp_path, "kfp", spec, run_root)  # a stock install: publish logs on, no ConfigMap
    serving_dir = os.path.join(bucket, "simsiam", "serving_model")
    span_root = os.path.join(bucket, "simsiam", "data")
    schedule = {}  # a schedule's runs: the compiled defaults, every time
    times: dict[str, float] = {}

    first = timed(kfp, schedule, "run 1 (new data)", times)
    version = first_run_pushes_a_model_naming_the_classes(first, serving_dir, span_root, FOLDER_CLASSES)
    example_gen_wrote_every_split(first, "kfp")
    # The stock install's extras, handled: inputs arrived untyped and were given their types; the
    # driver's executor-logs output was kept from TFX and the launcher published the log.
    assert "restored the declared types" in first.logs[contract.STATISTICS_GEN]
    assert "not passed to TFX: executor-logs (system.Artifact)" in first.logs[contract.EXAMPLE_GEN]
    logs = first.artifact(contract.TRANSFORM, EXECUTOR_LOGS)
    assert logs["uri"].startswith(os.path.join(bucket, "simsiam", "tfx", "simsiam-tfx"))
    with open(logs["uri"]) as f:
        assert "outputs kept by the launcher" in f.read()
    # Metadata came back through MLMD's conversion: numbers as doubles, the launcher's own keys added.
    examples = first.artifact(contract.EXAMPLE_GEN, "examples")["metadata"]
    assert examples["display_name"] == "examples" and isinstance(examples["data_span"], float)
    # What the launcher would copy onto each pod before its command: every input, whole.
    assert first.copy_in_bytes[contract.PLAN_DATA] == 0
    assert first.copy_in_bytes[contract.TRANSFORM] > first.copy_in_bytes[contract.EXAMPLE_VALIDATOR] > 0

    second = timed(kfp, schedule, "run 2 (no new image)", times)
    second_run_is_cached_and_pushes_nothing(second, serving_dir, span_root, version)

    data_factory.write_image_folder(images, NEW_IMAGES, classes=CLASSES, size=20, start=FIRST_IMAGES)
    third = timed(kfp, {contract.EVAL_CONFIG_PARAM: impossible_eval_config(spec)}, "run 3 (images added)", times)
    assert third.parameters[contract.PLAN_DATA]["input_base"] == os.path.join(span_root, "span-2")
    for task in UPSTREAM_OF_TRAINERS:
        assert third.states[task] == "executed", task
    assert int(third.artifact(contract.EXAMPLE_GEN, "examples")["metadata"]["data_span"]) == 2
    assert sum(example_counts(third)[s] for s in ("pretrain", "eval")) == FIRST_IMAGES + NEW_IMAGES
    assert pretrained_on(third) == example_counts(third)["pretrain"] > pretrained_on(first)
    # The Evaluator compared the new model with run 1's, the one being served.
    baseline = third.artifact(contract.PUSHED_BASELINE, "baseline_model")
    assert int(baseline["metadata"]["pushed_version"]) == version.version
    assert evaluation(third)["baseline_accuracy"] is not None
    policy = third.artifact(contract.PRETRAIN, "model")["metadata"]
    assert policy["retraining_policy"] == "warm_start", policy  # from the encoder of run 1's model
    assert int(policy["warm_start_from_version"]) == version.version
    # A gate no model can pass: worse (here: not 2.0 better) is not pushed.
    assert not blessed(third) and not pushed(third)
    assert any("against the last blessed model" in f for f in evaluation(third)["failures"])
    assert [v.version for v in pushed_versions(serving_dir)] == [version.version]
    assert served_record(serving_dir)["data"]["span"] == 1

    # A broken data version stops the run at its first step, with one line, before any training.
    manifest = os.path.join(span_root, "span-2", source_plan.PLAN_FILE)
    with open(manifest, "r+") as f:
        f.truncate(200)
    with pytest.raises(TaskFailed) as failed:
        kfp.run(schedule)
    assert failed.value.task == contract.PLAN_DATA and failed.value.returncode == 2
    [line] = [x for x in failed.value.output.strip().splitlines() if x.startswith("simsiam-tfx: error:")]
    assert f"data manifest {manifest} is corrupt or half-written" in line
    assert [v.version for v in pushed_versions(serving_dir)] == [version.version]
    print("\n[timing] kfp: " + ", ".join(f"{k}: {v} s" for k, v in times.items()))
    print("[timing] kfp run 3, seconds per task: " + ", ".join(f"{k}: {v}" for k, v in third.seconds.items()))
    print("[copy-in] kfp run 1, bytes per task: " + ", ".join(f"{k}: {v}" for k, v in first.copy_in_bytes.items()))


@pytest.mark.slow
def test_vertex_typed_inputs_driver_hook_and_cache_on_an_unlabelled_folder_and_a_tfds_probe(tmp_path):
    """Vertex's own behaviour, on the data of a user with their own unlabelled photos and a public
    benchmark to measure on (the KFP test has labelled class folders): pre-training on an unlabelled
    folder in the bucket, with a broken file in it; probe and evaluation on CIFAR-10 prepared in
    the bucket and read through its TFDS builder."""
    bucket = str(tmp_path / "bucket")
    unlabelled = os.path.join(bucket, "simsiam", "unlabelled")
    data_factory.write_image_folder(unlabelled, UNLABELLED_IMAGES, size=20, fmt="JPEG")
    with open(os.path.join(unlabelled, "part0", "broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 cut short")
    data_factory.prepare_tfds("cifar10", os.path.join(bucket, "tfds"))
    config = tiny_config()
    config.data.images = None
    config.data.pretrain_images, config.data.probe_dataset = f"{ROOT}/unlabelled", "cifar10"
    config.data.tfds_data_dir = f"{BUCKET}/tfds"
    spec, run_root = compiled(tmp_path, "vertex", config)
    vertex = launcher(tmp_path, "vertex", spec, run_root)
    serving_dir = os.path.join(bucket, "simsiam", "serving_model")
    span_root = os.path.join(bucket, "simsiam", "data")
    first = vertex.run({})
    import tensorflow_datasets as tfds
    cifar10_classes = tfds.builder("cifar10", data_dir=os.path.join(bucket, "tfds")).info.features["label"].names
    assert len(cifar10_classes) == 10
    version = first_run_pushes_a_model_naming_the_classes(first, serving_dir, span_root, cifar10_classes)
    layout = data_factory.TFDS_LAYOUTS["cifar10"]
    assert example_counts(first) == {"pretrain": UNLABELLED_IMAGES, "probe_train": layout["train"],
                                     "eval": layout["test"]}
    examples = first.artifact(contract.EXAMPLE_GEN, "examples")
    description = examples["metadata"][contract.DATA_DESCRIPTION]
    assert "pre-train on images in" in description and "cifar10" in description
    with open(os.path.join(examples["uri"], SKIPPED_REPORT)) as f:
        [row] = [json.loads(line) for line in f]
    assert row["item"].endswith("broken.jpg") and row["reason"].startswith("truncated or corrupt")
    assert "ExampleGen (driver)" in first.logs  # the preCacheCheck hook ran before the cache lookup
    # TFX's driver recorded the span and the input fingerprint for the executor (and the cache key).
    driver = first.hook_parameters[contract.EXAMPLE_GEN]
    assert driver["span"] == 0 and all(f"split:{split}" in driver["input_fingerprint"] for split in SPLITS)
    example_gen_wrote_every_split(first, "vertex", skipped=1)
    assert not any("restored the declared types" in log for log in first.logs.values())  # typed by Vertex
    assert EXECUTOR_LOGS not in first.outputs[contract.EXAMPLE_GEN]
    # Run 2, cut to what only Vertex shows: ExampleGen's driver runs again before the lookup and
    # its fingerprint (the same data) keys a cache hit, as do the steps up to the Trainers. The
    # steps after them (no new version pushed) behave alike on both launchers: the KFP test's run 2.
    second = launcher(tmp_path, "vertex", only_tasks(spec, (contract.PLAN_DATA, *UPSTREAM_OF_TRAINERS)),
                      run_root).run({})
    assert second.states[contract.PLAN_DATA] == "executed"
    assert second.parameters[contract.PLAN_DATA]["input_base"] == os.path.join(span_root, "span-1")
    assert "ExampleGen (driver)" in second.logs
    for task in UPSTREAM_OF_TRAINERS:
        assert second.states[task] == "cached", task
    assert second.artifact(contract.PROBE, "model") == first.artifact(contract.PROBE, "model")
    assert [v.version for v in pushed_versions(serving_dir)] == [version.version]


# ---- the stock install without our fixes (kept: each shows one reason a step fails) -----------
def first_steps(tmp_path) -> tuple[dict, str]:
    """PlanData and ExampleGen of the compiled KFP spec."""
    spec, run_root = compiled(tmp_path, "kfp")
    return only_tasks(spec, (contract.PLAN_DATA, contract.EXAMPLE_GEN)), run_root


def tfx_entrypoint(tmp_path, task: str, upstream, **kwargs) -> None:
    """Calls TFX 1.21's own entrypoint (TFX_ENTRYPOINT's module, `main` as its __main__ calls it)
    once, in this process, with the container args the compiled KFP spec gives `task` and the
    ExecutorInput the stock launcher builds for it (Launcher.invocation): the step's command with
    TFX's entrypoint in place of ours, up to where TFX reads its ExecutorInput. `upstream` holds
    the outputs of the tasks before it, as the launcher recorded them."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor
    assert TFX_ENTRYPOINT[-1] == kubeflow_v2_run_executor.__name__
    spec, run_root = compiled(tmp_path, "kfp")
    executor_input, container = launcher(tmp_path, "kfp", spec, run_root, **kwargs).invocation(task, {}, upstream)
    args = [json.dumps(executor_input) if arg == PLACEHOLDER else arg for arg in container["args"]]
    kubeflow_v2_run_executor.main(kubeflow_v2_run_executor._parse_flags([TFX_ENTRYPOINT[-1], *args]))


def test_tfx_entrypoint_alone_fails_on_the_executor_logs_output_of_a_stock_kfp(tmp_path):
    """Confirms the issue: with publishing logs on (the default), TFX 1.21's own entrypoint stops
    at the first TFX step (ExampleGen), importing a class for the type `system.Artifact`."""
    upstream = RunResult({}, {}, {},
                         parameters={contract.PLAN_DATA: {contract.INPUT_BASE_PARAM: str(tmp_path / "data")}})
    with pytest.raises(ImportError, match="Could not import system.Artifact") as failed:
        tfx_entrypoint(tmp_path, contract.EXAMPLE_GEN, upstream)
    assert "No module named 'system'" in str(failed.value.__cause__)


def test_tfx_entrypoint_alone_fails_on_the_untyped_inputs_of_open_source_kfp(tmp_path):
    """With PUBLISH_LOGS=false (no executor-logs output), TFX's own entrypoint stops at the first
    step with an input artifact (StatisticsGen): the driver sends inputs without a schema."""
    examples = {"id": 7, "uri": str(tmp_path / "examples"),
                "metadata": {"display_name": "examples", "span": 1.0,
                             "store_session_info": '{"Provider": "gs", "Params": {}}'}}
    upstream = RunResult({}, {contract.EXAMPLE_GEN: {"examples": examples}}, {})
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):
        tfx_entrypoint(tmp_path, contract.STATISTICS_GEN, upstream, publish_logs=False)


@pytest.mark.slow
def test_a_run_created_without_a_pipeline_root_writes_to_minio_and_fails(tmp_path):
    """What `kfp run` sent before: no pipeline root. The driver falls back to the cluster default,
    minio://mlpipeline/v2/artifacts, which neither Beam nor TensorFlow can open: the first step
    writing an artifact fails (ExampleGen, in Beam's write). The same steps with the namespace's
    kfp-launcher ConfigMap naming the bucket run (the steps after them: the KFP test, whose root
    is the bucket's), each in a new interpreter: a step's command imports what it needs by itself
    (the other tests fork their steps from a process that has imported TensorFlow)."""
    spec, _ = first_steps(tmp_path)
    plan = data_plan(str(tmp_path / "data"))
    stock = launcher(tmp_path, "kfp", spec, None)
    assert stock.remote_root == KFP_DEFAULT_ROOT
    with pytest.raises(TaskFailed) as failed:
        stock.run({contract.INPUT_BASE_PARAM: plan})
    assert failed.value.task == contract.EXAMPLE_GEN
    assert "Unable to get filesystem from specified path" in failed.value.output
    assert "Path specified: minio://mlpipeline/v2/artifacts/simsiam-tfx/" in failed.value.output
    configured = launcher(tmp_path, "kfp", spec, None, configmap_root=f"{ROOT}/tfx", fresh_processes=True)
    result = configured.run({contract.INPUT_BASE_PARAM: plan})
    assert result.states[contract.EXAMPLE_GEN] == "executed"
    assert result.artifact(contract.EXAMPLE_GEN, "examples")["uri"].startswith(str(tmp_path / "bucket"))


def fake_spec(metadata: dict, received: str = "") -> dict:
    """Two container tasks: `write` outputs an artifact with `metadata`; `read` consumes it and
    saves the ExecutorInput it was given to `received` (tests/kubeflow/fake_step.py)."""
    def component(role):
        return {"executorLabel": f"{role}_executor",
                **({"outputDefinitions": {"artifacts": {"out": {"artifactType": {"schemaTitle": "system.Dataset"}}}}}
                   if role == "write" else
                   {"inputDefinitions": {"artifacts": {"data": {"artifactType": {"schemaTitle": "system.Dataset"}}}}})}
    executors = {f"{role}_executor": {"container": {
        "image": IMAGE, "command": ["python", "-m", "tests.kubeflow.fake_step"],
        "args": [role, json.dumps(metadata) if role == "write" else received, "{{$}}"]}} for role in ("write", "read")}
    return {"pipelineInfo": {"name": "fake"}, "components": {"write": component("write"), "read": component("read")},
            "deploymentSpec": {"executors": executors},
            "root": {"dag": {"tasks": {
                "write": {"taskInfo": {"name": "write"}, "componentRef": {"name": "write"}},
                "read": {"taskInfo": {"name": "read"}, "componentRef": {"name": "read"},
                         "inputs": {"artifacts": {"data": {"taskOutputArtifact": {
                             "producerTask": "write", "outputArtifactKey": "out"}}}}}}}}}


def test_output_metadata_goes_through_mlmd_as_the_kfp_launcher_converts_it(tmp_path):
    metadata = {"name": "x", "count": 3, "ok": True, "tags": ["a", "b"], "nested": {"k": 1}}
    received_path = str(tmp_path / "received.json")
    spec = fake_spec(metadata, received_path)
    kfp = Launcher(spec, "kfp", str(tmp_path / "state"), run_root=f"{BUCKET}/root",
                   buckets={BUCKET: str(tmp_path / "bucket")})
    kfp.run()
    with open(received_path) as f:
        received = json.load(f)["inputs"]["artifacts"]["data"]["artifacts"][0]
    assert received["type"] == {"instanceSchema": ""}  # no schema (metadata/client.go)
    assert received["metadata"] == {"name": "x", "count": 3.0, "ok": 1.0, "tags": {"list": ["a", "b"]},
                                    "nested": {"struct": {"k": 1}}, "display_name": "out",
                                    "store_session_info": '{"Provider": "gs", "Params": {}}'}
    # Vertex passes the metadata as sent.
    vertex = Launcher(spec, "vertex", str(tmp_path / "vstate"), run_root=f"{BUCKET}/vroot",
                      buckets={BUCKET: str(tmp_path / "bucket")})
    vertex.run()
    with open(received_path) as f:
        assert json.load(f)["inputs"]["artifacts"]["data"]["artifacts"][0]["metadata"] == metadata


def test_a_null_in_output_metadata_fails_the_task_on_kfp(tmp_path):
    """converter.go StructValueToMLMDValue has no case for null ("TODO: support null")."""
    kfp = Launcher(fake_spec({"name": "x", "missing": None}), "kfp", str(tmp_path / "state"),
                   run_root=f"{BUCKET}/root", buckets={BUCKET: str(tmp_path / "bucket")})
    with pytest.raises(TaskFailed) as failed:
        kfp.run()
    assert failed.value.task == "write" and "unknown/unsupported value type" in failed.value.output


def test_an_output_uri_the_launcher_cannot_map_fails_before_the_command(tmp_path):
    kfp = Launcher(fake_spec({}), "kfp", str(tmp_path / "state"), run_root="hdfs://namenode/root")
    with pytest.raises(TaskFailed) as failed:
        kfp.run()
    assert "failed to generate local storage path for output artifact 'out'" in failed.value.output
    assert not os.path.exists(str(tmp_path / "state" / "pods"))
