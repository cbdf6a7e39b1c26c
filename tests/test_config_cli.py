import json
import os

import pytest

from pipeline import cli
from pipeline.config import ConfigError, PipelineConfig


def test_defaults_validate_and_resolve_to_the_paper_values():
    cfg = PipelineConfig().validate()
    p = cfg.pretrain.resolved(cfg.data.image_size)
    assert (p.base_lr, p.weight_decay, p.proj_dim) == (0.5, 5e-4, 16 * p.width)
    big = PipelineConfig().pretrain
    big.backbone = "resnet50"
    assert big.resolved(224).base_lr == 0.05 and big.resolved(224).weight_decay == 1e-4


def test_config_file_round_trip(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"data": {"dataset": "digits"}, "pretrain": {"epochs": 3}}))
    cfg = PipelineConfig.from_json_file(str(path))
    assert cfg.data.dataset == "digits" and cfg.pretrain.epochs == 3 and cfg.data.augment_preset() == "mild"
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg
    path.write_text(json.dumps({"pretrain": {"epoch": 3}}))
    with pytest.raises(ConfigError, match="epoch"):
        PipelineConfig.from_json_file(str(path))


@pytest.mark.parametrize("argv, message", [
    (["run", "--epochs", "0"], "--epochs must be >= 1"),
    (["run", "--min-accuracy", "1.5"], "--min-accuracy must be in [0, 1]"),
    (["run", "--image-size", "4"], "--image-size must be in [16, 512]"),
    (["run", "--config", "/nonexistent/config.json"], "cannot read config file"),
])
def test_user_mistakes_give_one_clear_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("simsiam-tfx: error:")


def test_unknown_dataset_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--dataset", "imagenet"])
    assert exit_info.value.code == 2 and "invalid choice: 'imagenet'" in capsys.readouterr().err


def test_help_describes_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "run" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    for flag in ("--output", "--dataset", "--image-size", "--epochs", "--batch-size", "--backbone", "--width",
                 "--min-accuracy"):
        assert flag in out


def test_the_example_beam_runner_configs_are_valid():
    import glob
    paths = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.json")))
    assert len(paths) == 3
    for path in paths:
        config = PipelineConfig.from_json_file(path).validate()
        assert any(arg.startswith("--runner=") for arg in config.beam_pipeline_args)
        assert config.pipeline_root.startswith("gs://")  # remote workers need shared storage
