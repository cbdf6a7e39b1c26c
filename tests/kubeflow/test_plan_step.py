"""Tests of simsiam_tfx.kubeflow.plan_step: PlanData resolves the run's data version and returns it
as an output parameter the way a KFP container does (outputFile and ExecutorOutput)."""
import dataclasses
import json
import os

import pytest

from simsiam_tfx.components import source_plan
from simsiam_tfx.config import DataConfig
from simsiam_tfx.kubeflow import plan_step
from tests import data_factory


def executor_input(tmp_path, input_base: str, data: DataConfig) -> dict:
    task = tmp_path / "task"
    return {"inputs": {"parameterValues": {"input_base": input_base,
                                           "data_config": json.dumps(dataclasses.asdict(data))}},
            "outputs": {"parameters": {"input_base": {"outputFile": str(task / "outputs" / "input_base")}},
                        "outputFile": str(task / "output_metadata.json")}}


def run(invocation: dict) -> tuple[int, str | None]:
    code = plan_step.main(["--executor_input", json.dumps(invocation)])
    output_file = invocation["outputs"]["parameters"]["input_base"]["outputFile"]
    if not os.path.exists(output_file):
        return code, None
    with open(output_file) as f:
        value = f.read()
    with open(invocation["outputs"]["outputFile"]) as f:
        assert json.load(f) == {"parameterValues": {"input_base": value}}  # both say the same
    os.remove(output_file)
    return code, value


def test_plan_step_reuses_the_span_until_images_arrive(tmp_path, capsys):
    images, root = tmp_path / "imgs", str(tmp_path / "data")
    data_factory.write_image_folder(str(images), 6, classes=2)
    invocation = executor_input(tmp_path, root, DataConfig(images=str(images), image_size=16))
    assert run(invocation) == (0, os.path.join(root, "span-1"))
    assert "span 1, new span: the data changed" in capsys.readouterr().out
    assert run(invocation) == (0, os.path.join(root, "span-1"))
    assert "span 1, unchanged data: same span" in capsys.readouterr().out
    data_factory.write_image_folder(str(images), 2, classes=2, start=6)
    assert run(invocation) == (0, os.path.join(root, "span-2"))
    assert source_plan.load_plan(os.path.join(root, "span-2")).source_files == {str(images): 8}


def test_a_pinned_plan_is_checked_and_passed_through(tmp_path):
    data_factory.write_image_folder(str(tmp_path / "imgs"), 6, classes=2)
    plan = source_plan.plan(DataConfig(images=str(tmp_path / "imgs")), str(tmp_path / "d"))
    folder = source_plan.write_plan(plan, str(tmp_path / "d"))
    assert run(executor_input(tmp_path, folder, DataConfig())) == (0, folder)


@pytest.mark.fault
def test_a_corrupt_manifest_or_no_images_ends_the_step_with_one_line(tmp_path, capsys):
    images, root = tmp_path / "imgs", str(tmp_path / "data")
    data_factory.write_image_folder(str(images), 6, classes=2)
    invocation = executor_input(tmp_path, root, DataConfig(images=str(images)))
    assert run(invocation)[0] == 0
    manifest = os.path.join(root, "span-1", source_plan.PLAN_FILE)
    with open(manifest, "r+") as f:
        f.truncate(100)  # half-written
    capsys.readouterr()
    assert run(invocation) == (2, None)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"simsiam-tfx: error: data manifest {manifest} is corrupt or half-written")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(executor_input(tmp_path, str(tmp_path / "d2"), DataConfig(images=str(empty)))) == (2, None)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "found 0" in line
