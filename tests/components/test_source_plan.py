"""Tests of simsiam_tfx.components.source_plan: planning, its one-line errors, the content
fingerprint, the manifests and the spans."""
import json
import os

import pytest

from simsiam_tfx.components import source_plan, sources
from simsiam_tfx.config import ConfigError, DataConfig
from simsiam_tfx.features import SPLITS
from tests import data_factory


def test_a_missing_tfds_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(ConfigError, match=r"not prepared in .*tfds build cifar10 .*--tfds-data-dir"):
        source_plan.plan(DataConfig(dataset="cifar10", tfds_data_dir=str(tmp_path)), str(tmp_path / "data"))


def test_plan_fingerprint_follows_the_content_of_the_sources(tmp_path):
    root = tmp_path / "imgs"
    data_factory.write_image_folder(str(root), 6, classes=2)
    data = DataConfig(images=str(root))
    first = source_plan.plan(data, str(tmp_path / "d"))
    assert source_plan.plan(data, str(tmp_path / "d")).fingerprint() == first.fingerprint()
    with open(root / "class0" / "new.png", "wb") as f:
        f.write(data_factory.encoded((24, 24), 999))
    assert source_plan.plan(data, str(tmp_path / "d")).fingerprint() != first.fingerprint()


def test_labelled_folder_needs_two_classes(tmp_path):
    data_factory.write_image_folder(str(tmp_path / "one"), 4, classes=1)
    with pytest.raises(ConfigError, match="at least 2 class sub-folders"):
        source_plan.plan(DataConfig(images=str(tmp_path / "one")), str(tmp_path / "d"))


# ---- span manifests: data versions a schedule can see -----------------------------------------

def _add_images(root, start: int, count: int, classes: int = 2) -> None:
    for i in range(start, start + count):
        with open(root / f"class{i % classes}" / f"new{i:04d}.png", "wb") as f:
            f.write(data_factory.encoded((24, 24), 1000 + i))


def test_a_span_is_written_only_when_the_data_changed(tmp_path):
    images, root = tmp_path / "imgs", str(tmp_path / "data")
    data_factory.write_image_folder(str(images), 6, classes=2)
    data = DataConfig(images=str(images))
    first = source_plan.write_span(source_plan.plan(data, root), root)
    assert (first.number, first.created) == (1, True)
    assert first.folder == os.path.join(root, "span-1") and first.plan.source_files == {str(images): 6}
    written = os.stat(os.path.join(first.folder, source_plan.PLAN_FILE)).st_mtime_ns

    again = source_plan.write_span(source_plan.plan(data, root), root)  # nothing new: the same span, untouched
    assert (again.number, again.created, again.folder) == (1, False, first.folder)
    assert os.stat(os.path.join(first.folder, source_plan.PLAN_FILE)).st_mtime_ns == written
    assert sorted(os.listdir(root)) == ["span-1"]

    _add_images(images, 0, 2)
    grown = source_plan.write_span(source_plan.plan(data, root), root)
    assert (grown.number, grown.created) == (2, True)
    loaded = source_plan.load_plan(grown.folder)
    assert loaded.span == 2 and loaded.source_files == {str(images): 8}
    assert loaded.content_fingerprint != source_plan.load_plan(first.folder).content_fingerprint
    assert source_plan.write_span(source_plan.plan(data, root), root).number == 2


