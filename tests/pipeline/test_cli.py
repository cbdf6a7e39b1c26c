"""Tests of simsiam_tfx.pipeline.cli."""

import json

import pytest

from simsiam_tfx.components import source_plan
from simsiam_tfx.pipeline import cli
from tests import data_factory


@pytest.mark.parametrize("argv, message", [
    (["run", "--epochs", "0"], "--epochs must be in [1, 100000], got 0"),
    (["run", "--min-accuracy", "1.5"], "--min-accuracy must be in [0, 1]"),
    (["run", "--image-size", "4"], "--image-size must be in [16, 512]"),
    (["run", "--config", "/nonexistent/config.json"], "cannot read config file"),
])
def test_user_mistakes_give_one_clear_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("simsiam-tfx: error:")


@pytest.mark.fault
@pytest.mark.parametrize("document, message", [
    ([1, 2], "the configuration must be a JSON object of settings, got a list"),
    ({"output_dir": 1}, "output_dir must be a string, got 1"),
    ({"data": {"shapes_per_split": 3}}, "data.shapes_per_split must be a list of 3 integers, got 3"),
    ({"pretrain": {"knn_k": -1}}, "pretrain.knn_k must be in [0, 100000], got -1"),
    ({"pretrain": {"epochs": 2}, "eval": {"min_gain": float("nan")}}, "eval.min_gain must be in [-1, 1], got nan"),
    ({"data": {"images": "a\u0000b"}}, "data.images must not contain a NUL character"),
    ({"pipeline_name": "My Pipeline"}, "pipeline_name must be 1-63 lowercase letters"),
])
def test_a_bad_config_file_is_one_line_naming_the_key_and_exit_2(tmp_path, capsys, document, message):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(document))
    assert cli.main(["run", "--config", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"simsiam-tfx: error: {message}" or (err.startswith(f"simsiam-tfx: error: {message}")
                                                          and "\n" not in err)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_unknown_dataset_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--dataset", "imagenet"])
    assert exit_info.value.code == 2 and "invalid choice: 'imagenet'" in capsys.readouterr().err


def test_help_describes_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "run" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    for flag in ("--output", "--dataset", "--image-size", "--epochs", "--batch-size", "--backbone", "--width",
                 "--min-accuracy"):
        assert flag in out


def test_sources_command_writes_the_plan_for_a_cluster_run(tmp_path, capsys):
    data_factory.write_image_folder(str(tmp_path / "imgs"), 6, classes=3)
    assert cli.main(["sources", "--images", str(tmp_path / "imgs"), "--to", str(tmp_path / "plans")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_classes"] == 3
    plan = source_plan.load_plan(printed["input_base"])
    assert plan.class_names == ["class0", "class1", "class2"]
    assert plan.splits["eval"][0].keep == (0.85, 1.0)


def test_sources_span_auto_writes_a_new_span_only_when_images_arrive(tmp_path, capsys):
    images, to = tmp_path / "imgs", str(tmp_path / "data")
    data_factory.write_image_folder(str(images), 6, classes=2)
    argv = ["sources", "--images", str(images), "--to", to, "--span", "auto"]

    def run() -> dict:
        assert cli.main(argv) == 0
        return json.loads(capsys.readouterr().out)

    first, second = run(), run()
    assert (first["span"], first["new_span"], second["span"], second["new_span"]) == (1, True, 1, False)
    assert second["input_base"] == first["input_base"] == f"{to}/span-1"
    (images / "class1" / "late.png").write_bytes(data_factory.encoded((24, 24), 77))
    third = run()
    assert (third["span"], third["new_span"]) == (2, True) and third["data_fingerprint"] != first["data_fingerprint"]


def test_served_says_which_data_produced_the_model_being_served(tmp_path, capsys):
    from simsiam_tfx.components import model_record
    serving = tmp_path / "out" / "serving_model"
    assert cli.main(["served", "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"simsiam-tfx: error: no model has been pushed to {serving}"
    version = serving / "1795700000"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"stand-in")
    (version / "push_record.json").write_text(json.dumps({"model_uri": "gs://b/tfx/LinearProbe/model/9",
                                                          "fingerprint": "f", "pushed_at": 1}))
    data = {"span": 2, "data_fingerprint": "0123abcd", "class_names": ["cat", "dog"],
            "example_counts": {"pretrain": 80, "probe_train": 80, "eval": 15}}
    model_record.write_json(str(version), model_record.TRAINING_RECORD, {
        "data": data, "encoder_uri": "gs://b/tfx/SimSiamPretrain/model/8/Format-Serving",
        "retraining": {"policy": "from_scratch", "reason": "the configured policy"}})
    assert cli.main(["served", "--serving-dir", str(serving)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["version"] == 1795700000 and printed["model_uri"] == "gs://b/tfx/LinearProbe/model/9"
    assert printed["data"] == data and printed["retraining"]["policy"] == "from_scratch"
