"""What pre-training decided, set on its Model artifact as MLMD custom properties, so a lineage
query finds it without opening files: how it started (the retraining decision written beside the encoder,
components/warm_start.py) and how long it trained (its epochs, and the time budget that chose them)."""
from __future__ import annotations

import os

from tfx import types

from simsiam_tfx import contract, files


def record_retraining(model: types.Artifact) -> None:
    """The retraining decision pre-training wrote beside its encoder, as MLMD custom properties."""
    from tfx.utils import path_utils

    from simsiam_tfx.components import model_record
    decision = model_record.retraining_of(path_utils.serving_model_path(model.uri))
    if decision:
        model.set_string_custom_property(contract.RETRAINING_POLICY, decision.get("policy", ""))
        model.set_string_custom_property(contract.RETRAINING_REASON, decision.get("reason", ""))
        model.set_int_custom_property(contract.WARM_START_FROM_VERSION, int(decision.get("from_version") or 0))


def record_schedule(model: types.Artifact, model_run_dir: str) -> None:
    """Pre-training's epochs, and the time budget that chose them, as MLMD custom properties."""
    metrics = files.read_json(os.path.join(model_run_dir, contract.PRETRAIN_METRICS_FILE))
    if metrics is None:  # the probe's Trainer: no pre-training
        return
    model.set_int_custom_property(contract.PRETRAIN_EPOCHS, int(metrics["epochs"]))
    budget = metrics.get("time_budget") or {}
    model.set_string_custom_property(contract.TIME_BUDGET, budget.get("budget", ""))
