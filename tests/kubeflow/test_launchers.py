"""The whole compiled pipeline, run as open-source KFP and as Vertex AI run it (slow): scheduled
retraining on a growing folder of images.

tests/kubeflow/launcher.py plays each launcher (its docstring says what is and is not emulated):
every task runs as a subprocess of its own container command and arguments from the spec, with
the ExecutorInput the launcher would build. The object store is a local folder: the compiled
pipeline root is mapped onto it, as a bucket mount would.

Every run is started the way a schedule starts it: the same (compiled default) parameters. The
first task, PlanData, resolves the data version (span) from the image folder as it is then.
Per target:
  run 1 on a folder of images trains, blesses and pushes a model serving the folder's classes;
  run 2 with no new image: the same span, ExampleGen and both Trainers are cache hits, nothing
        is pushed;
  images added, run 3: a new span, ExampleGen re-executes, the Trainers train on the new count,
        the Evaluator compares with run 1's pushed model, and the push follows the gate (kfp: a
        change threshold no model can meet, so "worse is not pushed"; vertex: the real gate,
        blessing and push agree); vertex is compiled with --warm-start, so its run 3 pre-trains
        from the encoder of run 1's served model;
  run 4 stops at PlanData with one line (kfp: a half-written manifest; vertex: the images gone),
        before any training, and the served model stays.
"""
import json
import os
import shutil
import time

import numpy as np
import pytest

from simsiam_tfx.components import sources
from simsiam_tfx.components.model_record import PUSH_RECORD, pushed_versions
from simsiam_tfx.config import DataConfig, PipelineConfig
from simsiam_tfx.kubeflow.compile import (
    PARAM_EVAL_CONFIG,
    PARAM_INPUT_BASE,
    KubeflowConfig,
    compile_pipeline,
    load_spec,
)
from simsiam_tfx.pipeline.cli import served_record
from simsiam_tfx.pipeline.summary import evaluation_result
from tests import data_factory
from tests.kubeflow.launcher import Launcher, TaskFailed

ROOT = "gs://emulated-bucket/simsiam"
IMAGE_SIZE = 16
CLASSES = 3
FIRST_IMAGES, NEW_IMAGES = 90, 45
UPSTREAM_OF_TRAINERS = ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "StopOnAnomalies",
                        "Transform", "SimSiamPretrain", "LinearProbe")


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


def compiled(tmp_path, target: str, local_root: str, config: PipelineConfig | None = None) -> dict:
    """The spec compiled for `target`, with the bucket mapped onto `local_root`."""
    suffix = ".yaml" if target == "kfp" else ".json"
    path = compile_pipeline(config or tiny_config(),
                            KubeflowConfig(image="example.com/simsiam:test", pipeline_root=ROOT),
                            str(tmp_path / f"pipeline{suffix}"), target)
    return json.loads(json.dumps(load_spec(path, target)).replace(ROOT, local_root))


def data_plan(root: str) -> str:
    plan = sources.plan(DataConfig(image_size=IMAGE_SIZE, shapes_per_split=(64, 48, 48)), root)
    return sources.write_plan(plan, root)


def impossible_eval_config(spec: dict) -> str:
    """The compiled EvalConfig, but the candidate must beat the baseline by 2.0 accuracy."""
    config = json.loads(spec["root"]["inputDefinitions"]["parameters"][PARAM_EVAL_CONFIG]["defaultValue"])
    config["metricsSpecs"][0]["metrics"][0]["threshold"]["changeThreshold"]["absolute"] = 2.0
    return json.dumps(config)


def blessed(run) -> bool:
    uri = run.artifact("Evaluator", "blessing")["uri"]
    return os.path.exists(os.path.join(uri, "BLESSED"))


def evaluation(run) -> dict:
    return evaluation_result(run.artifact("Evaluator", "evaluation")["uri"])


def pushed(run) -> bool:
    return int(run.artifact("Pusher", "pushed_model")["metadata"].get("pushed", 0)) == 1


def example_counts(run) -> dict[str, int]:
    """Examples per split, as ExampleGen recorded them in MLMD (its ExecutorOutput's metadata)."""
    return json.loads(run.artifact("ExampleGen", "examples")["metadata"]["example_counts"])


