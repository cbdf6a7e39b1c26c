"""The push that does not repeat itself, and a version that appears whole and working."""
import os

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from simsiam_tfx.components import model_record, pusher


@pytest.fixture(autouse=True)
def models_answer(monkeypatch):
    """These stand-in models are bytes, not SavedModels: their load-and-answer check is skipped
    (test_a_model_that_cannot_answer_is_never_published runs it)."""
    monkeypatch.setattr(pusher, "answers_one_request", lambda path: None)


def saved_model(folder, content=b"graph"):
    os.makedirs(os.path.join(folder, "variables"), exist_ok=True)
    with open(os.path.join(folder, "saved_model.pb"), "wb") as f:
        f.write(content)
    with open(os.path.join(folder, "variables", "variables.index"), "wb") as f:
        f.write(b"weights")
    return folder


def destination(base):
    return proto_utils.proto_to_json(pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(base))))


def model_artifact(uri):
    artifact = standard_artifacts.Model()
    artifact.uri = str(uri)
    return artifact


def blessing(tmp_path, blessed: bool):
    artifact = standard_artifacts.ModelBlessing()
    artifact.uri = str(tmp_path / "blessing")
    artifact.set_int_custom_property("blessed", int(blessed))
    return artifact


def push(tmp_path, model_uri, blessed=True):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    pusher.PusherExecutor().Do(
        {"model": [model_artifact(model_uri)], "model_blessing": [blessing(tmp_path, blessed)]},
        {"pushed_model": [pushed]}, {"push_destination": destination(tmp_path / "serving")})
    return pushed


def test_a_blessed_model_is_pushed_once_and_an_identical_one_not_again(tmp_path):
    model_uri = tmp_path / "model"
    saved_model(str(model_uri / "Format-Serving"))
    first = push(tmp_path, model_uri)
    assert first.get_int_custom_property("pushed") == 1
    [version] = model_record.pushed_versions(str(tmp_path / "serving"))
    assert version.record["model_uri"] == str(model_uri)
    assert sorted(os.listdir(version.path)) == ["push_record.json", "saved_model.pb", "variables"]

    again = push(tmp_path, model_uri)  # e.g. a rerun whose Evaluator and Pusher ran again
    assert again.get_int_custom_property("pushed") == 0
    assert again.get_int_custom_property("already_pushed_version") == version.version
    assert len(model_record.pushed_versions(str(tmp_path / "serving"))) == 1

    other = tmp_path / "other"
    saved_model(str(other / "Format-Serving"), b"another graph")
    assert push(tmp_path, other).get_int_custom_property("pushed") == 1
    versions = model_record.pushed_versions(str(tmp_path / "serving"))
    assert [v.record["model_uri"] for v in versions] == [str(model_uri), str(other)]
    assert versions[1].version > versions[0].version  # even within the same second


def test_an_unblessed_model_is_not_pushed(tmp_path):
    saved_model(str(tmp_path / "model" / "Format-Serving"))
    assert push(tmp_path, tmp_path / "model", blessed=False).get_int_custom_property("pushed") == 0
    assert not os.path.exists(tmp_path / "serving")


@pytest.mark.fault
def test_a_model_that_cannot_answer_is_never_published(tmp_path, monkeypatch):
    monkeypatch.undo()  # the real load-and-answer check
    saved_model(str(tmp_path / "model" / "Format-Serving"), b"not a SavedModel")
    with pytest.raises(pusher.PushRefused, match="does not answer a request.*nothing pushed"):
        push(tmp_path, tmp_path / "model")
    assert os.listdir(tmp_path / "serving") == []  # no version, no staging folder left
