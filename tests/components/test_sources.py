"""Tests of simsiam_tfx.components.sources: planning, its one-line errors, the content fingerprint."""
import json
import os

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


# ---- span manifests: data versions a schedule can see -----------------------------------------

def _add_images(root, start: int, count: int, classes: int = 2) -> None:
    for i in range(start, start + count):
        with open(root / f"class{i % classes}" / f"new{i:04d}.png", "wb") as f:
            f.write(data_factory.encoded((24, 24), 1000 + i))


def test_a_span_is_written_only_when_the_data_changed(tmp_path):
    images, root = tmp_path / "imgs", str(tmp_path / "data")
    data_factory.write_image_folder(str(images), 6, classes=2)
    data = DataConfig(images=str(images))
    first = sources.write_span(sources.plan(data, root), root)
    assert (first.number, first.created) == (1, True)
    assert first.folder == os.path.join(root, "span-1") and first.plan.source_files == {str(images): 6}
    written = os.stat(os.path.join(first.folder, sources.PLAN_FILE)).st_mtime_ns

    again = sources.write_span(sources.plan(data, root), root)  # nothing new: the same span, untouched
    assert (again.number, again.created, again.folder) == (1, False, first.folder)
    assert os.stat(os.path.join(first.folder, sources.PLAN_FILE)).st_mtime_ns == written
    assert sorted(os.listdir(root)) == ["span-1"]

    _add_images(images, 0, 2)
    grown = sources.write_span(sources.plan(data, root), root)
    assert (grown.number, grown.created) == (2, True)
    loaded = sources.load_plan(grown.folder)
    assert loaded.span == 2 and loaded.source_files == {str(images): 8}
    assert loaded.content_fingerprint != sources.load_plan(first.folder).content_fingerprint
    assert sources.write_span(sources.plan(data, root), root).number == 2


@pytest.mark.fault
@pytest.mark.parametrize("damage", ["truncate", "edit", "garbage", "no checksum"])
def test_a_corrupt_or_half_written_manifest_stops_with_one_line(tmp_path, damage):
    images, root = tmp_path / "imgs", str(tmp_path / "data")
    data_factory.write_image_folder(str(images), 6, classes=2)
    span = sources.write_span(sources.plan(DataConfig(images=str(images)), root), root)
    path = os.path.join(span.folder, sources.PLAN_FILE)
    with open(path) as f:
        text = f.read()
    raw = json.loads(text)
    damaged = {"truncate": text[: len(text) // 2],
               "edit": json.dumps({**raw, "class_names": ["class0", "cat"]}),
               "garbage": "\x00\x01not json",
               "no checksum": json.dumps({k: v for k, v in raw.items() if k != "checksum"})}[damage]
    with open(path, "w") as f:
        f.write(damaged)
    for call in (lambda: sources.load_plan(span.folder),
                 lambda: sources.write_span(sources.plan(DataConfig(images=str(images)), root), root)):
        with pytest.raises(ConfigError) as error:
            call()
        message = str(error.value)
        assert "\n" not in message and f"data manifest {path} is corrupt or half-written" in message


@pytest.mark.fault
def test_a_span_without_images_stops_before_anything_is_written(tmp_path):
    labelled, unlabelled, root = tmp_path / "imgs", tmp_path / "empty", str(tmp_path / "data")
    data_factory.write_image_folder(str(labelled), 6, classes=2)
    unlabelled.mkdir()
    plan = sources.plan(DataConfig(images=str(labelled), pretrain_images=str(unlabelled)), root)
    with pytest.raises(ConfigError, match=rf"holds no images in {unlabelled}: nothing to train on; the served"):
        sources.write_span(plan, root)
    assert not os.path.exists(root)


def test_plans_without_a_checksum_outside_spans_still_load(tmp_path):
    """sources-<fingerprint>/ plans written before checksums existed stay readable."""
    data_factory.write_image_folder(str(tmp_path / "imgs"), 6, classes=2)
    plan = sources.plan(DataConfig(images=str(tmp_path / "imgs")), str(tmp_path / "d"))
    folder = tmp_path / "sources-old"
    folder.mkdir()
    (folder / sources.PLAN_FILE).write_text(plan.to_json())
    assert sources.load_plan(str(folder)).class_names == ["class0", "class1"]
