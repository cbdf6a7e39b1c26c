"""Tests of simsiam_tfx.components.trainer_config."""
import json

import pytest

from simsiam_tfx.components import trainer_config
from simsiam_tfx.config import PipelineConfig


def test_custom_config_round_trips_through_the_json_the_trainer_stores():
    config = PipelineConfig()
    config.pretrain.epochs, config.data.image_size = 3, 48
    text = trainer_config.custom_config_json(config, 3, ["cat", "dog", "café ☕"])
    settings = trainer_config.read(json.loads(text))
    assert settings.config.pretrain.epochs == 3 and settings.config.data.image_size == 48
    assert settings.num_classes == 3 and settings.class_names == ("cat", "dog", "café ☕")
    assert set(json.loads(text)["config"]) == {"data", "pretrain", "probe"}  # not eval: it must not re-train


def test_class_names_default_to_the_ids_and_must_match_the_count():
    assert trainer_config.custom_config(PipelineConfig(), 3)["class_names"] == ["0", "1", "2"]
    assert trainer_config.read({"config": {}, "num_classes": 2}).class_names == ("0", "1")
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        trainer_config.custom_config(PipelineConfig(), 3, ["a", "b"])
