"""Tests of simsiam_tfx.components.warm_start: the retraining policy finds the served model's encoder
through the record each pushed version carries, and says why when it cannot."""
import json
import os

import numpy as np
import pytest

from simsiam_tfx.components import model_record, warm_start
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.trainer import backbones


def config(tmp_path, warm: bool = True, width: int = 2) -> PipelineConfig:
    result = PipelineConfig(output_dir=str(tmp_path / "out"))
    result.data.image_size = 16
    result.pretrain.width = width
    result.pretrain.warm_start = warm
    return result


def push(tmp_path, version: int, record: dict | None) -> str:
    folder = tmp_path / "out" / "serving_model" / str(version)
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"stand-in")
    if record is not None:
        model_record.write_json(str(folder), model_record.TRAINING_RECORD, record)
    return str(folder)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    encoder = backbones.build_encoder("resnet18", 16, 2)
    path = str(tmp_path_factory.mktemp("encoder") / "Format-Serving")
    encoder.save(path, include_optimizer=False)
    return path, encoder.get_weights()


def test_from_scratch_by_default_and_without_a_served_model(tmp_path):
    decision, weights = warm_start.decide(config(tmp_path, warm=False))
    assert decision["policy"] == "from_scratch" and "configured policy" in decision["reason"] and weights is None
    decision, weights = warm_start.decide(config(tmp_path))
    assert decision["policy"] == "from_scratch" and weights is None
    assert decision["reason"].startswith("--warm-start, but no model has been pushed to ")


def test_warm_start_loads_the_encoder_the_served_version_names(tmp_path, encoder_dir):
    path, expected = encoder_dir
    push(tmp_path, 100, {"encoder_uri": path})
    push(tmp_path, 101, None)  # the newest version wins; this one predates training records
    decision, weights = warm_start.decide(config(tmp_path))
    assert decision["policy"] == "from_scratch" and decision["from_version"] == 101
    assert "names no encoder" in decision["reason"]

    push(tmp_path, 102, {"encoder_uri": path})
    decision, weights = warm_start.decide(config(tmp_path))
    assert decision == {"policy": "warm_start", "from_version": 102, "encoder_uri": path,
                        "reason": "--warm-start: pre-training starts from the encoder of served version 102"}
    assert len(weights) == len(expected) and all(np.array_equal(a, b) for a, b in zip(weights, expected))
    json.dumps(decision)  # goes into the summary and MLMD as is


def test_warm_start_refuses_another_architecture_or_a_missing_encoder(tmp_path, encoder_dir):
    path, _ = encoder_dir
    push(tmp_path, 200, {"encoder_uri": path})
    decision, weights = warm_start.decide(config(tmp_path, width=4))
    assert decision["policy"] == "from_scratch" and weights is None and "another architecture" in decision["reason"]
    push(tmp_path, 201, {"encoder_uri": os.path.join(str(tmp_path), "gone")})
    decision, _ = warm_start.decide(config(tmp_path))
    assert decision["policy"] == "from_scratch" and "is gone" in decision["reason"]