@pytest.mark.fault
@pytest.mark.parametrize("damage", ["truncate", "edit", "garbage", "no checksum"])
def test_a_corrupt_or_half_written_manifest_stops_with_one_line(tmp_path, damage):
    images, root = tmp_path / "imgs", str(tmp_path / "data")
    data_factory.write_image_folder(str(images), 6, classes=2)
    span = source_plan.write_span(source_plan.plan(DataConfig(images=str(images)), root), root)
    path = os.path.join(span.folder, source_plan.PLAN_FILE)
    with open(path) as f:
        text = f.read()
    raw = json.loads(text)
    damaged = {"truncate": text[: len(text) // 2],
               "edit": json.dumps({**raw, "class_names": ["class0", "cat"]}),
               "garbage": "\x00\x01not json",
               "no checksum": json.dumps({k: v for k, v in raw.items() if k != "checksum"})}[damage]
    with open(path, "w") as f:
        f.write(damaged)
    for call in (lambda: source_plan.load_plan(span.folder),
                 lambda: source_plan.write_span(source_plan.plan(DataConfig(images=str(images)), root), root)):
        with pytest.raises(ConfigError) as error:
            call()
        message = str(error.value)
        assert "\n" not in message and f"data manifest {path} is corrupt or half-written" in message


@pytest.mark.fault
def test_a_span_without_images_stops_before_anything_is_written(tmp_path):
    labelled, unlabelled, root = tmp_path / "imgs", tmp_path / "empty", str(tmp_path / "data")
    data_factory.write_image_folder(str(labelled), 6, classes=2)
    unlabelled.mkdir()
    plan = source_plan.plan(DataConfig(images=str(labelled), pretrain_images=str(unlabelled)), root)
    with pytest.raises(ConfigError, match=rf"holds no images in {unlabelled}: nothing to train on; the served"):
        source_plan.write_span(plan, root)
    assert not os.path.exists(root)


def test_plans_without_a_checksum_outside_spans_still_load(tmp_path):
    """sources-<fingerprint>/ plans written before checksums existed stay readable."""
    data_factory.write_image_folder(str(tmp_path / "imgs"), 6, classes=2)
    plan = source_plan.plan(DataConfig(images=str(tmp_path / "imgs")), str(tmp_path / "d"))
    folder = tmp_path / "sources-old"
    folder.mkdir()
    (folder / source_plan.PLAN_FILE).write_text(plan.to_json())
    assert source_plan.load_plan(str(folder)).class_names == ["class0", "class1"]


# ---- manifests written before data sources became classes ------------------------------------
# Each was written by the code as of commit a512ac1 (a `kind` string switched on in place) from the
# settings beside it, in the world `_old_world` makes. Loading one must give the same plan
# fingerprint (it names sources-<fingerprint>/ folders and decides whether a span is new), the same
# content fingerprint (TFX's ExampleGen cache key), the same descriptions, and the same file again;
# planning from the same settings today must write the same bytes.

def _read(kind, location, labelled, keep, split="", data_dir="", classes=()):
    return {"classes": list(classes), "data_dir": data_dir, "image_key": "image", "keep": list(keep), "kind": kind,
            "label_key": "label", "labelled": labelled, "location": location, "split": split}


_PHOTOS = ("bird", "cat", "dog")
_EMPTY = {"item": "photos/empty", "reason": "empty class folder (no images)", "source": "photos"}
_UNLABELLED = _read("images", "unlabelled", False, (0.0, 1.0))
OLD_MANIFESTS = {
    "images": (DataConfig(images="photos", pretrain_images="unlabelled", image_size=48), {
        "checksum": "21e7838cfcf7168db0ef0e2580545714a789937963b3c33ed3aeff6d20595561",
        "class_names": list(_PHOTOS), "content_fingerprint": "1f0074f6ed482027",
        "description": "pre-train on images in unlabelled; probe and evaluate on class folders in photos",
        "image_size": 48, "skipped": [_EMPTY], "source_files": {"photos": 12, "unlabelled": 4}, "span": 0,
        "splits": {"eval": [_read("images", "photos", True, (0.85, 1.0), classes=_PHOTOS)],
                   "pretrain": [_UNLABELLED],
                   "probe_train": [_read("images", "photos", True, (0.0, 0.85), classes=_PHOTOS)]},
    }, "ed583a80221c", {"eval": ["images in photos (hash 0.85-1)"], "pretrain": ["images in unlabelled"],
                        "probe_train": ["images in photos (hash 0-0.85)"]}),
    "stl10": (DataConfig(dataset="stl10", tfds_data_dir="prepared"), {
        "checksum": "51c135c65517ef3c1af1856a7f747c37a48a1cef357058280cafb3816c50f66c",
        "class_names": ["n0", "n1", "n2"], "content_fingerprint": "d931c2c4595ddc24",
        "description": "stl10 (TFDS 9.8.7)", "image_size": 32, "skipped": [], "source_files": {}, "span": 0,
        "splits": {"eval": [_read("tfds", "stl10", True, (0.0, 1.0), "test", "prepared")],
                   "pretrain": [_read("tfds", "stl10", False, (0.0, 1.0), "unlabelled+train", "prepared")],
                   "probe_train": [_read("tfds", "stl10", True, (0.0, 1.0), "train", "prepared")]},
    }, "e6c6990f9336", {"eval": ["TFDS stl10[test]"], "pretrain": ["TFDS stl10[unlabelled+train]"],
                        "probe_train": ["TFDS stl10[train]"]}),
    "tf_flowers": (DataConfig(dataset="tf_flowers", eval_fraction=0.2, probe_images="photos"), {
        "checksum": "56c1c5ca1db81605a01693f66144508f204c4d6c7324077e1eec59b39abbd017",
        "class_names": list(_PHOTOS), "content_fingerprint": "f4375d471b0793a8",
        "description": "pre-train on tf_flowers (TFDS 9.8.7); probe and evaluate on class folders in photos",
        "image_size": 32, "skipped": [_EMPTY], "source_files": {"photos": 12}, "span": 0,
        "splits": {"eval": [_read("images", "photos", True, (0.8, 1.0), classes=_PHOTOS)],
                   "pretrain": [_read("tfds", "tf_flowers", False, (0.0, 0.8), "train")],
                   "probe_train": [_read("images", "photos", True, (0.0, 0.8), classes=_PHOTOS)]},
    }, "95e1aee96ced", {"eval": ["images in photos (hash 0.8-1)"], "pretrain": ["TFDS tf_flowers[train] (hash 0-0.8)"],
                        "probe_train": ["images in photos (hash 0-0.8)"]}),
    "tfrecords": (DataConfig(tfrecords="records", pretrain_images="unlabelled"), {
        "checksum": "b5503b341b888a7f59167c7f58ff24fe3960b8dac3ffc796ce4057cfcd997b7d",
        "class_names": ["0", "1", "2"], "content_fingerprint": "1e121b5a6804d3ec",
        "description": "pre-train on images in unlabelled; probe and evaluate on TFRecords records",
        "image_size": 32, "skipped": [], "source_files": {"records/*": 1, "unlabelled": 4}, "span": 0,
        "splits": {"eval": [_read("tfrecords", "records/*", True, (0.85, 1.0))],
                   "pretrain": [_UNLABELLED],
                   "probe_train": [_read("tfrecords", "records/*", True, (0.0, 0.85))]},
    }, "93c2e84095db", {"eval": ["TFRecords records/* (hash 0.85-1)"], "pretrain": ["images in unlabelled"],
                        "probe_train": ["TFRecords records/* (hash 0-0.85)"]}),
}


@pytest.fixture
def old_world(tmp_path, monkeypatch):
    """The files the old manifests were written over, at relative paths with fixed sizes and times
    (a content fingerprint covers paths, sizes and mtimes), and a TFDS builder with a fixed version
    and shard lengths (its content fingerprint covers those)."""
    import tensorflow as tf

    from simsiam_tfx.features import to_example
    monkeypatch.chdir(tmp_path)

    def write(path, data):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (1_700_000_000, 1_700_000_000))

    for i in range(4):
        write(f"photos/cat/{i}.png", b"x" * (10 + i))
        write(f"photos/dog/{i}.jpg", b"x" * (20 + i))
        write(f"birds/{i}.png", b"x" * (30 + i))
        write(f"unlabelled/a/b/{i}.png", b"x" * (40 + i))
    os.makedirs("photos/empty")
    os.symlink("../birds", "photos/bird")  # a linked class folder: its own pattern
    os.makedirs("records")
    with tf.io.TFRecordWriter("records/part-0.tfrecord") as writer:
        for i in range(5):
            writer.write(to_example(b"not really an image %d" % i, i % 3))
    os.utime("records/part-0.tfrecord", (1_700_000_000, 1_700_000_000))

    class Split:
        def __init__(self, lengths):
            self.shard_lengths = lengths

    class Label:
        names = ["n0", "n1", "n2"]

    class Info:
        version = "9.8.7"
        features = {"label": Label()}
        splits = {"train": Split([5, 4]), "test": Split([3]), "unlabelled": Split([7, 7, 6])}

    class Builder:
        info = Info()

    monkeypatch.setattr(sources, "tfds_builder", lambda name, data_dir, download=False: Builder())
    return tmp_path


