"""End-to-end: the whole pipeline with LocalDagRunner on tiny `shapes` data (slow)."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from simsiam_tfx.components import preprocessing, shapes
from simsiam_tfx.components.anomalies_gate import SchemaAnomalies
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.features import SPLITS
from simsiam_tfx.pipeline.cli import main
from simsiam_tfx.pipeline.local_runner import run_local
from simsiam_tfx.pipeline.summary import RunRecord
from simsiam_tfx.trainer import augment, data
from tests import data_factory

ALL_COMPONENTS = {"ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "StopOnAnomalies", "Transform",
                  "SimSiamPretrain", "LinearProbe", "PushedBaseline", "Evaluator", "ModelGate", "Pusher"}


def tiny_config(output_dir) -> PipelineConfig:
    config = PipelineConfig(output_dir=str(output_dir))
    config.data.shapes_per_split = (128, 100, 100)
    config.pretrain.epochs = 2
    config.pretrain.batch_size = 32
    config.pretrain.width = 4
    config.pretrain.knn_k = 20
    config.eval.min_accuracy = 0.0
    # A run this short has not beaten chance or random init reliably; the gate has its own tests.
    config.eval.min_above_chance = config.eval.min_gain = -1.0
    return config


@pytest.mark.slow
def test_pipeline_end_to_end_blesses_pushes_caches_and_gates(tmp_path):
    config = tiny_config(tmp_path)
    first = run_local(config)

    # Every component ran, a model was blessed and pushed, and the summary says so.
    assert set(first["components"]) == ALL_COMPONENTS
    assert set(first["components"].values()) == {"executed"}
    assert {k: first["examples"][k] for k in SPLITS} == {"pretrain": 128, "probe_train": 100, "eval": 100}
    assert first["examples"]["skipped"] == 0
    assert first["evaluator"]["blessed"] is True and first["pushed_model"]
    assert first["evaluator"]["baseline_version"] is None  # nothing was pushed before
    assert first["data"]["class_names"] == list(shapes.CLASS_NAMES) and first["data"]["fingerprint"]
    assert first["data"]["span"] == 1 and first["data"]["example_counts"]["eval"] == 100
    assert first["retraining"]["policy"] == "from_scratch"
    with open(config.summary_path) as f:
        on_disk = json.load(f)
    for key in ("dataset", "examples", "pretrain", "probe", "evaluator", "pushed_model", "seconds_total"):
        assert key in on_disk
    for key in ("epochs", "final_loss", "images_per_second", "seconds", "knn_accuracy", "z_std"):
        assert key in on_disk["pretrain"]
    assert 0.0 <= on_disk["probe"]["accuracy"] <= 1.0 and "random_init_accuracy" in on_disk["probe"]
    assert on_disk["evaluator"]["accuracy"] == pytest.approx(on_disk["probe"]["accuracy"], abs=1e-6)

    # The pushed SavedModel loads and predicts through both signatures.
    pushed = first["pushed_model"]
    assert pushed.startswith(config.serving_model_dir) and os.path.isdir(pushed)
    model = tf.saved_model.load(pushed)
    image = data_factory.encode_array(np.random.default_rng(0).integers(0, 255, (45, 31, 3), dtype=np.uint8), "JPEG")
    by_bytes = model.signatures["serve_image_bytes"](image_bytes=tf.constant([image, image]))
    assert by_bytes["probabilities"].shape == (2, 10)
    assert by_bytes["class_name"].numpy()[0].decode() == shapes.CLASS_NAMES[int(by_bytes["class_id"][0])]
    np.testing.assert_allclose(by_bytes["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-5)
    assert by_bytes["embedding"].shape == (2, 4 * 8)
    example = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))})).SerializeToString()
    by_example = model.signatures["serving_default"](examples=tf.constant([example]))
    np.testing.assert_allclose(by_example["probabilities"].numpy()[0], by_bytes["probabilities"].numpy()[0],
                               atol=1e-5)

    assert first["gate"]["blessed"] is True

    # The augmentation policy is Transform's: recorded beside the graph and in MLMD, named in the summary.
    graph = RunRecord(config.metadata_path, config.pipeline_name).output("Transform", "transform_graph")
    policy = json.loads(json.dumps({"name": "strong-colour", **augment.to_dict(preprocessing.policy_config("strong-colour"))}))
    assert data.read_policy(graph.uri) == policy == first["augment_policy"]
    assert graph.custom_properties[preprocessing.POLICY_NAME_PROPERTY].string_value == "strong-colour"
    assert json.loads(graph.custom_properties[preprocessing.POLICY_JSON_PROPERTY].string_value) == policy
    preview = tf.io.decode_png(tf.io.read_file(os.path.join(graph.uri, preprocessing.PREVIEW_FILE))).numpy()
    scale = 96 // config.data.image_size
    assert preview.shape == (preprocessing.PREVIEW_IMAGES * 32 * scale, 3 * 32 * scale, 3)

    # The served model's output depends on no seed: the same image twice, and with a seed in the
    # request (which serving never reads), give the same answer.
    def served(seed=None):
        feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}
        if seed is not None:
            feature[data.SEED_KEY] = tf.train.Feature(int64_list=tf.train.Int64List(value=seed))
        request = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
        return model.signatures["serving_default"](examples=tf.constant([request]))["probabilities"].numpy()
    np.testing.assert_array_equal(served(), served())
    np.testing.assert_array_equal(served(), served([7, 8]))

    # Second run, unchanged inputs but an unreachable floor and gain: data stages come from the
    # cache, the model is not blessed, nothing is pushed, and the earlier push stays in place.
    config.eval.min_accuracy, config.eval.min_gain = 1.0, 1.0
    second = run_local(config)
    for node in ("ExampleGen", "StatisticsGen", "SchemaGen", "Transform", "SimSiamPretrain", "LinearProbe"):
        assert second["components"][node] == "cached", node
    assert second["data"]["span"] == 1  # the same data version: no new span
    assert second["components"]["Evaluator"] == "executed"
    assert second["evaluator"]["baseline_version"] == int(os.path.basename(pushed))  # compared with the pushed one
    assert second["evaluator"]["blessed"] is False
    assert any("below the floor" in reason for reason in second["evaluator"]["failures"])
    failed = {c["name"] for c in second["gate"]["checks"] if not c["passed"]}
    assert second["gate"]["blessed"] is False and {"evaluator", "gain over random init"} <= failed
    assert second["pushed_model"] is None
    assert glob.glob(os.path.join(config.serving_model_dir, "*")) == [pushed]
    assert tf.saved_model.load(pushed).signatures["serve_image_bytes"] is not None

    # Third run, another augmentation policy: Transform and the Trainers re-run, the data stages do not.
    config.pretrain.augment = "cifar"
    third = run_local(config)
    for node in ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator"):
        assert third["components"][node] == "cached", node
    for node in ("Transform", "SimSiamPretrain", "LinearProbe"):
        assert third["components"][node] == "executed", node
    assert third["augment_policy"]["name"] == "cifar"
    assert len(glob.glob(os.path.join(config.pipeline_root, "Transform", "transform_graph", "*"))) == 2


@pytest.mark.slow
def test_separate_sources_unlabelled_folder_then_tfds_probe_end_to_end(tmp_path):
    """The second seed's setting in small: pre-train on an unlabelled image folder (with a broken
    file in it), probe and evaluate on CIFAR-10 read through its TFDS builder."""
    tfds_dir, unlabelled = str(tmp_path / "tfds"), tmp_path / "unlabelled"
    data_factory.prepare_tfds("cifar10", tfds_dir)
    data_factory.write_image_folder(str(unlabelled), 40, size=40, fmt="JPEG")
    (unlabelled / "part0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    config = tiny_config(tmp_path / "out")
    config.data.pretrain_images, config.data.probe_dataset, config.data.tfds_data_dir = (
        str(unlabelled), "cifar10", tfds_dir)
    result = run_local(config)

    assert set(result["components"].values()) == {"executed"}
    layout = data_factory.TFDS_LAYOUTS["cifar10"]
    assert {k: result["examples"][k] for k in SPLITS} == {
        "pretrain": 40, "probe_train": layout["train"], "eval": layout["test"]}
    assert result["examples"]["skipped"] == 1
    with open(result["examples"]["skipped_report"]) as f:
        [row] = [json.loads(line) for line in f]
    assert row["item"].endswith("broken.jpg") and row["reason"].startswith("truncated or corrupt")
    assert "pre-train on images in" in result["dataset"] and "cifar10" in result["dataset"]
    assert result["pretrain"]["epochs"] == 2 and result["probe"]["accuracy"] is not None


SCHEMA_WITH_TWO_CLASSES = """
feature { name: "image" type: BYTES presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
feature { name: "label" type: INT int_domain { min: -1 max: 1 }
          presence { min_fraction: 1.0 min_count: 1 } shape { dim { size: 1 } } }
"""


@pytest.mark.slow
def test_schema_anomalies_stop_the_run_before_transform(tmp_path, capsys):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(SCHEMA_WITH_TWO_CLASSES)
    config = tiny_config(tmp_path / "out")
    config.data.schema = str(schema)  # shapes has 10 classes: labels 2..9 are out of the domain
    with pytest.raises(SchemaAnomalies, match=r"schema anomalies.*\n.*label: Out-of-range values"):
        run_local(config)
    assert not glob.glob(os.path.join(config.pipeline_root, "Transform", "*", "*"))

    # From the command line: a readable message and a non-zero exit, no traceback.
    code = main(["run", "--output", str(tmp_path / "out"), "--schema", str(schema), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.startswith("simsiam-tfx: error: ExampleValidator found schema anomalies")
    assert "eval: label: Out-of-range values" in err


@pytest.mark.slow
@pytest.mark.fault
def test_an_output_folder_named_like_a_pattern_runs_and_pushes(tmp_path, monkeypatch, capsys):
    """`--output 'run [1]'`: TensorFlow, Beam and TFX read their artifacts back through patterns,
    where `[1]` is a character class; the run goes through a link without glob characters."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    output = tmp_path / "run [1]"
    config = tmp_path / "tiny.json"
    tiny = tiny_config(output)
    tiny.data.shapes_per_split, tiny.data.image_size, tiny.pretrain.epochs = (64, 48, 48), 16, 1
    config.write_text(json.dumps(tiny.to_dict()))
    assert main(["run", "--config", str(config), "--output", str(output)]) == 0
    assert "holds glob characters" in capsys.readouterr().err
    summary = json.loads((output / "run_summary.json").read_text())
    assert summary["evaluator"]["blessed"] and summary["pushed_model"]
    [version] = os.listdir(output / "serving_model")
    assert tf.saved_model.load(summary["pushed_model"]).signatures["serve_image_bytes"] is not None
    assert os.path.realpath(summary["pushed_model"]) == os.path.realpath(output / "serving_model" / version)
