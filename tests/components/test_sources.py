"""Tests of simsiam_tfx.components.sources: planning, its one-line errors, the content fingerprint."""
import pytest

from simsiam_tfx.components import sources
from simsiam_tfx.config import ConfigError, DataConfig
from tests import data_factory


def test_a_missing_tfds_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(ConfigError, match=r"not prepared in .*tfds build cifar10 .*--tfds-data-dir"):
        sources.plan(DataConfig(dataset="cifar10", tfds_data_dir=str(tmp_path)), str(tmp_path / "data"))


def test_plan_fingerprint_follows_the_content_of_the_sources(tmp_path):
    root = tmp_path / "imgs"
    data_factory.write_image_folder(str(root), 6, classes=2)
    data = DataConfig(images=str(root))
    first = sources.plan(data, str(tmp_path / "d"))
    assert sources.plan(data, str(tmp_path / "d")).fingerprint() == first.fingerprint()
    with open(root / "class0" / "new.png", "wb") as f:
        f.write(data_factory.encoded((24, 24), 999))
    assert sources.plan(data, str(tmp_path / "d")).fingerprint() != first.fingerprint()


def test_labelled_folder_needs_two_classes(tmp_path):
    data_factory.write_image_folder(str(tmp_path / "one"), 4, classes=1)
    with pytest.raises(ConfigError, match="at least 2 class sub-folders"):
        sources.plan(DataConfig(images=str(tmp_path / "one")), str(tmp_path / "d"))