@pytest.mark.parametrize("name", sorted(OLD_MANIFESTS))
def test_a_manifest_written_before_sources_were_classes_loads_and_fingerprints_the_same(old_world, name):
    data, body, fingerprint, described = OLD_MANIFESTS[name]
    text = json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False)
    loaded = source_plan.parse_manifest(text, os.path.join("span-1", source_plan.PLAN_FILE))
    assert loaded.fingerprint() == fingerprint
    assert source_plan.manifest_text(loaded) == text
    assert source_plan.content_fingerprint(loaded) == body["content_fingerprint"]
    assert source_plan.summary(loaded)["splits"] == described
    assert source_plan.manifest_text(source_plan.plan(data, "data")) == text


def test_embedded_data_sets_are_planned_as_before(tmp_path, monkeypatch):
    """The embedded copies' folders are named by their settings; their plans read them as TFRecords."""
    monkeypatch.chdir(tmp_path)
    shapes = source_plan.plan(DataConfig(dataset="shapes", shapes_per_split=(6, 3, 3)), "data")
    digits = source_plan.plan(DataConfig(dataset="digits"), "data")
    for plan, folder in ((shapes, "data/shapes-78319b764f4d"), (digits, "data/digits-a73d7b92062a")):
        assert json.loads(plan.to_json())["splits"] == {
            split: [_read("tfrecords", f"{folder}/{split}/*", split != "pretrain", (0.0, 1.0))] for split in SPLITS}
        assert plan.source_files == {f"{folder}/{split}/*": 1 for split in SPLITS}
    assert (shapes.description, digits.description) == ("shapes (embedded)", "digits (embedded)")
    assert shapes.class_names[:3] == ["disk", "ring", "square"] and digits.class_names == [str(i) for i in range(10)]


