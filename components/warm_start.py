"""Retraining policy: retrain from scratch, or warm-start pre-training from the served encoder.

Policy (`pretrain.warm_start`, flag `--warm-start`): retrain from scratch (the default), or start
pre-training from the encoder of the model being served (the newest pushed version). Either way
the Evaluator still compares the new model with the served one, so a worse model is not pushed.
The decision and its reason are written once, beside the exported encoder (model_record.RETRAINING_FILE).
Read from there: run_summary.json's `retraining`, the custom properties of the SimSiamPretrain model
artifact in MLMD (components/pretrain_properties.py), and the probe's training record, which carries
it into every pushed version (the encoder itself is not pushed).

How the served encoder is found without any lookup outside the push destination: each pushed
version carries its training record (components/model_record.py), which names the encoder it was
probed on (`encoder_uri`), the retraining decision, and the data it was trained on (span, content
fingerprint, examples per split, class names). `simsiam-tfx served` prints it: which data
produced the model being served.
"""
from __future__ import annotations

import os
from typing import Any

from simsiam_tfx import contract
from simsiam_tfx.components.model_record import newest_pushed, training_record
from simsiam_tfx.config import PipelineConfig

FROM_SCRATCH, WARM_START = "from_scratch", "warm_start"


def decide(config: PipelineConfig) -> tuple[dict[str, Any], list | None]:
    """(the decision: policy, reason, from_version, encoder_uri; the encoder weights to start from,
    or None for a fresh initialisation)."""
    if not config.pretrain.warm_start:
        return {"policy": FROM_SCRATCH, "reason": "the configured policy: retrain from scratch (--warm-start "
                                                  "starts from the served encoder)"}, None
    serving = config.serving_model_dir
    newest = newest_pushed(serving)
    if newest is None:
        return {"policy": FROM_SCRATCH, "reason": f"--warm-start, but no model has been pushed to {serving} yet"}, None
    record = training_record(newest.path) or {}
    encoder_uri = record.get("encoder_uri")
    decision = {"from_version": newest.version}
    import tensorflow as tf
    if not encoder_uri:
        return {**decision, "policy": FROM_SCRATCH,
                "reason": f"--warm-start, but served version {newest.version} names no encoder (pushed before "
                          f"models carried their training record)"}, None
    if not tf.io.gfile.exists(os.path.join(encoder_uri, contract.SAVED_MODEL_FILE)):
        return {**decision, "policy": FROM_SCRATCH,
                "reason": f"--warm-start, but the encoder of served version {newest.version} is gone ({encoder_uri})"}, None
    import tf_keras as keras

    from simsiam_tfx.trainer import backbones
    p = config.pretrain_settings()
    served = keras.models.load_model(encoder_uri, compile=False)
    fresh = backbones.build_encoder(p.backbone, config.data.image_size, p.width)
    weights = served.get_weights()
    if [w.shape for w in weights] != [w.shape for w in fresh.get_weights()]:
        return {**decision, "policy": FROM_SCRATCH, "encoder_uri": encoder_uri,
                "reason": f"--warm-start, but the encoder of served version {newest.version} has another "
                          f"architecture than --backbone {p.backbone} --width {p.width} --image-size "
                          f"{config.data.image_size}"}, None
    return {**decision, "policy": WARM_START, "encoder_uri": encoder_uri,
            "reason": f"--warm-start: pre-training starts from the encoder of served version {newest.version}"}, weights
