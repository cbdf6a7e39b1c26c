"""The Evaluator's executor: an empty baseline (nothing pushed yet) counts as no baseline."""
import os

from simsiam_tfx.components import evaluator
from tests.components.test_pusher import model_artifact, saved_model


def test_evaluator_drops_an_empty_baseline(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(evaluator.evaluator_executor.Executor, "Do",
                        lambda self, inputs, outputs, props: seen.update(inputs))
    os.makedirs(tmp_path / "empty")
    executor = evaluator.EvaluatorExecutor()
    executor.Do({"model": [model_artifact(tmp_path / "m")], "baseline_model": [model_artifact(tmp_path / "empty")]},
                {}, {})
    assert set(seen) == {"model"}
    saved_model(str(tmp_path / "full" / "Format-Serving"))
    executor.Do({"model": [model_artifact(tmp_path / "m")], "baseline_model": [model_artifact(tmp_path / "full")]},
                {}, {})
    assert set(seen) == {"model", "baseline_model"}
