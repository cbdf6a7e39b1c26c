"""Tests of simsiam_tfx.pipeline.flags: one table names each flag and the setting it changes."""
import argparse
import dataclasses
import os

import pytest

from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.pipeline import flags


def _parse(argv, **kwargs):
    parser = argparse.ArgumentParser()
    flags.add_flags(parser, **kwargs)
    return flags.config_from_args(parser.parse_args(argv))


def test_every_flag_names_fields_that_exist():
    config = PipelineConfig()
    for flag in flags.FLAGS:
        for field in flag.fields:
            *sections, name = field.split(".")
            target = config
            for section in sections:
                target = getattr(target, section)
            assert name in {f.name for f in dataclasses.fields(target)}, (flag.name, field)


def test_flags_set_their_fields_and_unset_flags_keep_the_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"pretrain": {"epochs": 3, "width": 8}}')
    config = _parse(["--config", str(path), "--epochs", "5", "--seed", "9", "--no-cache", "--tfds-download",
                     "--images", "relative/photos", "--output", "out"])
    assert (config.pretrain.epochs, config.pretrain.width) == (5, 8)
    assert config.data.seed == config.pretrain.seed == 9  # one flag, two fields
    assert config.enable_cache is False and config.data.tfds_download is True
    assert config.data.images == os.path.abspath("relative/photos") and config.output_dir == os.path.abspath("out")
    assert _parse(["--images", "gs://bucket/photos"]).data.images == "gs://bucket/photos"


def test_data_only_parsers_have_only_the_data_flags():
    parser = argparse.ArgumentParser()
    flags.add_flags(parser, data_only=True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "3"])
    assert _parse(["--dataset", "digits"], data_only=True).data.dataset == "digits"
