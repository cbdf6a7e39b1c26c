"""Tests of simsiam_tfx.config."""
import glob
import json
import os

import pytest

from simsiam_tfx.config import ConfigError, PipelineConfig, default_proj_dim, is_cifar_size


def test_defaults_validate_and_resolve_to_the_paper_values():
    cfg = PipelineConfig().validate()
    p = cfg.pretrain_settings()
    assert (p.base_lr, p.weight_decay, p.proj_dim) == (0.5, 1e-3, 16 * p.width)
    big = PipelineConfig().pretrain
    big.backbone = "resnet50"
    assert big.resolved(224).base_lr == 0.05 and big.resolved(224).weight_decay == 1e-4


def test_config_file_round_trip(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"data": {"dataset": "digits"}, "pretrain": {"epochs": 3}}))
    cfg = PipelineConfig.from_json_file(str(path))
    assert cfg.data.dataset == "digits" and cfg.pretrain.epochs == 3 and cfg.augment_policy() == "mild"
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg
    path.write_text(json.dumps({"pretrain": {"epoch": 3}}))
    with pytest.raises(ConfigError, match="epoch"):
        PipelineConfig.from_json_file(str(path))


def test_the_example_beam_runner_configs_are_valid():
    paths = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "*.json")))
    assert len(paths) == 3
    for path in paths:
        config = PipelineConfig.from_json_file(path).validate()
        assert any(arg.startswith("--runner=") for arg in config.beam_pipeline_args)
        assert config.pipeline_root.startswith("gs://")  # remote workers need shared storage


def test_the_cifar_size_rule_and_the_projection_default_are_one_fact_each():
    assert is_cifar_size(96) and not is_cifar_size(97)
    assert default_proj_dim("resnet50", 8) == 2048 and default_proj_dim("resnet18", 16) == 256
    small, large = PipelineConfig(), PipelineConfig()
    large.data.image_size = 128
    assert small.augment_policy() == "strong-colour"  # shapes' own default at any size
    large.data.dataset = small.data.dataset = "cifar10"
    assert (small.augment_policy(), large.augment_policy()) == ("cifar", "imagenet")
    assert large.pretrain.resolved(128).base_lr == 0.05 and small.pretrain.resolved(32).base_lr == 0.5


@pytest.mark.parametrize("raw, message", [
    ({"enable_cache": "false"}, "enable_cache must be true or false, got 'false'"),
    ({"pretrain": {"epochs": 1.5}}, "pretrain.epochs must be an integer or null, got 1.5"),
    ({"pretrain": {"epochs": True}}, "pretrain.epochs must be an integer or null, got True"),
    ({"beam_pipeline_args": "--runner=X"}, "beam_pipeline_args must be a list of strings, got '--runner=X'"),
    ({"data": {"image_size": "32"}}, "data.image_size must be an integer, got '32'"),
    ({"data": {"shapes_per_split": [10, 10]}}, "data.shapes_per_split must be a list of 3 integers"),
    ({"data": {"images": 3}}, "data.images must be a string or null, got 3"),
])
@pytest.mark.fault
def test_values_of_the_wrong_type_are_refused_with_the_field_named(raw, message):
    with pytest.raises(ConfigError) as error:
        PipelineConfig.from_dict(raw).validate()
    assert str(error.value).startswith(message)


def test_whole_numbers_are_numbers_and_json_lists_stand_for_tuples():
    config = PipelineConfig.from_dict({"eval": {"min_accuracy": 0}, "data": {"shapes_per_split": [20, 10, 10]}})
    assert config.validate().data.shapes_per_split == (20, 10, 10)


@pytest.mark.fault
def test_a_curated_schema_is_parsed_before_anything_runs(tmp_path):
    config = PipelineConfig()
    config.data.schema = str(tmp_path / "missing.pbtxt")
    with pytest.raises(ConfigError, match="cannot read --schema"):
        config.validate()
    (tmp_path / "garbage.pbtxt").write_text("feature { name: 'image' type: NOPE }")
    config.data.schema = str(tmp_path / "garbage.pbtxt")
    with pytest.raises(ConfigError, match="is not a schema.pbtxt"):
        config.validate()
    (tmp_path / "good.pbtxt").write_text('feature { name: "image" type: BYTES }')
    config.data.schema = str(tmp_path / "good.pbtxt")
    assert config.validate() is config


def test_a_config_file_with_data_augment_still_loads():
    # data.augment moved to pretrain.augment; files written before still mean the same run.
    cfg = PipelineConfig.from_dict({"data": {"dataset": "digits", "augment": "cifar"}, "pretrain": {"epochs": 2}})
    assert cfg.pretrain.augment == "cifar" and cfg.augment_policy() == "cifar" and cfg.pretrain.epochs == 2


@pytest.mark.parametrize("image_size", [16, 32, 224])
def test_views_of_photos_default_to_the_image_side_and_30_epochs(image_size):
    for data in ({"dataset": "cifar10"}, {"images": "/photos"}, {"tfrecords": "/records"}, {"pretrain_images": "/p"}):
        config = PipelineConfig.from_dict({"data": {**data, "image_size": image_size}})
        p = config.pretrain_settings()
        assert (p.view_size, p.epochs) == (image_size, 30), data
    assert PipelineConfig().pretrain.resolved(image_size).view_size == image_size  # no recipe: the paper's


@pytest.mark.parametrize("dataset", ["shapes", "digits"])
@pytest.mark.parametrize("image_size", [16, 32, 64])
def test_an_embedded_data_set_pretrains_with_its_own_recipe(dataset, image_size):
    from simsiam_tfx.registries import EMBEDDED_DATASETS
    config = PipelineConfig.from_dict({"data": {"dataset": dataset, "image_size": image_size}})
    recipe, p = EMBEDDED_DATASETS[dataset], config.pretrain_settings()
    assert p.view_size == max(8, round(image_size * recipe["view_fraction"])) < image_size
    assert (p.epochs, config.augment_policy()) == (recipe["epochs"], recipe["augment"])
    # A flag given wins over the recipe.
    config.pretrain.view_size, config.pretrain.epochs, config.pretrain.augment = image_size, 7, "cifar"
    p = config.pretrain_settings()
    assert (p.view_size, p.epochs, config.augment_policy()) == (image_size, 7, "cifar")


def test_a_view_size_given_is_kept_and_checked():
    config = PipelineConfig()
    config.pretrain.view_size = 16
    assert config.pretrain.resolved(32).view_size == 16
    config.pretrain.view_size = 4
    with pytest.raises(ConfigError, match=r"pretrain.view_size must be in \[8, 512\], got 4"):
        config.validate()