# ---- the manifest and the choice of source ------------------------------------------------

def test_every_kind_round_trips_through_the_manifest():
    reads = [sources.Read(kind, f"somewhere/{kind}", labelled=False, split="train", classes=("a", "b"),
                          keep=(0.25, 0.5)) for kind in sources.KINDS]
    plan = source_plan.SourcePlan(splits={split: reads for split in SPLITS}, class_names=["a", "b"], description="d")
    loaded = source_plan.parse_manifest(source_plan.manifest_text(plan), os.path.join("span-1", source_plan.PLAN_FILE))
    assert loaded == plan and loaded.fingerprint() == plan.fingerprint()
    assert all(source.kind == kind for kind, source in sources.KINDS.items())
    # A source that is read as another kind (the embedded data sets: TFRecords) reads like it.
    assert all(issubclass(source, sources.KINDS[source.kind]) for source in sources.SOURCES)


def test_a_choice_goes_to_the_first_source_that_it_names(tmp_path):
    data_factory.write_image_folder(str(tmp_path / "imgs"), 6, classes=2)
    both = sources.Choice("shapes", str(tmp_path / "imgs"), None, "--images")
    planned = source_plan._labelled_source(both, DataConfig(), str(tmp_path))
    assert planned.description == f"class folders in {tmp_path / 'imgs'}"  # the folder given, not the default
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'"):
        source_plan._labelled_source(sources.Choice("mnist", None, None, "--images"), DataConfig(), str(tmp_path))
