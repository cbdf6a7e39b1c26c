"""The run's artifact contract: the names every writer and reader of a run's outputs agree on.

Node ids, the output keys read across stages, the files a stage writes for another (or for the
user), the MLMD custom properties, and the pipeline / KFP parameter names. They are spelled here
only (tests/simsiam_tfx/test_contract.py greps the package for them); everything else imports
them. Renaming one changes where runs are found: old runs' records keep the old name.
"""
from __future__ import annotations

import json
from typing import Any, Optional

# ---- node ids (TFX component ids = KFP task names) ------------------------------------------
PLAN_DATA = "PlanData"  # cluster runs only: the step that plans the data (kubeflow/plan_step.py)
EXAMPLE_GEN = "ExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
IMPORT_SCHEMA_GEN = "ImportSchemaGen"  # SchemaGen's place when a curated schema is given
EXAMPLE_VALIDATOR = "ExampleValidator"
STOP_ON_ANOMALIES = "StopOnAnomalies"
TRANSFORM = "Transform"
PRETRAIN = "SimSiamPretrain"
PROBE = "LinearProbe"
PUSHED_BASELINE = "PushedBaseline"
EVALUATOR = "Evaluator"
MODEL_GATE = "ModelGate"
PUSHER = "Pusher"

# ---- output keys read across stages (TFX's standard names, and our components') ---------------
EXAMPLES = "examples"
STATISTICS = "statistics"
TRANSFORM_GRAPH = "transform_graph"
TRANSFORMED_EXAMPLES = "transformed_examples"
MODEL = "model"
MODEL_RUN = "model_run"
BASELINE_MODEL = "baseline_model"
EVALUATION = "evaluation"
BLESSING = "blessing"
PUSHED_MODEL = "pushed_model"

# ---- output layout (folders inside an output artifact) -------------------------------------------
SERVING_DIR = "Format-Serving"  # TFX's: the SavedModel inside a Trainer's model artifact
TENSORBOARD_DIR = "tensorboard"  # SimSiamPretrain's model_run: its TensorBoard logs

# ---- files -------------------------------------------------------------------------------
RUN_SUMMARY_FILE = "run_summary.json"  # in the output folder
SAVED_MODEL_FILE = "saved_model.pb"  # what makes a folder a SavedModel
PRETRAIN_METRICS_FILE = "pretrain_metrics.json"  # SimSiamPretrain's model_run
PROBE_METRICS_FILE = "probe_metrics.json"  # LinearProbe's model_run
HISTORY_FILE = "history.json"  # the pre-training history, beside the checkpoints
TIME_BUDGET_FILE = "time_budget.json"  # the epochs a --time-budget chose (a resumed run keeps them)
AUGMENT_POLICY_FILE = "augment_policy.json"  # beside the transform graph
AUGMENT_PREVIEW_FILE = "augment_preview.png"  # beside the transform graph
MODEL_RECORD_FILE = "simsiam_tfx_record.json"  # in a served model: what it was trained on
RETRAINING_FILE = "retraining.json"  # in a served model: how pre-training started
PUSH_RECORD_FILE = "push_record.json"  # in a pushed version folder
GATE_FILE = "gate.json"  # ModelGate's verdict beside its blessing

# ---- MLMD custom properties ------------------------------------------------------------------
# ExampleGen's Examples: the plan it read (components/example_gen.py writes, `examples_record` reads).
CLASS_NAMES = "class_names"
IMAGE_SIZE = "image_size"
NUM_CLASSES = "num_classes"
DATA_FINGERPRINT = "data_fingerprint"
DATA_DESCRIPTION = "data_description"
DATA_SPAN = "data_span"  # ("span" is TFX's own Examples property)
SOURCE_FILES = "source_files"
EXAMPLE_COUNTS = "example_counts"
SKIPPED_COUNT = "skipped_count"
SKIPPED_BY_REASON = "skipped_by_reason"
SKIPPED_REPORT = "skipped_report"
# Transform's transform_graph: the augmentation policy's name and every parameter (JSON).
AUGMENT_POLICY = "augment_policy"
AUGMENT_POLICY_JSON = "augment_policy_json"
# Blessings, the baseline and the push.
BLESSED = "blessed"
CURRENT_MODEL = "current_model"
PUSHED_VERSION = "pushed_version"
PUSHED_PATH = "pushed_path"
ALREADY_PUSHED_VERSION = "already_pushed_version"
PUSHED = "pushed"  # TFX Pusher's own: 1 when it pushed
PUSHED_DESTINATION = "pushed_destination"  # TFX Pusher's own: the pushed version folder
FINGERPRINT = "fingerprint"
# SimSiamPretrain's model: how it started and how long it trained.
RETRAINING_POLICY = "retraining_policy"
RETRAINING_REASON = "retraining_reason"
WARM_START_FROM_VERSION = "warm_start_from_version"
PRETRAIN_EPOCHS = "pretrain_epochs"
TIME_BUDGET = "time_budget"
# Executions: a Trainer's custom_config (TFX's execution property), and the note run_lock leaves.
CUSTOM_CONFIG = "custom_config"
RUN_NOTE = "simsiam_tfx_note"


def examples_record(examples: Any) -> Optional[dict[str, Any]]:
    """What ExampleGen recorded on its Examples (an MLMD Artifact proto), or None for Examples made
    before it recorded the plan. The one reader: the Trainers, the summary and the report use it."""
    props = examples.custom_properties
    if CLASS_NAMES not in props:
        return None
    record: dict[str, Any] = {CLASS_NAMES: json.loads(_property_value(props[CLASS_NAMES])),
                              IMAGE_SIZE: int(_property_value(props[IMAGE_SIZE])), "examples_uri": examples.uri}
    for key in (DATA_FINGERPRINT, DATA_DESCRIPTION):
        if key in props:
            record[key] = str(_property_value(props[key]))
    if DATA_SPAN in props:  # the data version (span-N folder); 0: a plan that is not a span
        record["span"] = int(_property_value(props[DATA_SPAN]))
    if EXAMPLE_COUNTS in props:
        record[EXAMPLE_COUNTS] = json.loads(_property_value(props[EXAMPLE_COUNTS]))
    return record


def _property_value(value: Any) -> Any:
    """An MLMD property's value. The KFP v2 driver passes custom properties to a step wrapped as
    struct_value {"__value__": ...} (TFX's Artifact getters unwrap them the same way)."""
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        inner = value.struct_value.fields["__value__"]
        return inner.string_value if inner.WhichOneof("kind") == "string_value" else inner.number_value
    return getattr(value, kind)


# ---- pipeline / KFP parameters (kubeflow/compile.py declares them, kubeflow/plan_step.py reads) ----
INPUT_BASE_PARAM = "input_base"  # the data plan folder ExampleGen reads (also PlanData's output)
TRAINER_CONFIG_PARAM = "trainer_config"  # the Trainers' whole custom_config JSON
EVAL_CONFIG_PARAM = "eval_config"  # the Evaluator's EvalConfig JSON
DATA_CONFIG_PARAM = "data_config"  # the compiled DataConfig JSON PlanData plans from
