"""The gate between the Evaluator and the Pusher: chance, gain over random init, the served classes."""
import json
import os

import pytest
from tfx.types import standard_artifacts

from simsiam_tfx.components import model_gate, model_record, pushed_baseline, pusher
from simsiam_tfx.config import EvalConfig
from tests.components.test_pusher import destination, model_artifact, models_answer, saved_model  # noqa: F401

DEFAULTS = json.loads(model_gate.gate_settings(EvalConfig()))


def facts(accuracy, chance, random_init, class_names=("a", "b")):
    return {"accuracy": accuracy, "chance_accuracy": chance, "random_init_accuracy": random_init,
            "gain_over_random_init": accuracy - random_init, "class_names": list(class_names)}


def failed(checks):
    return {c.name for c in checks if not c.passed}


@pytest.mark.fault
def test_a_model_below_chance_is_not_blessed_even_when_the_floor_passes():
    # The case observed on a 2-class folder: accuracy 0.31 above the floor 0.14, chance 0.50, no gain.
    checks = model_gate.checks(facts(0.31, 0.50, 0.31), True, None, DEFAULTS)
    assert failed(checks) == {"above chance", "gain over random init"}
    assert "chance 0.5000" in next(c.detail for c in checks if c.name == "above chance")


def test_a_model_above_chance_with_a_gain_is_blessed_and_the_margins_apply():
    assert failed(model_gate.checks(facts(0.60, 0.50, 0.40), True, ["a", "b"], DEFAULTS)) == set()
    assert failed(model_gate.checks(facts(0.51, 0.50, 0.40), True, None, DEFAULTS)) == {"above chance"}
    assert failed(model_gate.checks(facts(0.60, 0.50, 0.59), True, None, DEFAULTS)) == {"gain over random init"}
    no_gain_check = {**DEFAULTS, "min_gain": -1.0}
    assert failed(model_gate.checks(facts(0.60, 0.50, 0.70), True, None, no_gain_check)) == set()
    assert failed(model_gate.checks(facts(0.60, 0.50, 0.40), False, None, DEFAULTS)) == {"evaluator"}
    assert failed(model_gate.checks(None, True, None, DEFAULTS)) == {"model facts"}


def candidate(tmp_path, name, class_names, content):
    uri = tmp_path / name
    saved_model(str(uri / "Format-Serving"), content)
    record = facts(0.9, 0.4, 0.5, class_names)
    model_record.write_json(str(uri / "Format-Serving"), model_record.TRAINING_RECORD,
                          {"probe": record, "data": {"class_names": record.pop("class_names")}})
    return model_artifact(uri)


def gate(tmp_path, model, baseline, allow=False):
    evaluator_blessing = standard_artifacts.ModelBlessing()
    evaluator_blessing.set_int_custom_property("blessed", 1)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / f"gate-{model.uri.split('/')[-1]}-{allow}")
    settings = json.loads(model_gate.gate_settings(EvalConfig(allow_label_change=allow)))
    model_gate.ModelGateExecutor().Do(
        {"model": [model], "evaluator_blessing": [evaluator_blessing], "baseline_model": [baseline]},
        {"blessing": [blessing]}, {"gate_config": json.dumps(settings)})
    return blessing


def push(tmp_path, model, blessing):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    pusher.PusherExecutor().Do({"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
                               {"push_destination": destination(tmp_path / "serving")})
    return pushed.get_int_custom_property("pushed") == 1


def baseline_for(tmp_path, model, name):
    baseline = model_artifact(tmp_path / name)
    pushed_baseline.PushedBaselineExecutor().Do({"model": [model]}, {"baseline_model": [baseline]},
                                                {"push_destination": destination(tmp_path / "serving")})
    return baseline


@pytest.mark.fault
def test_a_model_with_other_classes_is_not_pushed_over_the_served_one_unless_allowed(tmp_path, capsys):
    two = candidate(tmp_path, "two", ["cat", "dog"], b"two classes")
    assert push(tmp_path, two, gate(tmp_path, two, baseline_for(tmp_path, two, "b0")))
    [served] = model_record.pushed_versions(str(tmp_path / "serving"))
    assert model_gate.model_facts(served.path)["class_names"] == ["cat", "dog"]  # the record travels with it

    three = candidate(tmp_path, "three", ["cat", "dog", "fox"], b"three classes")
    baseline = baseline_for(tmp_path, three, "b1")
    # No accuracy comparison across label spaces: the Evaluator gets no baseline.
    assert not pushed_baseline.has_model(baseline)
    assert baseline.get_int_custom_property(model_gate.LABEL_SPACE_CHANGED) == 1
    refused = gate(tmp_path, three, baseline)
    assert refused.get_int_custom_property("blessed") == 0
    assert os.path.exists(os.path.join(refused.uri, "NOT_BLESSED"))
    with open(os.path.join(refused.uri, model_gate.GATE_FILE)) as f:
        record = json.load(f)
    [label_check] = [c for c in record["checks"] if c["name"] == "label space"]
    assert not label_check["passed"] and "--allow-label-change" in label_check["detail"]
    assert "NOT blessed: label space" in capsys.readouterr().out
    assert not push(tmp_path, three, refused)
    assert model_record.pushed_versions(str(tmp_path / "serving")) == [served]

    allowed = gate(tmp_path, three, baseline, allow=True)
    assert allowed.get_int_custom_property("blessed") == 1
    assert push(tmp_path, three, allowed)
    assert model_gate.model_facts(model_record.newest_pushed(str(tmp_path / "serving")).path)["class_names"] == \
        ["cat", "dog", "fox"]


def test_same_classes_compare_with_the_served_model(tmp_path):
    first = candidate(tmp_path, "first", ["cat", "dog"], b"first")
    assert push(tmp_path, first, gate(tmp_path, first, baseline_for(tmp_path, first, "b0")))
    second = candidate(tmp_path, "second", ["cat", "dog"], b"second")
    baseline = baseline_for(tmp_path, second, "b1")
    assert pushed_baseline.has_model(baseline)
    assert not baseline.has_custom_property(model_gate.LABEL_SPACE_CHANGED)
    assert gate(tmp_path, second, baseline).get_int_custom_property("blessed") == 1
