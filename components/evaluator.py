"""The Evaluator's executor: TFX's, told "no baseline" when PushedBaseline's artifact is empty
(nothing pushed yet, or other classes than the served model's): TFX then rubber-stamps the change
threshold, and the accuracy floor still applies."""
from __future__ import annotations

from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import artifact_utils, standard_component_specs

from simsiam_tfx.components.pushed_baseline import has_model


class EvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator; an empty baseline (nothing pushed yet) counts as no baseline."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        key = standard_component_specs.BASELINE_MODEL_KEY
        if input_dict.get(key) and not has_model(artifact_utils.get_single_instance(input_dict[key])):
            input_dict = {k: v for k, v in input_dict.items() if k != key}
        super().Do(input_dict, output_dict, exec_properties)
