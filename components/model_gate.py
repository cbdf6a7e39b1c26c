"""ModelGate: the checks between the Evaluator and the Pusher that need to know the data.

TFX's Evaluator (TFMA) judges accuracy against fixed numbers: a floor and no regression against
the served model. A floor cannot know the data: 0.31 is good on 10 classes and worse than chance
on 2. So the Pusher pushes only what this gate blesses, and it blesses a model when

- the Evaluator blessed it (floor, no regression against the served model);
- its probe accuracy beats *chance* (always answering the eval split's most frequent class) by
  `min_above_chance`;
- its probe accuracy beats the same probe on the random-init encoder by `min_gain` (pre-training
  must have helped: components/linear_probe.py measures both on the same splits);
- its classes are the served model's classes, unless `allow_label_change`: class ids would
  change meaning under every client of the served model. (PushedBaseline gives the Evaluator no
  baseline in that case: accuracies over different label sets are not comparable.)

Facts about a trained model travel with it: the probe's numbers and the class names are in the
training record inside the SavedModel (components/model_record.py), and so in every pushed version.
Every check and its numbers are written to GATE_FILE in the gate's blessing, and its verdict is
the blessing's `blessed` property and BLESSED/NOT_BLESSED file, as TFX's Pusher reads them.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import path_utils

from simsiam_tfx import contract, files
from simsiam_tfx.components import model_record
from simsiam_tfx.config import EvalConfig

GATE_FILE = contract.GATE_FILE  # in the gate's ModelBlessing
# Custom properties PushedBaseline sets on its baseline Model artifact.
SERVED_CLASS_NAMES = "served_class_names"
LABEL_SPACE_CHANGED = "label_space_changed"


def _gfile():
    import tensorflow as tf
    return tf.io.gfile


def model_facts(model_dir: str) -> Optional[dict[str, Any]]:
    """The probe's numbers and the class names of a classifier SavedModel (a LinearProbe model's
    serving folder, or a pushed version), from its training record; None if it has none."""
    record = model_record.training_record(model_dir)
    if not record or "probe" not in record:
        return None
    return {**record["probe"], "class_names": (record.get("data") or {}).get("class_names")}


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def gate_settings(settings: EvalConfig) -> str:
    """The gate's execution property: the settings it reads, as JSON (part of its cache key)."""
    return json.dumps({"min_above_chance": settings.min_above_chance, "min_gain": settings.min_gain,
                       "allow_label_change": settings.allow_label_change}, sort_keys=True)


def checks(facts: Optional[dict[str, Any]], evaluator_blessed: bool, served_class_names: Optional[list[str]],
           settings: dict[str, Any]) -> list[Check]:
    """Every check of the gate, passed or not (the model is blessed when all pass)."""
    result = [Check("evaluator", evaluator_blessed,
                    "the Evaluator blessed it" if evaluator_blessed else
                    "the Evaluator did not bless it (accuracy floor or regression against the served model)")]
    if facts is None:
        return result + [Check("model facts", False, "the model carries no training record: made by an older "
                                                     "LinearProbe; re-run it (disable the cache)")]
    accuracy, chance = facts["accuracy"], facts["chance_accuracy"]
    margin = settings["min_above_chance"]
    result.append(Check("above chance", accuracy >= chance + margin,
                        f"probe accuracy {accuracy:.4f} vs chance {chance:.4f} (the most frequent eval class) "
                        f"+ margin {margin:g}"))
    gain, min_gain = facts["gain_over_random_init"], settings["min_gain"]
    result.append(Check("gain over random init", gain >= min_gain,
                        f"probe accuracy {accuracy:.4f} vs random-init encoder {facts['random_init_accuracy']:.4f}: "
                        f"gain {gain:+.4f}, required {min_gain:+g}"))
    names = list(facts.get("class_names") or [])
    if served_class_names is not None and names != served_class_names:
        allowed = bool(settings["allow_label_change"])
        result.append(Check("label space", allowed,
                            f"classes {names} differ from the served model's {served_class_names}"
                            + ("; allowed by --allow-label-change" if allowed else
                               "; class ids would change meaning for its clients (--allow-label-change pushes "
                               "it deliberately)")))
    return result


class ModelGateSpec(ComponentSpec):
    PARAMETERS = {"gate_config": ExecutionParameter(type=str)}
    INPUTS = {"model": ChannelParameter(type=standard_artifacts.Model),
              "evaluator_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
              "baseline_model": ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.ModelBlessing)}


class ModelGateExecutor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        evaluator_blessing = artifact_utils.get_single_instance(input_dict["evaluator_blessing"])
        baseline = artifact_utils.get_single_instance(input_dict["baseline_model"])
        served = (json.loads(baseline.get_string_custom_property(SERVED_CLASS_NAMES))
                  if baseline.has_custom_property(SERVED_CLASS_NAMES) else None)
        result = checks(model_facts(path_utils.serving_model_dir(model.uri)), model_utils.is_model_blessed(evaluator_blessing), served,
                        json.loads(exec_properties["gate_config"]))
        blessed = all(c.passed for c in result)
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        gfile = _gfile()
        gfile.makedirs(blessing.uri)
        files.write_json(os.path.join(blessing.uri, GATE_FILE),
                         {"blessed": blessed, "checks": [dataclasses.asdict(c) for c in result]}, indent=1)
        with gfile.GFile(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w") as f:
            f.write("")  # GFile creates the file on the first write
        blessing.set_int_custom_property(contract.BLESSED, int(blessed))
        blessing.set_string_custom_property(contract.CURRENT_MODEL, model.uri)
        failed = [f"{c.name}: {c.detail}" for c in result if not c.passed]
        print("[gate] " + ("BLESSED: " + "; ".join(c.name for c in result) if blessed else
                           "NOT blessed: " + " | ".join(failed)), flush=True)


class ModelGate(base_component.BaseComponent):
    """Blesses the Evaluator's candidate only when it also beats chance and the random-init
    encoder, and keeps the served model's classes (see the module docstring)."""
    SPEC_CLASS = ModelGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ModelGateExecutor)

    def __init__(self, model: types.BaseChannel, evaluator_blessing: types.BaseChannel,
                 baseline_model: types.BaseChannel, settings: EvalConfig):
        super().__init__(spec=ModelGateSpec(
            model=model, evaluator_blessing=evaluator_blessing, baseline_model=baseline_model,
            gate_config=gate_settings(settings), blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
