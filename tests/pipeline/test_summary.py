"""Tests of simsiam_tfx.pipeline.summary's printed account: the data version and the retraining
policy with its reason are visible in every run's summary."""
from simsiam_tfx.pipeline import summary


def test_the_summary_names_the_span_and_the_retraining_policy_with_its_reason():
    text = summary.describe({
        "dataset": "class folders in gs://b/images", "seconds_total": 12.0,
        "data": {"span": 3, "fingerprint": "abc123", "class_names": ["a", "b"]},
        "retraining": {"policy": "warm_start", "from_version": 17,
                       "reason": "--warm-start: pre-training starts from the encoder of served version 17"},
        "evaluator": {"blessed": False, "threshold": 0.1, "accuracy": 0.3,
                      "failures": ["accuracy changed by -0.0100 against the last blessed model"]},
        "pushed_model": None})
    assert "  data: span 3 (fingerprint abc123)" in text.splitlines()
    assert ("  retraining: warm start (--warm-start: pre-training starts from the encoder of served version 17)"
            in text.splitlines())
    assert "nothing pushed; earlier pushes are untouched" in text
