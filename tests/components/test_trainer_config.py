"""Tests of simsiam_tfx.components.trainer_config."""
import json

import pytest

from simsiam_tfx.components import trainer_config
from simsiam_tfx.config import ConfigError, PipelineConfig

PLAN = {"class_names": ["cat", "dog", "café ☕"], "image_size": 48}


def compiled_config() -> PipelineConfig:
    config = PipelineConfig()
    config.pretrain.epochs, config.data.image_size = 3, 48
    return config


def test_custom_config_round_trips_through_the_json_the_trainer_stores():
    text = trainer_config.custom_config_json(compiled_config(), gpus=2)
    assert set(json.loads(text)["config"]) == {"data", "pretrain", "probe"}  # not eval: it must not re-train
    config, gpus = trainer_config.compiled(json.loads(text))
    assert config.pretrain.epochs == 3 and gpus == 2
    settings = trainer_config.read(trainer_config.with_data_plan(json.loads(text), PLAN))
    assert settings.config.pretrain.epochs == 3 and settings.config.data.image_size == 48 and settings.gpus == 2
    assert settings.num_classes == 3 and settings.class_names == ("cat", "dog", "café ☕")


def test_class_names_come_only_from_the_data_plan():
    custom = trainer_config.custom_config(compiled_config())
    assert "class_names" not in custom and "num_classes" not in custom
    with pytest.raises(ConfigError, match="no data plan"):
        trainer_config.read(custom)
    with pytest.raises(ConfigError, match="names 1 classes"):
        trainer_config.read(trainer_config.with_data_plan(custom, {**PLAN, "class_names": ["only"]}))


def test_image_size_must_match_the_plan():
    custom = trainer_config.custom_config(compiled_config())
    with pytest.raises(ConfigError, match="made for --image-size 32 but the pipeline was compiled with --image-size"):
        trainer_config.read(trainer_config.with_data_plan(custom, {**PLAN, "image_size": 32}))
    assert trainer_config.read(trainer_config.with_data_plan(custom, PLAN)).config.data.image_size == 48