def pretrained_on(run) -> int:
    with open(os.path.join(run.artifact("SimSiamPretrain", "model_run")["uri"], "pretrain_metrics.json")) as f:
        return json.load(f)["num_examples"]


def timed(launcher, parameters, label, times):
    start = time.perf_counter()
    result = launcher.run(parameters)
    times[label] = round(time.perf_counter() - start, 1)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("target", ["kfp", "vertex"])
def test_scheduled_runs_retrain_only_on_new_images_under_each_launcher(tmp_path, target):
    import tensorflow as tf
    local_root = str(tmp_path / "bucket")
    images = os.path.join(local_root, "images")
    data_factory.write_image_folder(images, FIRST_IMAGES, classes=CLASSES, size=20)
    config = tiny_config()
    config.pretrain.warm_start = target == "vertex"
    spec = compiled(tmp_path, target, local_root, config)
    launcher = Launcher(spec, target, os.path.join(local_root, "tfx"), str(tmp_path / "state"))
    serving_dir = os.path.join(local_root, "serving_model")
    span_root = os.path.join(local_root, "data")
    schedule = {}  # a schedule's runs: the compiled defaults, every time
    times: dict[str, float] = {}

    first = timed(launcher, schedule, "run 1 (new data)", times)
    assert set(first.states.values()) == {"executed"}
    assert first.parameters["PlanData"]["input_base"] == os.path.join(span_root, "span-1")
    assert blessed(first) and pushed(first)
    assert evaluation(first)["baseline_accuracy"] is None  # nothing pushed before: floor only
    if target == "kfp":  # inputs arrived untyped, and our entrypoint restored them
        assert "restored the declared types" in first.logs["StatisticsGen"]
    examples = first.artifact("ExampleGen", "examples")["metadata"]
    assert int(examples["data_span"]) == 1 and json.loads(examples["class_names"]) == [f"class{i}" for i in range(CLASSES)]
    assert pretrained_on(first) == example_counts(first)["pretrain"] > 0
    [version] = pushed_versions(serving_dir)
    with open(os.path.join(version.path, PUSH_RECORD)) as f:
        assert json.load(f)["model_uri"] == first.artifact("LinearProbe", "model")["uri"]
    # The served model names the data's classes (recorded by ExampleGen, read by the Trainers).
    model = tf.saved_model.load(version.path)
    image = tf.io.encode_png(np.full((20, 20, 3), 200, np.uint8))
    served = model.signatures["serve_image_bytes"](image_bytes=tf.stack([image]))
    assert served["probabilities"].shape == (1, CLASSES)
    # Which data produced the served model: the record it carries (`simsiam-tfx served`), and MLMD.
    record = served_record(serving_dir)
    assert record["version"] == version.version and record["data"]["span"] == 1
    assert record["data"]["example_counts"] == example_counts(first)
    assert record["data"]["class_names"] == [f"class{i}" for i in range(CLASSES)]
    policy = first.artifact("SimSiamPretrain", "model")["metadata"]
    assert policy["retraining_policy"] == "from_scratch" and record["retraining"]["policy"] == "from_scratch"

    second = timed(launcher, schedule, "run 2 (no new image)", times)
    assert second.states["PlanData"] == "executed"  # never cached: it looks at the data every run
    assert second.parameters["PlanData"]["input_base"] == os.path.join(span_root, "span-1")
    for task in UPSTREAM_OF_TRAINERS:
        assert second.states[task] == "cached", task
    assert second.states["PushedBaseline"] == "executed"  # reads the push destination every run
    assert blessed(second) and not pushed(second)  # the same model: not a new version
    assert evaluation(second)["baseline_accuracy"] == pytest.approx(evaluation(second)["accuracy"])
    assert [v.version for v in pushed_versions(serving_dir)] == [version.version]

    data_factory.write_image_folder(images, NEW_IMAGES, classes=CLASSES, size=20, start=FIRST_IMAGES)
    parameters = {PARAM_EVAL_CONFIG: impossible_eval_config(spec)} if target == "kfp" else schedule
    third = timed(launcher, parameters, "run 3 (images added)", times)
    assert third.parameters["PlanData"]["input_base"] == os.path.join(span_root, "span-2")
    for task in UPSTREAM_OF_TRAINERS:
        assert third.states[task] == "executed", task
    assert int(third.artifact("ExampleGen", "examples")["metadata"]["data_span"]) == 2
    assert sum(example_counts(third)[s] for s in ("pretrain", "eval")) == FIRST_IMAGES + NEW_IMAGES
    assert pretrained_on(third) == example_counts(third)["pretrain"] > pretrained_on(first)
    # The Evaluator compared the new model with run 1's, the one being served.
    assert int(third.artifact("PushedBaseline", "baseline_model")["metadata"]["pushed_version"]) == version.version
    assert evaluation(third)["baseline_accuracy"] is not None
    policy = third.artifact("SimSiamPretrain", "model")["metadata"]
    if target == "vertex":  # --warm-start: from the encoder of the model run 1 pushed
        assert policy["retraining_policy"] == "warm_start", policy
        assert int(policy["warm_start_from_version"]) == version.version
    else:
        assert policy["retraining_policy"] == "from_scratch"
    assert served_record(serving_dir)["data"]["span"] == (2 if pushed(third) else 1)
    if target == "kfp":  # a gate no model can pass: worse (here: not 2.0 better) is not pushed
        assert not blessed(third) and not pushed(third)
        assert any("against the last blessed model" in f for f in evaluation(third)["failures"])
        assert [v.version for v in pushed_versions(serving_dir)] == [version.version]
    else:  # the real gate decides; blessing and push agree
        assert pushed(third) == blessed(third)
        newest = pushed_versions(serving_dir)[-1]
        assert (newest.version > version.version) == blessed(third)
    served_before = [v.version for v in pushed_versions(serving_dir)]

    # A broken data version stops the run at its first step, with one line, before any training.
    if target == "kfp":
        manifest = os.path.join(span_root, "span-2", sources.PLAN_FILE)
        with open(manifest, "r+") as f:
            f.truncate(200)
        expected = f"data manifest {manifest} is corrupt or half-written"
    else:
        shutil.rmtree(images)
        os.makedirs(images)
        expected = "a labelled folder needs at least 2 class sub-folders with images, found 0"
    with pytest.raises(TaskFailed) as failed:
        launcher.run(schedule)
    assert failed.value.task == "PlanData" and failed.value.returncode == 2
    [line] = [x for x in failed.value.output.strip().splitlines() if x.startswith("simsiam-tfx: error:")]
    assert expected in line
    assert [v.version for v in pushed_versions(serving_dir)] == served_before
    print(f"\n[timing] {target}: " + ", ".join(f"{k}: {v} s" for k, v in times.items()))


@pytest.mark.slow
def test_tfx_entrypoint_alone_fails_on_the_untyped_inputs_of_open_source_kfp(tmp_path):
    """Confirms the issue: TFX 1.21's own entrypoint, given inputs the way the OSS driver sends
    them, stops at the first step with an input artifact (StatisticsGen)."""
    local_root = str(tmp_path / "bucket")
    spec = compiled(tmp_path, "kfp", local_root)
    for name, executor in spec["deploymentSpec"]["executors"].items():
        if name != "PlanData_executor":  # ours, not TFX's: it only passes the plan below on
            executor["container"]["command"] = ["python", "-m",
                                                "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
    spec["root"]["dag"]["tasks"] = {name: task for name, task in spec["root"]["dag"]["tasks"].items()
                                    if name in ("PlanData", "ExampleGen", "StatisticsGen")}
    launcher = Launcher(spec, "kfp", os.path.join(local_root, "tfx"), str(tmp_path / "state"))
    with pytest.raises(TaskFailed) as failed:
        launcher.run({PARAM_INPUT_BASE: data_plan(str(tmp_path / "data"))})
    assert failed.value.task == "StatisticsGen"
    assert "AttributeError: 'NoneType' object has no attribute 'get'" in failed.value.output
