"""Tests of simsiam_tfx.components.sources: each source class, on small data made here."""
import json
import os
import pickle

from simsiam_tfx.components import sources
from simsiam_tfx.config import DataConfig
from simsiam_tfx.features import SPLITS
from tests import data_factory


def _dump(items, path):
    with open(path, "wb") as f:
        pickle.dump(items, f)


def _records(read: sources.Read, work) -> tuple[list, list]:
    """What the Read's source streams to ExampleGen: [(item, bytes, label)] and [skip reason]."""
    import apache_beam as beam

    from simsiam_tfx.components import beam_dependencies
    beam_dependencies.skip_staging_for_direct_runner()
    options = beam.options.pipeline_options.PipelineOptions(
        ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"])
    with beam.Pipeline(options=options) as pipeline:
        records, skipped = sources.KINDS[read.kind].records(pipeline, read)
        for name, collection in (("records", records), ("skipped", skipped)):
            _ = (collection | f"All[{name}]" >> beam.combiners.ToList()
                 | f"Dump[{name}]" >> beam.Map(_dump, os.path.join(work, f"{name}.pickle")))
    with open(os.path.join(work, "records.pickle"), "rb") as f, open(os.path.join(work, "skipped.pickle"), "rb") as g:
        return sorted(pickle.load(f)), sorted(json.loads(s)["reason"] for s in pickle.load(g))


def _choice(dataset="", images=None, tfrecords=None):
    return sources.Choice(dataset, images, tfrecords, "--images")


def test_image_folder(tmp_path):
    root = tmp_path / "imgs"
    data_factory.write_image_folder(str(root), 6, classes=2)
    (root / "stray.txt").write_text("not in a class folder")
    assert sources.ImageFolder.labelled(_choice("shapes"), DataConfig(), str(tmp_path)) is None
    planned = sources.ImageFolder.labelled(_choice(images=str(root)), DataConfig(eval_fraction=0.5), str(tmp_path))
    assert planned.class_names == ["class0", "class1"] and planned.skipped == []
    [read] = planned.splits["eval"]
    assert (read.kind, read.keep, read.describe()) == ("images", (0.5, 1.0), f"images in {root} (hash 0.5-1)")
    records, skipped = _records(read.source(), tmp_path)
    assert sorted((os.path.basename(item), label) for item, _, label in records) == [
        (f"img{i:06d}.png", i % 2) for i in range(6)]
    assert records[0][1] == data_factory.encoded((24, 24), 0) and skipped == ["not inside a class sub-folder"]

    unlabelled = sources.ImageFolder.unlabelled(str(root / "class0") + "/", "--pretrain-images")
    assert (unlabelled.location, unlabelled.labelled) == (str(root / "class0"), False)
    assert {label for _, _, label in _records(unlabelled, tmp_path)[0]} == {-1}
    assert sources.ImageFolder.content(unlabelled)[1] == 3


def test_tfrecords(tmp_path):
    import tensorflow as tf
    folder = tmp_path / "records"
    folder.mkdir()
    with tf.io.TFRecordWriter(str(folder / "a.tfrecord")) as writer:
        for i in range(4):
            example = tf.train.Example(features=tf.train.Features(feature={
                "jpeg": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"image %d" % i])),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[2 * i]))}))
            writer.write(example.SerializeToString())
        writer.write(b"not an example")
    data = DataConfig(image_key="jpeg", label_key="y")
    assert sources.TfRecords.labelled(_choice("shapes"), data, str(tmp_path)) is None
    planned = sources.TfRecords.labelled(_choice(tfrecords=str(folder)), data, str(tmp_path))
    assert planned.class_names == [str(i) for i in range(7)] and planned.description == f"TFRecords {folder}"
    [read] = planned.splits["eval"]
    assert (read.kind, read.location, read.image_key, read.label_key) == ("tfrecords", f"{folder}/*", "jpeg", "y")
    assert read.describe() == f"TFRecords {folder}/* (hash 0.85-1)"
    records, skipped = _records(read.source(), tmp_path)
    assert sorted((data, label) for _, data, label in records) == [(b"image %d" % i, 2 * i) for i in range(4)]
    assert skipped == ["not a tf.train.Example"]
    assert sources.TfRecords.content(read) == (sources._file_lines(f"{folder}/*"), 1)


def test_embedded(tmp_path):
    data = DataConfig(dataset="shapes", shapes_per_split=(6, 3, 3))
    assert sources.Embedded.labelled(_choice("cifar10"), data, str(tmp_path)) is None
    planned = sources.Embedded.labelled(_choice("shapes"), data, str(tmp_path))
    assert planned.description == "shapes (embedded)" and len(planned.class_names) == 10
    for split, count in zip(SPLITS, (6, 3, 3)):
        [read] = planned.splits[split]
        assert read.kind == "tfrecords" and read.labelled == (split != "pretrain")
        records, skipped = _records(read, tmp_path)
        assert len(records) == count and skipped == [] and all(0 <= label < 10 for _, _, label in records)


def test_tfds(tmp_path, monkeypatch):
    tfds_dir = str(tmp_path / "tfds")
    data_factory.prepare_tfds("cifar10", tfds_dir)
    data = DataConfig(dataset="cifar10", tfds_data_dir=tfds_dir)
    assert sources.Tfds.labelled(_choice("shapes"), data, str(tmp_path)) is None
    planned = sources.Tfds.labelled(_choice("cifar10"), data, str(tmp_path))
    assert len(planned.class_names) == 10 and planned.description.startswith("cifar10 (TFDS ")
    assert {split: [(r.split, r.keep) for r in reads] for split, reads in planned.splits.items()} == {
        "pretrain": [("train", (0.0, 1.0))], "probe_train": [("train", (0.0, 1.0))], "eval": [("test", (0.0, 1.0))]}
    [read] = planned.splits["eval"]
    assert read.describe() == "TFDS cifar10[test]"
    lines, files = sources.Tfds.content(read)
    assert files is None and "[('test', [12]), ('train', [30])]" in lines[0]
    records, skipped = _records(read, tmp_path)
    assert len(records) == data_factory.TFDS_LAYOUTS["cifar10"]["test"] and skipped == []
    assert records[0][0].startswith("cifar10/") and records[0][1][:4] == b"\x89PNG"

    # A data set with one split is cut by hash; its layout is the table's.
    monkeypatch.setitem(sources.TFDS_DATASETS, "cifar10", {"pretrain": "train", "probe_train": "train",
                                                           "eval": "train", "hash_split": True})
    cut = sources.Tfds.labelled(_choice("cifar10"), data, str(tmp_path))
    assert {split: [(r.split, r.keep, r.labelled) for r in reads] for split, reads in cut.splits.items()} == {
        "pretrain": [("train", (0.0, 0.85), False)], "probe_train": [("train", (0.0, 0.85), True)],
        "eval": [("train", (0.85, 1.0), True)]}
