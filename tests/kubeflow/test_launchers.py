"""The whole compiled pipeline, run as open-source KFP and as Vertex AI run it (slow).

tests/kubeflow/launcher.py plays each launcher (its docstring says what is and is not emulated):
every task runs as a subprocess of its own container command and arguments from the spec, with
the ExecutorInput the launcher would build. The object store is a local folder: the compiled
pipeline root is mapped onto it, as a bucket mount would.

Per target: run 1 trains, blesses and pushes a model that serves the data's class names; run 2
with unchanged inputs is a cache hit up to the Trainers and pushes nothing; run 3 demands more than
the pushed model's accuracy (an eval_config whose change threshold no model can meet), so the
candidate is compared with the pushed model, is not blessed and not pushed.
"""
import json
import os

import numpy as np
import pytest

from simsiam_tfx.components import shapes, sources
from simsiam_tfx.components.pushed_models import PUSH_RECORD, pushed_versions
from simsiam_tfx.config import DataConfig, PipelineConfig
from simsiam_tfx.kubeflow.compile import (PARAM_EVAL_CONFIG, PARAM_INPUT_BASE, KubeflowConfig, compile_pipeline,
                                          load_spec)
from simsiam_tfx.pipeline.summary import evaluation_result
from tests.kubeflow.launcher import Launcher, TaskFailed

ROOT = "gs://emulated-bucket/simsiam"
IMAGE_SIZE = 16
PER_SPLIT = (64, 48, 48)
UPSTREAM_OF_TRAINERS = ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "StopOnAnomalies",
                        "Transform", "SimSiamPretrain", "LinearProbe")


def tiny_config() -> PipelineConfig:
    config = PipelineConfig()
    config.data.image_size = IMAGE_SIZE
    config.pretrain.epochs = 1
    config.pretrain.batch_size = 32
    config.pretrain.width = 4
    config.pretrain.knn_k = 10
    config.eval.min_accuracy = 0.0
    # A run this short has not beaten chance or random init reliably; the gate has its own tests.
    config.eval.min_above_chance = config.eval.min_gain = -1.0
    return config


def compiled(tmp_path, target: str, local_root: str) -> dict:
    """The spec compiled for `target`, with the bucket mapped onto `local_root`."""
    suffix = ".yaml" if target == "kfp" else ".json"
    path = compile_pipeline(tiny_config(), KubeflowConfig(image="example.com/simsiam:test", pipeline_root=ROOT),
                            str(tmp_path / f"pipeline{suffix}"), target)
    return json.loads(json.dumps(load_spec(path, target)).replace(ROOT, local_root))


def data_plan(root: str) -> str:
    plan = sources.plan(DataConfig(image_size=IMAGE_SIZE, shapes_per_split=PER_SPLIT), root)
    return sources.write_plan(plan, root)


def impossible_eval_config(spec: dict) -> str:
    """The compiled EvalConfig, but the candidate must beat the baseline by 2.0 accuracy."""
    config = json.loads(spec["root"]["inputDefinitions"]["parameters"][PARAM_EVAL_CONFIG]["defaultValue"])
    config["metricsSpecs"][0]["metrics"][0]["threshold"]["changeThreshold"]["absolute"] = 2.0
    return json.dumps(config)


def blessed(run, local_root) -> bool:
    uri = run.artifact("Evaluator", "blessing")["uri"]
    return os.path.exists(os.path.join(uri, "BLESSED"))


def evaluation(run) -> dict:
    return evaluation_result(run.artifact("Evaluator", "evaluation")["uri"])


def pushed(run) -> bool:
    return int(run.artifact("Pusher", "pushed_model")["metadata"].get("pushed", 0)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("target", ["kfp", "vertex"])
def test_compiled_pipeline_runs_blesses_pushes_and_gates_under_each_launcher(tmp_path, target):
    import tensorflow as tf
    local_root = str(tmp_path / "bucket")
    spec = compiled(tmp_path, target, local_root)
    launcher = Launcher(spec, target, os.path.join(local_root, "tfx"), str(tmp_path / "state"))
    serving_dir = os.path.join(local_root, "serving_model")
    parameters = {PARAM_INPUT_BASE: data_plan(str(tmp_path / "data"))}

    first = launcher.run(parameters)
    assert set(first.states.values()) == {"executed"}
    assert blessed(first, local_root) and pushed(first)
    assert evaluation(first)["baseline_accuracy"] is None  # nothing pushed before: floor only
    if target == "kfp":  # inputs arrived untyped, and our entrypoint restored them
        assert "restored the declared types" in first.logs["StatisticsGen"]
    [version] = pushed_versions(serving_dir)
    with open(os.path.join(version.path, PUSH_RECORD)) as f:
        assert json.load(f)["model_uri"] == first.artifact("LinearProbe", "model")["uri"]
    # The served model names the data's classes (recorded by ExampleGen, read by the Trainers).
    model = tf.saved_model.load(version.path)
    image = tf.io.encode_png(np.full((20, 20, 3), 200, np.uint8))
    served = model.signatures["serve_image_bytes"](image_bytes=tf.stack([image]))
    assert served["probabilities"].shape == (1, len(shapes.CLASS_NAMES))
    assert served["class_name"].numpy()[0].decode() in shapes.CLASS_NAMES

    second = launcher.run(parameters)
    for task in UPSTREAM_OF_TRAINERS:
        assert second.states[task] == "cached", task
    assert second.states["PushedBaseline"] == "executed"  # reads the push destination every run
    assert blessed(second, local_root) and not pushed(second)  # the same model: not a new version
    # Compared with the pushed model, which is the same model.
    assert evaluation(second)["baseline_accuracy"] == pytest.approx(evaluation(second)["accuracy"])
    assert [v.version for v in pushed_versions(serving_dir)] == [version.version]

    third = launcher.run({**parameters, PARAM_EVAL_CONFIG: impossible_eval_config(spec)})
    assert not blessed(third, local_root) and not pushed(third)
    result = evaluation(third)
    assert result["baseline_accuracy"] is not None
    assert any("against the last blessed model" in failure for failure in result["failures"]), result
    assert [v.version for v in pushed_versions(serving_dir)] == [version.version]


@pytest.mark.slow
def test_tfx_entrypoint_alone_fails_on_the_untyped_inputs_of_open_source_kfp(tmp_path):
    """Confirms the issue: TFX 1.21's own entrypoint, given inputs the way the OSS driver sends
    them, stops at the first step with an input artifact (StatisticsGen)."""
    local_root = str(tmp_path / "bucket")
    spec = compiled(tmp_path, "kfp", local_root)
    for executor in spec["deploymentSpec"]["executors"].values():
        executor["container"]["command"] = ["python", "-m",
                                            "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
    spec["root"]["dag"]["tasks"] = {name: task for name, task in spec["root"]["dag"]["tasks"].items()
                                    if name in ("ExampleGen", "StatisticsGen")}
    launcher = Launcher(spec, "kfp", os.path.join(local_root, "tfx"), str(tmp_path / "state"))
    with pytest.raises(TaskFailed) as failed:
        launcher.run({PARAM_INPUT_BASE: data_plan(str(tmp_path / "data"))})
    assert failed.value.task == "StatisticsGen"
    assert "AttributeError: 'NoneType' object has no attribute 'get'" in failed.value.output
