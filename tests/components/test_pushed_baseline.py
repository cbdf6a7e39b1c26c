"""The baseline lookup: the newest pushed model, or an empty artifact before the first push."""
import pytest

from simsiam_tfx.components import pushed_baseline
from tests.components.test_pusher import destination, model_artifact, saved_model


@pytest.mark.parametrize("pushed_before", [False, True])
def test_baseline_is_the_newest_pushed_model_or_empty_before_the_first_push(tmp_path, pushed_before):
    if pushed_before:
        saved_model(str(tmp_path / "serving" / "7"), b"served")
    baseline = model_artifact(tmp_path / "baseline")
    pushed_baseline.PushedBaselineExecutor().Do(
        {"model": [model_artifact(tmp_path / "candidate")]}, {"baseline_model": [baseline]},
        {"push_destination": destination(tmp_path / "serving")})
    assert pushed_baseline.has_model(baseline) is pushed_before
    assert baseline.get_int_custom_property("pushed_version") == (7 if pushed_before else 0)
    if pushed_before:
        with open(tmp_path / "baseline" / "Format-Serving" / "saved_model.pb", "rb") as f:
            assert f.read() == b"served"
