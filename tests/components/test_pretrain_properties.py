"""Tests of simsiam_tfx.components.pretrain_properties."""
from tfx.types import standard_artifacts

from simsiam_tfx.components import pretrain_properties


def test_the_retraining_decision_beside_the_encoder_becomes_mlmd_properties(tmp_path):
    from simsiam_tfx.components import model_record
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    model_record.write_json(str(tmp_path / "model" / "Format-Serving"), model_record.RETRAINING_FILE,
                          {"policy": "warm_start", "reason": "--warm-start: ... version 7", "from_version": 7})
    pretrain_properties.record_retraining(model)
    assert model.get_string_custom_property("retraining_policy") == "warm_start"
    assert model.get_string_custom_property("retraining_reason") == "--warm-start: ... version 7"
    assert model.get_int_custom_property("warm_start_from_version") == 7
    untouched = standard_artifacts.Model()
    untouched.uri = str(tmp_path / "probe")  # no decision file: nothing recorded
    pretrain_properties.record_retraining(untouched)
    assert not untouched.has_custom_property("retraining_policy")
