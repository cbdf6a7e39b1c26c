"""Tests of simsiam_tfx.pipeline.cli."""

import json

import pytest

from simsiam_tfx.components import sources
from simsiam_tfx.pipeline import cli
from tests import data_factory


@pytest.mark.parametrize("argv, message", [
    (["run", "--epochs", "0"], "--epochs must be >= 1"),
    (["run", "--min-accuracy", "1.5"], "--min-accuracy must be in [0, 1]"),
    (["run", "--image-size", "4"], "--image-size must be in [16, 512]"),
    (["run", "--config", "/nonexistent/config.json"], "cannot read config file"),
])
def test_user_mistakes_give_one_clear_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("simsiam-tfx: error:")


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
    plan = sources.load_plan(printed["input_base"])
    assert plan.class_names == ["class0", "class1", "class2"]
    assert plan.splits["eval"][0].keep == (0.85, 1.0)
